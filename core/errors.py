"""One exception tree for everything the engine raises.

Every error carries a sentence a person can act on (`hint`), and registry errors keep the
registry's own code and message. `temporary` says whether retrying can help: only temporary
errors are retried (as go-containerregistry's transport/error.go decides).

Every exception a caller of the engine may catch lives here, `TransferPaused` too (not an
error: how a run says it stopped as asked). Only control-flow signals stay beside the code
that raises and catches them (`filebody.BodyAborted`, `artifact.PackingStopped`).
"""

from __future__ import annotations

import errno
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx

from hoist.core.redaction import redact_urls

#: Error bodies are read up to this many bytes: nginx and Cloudflare answer with HTML pages,
#: and a hostile server may send megabytes.
MAX_ERROR_BODY = 64 * 1024
#: The longest Hoist waits for a whole bounded answer (headers, a manifest, a list, a token, an
#: error page, a chunk's reply), however it trickles in: a server dripping a byte at a time
#: never trips a per-read timeout.
ANSWER_DEADLINE = 300.0

TEMPORARY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
TEMPORARY_CODES = frozenset({"TOOMANYREQUESTS", "UNAVAILABLE"})


class HoistError(Exception):
    """Base of every error Hoist raises on purpose."""

    hint = ""
    #: What to do next in the window's words, where `hint` names a command (the window
    #: never tells its user to run one); "" when `hint` reads right in both.
    window_hint = ""

    def __init__(self, message: str, *, hint: str = "", window_hint: str = "") -> None:
        message = redact_urls(message)  # errors are shown, logged and kept in the journal
        super().__init__(message)
        self.message = message
        if hint:
            self.hint = hint
            self.window_hint = window_hint
        elif window_hint:
            self.window_hint = window_hint

    @property
    def temporary(self) -> bool:
        return False

    def sentence(self, *, window: bool = False) -> str:
        """The message and what to do next, as one line for a person; `window`: in the
        words of the window rather than the command line."""
        hint = (self.window_hint or self.hint) if window else self.hint
        if not hint:
            return self.message
        return f"{self.message}. {hint}".rstrip(". ") + "."


class InvalidReference(HoistError):
    hint = (
        "Write it as host[:port]/repository[:tag][@sha256:digest], "
        "e.g. localhost:5000/models/llama:v1"
    )


class InvalidSize(HoistError):
    hint = "Write a size as bytes or with a unit, e.g. 16MiB, 1GiB, 500KiB"


class SourceError(HoistError):
    """A local file, folder or image can't be pushed as it is."""


class StateFolderError(SourceError):
    """Hoist's state folder can't take what a push keeps there (a full disk, no permission):
    a packed folder, an image's generated config."""

    hint = "Free some space there (or fix its permissions) and push again"


def os_reason(exc: OSError) -> str:
    """Why a file operation failed, in words ("the disk is full" for ENOSPC)."""
    return "the disk is full" if exc.errno == errno.ENOSPC else exc.strerror or str(exc)


class FileChanged(SourceError):
    hint = (
        "The file changed since the upload began; restart this transfer to push the new content "
        "(Retry in the window, or `hoist resume ID --restart-changed`)"
    )
    window_hint = "The file changed since the upload began; Retry pushes its new content"


class WriteFailed(SourceError):
    """The local disk refused a write (permissions, a read-only folder): what was written
    before stays, so that trying again continues from it."""

    hint = "Check the permissions of the folder; what was written so far is kept"


class DiskFull(WriteFailed):
    """No space left (ENOSPC) or the quota is used up (EDQUOT)."""

    hint = (
        "Free some space and try again; what was downloaded is kept and the download "
        "continues from it"
    )


def write_failed(exc: OSError, path: object) -> WriteFailed:
    """The typed error for an OSError raised while writing `path` (raise it `from exc`)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFull(f"the disk is full: can't write {path}")
    return WriteFailed(f"can't write {path}: {exc.strerror or exc}")


class ReplaceRefused(SourceError):
    """A download would replace files that are not Hoist's own (`.partial`) and differ from
    what it brings. Nothing was written. The window asks whether to replace them and runs the
    download again with `overwrite`; the command line says `--force`.

    Attributes:
        paths: the files that would be replaced.
    """

    hint = "Nothing was written; download into another folder, or allow replacing them"

    def __init__(self, message: str, paths: list[Path], *, hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.paths = paths


class NetworkError(HoistError):
    """The registry could not be reached or the connection broke."""

    hint = "Check the network and that the registry is running; Hoist retries on its own"

    @property
    def temporary(self) -> bool:
        return True


class RegistryNotAnswering(NetworkError):
    """The registry's host refused the connection: the network works, but nothing listens
    there (the registry is stopped, restarting, or on another port). Temporary, retried."""

    hint = (
        "The registry is not answering: check that the registry is running at that address and port"
    )


def connection_refused(exc: BaseException) -> bool:
    """Whether a transport error was a refused connection (ECONNREFUSED anywhere in its
    cause chain: httpx wraps it in two ConnectErrors and an OSError)."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, ConnectionRefusedError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class CredentialsError(HoistError):
    """Credentials could not be read or stored (no keyring backend, a broken helper)."""


@dataclass(frozen=True)
class ErrorDetail:
    code: str
    message: str


class RegistryError(HoistError):
    """The registry answered with an error status.

    Attributes:
        status: the HTTP status.
        code: the first registry error code (``BLOB_UPLOAD_INVALID``...), or "" when the body
            was not the registry's JSON (a proxy's HTML page, Docker Hub's text 429).
        details: every (code, message) in the body.
        retry_after: seconds the server asked us to wait, when it said so.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str = "",
        details: tuple[ErrorDetail, ...] = (),
        retry_after: float | None = None,
        hint: str = "",
        method: str = "",
        url: str = "",
    ) -> None:
        super().__init__(
            message,
            hint=hint or _hint_for(status, code),
            window_hint="" if hint else _window_hint_for(status, code),
        )
        self.status = status
        self.code = code
        self.details = details
        self.retry_after = retry_after
        self.method = method
        self.url = url

    @property
    def temporary(self) -> bool:
        return self.status in TEMPORARY_STATUS or self.code in TEMPORARY_CODES

    def has_code(self, *codes: str) -> bool:
        return any(d.code in codes for d in self.details) or self.code in codes


class AuthenticationFailed(RegistryError):
    """401: the registry refused the credentials (or needs some)."""


class AccessDenied(RegistryError):
    """403, or DENIED: the credentials are fine but may not do this."""


class NotFound(RegistryError):
    """404 of a blob, manifest or repository."""


class UploadSessionLost(RegistryError):
    """The registry no longer knows or accepts this upload session.

    distribution 2.x cancels a session whose `_state` offset disagrees with what it stored
    (BLOB_UPLOAD_INVALID); every registry purges old sessions (BLOB_UPLOAD_UNKNOWN). The blob
    must be started again from byte 0 in a new session.
    """

    @property
    def temporary(self) -> bool:
        return False  # whatever the status: waiting never brings a lost session back


class RangeNotSatisfiable(RegistryError):
    """416: the chunk did not start where the registry stands, or was larger than it takes."""


class RequestTooLarge(RegistryError):
    """413 from the registry or a proxy in front of it: the chunk must be smaller."""


#: A refused login, in the window's words (its registry dialog is where credentials change).
WINDOW_LOGIN_HINT = (
    "Check the username and password: choose the registry and Edit registry… (File menu)"
)


def _window_hint_for(status: int, code: str) -> str:
    if status == 401 or code == "UNAUTHORIZED":
        return WINDOW_LOGIN_HINT
    return ""


def _hint_for(status: int, code: str) -> str:
    if status == 401 or code == "UNAUTHORIZED":
        return "Log in with `hoist login REGISTRY`, or check the username and password"
    if status == 403 or code == "DENIED":
        return "These credentials may not do this here; ask the registry's owner for push access"
    if code in ("NAME_UNKNOWN", "MANIFEST_UNKNOWN", "BLOB_UNKNOWN") or status == 404:
        return "Check the repository name and tag"
    if code == "NAME_INVALID":
        return "Repository names are lowercase letters, digits and separators (. _ - /)"
    if status == 429 or code == "TOOMANYREQUESTS":
        return "The registry is rate limiting; Hoist waits and retries"
    if status == 413:
        return "A proxy limits the request size; Hoist retries with smaller chunks"
    if status in TEMPORARY_STATUS:
        return "The registry had a temporary problem; Hoist retries"
    if code == "DIGEST_INVALID":
        return "The bytes the registry received don't match; the blob is uploaded again"
    return ""


def first_meaningful_line(text: str, limit: int = 200) -> str:
    """The first line of an error page worth showing: not a tag, not blank.

    nginx's 413 page is `<html><head><title>413 Request Entity Too Large</title>...`;
    the title is the useful part.
    """
    title = re.search(r"<title>(.*?)</title>", text, re.I | re.S)
    if title and title.group(1).strip():
        return " ".join(title.group(1).split())[:limit]
    for raw in re.sub(r"<[^>]+>", "\n", text).splitlines():
        line = " ".join(raw.split())
        if line:
            return line[:limit]
    return ""


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def error_from_response(
    response: httpx.Response, body: bytes, *, what: str = "", elsewhere: bool = False
) -> RegistryError:
    """Turn an error response (body already read, at most MAX_ERROR_BODY) into a typed error.

    `elsewhere`: the answer came from the host a redirect led to (object storage, a CDN), not
    from the registry: the error names that host, and its 401 or 403 is not the registry
    refusing the user's credentials (which are never sent there).
    """
    status = response.status_code
    details: list[ErrorDetail] = []
    text = body[:MAX_ERROR_BODY].decode("utf-8", "replace")
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: a hostile `[[[[...` body
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("errors"), list):
        for item in doc["errors"]:
            if isinstance(item, dict):
                details.append(
                    ErrorDetail(str(item.get("code", "")), str(item.get("message", ""))[:500])
                )
    code = details[0].code if details else ""
    if details:
        said = "; ".join(f"{d.code}: {d.message}" if d.message else d.code for d in details[:3])
    else:
        said = first_meaningful_line(text) or response.reason_phrase
    prefix = f"{what}: " if what else ""
    who = (
        f"{response.request.url.host}, where the registry redirected," if elsewhere else "registry"
    )
    message = f"{prefix}{who} answered {status} ({said})"
    request = response.request
    kwargs = dict(
        status=status,
        code=code,
        details=tuple(details),
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
        method=request.method,
        url=str(request.url.copy_with(query=None)),
    )
    cls: type[RegistryError] = RegistryError
    if elsewhere and status in (401, 403):
        return RegistryError(
            message,
            hint="Hoist never sends the registry's credentials to another host; the registry or "
            "its storage is misconfigured: tell the registry's owner",
            **kwargs,  # type: ignore[arg-type]
        )
    if code in ("BLOB_UPLOAD_UNKNOWN", "BLOB_UPLOAD_INVALID"):
        cls = UploadSessionLost
    elif status == 401:
        cls = AuthenticationFailed
    elif status == 403 or code == "DENIED":
        cls = AccessDenied
    elif status == 416:
        cls = RangeNotSatisfiable
    elif status == 413:
        cls = RequestTooLarge
    elif status == 404:
        cls = NotFound
    return cls(message, **kwargs)  # type: ignore[arg-type]


class CatalogUnavailable(HoistError):
    """The registry does not list its repositories (Docker Hub, GHCR, or catalog turned off)."""

    hint = "This registry does not list its repositories: type a repository name instead"

    def __init__(self, message: str, *, status: int, hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.status = status


class DeleteRefused(RegistryError):
    """The registry refused to delete (deletion turned off, or not allowed for this user)."""


class DemoRegistryError(HoistError):
    """The demo registry could not be started."""

    hint = "Its log is in the demo-registry folder; you can still add another registry in Settings"


class ProfileUnwritable(HoistError):
    hint = "Free some space in that folder, or fix its permissions (or remove a folder there)"


class TransferPaused(Exception):
    """The user paused: the upload stopped (its stream ended cleanly, or at a chunk boundary
    where only sized chunks work) and its state is saved."""


class VerificationFailed(HoistError):
    """What arrived does not match the manifest (digest or size): nothing was kept under the
    file's name."""

    hint = (
        "The registry (or a proxy) sent different bytes than the manifest names; try again, "
        "and if it keeps failing the registry's copy is damaged"
    )


class ArtifactInvalid(HoistError):
    """The manifest's annotations contradict each other (a split file with a missing part)."""

    hint = "The artifact was not pushed completely or was edited; push it again"


class JournalError(HoistError):
    hint = "The transfer's saved state is unreadable; remove it with `hoist cancel ID`"
    window_hint = "The transfer's saved state is unreadable; remove it with Remove"


class JournalUnwritable(HoistError):
    """The journal folder can't be written (full disk, read-only, no permission)."""

    hint = (
        "If the transfer is interrupted it cannot be resumed; free some space (or fix the "
        "folder's permissions) to keep that possible"
    )


class TransferBusy(HoistError):
    """Another live process owns the transfer (holds its lock)."""

    def __init__(self, transfer_id: str, pid: int | None) -> None:
        who = f"another Hoist (pid {pid})" if pid and pid > 0 else "another Hoist"
        super().__init__(
            f"{transfer_id} is being uploaded by {who}; left alone",
            hint="Pause or cancel it there, or wait until it ends",
        )
        self.transfer_id = transfer_id
        self.pid = pid
