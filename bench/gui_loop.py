"""Does a big push keep the window responsive? (the window issue's "never block the loop")

Runs the real window offscreen with qasync: 200 transfers in the list (paused), then pushes a
2 GiB file through the window's own code path (AppContext → TransferQueue → TransferModel) to a
local registry, while a 10 ms QTimer measures how late each tick fires and the view is scrolled.
The same measurement on the idle window first is the baseline. Targets: p99 stall < 30 ms, max
< 100 ms, the process's peak RSS < 300 MB; and smooth progress: the row's Progress text (bytes
sent) changes several times a second, not once per chunk.

    .venv/bin/python bench/gui_loop.py [--size 2GiB]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


class Sampler:
    """A 10 ms Qt timer; the stall of a tick is how much later than 10 ms it fired."""

    def __init__(self) -> None:
        from PySide6.QtCore import QTimer

        self.stalls: list[float] = []
        self._last = time.perf_counter()
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        self.stalls.append(max(0.0, now - self._last - 0.010))
        self._last = now

    def start(self) -> None:
        self.stalls.clear()
        self._last = time.perf_counter()
        self.timer.start()

    def stop(self) -> list[float]:
        self.timer.stop()
        return list(self.stalls)


def summary(stalls: list[float]) -> tuple[float, float, float]:
    ordered = sorted(stalls)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else 0.0
    return statistics.median(ordered) * 1000, p99 * 1000, (ordered[-1] if ordered else 0) * 1000


async def scenario(size: int, work: Path) -> int:
    from support.registry import RegistryProcess

    from hoist.core.oci.reference import parse_reference
    from hoist.core.transfer.model import TransferState
    from hoist.core.transfer.push import plan_file_push
    from hoist.gui.context import AppContext
    from hoist.gui.main_window import MainWindow
    from hoist.gui.transfers.rows import Column

    data = ROOT / "bench" / "out" / f"random-{size}.bin"
    data.parent.mkdir(parents=True, exist_ok=True)
    if not data.exists() or data.stat().st_size != size:
        with open(data, "wb") as f:
            for _ in range(size // (1 << 20)):
                f.write(os.urandom(1 << 20))
    small = work / "small.bin"
    small.write_bytes(os.urandom(4096))

    registry = RegistryProcess(extra_config={"log": {"level": "warn"}})
    registry.start()
    ctx = AppContext.create()
    window = MainWindow(ctx)
    window.resize(1200, 700)
    window.show()
    sampler = Sampler()
    try:
        for i in range(200):
            target = parse_reference(f"{registry.host}/bench/queue-{i}:v1")
            transfer = await asyncio.to_thread(plan_file_push, target, [small])
            ctx.queue.add(transfer, start=False)
        await asyncio.sleep(0.5)

        sampler.start()
        await asyncio.sleep(5.0)
        idle = sampler.stop()

        target = parse_reference(f"{registry.host}/bench/big:v1")
        transfer = await asyncio.to_thread(plan_file_push, target, [data])
        sampler.start()
        started = time.monotonic()
        item = ctx.queue.add(transfer)
        view = window.findChild(__import__("PySide6.QtWidgets", fromlist=["QTreeView"]).QTreeView)
        step = 0
        shown: list[str] = []  # the row's Progress text, each time it changed
        while item.state not in (TransferState.DONE, TransferState.FAILED):
            await asyncio.sleep(0.05)
            index = window.model.index_of(item.id).siblingAtColumn(Column.PROGRESS)
            text = str(window.model.data(index))
            if not shown or text != shown[-1]:
                shown.append(text)
            if view is not None:  # scroll the 200-row list up and down while pushing
                bar = view.verticalScrollBar()
                step = (step + 7) % (bar.maximum() + 1 or 1)
                bar.setValue(step)
        seconds = time.monotonic() - started
        busy = sampler.stop()
        if item.state != TransferState.DONE:
            print(f"push failed: {item.transfer.error}")
            return 1
    finally:
        await window.aclose() if hasattr(window, "aclose") else None
        window.close()
        await ctx.queue.aclose()
        registry.close()

    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    i_med, i_p99, i_max = summary(idle)
    b_med, b_p99, b_max = summary(busy)
    print(
        f"{size / (1 << 30):.3g} GiB pushed through the window in {seconds:.1f} s "
        f"({size / seconds / 1e6:.0f} MB/s), 200 other transfers listed, view scrolled"
    )
    print("| event loop | ticks | median stall | p99 stall | max stall |")
    print("|---|---|---|---|---|")
    row = f"| idle window (baseline) | {len(idle)} | {i_med:.1f} ms | {i_p99:.1f} ms |"
    print(f"{row} {i_max:.1f} ms |")
    print(f"| during the push | {len(busy)} | {b_med:.1f} ms | {b_p99:.1f} ms | {b_max:.1f} ms |")
    print(
        f"| ratio push / idle | | | {b_p99 / max(i_p99, 0.1):.2f} | {b_max / max(i_max, 0.1):.2f} |"
    )
    print(f"\npeak RSS of the window process: {rss_mb:.0f} MB")
    updates = len(shown) / seconds
    print(f"progress text changed {len(shown)} times: {updates:.1f} a second")
    ok = b_p99 < 30 and b_max < 100 and rss_mb < 300 and updates >= 2
    targets = "p99 < 30 ms, max < 100 ms, RSS < 300 MB, progress >= 2 updates/s"
    print(f"targets ({targets}): {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="2GiB")
    args = parser.parse_args()
    from hoist.core.units import parse_size

    work = Path(tempfile.mkdtemp(prefix="hoist-bench-gui-"))
    os.environ["HOIST_STATE_DIR"] = str(work / "state")
    os.environ["HOIST_CONFIG_DIR"] = str(work / "config")
    os.environ["HOIST_DATA_DIR"] = str(work / "data")

    import qasync
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    # As the app: closing the window at the end must not stop the loop under the scenario.
    app.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with loop:
        return loop.run_until_complete(scenario(parse_size(args.size), work))


if __name__ == "__main__":
    sys.exit(main())
