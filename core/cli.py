"""`hoist`: the command line over the engine.

The manifest reference goes to stdout (`REF@sha256:...`), everything else to stderr: a bar on a
terminal, a plain line every few seconds on a pipe, or JSON lines with `--progress json`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import shlex
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from hoist.core import __version__
from hoist.core.errors import (
    HoistError,
    InvalidReference,
    InvalidSize,
    JournalError,
    JournalUnwritable,
    ReplaceRefused,
    SourceError,
    TransferBusy,
    TransferPaused,
)
from hoist.core.oci.manifest import DEFAULT_ARTIFACT_TYPE
from hoist.core.oci.reference import Reference, parse_reference, parse_registry
from hoist.core.progress import BlobEvent, BlobState, Event, TransferEvent
from hoist.core.registry.auth import Credentials
from hoist.core.registry.client import RegistryClient
from hoist.core.registry.connect import client_for_host
from hoist.core.registry.profile import ProfileStore
from hoist.core.sources.artifact import SplitOptions, check_sources
from hoist.core.sources.formats import push_as_image
from hoist.core.transfer.journal import TransferJournal
from hoist.core.transfer.model import (
    Download,
    Push,
    Transfer,
    TransferState,
    journal_transfers,
    load_transfer,
    state_at_rest,
)
from hoist.core.transfer.push import (
    DEFAULT_BLOBS_AT_ONCE,
    plan_file_push_in_thread,
    plan_image_push,
    restart_changed_blobs,
)
from hoist.core.transfer.runs import discard_work, open_run
from hoist.core.transfer.settings import transfer_settings
from hoist.core.transfer.upload import DEFAULT_CHUNK, UploadSettings
from hoist.core.units import (
    GiB,
    KiB,
    MiB,
    format_duration,
    format_rate,
    format_size,
    parse_rate,
    parse_size,
)

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_PAUSED = 130
#: The signals that pause a transfer, and the exit code each leaves: 128 + the signal, as
#: shells report it (SIGINT 130, SIGTERM 143, SIGHUP 129).
PAUSE_SIGNALS: dict[signal.Signals, int] = {
    getattr(signal, name): 128 + getattr(signal, name).value
    for name in ("SIGINT", "SIGTERM", "SIGHUP")
    if hasattr(signal, name)
}

_WHOLE = (BlobState.DONE, BlobState.EXISTS, BlobState.MOUNTED)
#: Limits of the size and count flags, checked before anything starts.
MIN_CHUNK = (
    64 * KiB
)  # registries need more than 1 byte per PATCH; tiny chunks cost a round trip each
MAX_CHUNK = 4 * GiB
MIN_PART = 1 * MiB
MAX_PART = 1024 * GiB
MAX_PARALLEL = 32
MAX_PAGE_SIZE = 10_000
#: Commands that don't retry by themselves: a temporary error's hint must not promise it.
_NO_RETRY = frozenset({"catalog", "tags", "inspect", "delete", "login", "cancel"})


def _size_flag(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a size between `low` and `high`, or a usage error naming them."""

    def parse(text: str) -> int:
        try:
            value = parse_size(text)
        except InvalidSize:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a size; write bytes or a unit, e.g. 16MiB, 1GiB"
            ) from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"{text} is out of range: use {format_size(low)} to {format_size(high)}"
            )
        return value

    return parse


def _count_flag(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number between `low` and `high`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is out of range: use {low} to {high}")
        return value

    return parse


def _seconds_flag(text: str) -> float:
    """An argparse type: a number of seconds, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is out of range: use 0 or more seconds")
    return value


def _rate_flag(text: str) -> str:
    """An argparse type: a rate (`20MiB/s`, 0 for none), kept as written."""
    try:
        parse_rate(text)
    except InvalidSize:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a rate; write e.g. 20MiB/s, or 0 for no limit"
        ) from None
    return text


class ProgressPrinter:
    """Renders engine events on stderr, in one of three styles.

    `bar` redraws one line (a terminal); `plain` prints a line every `interval` seconds (a pipe,
    CI logs); `json` prints each event as one JSON object per line (scripts; schema in README).
    """

    def __init__(self, style: str, stream: TextIO = sys.stderr, interval: float = 5.0) -> None:
        self.style = style
        self.stream = stream
        self.interval = interval
        self.blobs: dict[str, BlobEvent] = {}
        self._last = 0.0
        self._drawn = False

    def __call__(self, event: Event) -> None:
        if self.style == "json":
            print(json.dumps(event.to_json()), file=self.stream, flush=True)
            return
        if isinstance(event, TransferEvent):
            if event.message and event.state != "paused":  # the CLI says how to resume
                self._line(f"{event.state}: {event.message}")
            return
        previous = self.blobs.get(event.blob)
        self.blobs[event.blob] = event
        new_message = event.message and (previous is None or previous.message != event.message)
        countdown = previous is not None and BlobState.WAITING == event.state == previous.state
        if new_message and not countdown:
            self._line(f"{event.blob}: {event.message}")
        now = time.monotonic()
        if self.style == "bar" and now - self._last >= 0.1:
            self._last = now
            self._draw()
        elif self.style == "plain" and now - self._last >= self.interval:
            self._last = now
            self._line(self._summary())

    def _summary(self) -> str:
        total = sum(e.total for e in self.blobs.values())
        # A blob the registry already had (or mounted) counts as whole, not as 0 B.
        acked = sum(e.total if e.state in _WHOLE else e.acknowledged for e in self.blobs.values())
        moving = (BlobState.UPLOADING, BlobState.DOWNLOADING)
        rate = sum(e.rate or 0 for e in self.blobs.values() if e.state in moving)
        pct = 100.0 * acked / total if total else 100.0
        eta = (total - acked) / rate if rate > 0 else None
        states = {e.state for e in self.blobs.values()}
        state = next(
            (s.value for s in (BlobState.WAITING, BlobState.FINALIZING, BlobState.HASHING,
                               BlobState.UPLOADING, BlobState.DOWNLOADING) if s in states),
            "done",
        )  # fmt: skip
        resent = sum(e.resent for e in self.blobs.values())
        again = f" (re-sent {format_size(resent)})" if resent else ""
        speed = f" {format_rate(rate)} ETA {format_duration(eta)}" if rate > 0 else ""
        return f"{state} {format_size(acked)} / {format_size(total)} ({pct:.1f}%){speed}{again}"

    def _draw(self) -> None:
        total = sum(e.total for e in self.blobs.values()) or 1
        acked = sum(e.acknowledged for e in self.blobs.values())
        width = 30
        filled = int(width * acked / total)
        bar = "#" * filled + "-" * (width - filled)
        self.stream.write(f"\r[{bar}] {self._summary()}\x1b[K")
        self.stream.flush()
        self._drawn = True

    def note(self, text: str) -> None:
        """A line for the user in any style (JSON lines stay JSON)."""
        if self.style == "json":
            print(json.dumps({"event": "note", "message": text}), file=self.stream, flush=True)
        else:
            self._line(text)

    def _line(self, text: str) -> None:
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self._drawn = False
        print(text, file=self.stream, flush=True)

    def finish(self) -> None:
        """The last word: a final bar, or a final plain line (CI logs end with the totals)."""
        if self.style == "bar" and self._drawn:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
        elif self.style == "plain" and self.blobs:
            self._line(self._summary())


def _style(choice: str) -> str:
    if choice != "auto":
        return choice
    return "bar" if sys.stderr.isatty() else "plain"


def _given_credentials(args: argparse.Namespace, host: str) -> Credentials | None:
    """Credentials given now (a password on stdin); without them the client asks the
    keychain (keyring, docker config) only if the registry asks for credentials."""
    from hoist.core.registry.credentials import resolve_credentials

    if not getattr(args, "password_stdin", False):
        return None
    # Read once: `hoist resume --all` opens a client per transfer, and stdin has one line.
    if getattr(args, "password", None) is None:
        args.password = sys.stdin.readline().rstrip("\n")
    return resolve_credentials(host, getattr(args, "username", None), args.password)


def _client(
    args: argparse.Namespace, ref: Reference, plain_http: bool | None = None
) -> RegistryClient:
    return client_for_host(
        ref.registry,
        plain_http=True if getattr(args, "plain_http", False) else plain_http,
        credentials=_given_credentials(args, ref.registry),
        username=getattr(args, "username", None),
    )


def _settings(args: argparse.Namespace, host: str) -> UploadSettings:
    """Upload settings from the flags, the host's learned profile and the rate cap."""
    chunk = getattr(args, "chunk_size", None)
    return transfer_settings(
        host,
        chunk_size=chunk or None,
        limit_rate=parse_rate(args.limit_rate) if args.limit_rate else None,
        give_up_after=float(args.retry_for) if args.retry_for else None,
    )


async def _go_on_without_journal(exc: JournalUnwritable) -> bool:
    """A push whose journal can't be written: say that resume won't be possible, ask on a
    terminal, go on otherwise (a script's push is worth more than its resumability)."""
    print(
        f"hoist: {exc.message}. If this transfer is interrupted it cannot be resumed.",
        file=sys.stderr,
    )
    if not sys.stdin.isatty():
        print("hoist: going on without resume", file=sys.stderr)
        return True
    print("Go on without resume? [y/N] ", end="", file=sys.stderr, flush=True)
    answer = await asyncio.to_thread(sys.stdin.readline)
    return answer.strip().lower() in ("y", "yes")


class StopSignals:
    """Ctrl-C (SIGINT), SIGTERM and SIGHUP (the terminal closed) pause the transfer: the stream
    in progress ends cleanly, its answer is awaited (at most 10 s), the journal is written and
    `hoist` exits 130, 143 or 129 (128 + the signal, as shells report it). A second Ctrl-C
    while pausing stops at once, and says what that costs."""

    def __init__(self, pause: asyncio.Event, printer: ProgressPrinter) -> None:
        self.pause = pause
        self.printer = printer
        self.received: signal.Signals | None = None
        self._task = asyncio.current_task()
        self._installed: list[signal.Signals] = []

    def __enter__(self) -> StopSignals:
        loop = asyncio.get_running_loop()
        for sig in PAUSE_SIGNALS:
            try:
                loop.add_signal_handler(sig, self._on_signal, sig)
            except (NotImplementedError, RuntimeError, ValueError):
                continue  # not the main thread, or a platform without them (Windows)
            self._installed.append(sig)
        return self

    def __exit__(self, *exc: object) -> None:
        loop = asyncio.get_running_loop()
        for sig in self._installed:
            loop.remove_signal_handler(sig)

    @property
    def exit_code(self) -> int:
        return PAUSE_SIGNALS.get(self.received, EXIT_PAUSED) if self.received else EXIT_PAUSED

    def _on_signal(self, sig: signal.Signals) -> None:
        if self.received is None:
            self.received = sig
            self.pause.set()
            again = " (Ctrl-C again to stop at once)" if sig == signal.SIGINT else ""
            self.printer.note(f"Pausing: ending the upload in progress cleanly{again}")
            return
        if sig == signal.SIGINT and self._task is not None:
            acked = sum(e.acknowledged for e in self.printer.blobs.values())
            self.printer.note(
                f"Stopping at once: the chunk in flight is cut. The {format_size(acked)} the "
                "registry acknowledged are kept; what was sent since is sent again, and a "
                "registry that keeps no partial chunk (distribution 2.x, Harbor) starts that "
                "blob over"
            )
            self._task.cancel()


async def _run(transfer: Transfer, args: argparse.Namespace, journal: TransferJournal) -> int:
    """Run a transfer this process has claimed (`TransferJournal.claim`)."""
    printer = ProgressPrinter(_style(args.progress))
    pause = asyncio.Event()
    resume_line = f"Paused. Resume with: hoist resume {transfer.id}"
    async with _client(args, transfer.reference, transfer.plain_http) as client:
        settings = _settings(args, transfer.reference.api_host)
        # A download the window queued: `hoist resume` finishes it too.
        run = open_run(
            transfer, client, journal=journal, settings=settings, on_event=printer, pause=pause
        )
        run.on_unwritable = _go_on_without_journal
        with StopSignals(pause, printer) as signals:
            try:
                digest = await run.run()
            except TransferPaused:
                printer.finish()
                print(resume_line, file=sys.stderr)
                return signals.exit_code
            except asyncio.CancelledError:
                if signals.received is None:
                    raise
                printer.finish()
                print(resume_line.replace("Paused", "Stopped"), file=sys.stderr)
                return signals.exit_code
            finally:
                printer.finish()
    if isinstance(transfer, Download):
        print(transfer.destination)
    else:
        count, size = transfer.already_there
        if count:
            print(
                f"{count} of {len(transfer.blobs)} blobs ({format_size(size)} of "
                f"{format_size(transfer.total)}) were already in the registry",
                file=sys.stderr,
            )
        print(f"{transfer.target.name}@{digest}")
    journal.remove(transfer.id)
    return 0


async def cmd_push(args: argparse.Namespace) -> int:
    target = parse_reference(args.ref)
    paths = [Path(p) for p in args.paths]
    await asyncio.to_thread(check_sources, paths)
    chunk_size = args.chunk_size or 0
    plain_http = True if args.plain_http else None
    is_image = await asyncio.to_thread(push_as_image, paths, as_files=args.as_files) is not None
    transfer: Push
    if is_image:
        transfer = await asyncio.to_thread(
            plan_image_push,
            target,
            paths[0],
            image_tag=args.image_tag,
            platform=args.platform,
            chunk_size=chunk_size,
            parallel=args.parallel or DEFAULT_BLOBS_AT_ONCE,
            plain_http=plain_http,
            mount_from=args.mount_from,
        )
    else:
        if args.platform or args.image_tag:
            raise SourceError(
                "--platform and --image-tag are for container images",
                hint=f"{paths[0]} is pushed as a file; leave them out",
            )
        split = SplitOptions(args.part_size) if args.split else None
        try:
            transfer = await plan_file_push_in_thread(
                target.with_tag(target.tag or "latest") if not target.digest else target,
                paths,
                artifact_type=args.artifact_type,
                split=split,
                chunk_size=chunk_size,
                parallel=args.parallel or DEFAULT_BLOBS_AT_ONCE,
                pack=args.pack or False,
                plain_http=plain_http,
            )
        except asyncio.CancelledError:
            # Ctrl-C while a folder is packed: the packing thread stops and removes its
            # archive before the process exits (asyncio.run waits for worker threads).
            print("Stopped before anything was sent.", file=sys.stderr)
            raise
    journal = TransferJournal()
    what = "image" if is_image else "artifact"
    print(
        f"transfer {transfer.id}: {what}, {format_size(transfer.total)} to {transfer.target}",
        file=sys.stderr,
    )
    with journal.claim(transfer.id):
        return await _run(transfer, args, journal)


async def cmd_resume(args: argparse.Namespace) -> int:
    journal = TransferJournal()
    ids = journal.ids() if args.all else [args.id]
    if not ids or ids == [None]:
        print("nothing to resume", file=sys.stderr)
        return 0 if args.all else EXIT_USAGE
    status = 0
    for transfer_id in ids:
        # Owned first, read second: what another Hoist wrote until it let go is what counts.
        try:
            claim = journal.claim(transfer_id)
        except TransferBusy as exc:
            print(f"hoist: {exc.message}", file=sys.stderr)
            status = status if args.all else EXIT_FAILED
            continue
        with claim:
            try:
                transfer = load_transfer(journal, transfer_id)
            except JournalError as exc:  # one bad entry never stops the others
                if not args.all:
                    raise
                print(f"hoist: skipped: {exc.sentence()}", file=sys.stderr)
                continue
            if transfer.state == TransferState.DONE:
                continue
            try:
                if args.restart_changed:
                    for name in restart_changed_blobs(transfer):
                        print(f"{name}: the file changed; pushing its new content", file=sys.stderr)
                print(f"resuming {transfer.id}: {transfer.reference}", file=sys.stderr)
                code = await _run(transfer, args, journal)
            except HoistError as exc:
                print(f"hoist: {transfer.id}: {exc.sentence()}", file=sys.stderr)
                status = EXIT_FAILED
                continue
            if code > 128:
                return code  # paused by a signal: the others wait too
            status = max(status, code)
    return status


async def cmd_cancel(args: argparse.Namespace) -> int:
    journal = TransferJournal()
    path = journal.path(args.id)
    with journal.claim(args.id):  # TransferBusy: a live Hoist's sessions are left alone
        try:
            transfer = load_transfer(journal, args.id)
        except JournalError as exc:
            if not path.is_symlink() and not path.exists():
                raise
            journal.remove(args.id)  # unreadable: nothing to discard but the entry itself
            print(f"hoist: {exc.message}", file=sys.stderr)
            print(f"removed {path}", file=sys.stderr)
            return 0
        async with _client(args, transfer.reference, transfer.plain_http) as client:
            discarded = await discard_work(transfer, client)
        for problem in discarded.sessions:  # say so, go on
            print(problem, file=sys.stderr)
        for problem in discarded.files:
            print(f"hoist: {problem}", file=sys.stderr)
        journal.remove(transfer.id)
    print(f"cancelled {transfer.id}", file=sys.stderr)
    return 0


async def cmd_transfers(args: argparse.Namespace) -> int:
    journal = TransferJournal()
    rows: list[dict[str, object]] = []
    for transfer_id, t in journal_transfers(journal):
        if isinstance(t, HoistError):
            rows.append({"id": transfer_id, "state": "unreadable", "error": t.sentence()})
            continue
        owner = journal.owner(transfer_id)
        state = state_at_rest(t.state).value
        if owner is None and t.state == TransferState.RUNNING:
            state = "interrupted"  # its Hoist died (or was killed): resumable
        rows.append({
            "id": t.id, "kind": t.kind, "reference": str(t.reference), "done": t.acknowledged,
            "total": t.total, "state": state, "error": t.error, "owner": owner,
            **({"destination": t.destination} if isinstance(t, Download) else {}),
        })  # fmt: skip
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    for r in rows:
        if "reference" not in r:
            print(f"{r['id']}  unreadable  {r['error']}")
            continue
        done, total = int(str(r["done"])), int(str(r["total"]))
        where = f"{r['reference']} → {r['destination']}" if "destination" in r else r["reference"]
        by = f" (pid {r['owner']})" if r["owner"] else ""
        print(
            f"{r['id']}  {where}  {format_size(done)} / {format_size(total)}  "
            f"{r['state']}{by}{'  ' + str(r['error']) if r['error'] else ''}"
        )
    return 0


async def cmd_profile(args: argparse.Namespace) -> int:
    store = ProfileStore()
    host = parse_registry(args.registry) if args.registry else None
    if args.reset:
        store.reset(host)
        print(f"forgot what Hoist learned about {host or 'every registry'}", file=sys.stderr)
        return 0
    if args.limit_rate is not None:
        if host is None:
            raise InvalidReference("name the registry whose default rate to set")
        rate = parse_rate(args.limit_rate)
        store.update(host, limit_rate=rate or None)
    profiles = store.all() if host is None else {host: store.get(host)}
    print(json.dumps({h: p.to_json() for h, p in profiles.items()}, indent=1, sort_keys=True))
    return 0


async def cmd_login(args: argparse.Namespace) -> int:
    from hoist.core.registry.credentials import keyring_available, store_credentials

    host = parse_registry(args.registry)
    username = args.username or input("Username: ")
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        import getpass

        password = getpass.getpass("Password: ")
    creds = Credentials(username, password)
    async with client_for_host(host, credentials=creds, plain_http=args.plain_http or None) as c:
        await c.ping()
    if not keyring_available():
        print(
            "Login succeeded, but this system has no keyring to keep the password in; Hoist "
            "never writes passwords to a file of its own, so pass them each time "
            "(-u USER --password-stdin) or use `docker login`.",
            file=sys.stderr,
        )
        return EXIT_FAILED
    await asyncio.to_thread(store_credentials, host, creds)
    print(f"Login succeeded; credentials for {host} are in the system keyring.", file=sys.stderr)
    return 0


async def cmd_logout(args: argparse.Namespace) -> int:
    from hoist.core.registry.credentials import delete_credentials

    host = parse_registry(args.registry)
    removed = await asyncio.to_thread(delete_credentials, host)
    print(
        f"removed the credentials for {host}" if removed else f"no stored credentials for {host}",
        file=sys.stderr,
    )
    return 0


def _registry_client(args: argparse.Namespace, registry: str) -> RegistryClient:
    """A client for a registry named alone (`hoist catalog HOST`)."""
    return _client(args, parse_reference(f"{parse_registry(registry)}/x"))


async def cmd_catalog(args: argparse.Namespace) -> int:
    from hoist.core.registry.browse import catalog_pages

    async with _registry_client(args, args.registry) as client:
        async for page in catalog_pages(client, page_size=args.page_size):
            for name in page.items:
                print(name, flush=False)
            sys.stdout.flush()
    return 0


async def cmd_tags(args: argparse.Namespace) -> int:
    from hoist.core.registry.browse import tag_pages

    ref = parse_reference(args.repository)
    async with _client(args, ref) as client:
        async for page in tag_pages(client, ref.repository, page_size=args.page_size):
            for tag in page.items:
                print(tag, flush=False)
            sys.stdout.flush()
    return 0


async def cmd_inspect(args: argparse.Namespace) -> int:
    from hoist.core.registry.browse import inspect

    ref = parse_reference(args.ref, default_tag="latest")
    async with _client(args, ref) as client:
        info = await inspect(client, ref.repository, ref.manifest_ref)
    print(json.dumps(info.to_json(), indent=2))
    return 0


async def cmd_pull(args: argparse.Namespace) -> int:
    from hoist.core.transfer.download import pull

    ref = parse_reference(args.ref, default_tag="latest")
    printer = ProgressPrinter(_style(args.progress))
    async with _client(args, ref) as client:
        try:
            result = await pull(
                client, ref.repository, ref.manifest_ref, Path(args.output),
                platform=args.platform, overwrite=args.overwrite, on_event=printer,
                untitled=args.untitled, tag=ref.tag,
            )  # fmt: skip
        except ReplaceRefused as exc:
            raise ReplaceRefused(
                exc.message, exc.paths,
                hint="Nothing was written; pull into another folder, or run again with "
                "--force to replace them",
            ) from exc  # fmt: skip
        except asyncio.CancelledError:
            printer.finish()
            # A pull keeps no journal: its `.partial` files are its state, and the same
            # command continues from them.
            print(f"Paused. Resume with: {_pull_command(args)}", file=sys.stderr)
            raise
        finally:
            printer.finish()
    for pulled in result.files:
        print(pulled.path)
    if result.skipped:
        count = len(result.skipped)
        listed = ", ".join(result.skipped[:3]) + (" ..." if count > 3 else "")
        what = (
            f"{result.reference} has {count} layer{'s' if count > 1 else ''} without a file "
            f"name (no org.opencontainers.image.title): {listed}"
        )
        how = "pull with --untitled to write them as sha256-HEX files"
        if not result.files:
            raise SourceError(f"{what}; nothing was written", hint=how[0].upper() + how[1:])
        print(f"hoist: {what}, not written; {how}.", file=sys.stderr)
    return 0


def _pull_command(args: argparse.Namespace) -> str:
    """The `hoist pull` command that continues this one."""
    words = ["hoist", "pull", args.ref, "-o", str(Path(args.output).absolute())]
    words += ["--platform", args.platform] if args.platform else []
    words += [flag for flag, on in (("--plain-http", args.plain_http), ("--force", args.overwrite),
                                    ("--untitled", args.untitled)) if on]  # fmt: skip
    return shlex.join(words)


async def cmd_delete(args: argparse.Namespace) -> int:
    from hoist.core.registry.browse import delete, resolve_digest, tags_sharing_digest

    ref = parse_reference(args.ref)
    if not (ref.tag or ref.digest):
        raise InvalidReference(f"name the tag or digest to delete in {args.ref!r}")
    async with _client(args, ref) as client:
        digest = ref.digest or await resolve_digest(client, ref.repository, ref.manifest_ref)
        others = [t for t in await tags_sharing_digest(client, ref.repository, digest)
                  if t != ref.tag]  # fmt: skip
        if others and not args.yes:
            print(
                f"{digest} is also tagged {', '.join(others)}: deleting it removes those tags "
                "too. Run again with --yes to delete anyway.",
                file=sys.stderr,
            )
            return EXIT_FAILED
        deleted = await delete(client, ref.repository, digest)
    print(f"deleted {ref.name}@{deleted}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hoist", description="Push large files and container images to OCI registries."
    )
    parser.add_argument("--version", action="version", version=f"hoist {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--plain-http", action="store_true", help="use http:// (no TLS)")
        p.add_argument("-u", "--username", help="registry username (else keyring / docker config)")
        p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
        p.add_argument(
            "--progress", choices=("auto", "bar", "plain", "json"), default="auto",
            help="progress on stderr: bar (terminal), plain lines, or JSON lines",
        )  # fmt: skip
        p.add_argument(
            "--chunk-size", type=_size_flag(MIN_CHUNK, MAX_CHUNK),
            help=f"bytes per PATCH, {format_size(MIN_CHUNK)} to {format_size(MAX_CHUNK)} "
            f"(default {format_size(DEFAULT_CHUNK)}, adaptive)",
        )  # fmt: skip
        p.add_argument(
            "--retry-for", type=_seconds_flag, default=600.0, metavar="SECONDS",
            help="give up after this long without progress (0: never; default 600)",
        )  # fmt: skip
        p.add_argument(
            "--limit-rate", metavar="RATE", type=_rate_flag,
            help="cap the upload rate, e.g. 20MiB/s (default: the registry's profile, or none)",
        )  # fmt: skip

    push = sub.add_parser(
        "push",
        help="push files or folders as an OCI artifact, or a container image",
        description="Push files/folders as an ORAS-compatible artifact, or an image source "
        "(OCI layout folder or tar, `docker save` tarball) as an image.",
    )
    push.add_argument("ref", metavar="REF")
    push.add_argument("paths", metavar="PATH", nargs="+")
    push.add_argument("--artifact-type", default=DEFAULT_ARTIFACT_TYPE)
    push.add_argument("--split", action="store_true", help="push large files as parts")
    push.add_argument(
        "--part-size", type=_size_flag(MIN_PART, MAX_PART), default=GiB,
        help="split part size, 1MiB to 1TiB (default 1GiB)",
    )  # fmt: skip
    push.add_argument(
        "--parallel", type=_count_flag(1, MAX_PARALLEL), default=0,
        help=f"blobs at once within this push (default: {DEFAULT_BLOBS_AT_ONCE})",
    )  # fmt: skip
    push.add_argument(
        "--pack", action="store_const", const="tar.gz",
        help="push each folder as one gzip tar (as `oras push` does) instead of as its files",
    )  # fmt: skip
    push.add_argument(  # an option string of its own: `--pack` alone keeps taking no value
        "--pack=tar", dest="pack", action="store_const", const="tar",
        help="push each folder as one uncompressed tar (`--pack=tar.gz` is `--pack`)",
    )  # fmt: skip
    push.add_argument(
        "--pack=tar.gz", dest="pack", action="store_const", const="tar.gz", help=argparse.SUPPRESS
    )  # fmt: skip
    push.add_argument("--as-files", action="store_true", help="push an image source as a file")
    push.add_argument("--platform", help="push one platform of a multi-arch image (linux/arm64)")
    push.add_argument("--image-tag", help="which image of a source holding several")
    push.add_argument(
        "--mount-from", action="append", default=[], metavar="REPO",
        help="mount blobs from this repository of the same registry when it has them",
    )  # fmt: skip
    common(push)

    resume = sub.add_parser("resume", help="resume a paused or interrupted transfer")
    resume.add_argument("id", nargs="?")
    resume.add_argument("--all", action="store_true")
    resume.add_argument(
        "--restart-changed", action="store_true",
        help="start again the blobs whose file changed since they began",
    )  # fmt: skip
    common(resume)

    cancel = sub.add_parser("cancel", help="cancel a transfer and forget it")
    cancel.add_argument("id")
    common(cancel)

    transfers = sub.add_parser("transfers", help="list transfers in the journal")
    transfers.add_argument("--json", action="store_true")

    profile = sub.add_parser("profile", help="show or reset what Hoist learned about registries")
    profile.add_argument("registry", nargs="?")
    profile.add_argument("--reset", action="store_true", help="forget it (all, or one registry)")
    profile.add_argument(
        "--limit-rate", metavar="RATE", type=_rate_flag, help="default upload cap (0: none)"
    )

    login = sub.add_parser("login", help="check credentials and keep them in the keyring")
    login.add_argument("registry")
    login.add_argument("-u", "--username")
    login.add_argument("--password-stdin", action="store_true")
    login.add_argument("--plain-http", action="store_true")

    logout = sub.add_parser("logout", help="remove stored credentials")
    logout.add_argument("registry")

    def access(p: argparse.ArgumentParser) -> None:
        p.add_argument("--plain-http", action="store_true", help="use http:// (no TLS)")
        p.add_argument("-u", "--username")
        p.add_argument("--password-stdin", action="store_true")

    catalog = sub.add_parser("catalog", help="list a registry's repositories, one per line")
    catalog.add_argument("registry")
    catalog.add_argument("--page-size", type=_count_flag(1, MAX_PAGE_SIZE), default=100)
    access(catalog)

    tags = sub.add_parser("tags", help="list a repository's tags, one per line")
    tags.add_argument("repository", metavar="REPO")
    tags.add_argument("--page-size", type=_count_flag(1, MAX_PAGE_SIZE), default=100)
    access(tags)

    inspect = sub.add_parser("inspect", help="describe a manifest as JSON")
    inspect.add_argument("ref", metavar="REF")
    access(inspect)

    pull = sub.add_parser("pull", help="download an artifact's files (resumable, verified)")
    pull.add_argument("ref", metavar="REF")
    pull.add_argument("-o", "--output", default=".", help="folder to write into (default: .)")
    pull.add_argument("--platform", help="which platform of a multi-arch image")
    pull.add_argument(
        "--force", "--overwrite", dest="overwrite", action="store_true",
        help="replace files and folders already there that differ (default: refuse)",
    )  # fmt: skip
    pull.add_argument(
        "--untitled", action="store_true",
        help="also write layers without a file name, as sha256-HEX files",
    )  # fmt: skip
    pull.add_argument("--progress", choices=("auto", "bar", "plain", "json"), default="auto")
    access(pull)

    delete = sub.add_parser("delete", help="delete a tag's manifest (where the registry allows)")
    delete.add_argument("ref", metavar="REF")
    delete.add_argument("--yes", action="store_true", help="even when other tags share it")
    access(delete)
    return parser


COMMANDS = {
    "push": cmd_push,
    "resume": cmd_resume,
    "cancel": cmd_cancel,
    "transfers": cmd_transfers,
    "profile": cmd_profile,
    "login": cmd_login,
    "logout": cmd_logout,
    "catalog": cmd_catalog,
    "tags": cmd_tags,
    "inspect": cmd_inspect,
    "pull": cmd_pull,
    "delete": cmd_delete,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if args.command == "resume" and not args.all and not args.id:
        parser.error("name a transfer ID or use --all")
    # What start-up built (modules, classes) lives until exit: the collector need not scan it
    # again during the push, nor at exit (bench/push_throughput.py counts every CPU second).
    gc.freeze()
    try:
        return asyncio.run(COMMANDS[args.command](args))
    except KeyboardInterrupt:
        return EXIT_PAUSED
    except (InvalidReference, InvalidSize) as exc:  # what was typed: a usage error
        print(f"hoist: {exc.sentence()}", file=sys.stderr)
        return EXIT_USAGE
    except HoistError as exc:
        if exc.temporary and args.command in _NO_RETRY:
            exc.hint = "The registry or the network had a temporary problem; try again shortly"
        print(f"hoist: {exc.sentence()}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        gc.freeze()


if __name__ == "__main__":
    sys.exit(main())
