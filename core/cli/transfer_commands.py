"""The commands that move bytes: push, resume, cancel, transfers (the journal) and pull.

A push or a resume runs one journaled transfer at a time; Ctrl-C, SIGTERM and SIGHUP pause it
(`StopSignals`) and the command says how to resume.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import signal
import sys
from pathlib import Path

from hoist.core.cli.connect import client_for_args, settings_for_args
from hoist.core.cli.display import ProgressPrinter, progress_style
from hoist.core.cli.exit_codes import EXIT_FAILED, EXIT_PAUSED, EXIT_USAGE, PAUSE_SIGNALS
from hoist.core.errors import (
    HoistError,
    JournalError,
    JournalUnwritable,
    ReplaceRefused,
    SourceError,
    TransferBusy,
    TransferPaused,
)
from hoist.core.oci.reference import parse_reference
from hoist.core.sources.artifact import SplitOptions
from hoist.core.sources.formats import check_sources, push_as_image
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
from hoist.core.units import format_size


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


async def run_transfer(
    transfer: Transfer, args: argparse.Namespace, journal: TransferJournal
) -> int:
    """Run a transfer this process has claimed (`TransferJournal.claim`)."""
    printer = ProgressPrinter(progress_style(args.progress))
    printer.expect(transfer)
    pause = asyncio.Event()
    resume_line = f"Paused. Resume with: hoist resume {transfer.id}"
    async with client_for_args(args, transfer.reference, transfer.plain_http) as client:
        settings = settings_for_args(args, transfer.reference.api_host)
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
        return await run_transfer(transfer, args, journal)


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
                code = await run_transfer(transfer, args, journal)
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
        async with client_for_args(args, transfer.reference, transfer.plain_http) as client:
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


async def cmd_pull(args: argparse.Namespace) -> int:
    from hoist.core.transfer.download import pull

    ref = parse_reference(args.ref, default_tag="latest")
    printer = ProgressPrinter(progress_style(args.progress))
    async with client_for_args(args, ref) as client:
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
