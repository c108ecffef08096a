"""What a resume in a new process costs before its first byte goes out: re-hashing the prefix.

hashlib's state can't be saved across processes (OpenSSL 3 has no export), so Hoist re-hashes
the part of the file the registry already holds, in a worker thread, and compares it with the
prefix digest the journal kept (which also catches a file changed in place). This prints that
cost next to plain hashlib on the same bytes, and checks that the event loop stays free while
it runs (the largest gap between 10 ms ticks).

    .venv/bin/python bench/resume_rehash.py [--size 2GiB]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hoist.core.oci.digest import hash_file_range  # noqa: E402
from hoist.core.units import parse_size  # noqa: E402


def plain_hashlib(path: Path, length: int) -> float:
    started = time.perf_counter()
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        left = length
        while left:
            block = f.read(min(1 << 20, left))
            h.update(block)
            left -= len(block)
    return time.perf_counter() - started


async def rehash_with_ticks(path: Path, length: int) -> tuple[float, float]:
    gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    started = time.perf_counter()
    await asyncio.to_thread(hash_file_range, path, 0, length)
    elapsed = time.perf_counter() - started
    stop.set()
    await tick
    return elapsed, max(gaps) if gaps else 0.0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="2GiB")
    args = parser.parse_args()
    size = parse_size(args.size)
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"rehash-{size}.bin"
    if not path.exists() or path.stat().st_size != size:
        with open(path, "wb") as f:
            for _ in range(size // (1 << 20)):
                f.write(os.urandom(1 << 20))
    plain_hashlib(path, size)  # warm the page cache for both
    base = plain_hashlib(path, size)
    ours, worst_gap = asyncio.run(rehash_with_ticks(path, size))
    gib = size / (1 << 30)
    print(f"prefix of {args.size} (page cache warm)")
    print("| what | seconds | s/GiB | ratio to hashlib |")
    print("|---|---|---|---|")
    print(f"| hashlib alone | {base:.2f} | {base / gib:.2f} | 1.00 |")
    row = f"| Hoist's prefix re-hash (worker thread) | {ours:.2f} | {ours / gib:.2f} |"
    print(f"{row} {ours / base:.2f} |")
    print(f"\nlargest event-loop gap while re-hashing: {worst_gap * 1000:.1f} ms (10 ms ticks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
