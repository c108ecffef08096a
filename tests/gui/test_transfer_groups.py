"""A folder of many files in the transfer list: grouped rows, made lazily, progress summed.

A dataset of thousands of files must not become thousands of Qt rows up front: over
`GROUP_ABOVE` child rows a transfer shows one row per top folder (its members appear only when
it is expanded) and one row per loose file; the finished row says what the registry already had.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QModelIndex, Qt
from pytestqt.qtbot import QtBot
from support.registry import RegistryProcess

from hoist.core.oci.annotations import TITLE
from hoist.core.oci.reference import parse_reference
from hoist.core.progress import BlobState
from hoist.core.sources import bundle
from hoist.core.sources.bundle import BUNDLE, BUNDLE_FILES
from hoist.core.transfer.journal import TransferJournal
from hoist.core.transfer.model import Transfer, TransferState
from hoist.core.transfer.push import plan_file_push
from hoist.core.transfer.queue import TransferItem, TransferQueue
from hoist.core.units import format_size
from hoist.gui.transfers.actions import TransferController
from hoist.gui.transfers.groups import (
    GROUP_ABOVE,
    FileGroup,
    common_folder,
    group_children,
    group_name,
)
from hoist.gui.transfers.rows import Column, ProgressRole
from hoist.gui.transfers.transfer_model import TransferModel
from hoist.gui.transfers.view import TransferView

ASSETS, LABELS = 120, 30  # two top folders; three loose files beside them
FILES = ASSETS + LABELS + 3


@pytest.fixture(autouse=True)
def _every_file_its_own_blob(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about many file rows: a dataset of files over the bundling limit has
    one blob a file; small files stand in for them (quick to write and push)."""
    monkeypatch.setattr(bundle, "SMALL_FILE_LIMIT", 0)


def make_dataset(root: Path) -> Path:
    """`data/`: assets/ (120 small files), labels/ (30), and three files at the top."""
    folder = root / "data"
    (folder / "assets" / "deep").mkdir(parents=True)
    (folder / "labels").mkdir()
    for i in range(ASSETS):
        sub = "deep/" if i % 2 else ""
        (folder / "assets" / f"{sub}a{i:03}.bin").write_bytes(os.urandom(200 + i))
    for i in range(LABELS):
        (folder / "labels" / f"l{i:02}.txt").write_bytes(f"label {i}\n".encode() * (i + 1))
    (folder / "README.md").write_bytes(b"# data\n")
    (folder / "config.json").write_bytes(b"{}")
    (folder / "weights.bin").write_bytes(os.urandom(64 * 1024))
    return folder


def text(model: TransferModel, row: int, column: Column, parent: QModelIndex) -> str:
    return str(model.data(model.index(row, column, parent), Qt.ItemDataRole.DisplayRole))


def names(model: TransferModel, parent: QModelIndex) -> list[str]:
    return [text(model, r, Column.NAME, parent) for r in range(model.rowCount(parent))]


@pytest.fixture
def queue(state_dir: Path, qapp: Any, loop: asyncio.AbstractEventLoop) -> Iterator[TransferQueue]:
    queue = TransferQueue(TransferJournal())
    yield queue
    loop.run_until_complete(queue.aclose())


@pytest.fixture
def model(queue: TransferQueue) -> Iterator[TransferModel]:
    model = TransferModel(queue)
    yield model
    model.detach()


def plan(target: str, folder: Path) -> Transfer:
    return plan_file_push(parse_reference(target), [folder])


def add(aio: Any, queue: TransferQueue, transfer: Transfer, *, start: bool) -> TransferItem:
    async def adding() -> TransferItem:
        return queue.add(transfer, start=start)

    item: TransferItem = aio.run(adding())
    return item


def test_a_pushed_folder_is_grouped_expands_lazily_and_says_what_was_there(
    aio: Any,
    qtbot: QtBot,
    qtmodeltester: Any,
    registry: RegistryProcess,
    queue: TransferQueue,
    model: TransferModel,
    tmp_path: Path,
) -> None:
    assert FILES > GROUP_ABOVE
    view = TransferView(model, TransferController(queue, copy_text=lambda _t: None))
    qtbot.addWidget(view)
    view.show()
    folder = make_dataset(tmp_path)
    target = f"{registry.host}/groups/data:v1"

    first = add(aio, queue, plan(target, folder), start=True)
    top = model.index_of(first.id)
    assert model.rowCount(top) == 5, "two folder groups and three loose files, not 153 rows"
    assert names(model, top) == [
        "data/README.md",
        f"data/assets/ — {ASSETS} files",
        "data/config.json",
        f"data/labels/ — {LABELS} files",
        "data/weights.bin",
    ]
    assets = model.index(1, 0, top)
    assert model.rowCount(assets) == 0, "no member row exists before the group is expanded"
    assert model.hasChildren(assets) and model.canFetchMore(assets)

    aio.run(aio.until(lambda: first.state == TransferState.DONE, 60, "the first push"))
    model.flush()
    # The group's progress is the sum of its members.
    members = [b for b in first.transfer.blobs if b.name.startswith("data/assets/")]
    size = sum(b.size for b in members)
    assert len(members) == ASSETS
    assert (
        text(model, 1, Column.PROGRESS, top) == f"{format_size(size)} / {format_size(size)} (100%)"
    )
    assert model.data(assets, ProgressRole) == 1.0
    assert text(model, 1, Column.STATUS, top) == "Done"
    assert text(model, 0, Column.STATUS, QModelIndex()) == f"Done: {FILES} files"

    # Expanding makes the member rows, named inside their folder.
    view.expand(view.proxy.mapFromSource(top))
    view.expand(view.proxy.mapFromSource(assets))
    qtbot.waitUntil(lambda: model.rowCount(assets) == ASSETS)
    inside = names(model, assets)
    assert inside[:2] == ["a000.bin", "a002.bin"] and inside[-1] == "deep/a119.bin"
    assert all(text(model, r, Column.STATUS, assets) == "Done" for r in range(ASSETS))
    labels = model.index(3, 0, top)
    assert model.rowCount(labels) == 0, "a group not expanded still has no member rows"

    # One changed file, pushed again: the rest was already in the registry, and both the
    # group and the finished row say so.
    (folder / "assets" / "a000.bin").write_bytes(b"changed")
    second = add(aio, queue, plan(target, folder), start=True)
    aio.run(
        aio.until(
            lambda: second.state in (TransferState.DONE, TransferState.FAILED), 60, "the re-push"
        )
    )
    assert second.state == TransferState.DONE, (
        second.state,
        second.transfer.error,
        second.status_text(),
    )
    model.flush()
    again = model.index_of(second.id)
    summary = str(model.data(again.siblingAtColumn(Column.STATUS), Qt.ItemDataRole.DisplayRole))
    assert summary == f"Done: {FILES} files, {FILES - 1} already in the registry"
    tip = str(model.data(again.siblingAtColumn(Column.STATUS), Qt.ItemDataRole.ToolTipRole))
    count, there = second.transfer.already_there
    assert count == FILES - 1
    sent = second.transfer.total - there
    assert f"{FILES - 1} of them ({format_size(there)}) were already in the registry" in tip
    assert f"1 file ({format_size(sent)}) was sent" in tip
    # (Not watched while it ran: the tester walks every row on each repaint, which starves a
    # push of 150 blobs; test_group_progress_is_the_sum_of_its_members_as_they_change is.)
    qtmodeltester.check(model)
    assert (
        text(model, 1, Column.STATUS, again)
        == f"Done; {ASSETS - 1} of {ASSETS} already in the registry"
    )


def test_group_progress_is_the_sum_of_its_members_as_they_change(
    aio: Any,
    qtmodeltester: Any,
    queue: TransferQueue,
    model: TransferModel,
    tmp_path: Path,
) -> None:
    qtmodeltester.check(model)
    folder = make_dataset(tmp_path)
    item = add(aio, queue, plan("127.0.0.1:5999/groups/paused:v1", folder), start=False)
    top = model.index_of(item.id)
    labels = model.index(3, 0, top)
    assert text(model, 3, Column.NAME, top) == f"data/labels/ — {LABELS} files"
    members = [b for b in item.transfer.blobs if b.name.startswith("data/labels/")]
    total = sum(b.size for b in members)
    assert text(model, 3, Column.PROGRESS, top) == f"0 B / {format_size(total)} (0%)"
    assert text(model, 3, Column.STATUS, top) == f"0 of {LABELS} done"

    changed: list[tuple[int, int]] = []
    model.dataChanged.connect(
        lambda first, last, _roles: (
            changed.append((first.row(), last.row())) if first.parent() == top else None
        )
    )
    members[0].state = BlobState.DONE
    members[1].state = BlobState.EXISTS
    members[2].acknowledged = members[2].size // 2
    queue.listeners[-1]("changed", item)
    model.flush()
    done = members[0].size + members[1].size + members[2].size // 2
    assert text(model, 3, Column.PROGRESS, top) == (
        f"{format_size(done)} / {format_size(total)} ({100 * done // total}%)"
    )
    assert model.data(labels, ProgressRole) == pytest.approx(done / total)
    assert text(model, 3, Column.STATUS, top) == (f"2 of {LABELS} done; 1 already in the registry")
    assert changed == [(0, 4)], "one repaint of the transfer's five rows, not one per file"

    # Expanded groups repaint their member rows too.
    model.fetchMore(labels)
    assert model.rowCount(labels) == LABELS
    assert text(model, 1, Column.STATUS, labels) == "Already in the registry"
    changed.clear()
    inner: list[tuple[int, int]] = []
    model.dataChanged.connect(
        lambda first, last, _roles: (
            inner.append((first.row(), last.row())) if first.parent() == labels else None
        )
    )
    queue.listeners[-1]("changed", item)
    model.flush()
    assert inner == [(0, LABELS - 1)]


@pytest.mark.parametrize(
    ("form", "title", "label"),
    [
        ("tar+gzip", "labels/train", "1,200 small files of labels/train/ in one blob"),
        ("tar", "labels/.hoist-bundle-0001.tar",  # the earlier form, from an older journal
         "1,200 small files in one blob (labels/.hoist-bundle-0001.tar)"),
    ],
)  # fmt: skip
def test_a_bundle_of_small_files_reads_as_one(
    aio: Any,
    queue: TransferQueue,
    model: TransferModel,
    tmp_path: Path,
    form: str,
    title: str,
    label: str,
) -> None:
    """A bundle of small files (`app.hoist.bundle`) says how many files it holds, and the
    folder it is titled by."""
    folder = make_dataset(tmp_path)
    transfer = plan("127.0.0.1:5999/groups/bundled:v1", folder / "labels")
    transfer.blobs[0].annotations.update({BUNDLE: form, BUNDLE_FILES: "1200", TITLE: title})
    item = add(aio, queue, transfer, start=False)
    top = model.index_of(item.id)
    first = text(model, 0, Column.NAME, top)
    assert first == label
    assert text(model, 1, Column.NAME, top) == transfer.blobs[1].name


def test_a_few_files_stay_one_row_each(
    aio: Any, queue: TransferQueue, model: TransferModel, tmp_path: Path
) -> None:
    folder = make_dataset(tmp_path)
    item = add(aio, queue, plan("127.0.0.1:5999/groups/few:v1", folder / "labels"), start=False)
    assert LABELS <= GROUP_ABOVE
    top = model.index_of(item.id)
    assert names(model, top) == [b.name for b in item.transfer.blobs]


@pytest.mark.parametrize(
    ("names", "folder"),
    [
        (["data/ab/x", "data/ac/y"], "data/"),
        (["data/a/x", "data/a/y"], "data/a/"),
        (["data/x"], "data/"),
        (["x", "data/a/y"], ""),
        (["data/x", "datas/y"], ""),
        ([], ""),
    ],
)
def test_common_folder(names: list[str], folder: str) -> None:
    assert common_folder(names) == folder


def test_many_loose_files_are_one_group_and_single_file_folders_stay_rows() -> None:
    names = sorted(
        [f"d/f{i:03}" for i in range(GROUP_ABOVE + 1)] + ["d/one/x", "d/two/a", "d/two/b"]
    )
    entries = group_children(names)
    groups = [e for e in entries if isinstance(e, FileGroup)]
    assert [(g.label, len(g.members)) for g in groups] == [
        ("d/ (top level)", GROUP_ABOVE + 1),
        ("d/two/", 2),
    ]
    assert [names[e] for e in entries if isinstance(e, int)] == ["d/one/x"]
    assert sorted(
        m for e in entries for m in (e.members if isinstance(e, FileGroup) else [e])
    ) == list(range(len(names))), "every file is in exactly one row or group"


def test_many_files_from_several_places_are_one_group() -> None:
    names = [f"f{i:03}.bin" for i in range(GROUP_ABOVE + 1)]
    (group,) = group_children(names)
    assert isinstance(group, FileGroup)
    assert group_name(group) == f"{GROUP_ABOVE + 1} files"
