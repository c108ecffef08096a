"""What the window does before a transfer is queued, as plain functions (no Qt here).

Sorting dropped paths into files and images, checking that the credentials may push, and
looking up credentials off the event loop. Each is a small
step the add sheet awaits; tests call them directly.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from hoist.core.errors import HoistError
from hoist.core.oci.manifest import IMAGE_CONFIG_TYPES
from hoist.core.registry.auth import Credentials
from hoist.core.registry.credentials import resolve_credentials
from hoist.core.sources.formats import files_source, push_as_image
from hoist.core.sources.source import SourceSummary
from hoist.core.transfer.model import Push, Transfer
from hoist.core.transfer.upload import BlobRecord
from hoist.gui.settings.store import RegistrySettings

log = logging.getLogger(__name__)


def is_image_source(path: Path) -> bool:
    """An image source by `FORMATS`, as `hoist push` judges it (blocking: a worker thread)."""
    try:
        return push_as_image([path]) is not None
    except (OSError, HoistError):
        return False


def describe_as_files(path: Path) -> SourceSummary:
    """What `path` pushed as files amounts to (a folder: its files and bytes), as its format
    describes it (blocking: a worker thread walks a folder)."""
    return files_source(path).describe()


@dataclass(frozen=True)
class SourceChoice:
    """What a drop or a pick amounts to: an image (one source) or files and folders."""

    kind: str  # "image" or "files"
    paths: list[Path]
    note: str = ""


def classify_sources(paths: list[Path]) -> SourceChoice:
    """One image alone is pushed as an image; anything else as files (blocking)."""
    if len(paths) == 1 and is_image_source(paths[0]):
        return SourceChoice("image", paths)
    images = [p.name for p in paths if len(paths) > 1 and is_image_source(p)]
    note = ""
    if images:
        note = (
            f"{', '.join(images)} {'looks' if len(images) == 1 else 'look'} like a container "
            "image; add it on its own (Add image…) to push it as an image rather than a file."
        )
    return SourceChoice("files", paths, note)


_REPO_CLEAN = re.compile(r"[^a-z0-9._-]+")


def _name_stem(path: Path) -> str:
    """A file's name without its archive or file-type suffix: `llama-3.1.tar.gz` → `llama-3.1`."""
    stem = path.name
    for suffix in (".tar.gz", ".tgz", ".tar", ".oci"):
        if stem.lower().endswith(suffix):
            return stem[: -len(suffix)]
    return Path(stem).stem or stem


def suggest_repository(path: Path) -> str:
    """A repository name from a file name: `My Model.bin` → `my-model`."""
    stem = _name_stem(path)
    name = _REPO_CLEAN.sub("-", stem.lower()).strip("._-")
    name = re.sub(r"[._-]{2,}", "-", name)
    return name or "files"


_VERSION = re.compile(r"(?<![a-z0-9])(?:v?\d+(?:\.\d+)+|v\d+)(?![a-z0-9])", re.IGNORECASE)


def suggest_tag(path: Path) -> str:
    """A tag from a file's name: its last version (`llama-3.1.gguf` → `3.1`, `model-v2.bin`
    → `v2`), else `latest`. Never an earlier push's tag, which would overwrite that push."""
    stem = _name_stem(path)
    found = _VERSION.findall(stem)
    return found[-1].lower() if found else "latest"


def blob_label(record: BlobRecord, index: int, transfer: Push) -> str:
    """A child row's name: a file's title, a split part, "config", or "layer N"."""
    if transfer.kind != "image":
        return record.name
    if record.media_type in IMAGE_CONFIG_TYPES:
        return "config"
    layers = [b for b in transfer.blobs if b.media_type not in IMAGE_CONFIG_TYPES]
    number = next((i for i, b in enumerate(layers, 1) if b is record), index + 1)
    return f"layer {number}"


def reference_text(transfer: Transfer) -> str:
    """What "Copy reference" copies: `host/repo:tag@sha256:...` once pushed, else the target."""
    return str(transfer.pinned_reference)


class CredentialCache:
    """Credentials per registry host, looked up in a worker thread and kept for the queue.

    The queue asks for credentials synchronously when it opens a client; keyring lookups can
    block (a locked wallet prompts), so the window looks them up ahead with `refresh` and the
    queue reads the cache with `get`.
    """

    def __init__(self) -> None:
        self._by_host: dict[str, Credentials | None] = {}
        self._session: dict[str, Credentials] = {}
        self.problems: dict[str, str] = {}

    def get(self, host: str) -> Credentials | None:
        return self._by_host.get(host)

    def known(self, host: str) -> bool:
        return host in self._by_host

    def remember(self, host: str, credentials: Credentials) -> None:
        """Keep credentials given for this session only (no keyring to store them in)."""
        self._session[host] = credentials
        self._by_host[host] = credentials
        self.problems.pop(host, None)

    async def refresh(self, registry: RegistrySettings) -> Credentials | None:
        """Look up the registry's credentials (keyring, docker config) without blocking."""
        host = registry.host
        creds, problem = await asyncio.to_thread(_resolve, host, registry.username or None)
        session = self._session.get(host)
        if creds is None and session is not None and session.username == registry.username:
            creds, problem = session, ""
        self._by_host[host] = creds
        if problem:
            self.problems[host] = problem
        else:
            self.problems.pop(host, None)
        return creds

    def login_state(self, registry: RegistrySettings) -> str:
        """The login state shown in the selector: anonymous, signed in as NAME, or what lacks."""
        if not registry.valid:
            return "invalid address"
        host = registry.host
        if host in self.problems:
            return self.problems[host]
        creds = self._by_host.get(host)
        if creds is not None:
            return "signed in as " + (
                "token" if creds.is_identity_token else (creds.username or "token")
            )
        if registry.username:
            if host not in self._by_host:
                return f"{registry.username}: checking…"
            return f"{registry.username}: no password saved"
        return "anonymous"


def _resolve(host: str, username: str | None) -> tuple[Credentials | None, str]:
    """(credentials or None, a sentence when the lookup itself failed)."""
    try:
        return resolve_credentials(host, username), ""
    except HoistError as exc:
        log.info("credentials for %s: %s", host, exc.sentence(window=True))
        return None, exc.sentence(window=True)


__all__ = [
    "CredentialCache",
    "SourceChoice",
    "blob_label",
    "classify_sources",
    "describe_as_files",
    "is_image_source",
    "reference_text",
    "suggest_repository",
    "suggest_tag",
]
