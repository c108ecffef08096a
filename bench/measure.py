"""What the push benchmarks share (folder_push.py, image_push.py): the registry binary, a Hoist
push measured in its own subprocess (push_throughput.py's launcher: wall, CPU, peak RSS), and
a table of each client's median over repeated runs with its spread (min–max), so one noisy
run on a shared two-core box is seen as such.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from push_throughput import OUT_DIR, PYTHON, Registry, Sample, measure  # noqa: E402

HOIST_PUSH = [PYTHON, "-m", "hoist.core", "push", "--plain-http", "--progress", "plain"]


def registry_binary() -> str:
    """The distribution registry to run (Debian's `docker-registry`); exits (2) without one.
    Makes bench/out/ too, where the benchmarks keep their inputs."""
    binary = shutil.which("docker-registry") or shutil.which("registry")
    if binary is None:
        print("needs docker-registry on the PATH", file=sys.stderr)
        sys.exit(2)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    return binary


def hoist_push(
    registry: Registry, ref: str, path: Path, state: Path, extra: tuple[str, ...] = ()
) -> Sample:
    """`hoist push` of `path` to `ref` with its own state folder, measured; raises on failure."""
    env = {**os.environ, "HOIST_STATE_DIR": str(state), "HOIST_CONFIG_DIR": str(state / "cfg")}
    sample = measure(
        [*HOIST_PUSH, *extra, f"{registry.host}/{ref}", str(path)], env=env, registry=registry
    )
    if sample.returncode:
        raise RuntimeError(f"hoist push {ref} failed: {sample.stderr[-2000:]}")
    return sample


class Runs:
    """Samples by client, in the order clients first ran."""

    def __init__(self) -> None:
        self.samples: dict[str, list[Sample]] = {}

    def add(self, name: str, sample: Sample) -> None:
        self.samples.setdefault(name, []).append(sample)

    def seconds(self, name: str) -> float:
        return statistics.median(s.seconds for s in self.samples[name])

    def max_rss(self, prefix: str) -> float:
        return max(s.maxrss_mb for n, ss in self.samples.items() if n.startswith(prefix)
                   for s in ss)  # fmt: skip

    def table(self, size_of: Callable[[str], int | None]) -> list[str]:
        """Markdown rows: median seconds (min–max), MB/s for clients `size_of` gives bytes,
        median client and registry CPU, highest peak RSS, and the CPU seconds the rest of the
        machine used meanwhile (median: other engineers' work makes runs slow)."""
        lines = [
            "| client | runs | seconds, median (min–max) | MB/s | client CPU s | registry CPU s "
            "| peak RSS MB | others' CPU s |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, samples in self.samples.items():
            secs = [s.seconds for s in samples]
            median = statistics.median(secs)
            size = size_of(name)
            rate = f"{size / 1e6 / median:.0f}" if size else "–"
            cpu = statistics.median(s.cpu for s in samples)
            reg = statistics.median(s.registry_cpu for s in samples)
            rss = max(s.maxrss_mb for s in samples)
            others = statistics.median(s.other_cpu for s in samples)
            lines.append(
                f"| {name} | {len(samples)} | {median:.2f} ({min(secs):.2f}–{max(secs):.2f}) "
                f"| {rate} | {cpu:.2f} | {reg:.2f} | {rss:.0f} | {others:.1f} |"
            )
        return lines


def write_report(lines: list[str], out: Path | None) -> None:
    report = "\n".join(lines) + "\n"
    print(report)
    if out:
        out.write_text(report)
