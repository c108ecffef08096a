"""How close does `--limit-rate` keep a push to its cap? (issue: networks people really have)

Starts a real registry, then pushes with Hoist's engine under caps of 1, 10 and 50 MiB/s, with one
transfer and with three transfers at once sharing the process-wide limiter. Prints the achieved
rate and its ratio to the cap; the target is within ±10 %.

    .venv/bin/python bench/rate_limit.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from support.registry import RegistryProcess  # noqa: E402

from hoist.core.bandwidth import BandwidthLimiter  # noqa: E402
from hoist.core.oci.reference import parse_reference  # noqa: E402
from hoist.core.registry.client import RegistryClient  # noqa: E402
from hoist.core.transfer.push import TransferRun, plan_file_push  # noqa: E402
from hoist.core.transfer.upload import UploadSettings  # noqa: E402
from hoist.core.units import MiB  # noqa: E402


async def push_all(host: str, files: list[Path], rate: int, tag: str) -> float:
    limiter = BandwidthLimiter(rate)
    async with RegistryClient(host) as client:
        runs = []
        for i, path in enumerate(files):
            transfer = plan_file_push(parse_reference(f"{host}/bench/rate-{tag}-{i}:v1"), [path])
            settings = UploadSettings(chunk_size=16 * MiB, throttle=limiter.take)
            runs.append(TransferRun(transfer, client, settings=settings).run())
        started = time.monotonic()
        await asyncio.gather(*runs)
        return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="target length of each run")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hoist-bench-rate-"))
    os.environ["HOIST_STATE_DIR"] = str(work / "state")
    registry = RegistryProcess()
    registry.extra_config = {"log": {"level": "warn"}}
    registry.start()
    rows = []
    try:
        for cap_mib in (1, 10, 50):
            for parallel in (1, 3):
                total = int(cap_mib * MiB * args.seconds)
                files = []
                for i in range(parallel):
                    path = work / f"cap{cap_mib}-{parallel}-{i}.bin"
                    with open(path, "wb") as f:
                        f.write(os.urandom(total // parallel))
                    files.append(path)
                subprocess.run(["sync"], check=False)
                seconds = asyncio.run(
                    push_all(registry.host, files, cap_mib * MiB, f"{cap_mib}-{parallel}")
                )
                achieved = sum(p.stat().st_size for p in files) / seconds / MiB
                rows.append((cap_mib, parallel, seconds, achieved, achieved / cap_mib))
                for path in files:
                    path.unlink()
    finally:
        registry.close()
        shutil.rmtree(work, ignore_errors=True)
    print("| cap | transfers at once | seconds | achieved | ratio to cap |")
    print("|---|---|---|---|---|")
    ok = True
    for cap, parallel, seconds, achieved, ratio in rows:
        print(f"| {cap} MiB/s | {parallel} | {seconds:.1f} | {achieved:.2f} MiB/s | {ratio:.3f} |")
        ok &= 0.9 <= ratio <= 1.1
    print(f"\ntarget ±10 % of the cap: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
