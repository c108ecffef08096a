"""Folder push: a model-like folder pushed as its files, against the same bytes as one file,
against oras-py, and pushed again unchanged.

The folder (kept in `bench/out/model-<bytes>/` and reused) holds a few large shards of random
bytes, a few configs and `--small-files` small files in subfolders, `--size` bytes in all. Each
client runs `--repeat` times (medians and spreads reported), in its own subprocess (wall time,
CPU time and peak RSS from `os.wait4`, through bench/measure.py), against a private registry
whose storage lives in /dev/shm and is emptied before each push except the re-push:

- `hoist folder`: `python -m hoist.core push --plain-http REF FOLDER` (its default blobs at
  once), with an empty state folder (no digest cache);
- `hoist re-push unchanged`: the same command to a new tag, same state folder, registry not
  wiped: the digest cache and one HEAD per file;
- `hoist one file`: the same number of bytes as one file (`bench/out/random-<bytes>.bin`);
- `oras-py folder`: `OrasClient.push(files=[every file], do_chunked=True)`, one blob at a time.

    .venv/bin/python bench/folder_push.py [--size 2GiB] [--small-files 2000] [--repeat 3]
                                          [--out FILE]

Targets (issue 19): folder ≥ 1.0× one file, ≥ 1.5× oras-py, unchanged re-push < 3 s, peak RSS
< 150 MB.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from measure import Runs, hoist_push, registry_binary, write_report  # noqa: E402
from push_throughput import (  # noqa: E402
    OUT_DIR,
    PYTHON,
    ROOT,
    Registry,
    Sample,
    ensure_file,
    measure,
    warm,
)

from hoist.core.units import MiB, format_size, parse_size  # noqa: E402

TARGET_VS_ONE_FILE = 1.0
TARGET_VS_ORAS = 1.5
TARGET_REPUSH_S = 3.0
TARGET_RSS_MB = 150.0
SHARDS = 3

ORAS_FOLDER_SCRIPT = """
import sys
import oras.client
host, target, listing = sys.argv[1:4]
files = open(listing).read().split("\\n")
client = oras.client.OrasClient(hostname=host, insecure=True)
response = client.push(
    target=target, files=files, disable_path_validation=True, do_chunked=True, quiet=True,
)
print(response.status_code)
"""


def make_folder(size: int, small_files: int) -> Path:
    """A model-like folder of `size` bytes (made once, reused): shards, configs, small files."""
    root = OUT_DIR / f"model-{size}-{small_files}"
    folder = root / "model"
    done = root / ".complete"
    if done.exists():
        return folder
    shutil.rmtree(root, ignore_errors=True)
    folder.mkdir(parents=True)
    small_total = 0
    for i in range(small_files):
        sub = folder / "data" / f"part{i // 250:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        data = os.urandom(512 + (i * 37) % 3500)
        (sub / f"sample-{i:05d}.json").write_bytes(data)
        small_total += len(data)
    configs = {
        "config.json": b'{"architectures": ["Bench"], "hidden_size": 4096}\n',
        "generation_config.json": b'{"max_new_tokens": 256}\n',
        "tokenizer.json": os.urandom(2 * MiB),
    }
    for name, data in configs.items():
        (folder / name).write_bytes(data)
        small_total += len(data)
    shard = (size - small_total) // SHARDS
    for i in range(SHARDS):
        length = shard if i < SHARDS - 1 else size - small_total - shard * (SHARDS - 1)
        with open(folder / f"model-{i + 1:05d}-of-{SHARDS:05d}.safetensors", "wb") as f:
            left = length
            while left:
                n = min(left, 64 * MiB)
                f.write(os.urandom(n))
                left -= n
    done.touch()
    return folder


def oras_push(registry: Registry, ref: str, folder: Path) -> Sample:
    files = sorted(str(p.relative_to(folder.parent)) for p in folder.rglob("*") if p.is_file())
    with tempfile.NamedTemporaryFile("w", prefix="hoist-bench-oras-", suffix=".txt") as listing:
        listing.write("\n".join(files))
        listing.flush()
        cmd = [PYTHON, "-c", ORAS_FOLDER_SCRIPT, registry.host, f"{registry.host}/{ref}"]
        sample = measure([*cmd, listing.name], cwd=folder.parent, registry=registry)
    if sample.returncode or sample.stdout.strip() != "201":
        raise RuntimeError(f"oras-py push failed: {sample.stdout[-500:]} {sample.stderr[-2000:]}")
    return sample


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="2GiB")
    parser.add_argument("--small-files", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    size = parse_size(args.size)
    binary = registry_binary()
    folder = make_folder(size, args.small_files)
    count = sum(1 for p in folder.rglob("*") if p.is_file())
    one_file = ensure_file(size)
    for path in [*folder.rglob("*.safetensors"), one_file]:
        warm(path)
    registry = Registry(binary, Path("/dev/shm"))
    runs = Runs()
    try:
        registry.start()
        for i in range(args.repeat):
            state = Path(tempfile.mkdtemp(prefix="hoist-bench-state-"))
            try:
                registry.wipe()
                runs.add("hoist folder", hoist_push(registry, f"bench/folder:v{i}", folder, state))
                again = hoist_push(registry, f"bench/folder:again{i}", folder, state)
                runs.add("hoist re-push unchanged", again)
                registry.wipe()
                shutil.rmtree(state)
                runs.add("hoist one file", hoist_push(registry, f"bench/one:v{i}", one_file, state))
                registry.wipe()
                runs.add("oras-py folder", oras_push(registry, f"bench/oras:v{i}", folder))
            finally:
                shutil.rmtree(state, ignore_errors=True)
    finally:
        registry.stop()

    lines = [
        f"# Folder push: {format_size(size)} in {count} files ({SHARDS} shards, "
        f"{args.small_files} small files), distribution 2.8 on /dev/shm, {args.repeat} runs",
        "",
        f"    .venv/bin/python bench/folder_push.py {' '.join(sys.argv[1:])}",
        "",
        *runs.table(lambda name: None if "unchanged" in name else size),
    ]
    folder_s = runs.seconds("hoist folder")
    vs_one = runs.seconds("hoist one file") / folder_s
    vs_oras = runs.seconds("oras-py folder") / folder_s
    repush = runs.seconds("hoist re-push unchanged")
    rss = runs.max_rss("hoist")
    checks = [
        (f"folder vs one file: {vs_one:.2f}× (goal ≥ {TARGET_VS_ONE_FILE})",
         vs_one >= TARGET_VS_ONE_FILE),
        (f"folder vs oras-py: {vs_oras:.2f}× (goal ≥ {TARGET_VS_ORAS})", vs_oras >= TARGET_VS_ORAS),
        (f"unchanged re-push: {repush:.2f} s (goal < {TARGET_REPUSH_S})", repush < TARGET_REPUSH_S),
        (f"Hoist peak RSS: {rss:.0f} MB (goal < {TARGET_RSS_MB:.0f})", rss < TARGET_RSS_MB),
    ]  # fmt: skip
    lines += ["", *(f"- {'PASS' if ok else 'FAIL'}: {text} (medians)" for text, ok in checks)]
    write_report(lines, args.out)
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
