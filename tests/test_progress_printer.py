"""The command line's progress lines: totals are the whole transfer's, from the start."""

from __future__ import annotations

import io
from pathlib import Path

from hoist.core.cli.display import ProgressPrinter
from hoist.core.oci.reference import parse_reference
from hoist.core.progress import BlobEvent, BlobState
from hoist.core.transfer.push import plan_file_push
from hoist.core.units import MiB


def test_plain_lines_count_blobs_that_have_not_started_yet(tmp_path: Path) -> None:
    """Four blobs at once out of many: a blob no event has named yet still counts in the total
    (the line said "73.3 MiB / 77.9 MiB (94.1%)" of a 137 MiB push), and one acknowledged
    before (a resume) counts as acknowledged."""
    files = []
    for i in range(3):
        path = tmp_path / f"f{i}.bin"
        path.write_bytes(b"x" * (3 * MiB))
        files.append(path)
    transfer = plan_file_push(parse_reference("127.0.0.1:1/x/y:v1"), files)
    transfer.blobs[2].acknowledged = MiB  # kept by an earlier run
    out = io.StringIO()
    printer = ProgressPrinter("plain", out, interval=0.0)
    printer.expect(transfer)
    first = transfer.blobs[0]
    printer(BlobEvent(transfer.id, first.name, BlobState.UPLOADING, MiB, MiB, first.size))
    assert out.getvalue().splitlines()[-1] == "uploading 2 MiB / 9 MiB (22.2%)"
