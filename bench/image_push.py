"""Image push: an OCI layout of 6 × 128 MiB layers, Hoist (at several blobs-at-once settings)
against skopeo.

The layout (made once in `bench/out/oci-layout-<layers>x<bytes>/`, layers of random bytes) is
pushed by each client `--repeat` times (medians and spreads), in its own subprocess (wall, CPU,
peak RSS through bench/measure.py), to a private registry on /dev/shm wiped before each push:

- `hoist --parallel N` for each N of `--parallel` (default 3,4,6): `python -m hoist.core push`;
- `skopeo copy oci:LAYOUT docker://REF --dest-tls-verify=false` (when installed).

Before each push it waits (at most `--quiet-wait` seconds) for an idle second: on a shared
two-core machine the others' work skews wall times badly (the `others' CPU s` column).

    .venv/bin/python bench/image_push.py [--layers 6] [--layer-size 128MiB] [--parallel 3,4,6]
                                         [--repeat 1] [--quiet-wait 60]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from measure import Runs, hoist_push, registry_binary, write_report  # noqa: E402
from push_throughput import OUT_DIR, ROOT, Registry, measure, wait_quiet, warm  # noqa: E402

from hoist.core.units import MiB, format_size, parse_size  # noqa: E402


def _blob(layout: Path, data: bytes) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def make_layout(layers: int, size: int) -> Path:
    """An OCI image layout with `layers` random layers of `size` bytes (made once, reused)."""
    layout = OUT_DIR / f"oci-layout-{layers}x{size}"
    if (layout / "index.json").exists():
        return layout
    shutil.rmtree(layout, ignore_errors=True)
    (layout / "blobs" / "sha256").mkdir(parents=True)
    descs = []
    for _ in range(layers):
        h = hashlib.sha256()
        tmp = layout / "layer.tmp"
        with open(tmp, "wb") as f:
            left = size
            while left:
                chunk = os.urandom(min(left, 16 * MiB))
                h.update(chunk)
                f.write(chunk)
                left -= len(chunk)
        tmp.rename(layout / "blobs" / "sha256" / h.hexdigest())
        descs.append({
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": f"sha256:{h.hexdigest()}", "size": size,
        })  # fmt: skip
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [d["digest"] for d in descs]},
    }).encode()  # fmt: skip
    config_desc = {"mediaType": "application/vnd.oci.image.config.v1+json", **_blob(layout, config)}
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_desc,
        "layers": descs,
    }).encode()  # fmt: skip
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", **_blob(layout, manifest),
        "annotations": {"org.opencontainers.image.ref.name": "bench"},
    }]}  # fmt: skip
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text(json.dumps(index))
    return layout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--layer-size", default="128MiB")
    parser.add_argument("--parallel", default="3,4,6")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=60.0,
        help="seconds to wait for an idle machine before each push (0: don't)",
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    size = parse_size(args.layer_size)
    binary = registry_binary()
    layout = make_layout(args.layers, size)
    for blob in (layout / "blobs" / "sha256").iterdir():
        warm(blob)
    registry = Registry(binary, Path("/dev/shm"))
    runs = Runs()
    state = Path(tempfile.mkdtemp(prefix="hoist-bench-state-"))
    try:
        registry.start()
        for i in range(args.repeat):
            for n in (int(x) for x in args.parallel.split(",")):
                registry.wipe()
                if args.quiet_wait > 0:
                    wait_quiet(args.quiet_wait)
                ref = f"bench/image-p{n}:v{i}"
                sample = hoist_push(registry, ref, layout, state, ("--parallel", str(n)))
                runs.add(f"hoist --parallel {n}", sample)
            skopeo = shutil.which("skopeo")
            if skopeo:
                registry.wipe()
                if args.quiet_wait > 0:
                    wait_quiet(args.quiet_wait)
                ref = f"docker://{registry.host}/bench/image-skopeo:v{i}"
                sample = measure(
                    [skopeo, "copy", "--dest-tls-verify=false", f"oci:{layout}:bench", ref],
                    registry=registry,
                )
                if sample.returncode:
                    raise RuntimeError(f"skopeo failed: {sample.stderr[-2000:]}")
                runs.add("skopeo copy", sample)
    finally:
        registry.stop()
        shutil.rmtree(state, ignore_errors=True)
    total = args.layers * size
    lines = [
        f"# Image push: OCI layout, {args.layers} × {format_size(size)} layers "
        f"({format_size(total)}), distribution 2.8 on /dev/shm, {args.repeat} runs",
        "",
        f"    .venv/bin/python bench/image_push.py {' '.join(sys.argv[1:])}",
        "",
        *runs.table(lambda name: total),
    ]
    write_report(lines, args.out)
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
