"""How long does a pause take? (issue 15: pause, Ctrl-C, SIGTERM at any byte, lose nothing)

Starts a real registry (distribution) behind a rate-limited TCP proxy (tests/support/proxy.py)
(its buffer sized to the link: FaultProxy.link_buffer) and pushes a file with 1 GiB chunks;
after `--after` seconds of sending it pauses, and measures pause asked → journal written (state
"paused") → the run returned. Streamed PATCH (what Hoist does now: the stream ends at once) is
printed next to sized chunks (`Content-Range`, what Hoist did before and still does where
streaming is refused: the pause waits for the end of the chunk; with 1 GiB chunks on a smaller
file, that chunk is the whole file).

    .venv/bin/python bench/pause_latency.py [--rate 2MiB] [--size 32MiB] [--after 3] [--repeat 3]
    .venv/bin/python bench/pause_latency.py --sized     # the old chunk-boundary pause only
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from support.proxy import FaultProxy  # noqa: E402
from support.registry import RegistryProcess  # noqa: E402

from hoist.core.errors import TransferPaused  # noqa: E402
from hoist.core.oci.reference import parse_reference  # noqa: E402
from hoist.core.progress import BlobEvent, Event  # noqa: E402
from hoist.core.registry.client import RegistryClient  # noqa: E402
from hoist.core.transfer.journal import TransferJournal  # noqa: E402
from hoist.core.transfer.push import TransferRun, plan_file_push  # noqa: E402
from hoist.core.transfer.upload import UploadSettings  # noqa: E402
from hoist.core.units import MiB, format_size, parse_size  # noqa: E402


class TimedJournal(TransferJournal):
    """Notes when the journal first says "paused"."""

    paused_at: float | None = None

    def save(self, transfer_id: str, doc: dict[str, Any]) -> None:
        super().save(transfer_id, doc)
        if doc.get("state") == "paused" and self.paused_at is None:
            self.paused_at = time.monotonic()


async def one_pause(
    host: str, path: Path, *, sized: bool, after: float, tag: str
) -> tuple[float, float, int]:
    """(seconds from the pause to the journal, to the end of the run; bytes acknowledged)."""
    journal = TimedJournal()
    transfer = plan_file_push(
        parse_reference(f"{host}/bench/pause-{tag}:v1"), [path], chunk_size=1024 * MiB
    )
    pause = asyncio.Event()
    settings = UploadSettings(chunk_size=1024 * MiB, adaptive=False, streamed=not sized)
    started: list[float] = []

    def on_event(event: Event) -> None:
        if isinstance(event, BlobEvent) and event.sent and not started:
            started.append(time.monotonic())

    async with RegistryClient(host, plain_http=True) as client:
        run = TransferRun(
            transfer, client, journal=journal, settings=settings, on_event=on_event, pause=pause
        )
        task = asyncio.ensure_future(run.run())
        while not started and not task.done():
            await asyncio.sleep(0.01)
        await asyncio.sleep(after)
        asked = time.monotonic()
        pause.set()
        try:
            await task
        except TransferPaused:
            pass
        ended = time.monotonic()
    to_journal = (journal.paused_at or ended) - asked
    return to_journal, ended - asked, transfer.blobs[0].acknowledged


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", default="2MiB", help="the link's upload rate (default 2MiB)")
    parser.add_argument("--size", default="32MiB", help="file size (default 32MiB)")
    parser.add_argument("--after", type=float, default=3.0, help="seconds of sending first")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sized", action="store_true", help="only the sized-chunk pause")
    args = parser.parse_args()
    rate = parse_size(args.rate)
    size = parse_size(args.size)
    work = Path(tempfile.mkdtemp(prefix="hoist-bench-pause-"))
    os.environ["HOIST_STATE_DIR"] = str(work / "state")
    os.environ["HOIST_CONFIG_DIR"] = str(work / "config")
    path = work / "file.bin"
    with open(path, "wb") as f:
        f.write(os.urandom(size))
    registry = RegistryProcess()
    registry.extra_config = {"log": {"level": "warn"}}
    registry.start()
    proxy = FaultProxy(registry).start()
    proxy.limit_rate_up(rate)
    modes = [True] if args.sized else [False, True]
    print(
        f"link {format_size(rate)}/s, file {format_size(size)}, 1 GiB chunks, pause after "
        f"{args.after:g} s of sending; {args.repeat} runs each (median [min-max])"
    )
    try:
        for sized in modes:
            rows = []
            for i in range(args.repeat):
                tag = f"{'sized' if sized else 'streamed'}-{i}"
                rows.append(
                    asyncio.run(one_pause(proxy.host, path, sized=sized, after=args.after, tag=tag))
                )
            journal = [r[0] for r in rows]
            total = [r[1] for r in rows]
            acked = [r[2] for r in rows]
            name = "sized chunks (Content-Range)" if sized else "streamed PATCH"
            print(
                f"{name:30} pause→journal {statistics.median(journal):6.2f} s "
                f"[{min(journal):.2f}-{max(journal):.2f}]  pause→paused "
                f"{statistics.median(total):6.2f} s [{min(total):.2f}-{max(total):.2f}]  "
                f"kept {format_size(statistics.median(acked))}"
            )
    finally:
        proxy.stop()
        registry.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
