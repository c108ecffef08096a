"""TransferModel, its filter proxy, the view and the actions-as-data function."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QModelIndex, Qt
from pytestqt.qtbot import QtBot

from hoist.core.errors import FileChanged, NetworkError
from hoist.core.oci.reference import Reference, parse_reference
from hoist.core.progress import BlobEvent, BlobState, RateEstimator
from hoist.core.sources.artifact import SplitOptions
from hoist.core.transfer.download import plan_download
from hoist.core.transfer.journal import TransferJournal
from hoist.core.transfer.model import DownloadPart, Push, Transfer, TransferState
from hoist.core.transfer.push import plan_file_push
from hoist.core.transfer.queue import TransferItem, TransferQueue
from hoist.core.units import MiB
from hoist.gui.queue_listeners import FinishNotifier
from hoist.gui.transfers.actions import (
    ITEM_ACTIONS,
    MENU_LAYOUT,
    SHORTCUTS,
    TransferController,
    transfer_actions,
)
from hoist.gui.transfers.rows import (
    FILTERS,
    Column,
    ProgressRole,
    SentRole,
    StateRole,
    filter_label,
)
from hoist.gui.transfers.transfer_model import TransferFilterProxy, TransferModel
from hoist.gui.transfers.view import TransferView
from hoist.gui.widgets import icons
from hoist.gui.widgets.icons import STATUS_ICONS

TARGET = "127.0.0.1:5999/gui/test:v1"


def write(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


def notify(queue: Any, kind: str, item: TransferItem) -> None:
    for listener in list(queue.listeners):
        listener(kind, item)


def plan(tmp_path: Path, name: str, *, files: int = 1, split: int | None = None) -> Transfer:
    sizes = [3 * MiB if split else 1000 + i for i in range(files)]
    paths = [write(tmp_path / f"{name}-{i}.bin", size) for i, size in enumerate(sizes)]
    return plan_file_push(
        parse_reference(TARGET),
        paths,
        split=SplitOptions(split) if split else None,
    )


@pytest.fixture
def queue(state_dir: Path, qapp: Any) -> TransferQueue:
    return TransferQueue(TransferJournal())


Adder = Callable[..., TransferItem]


@pytest.fixture
def add(queue: TransferQueue, aio: Any) -> Adder:
    """`add(transfer)`: queue.add(start=False) on the running loop (it journals in a task)."""

    def add_one(transfer: Transfer, *, start: bool = False) -> TransferItem:
        async def adding() -> TransferItem:
            return queue.add(transfer, start=start)

        item: TransferItem = aio.run(adding())
        return item

    return add_one


@pytest.fixture
def make_model() -> Iterator[Callable[..., TransferModel]]:
    """TransferModel(queue, ...) that stops listening at teardown.

    A model left listening stays in a reference cycle with its queue; Python's cycle collector
    may then free it in any thread (a worker's), where Qt can't stop its timer.
    """
    made: list[TransferModel] = []

    def make(queue: Any, **kw: Any) -> TransferModel:
        model = TransferModel(queue, **kw)
        made.append(model)
        return model

    yield make
    for model in made:
        model.detach()


@pytest.fixture
def filled(queue: TransferQueue, add: Adder, tmp_path: Path) -> dict[str, TransferItem]:
    """One transfer per state, some with several blobs (files, split parts)."""
    items = {
        "paused": add(plan(tmp_path, "paused", files=3)),
        "failed": add(plan(tmp_path, "failed")),
        "done": add(plan(tmp_path, "done", split=MiB)),
        "queued": add(plan(tmp_path, "queued")),
    }
    items["failed"].transfer.state = TransferState.FAILED
    items["failed"].transfer.error = FileChanged(
        f"{tmp_path}/failed-0.bin was modified since the upload began"
    ).sentence()
    items["done"].transfer.state = TransferState.DONE
    items["done"].transfer.result = "sha256:" + "ab" * 32
    for blob in items["done"].transfer.blobs:
        blob.state = BlobState.DONE
    items["done"].transfer.blobs[1].state = BlobState.EXISTS
    items["done"].transfer.blobs[2].state = BlobState.MOUNTED
    items["done"].transfer.blobs[2].mounted_from = "gui/other"
    items["queued"].transfer.state = TransferState.QUEUED
    for item in items.values():
        notify(queue, "changed", item)
    return items


def text(model: Any, row: int, column: Column, parent: QModelIndex | None = None) -> str:
    index = model.index(row, column, parent or QModelIndex())
    return str(model.data(index, Qt.ItemDataRole.DisplayRole))


# -- the model -------------------------------------------------------------------------------


def test_model_passes_modeltester(
    make_model: Callable[..., TransferModel],
    qtmodeltester: Any,
    queue: TransferQueue,
    filled: dict[str, TransferItem],
) -> None:
    model = make_model(queue)
    qtmodeltester.check(model)
    assert model.rowCount() == 4
    # Several blobs → one child row each; a single file has none.
    assert model.rowCount(model.index(0, 0)) == 3
    assert model.rowCount(model.index(1, 0)) == 0
    assert model.rowCount(model.index(2, 0)) == 3


def test_model_follows_additions_and_removals(
    add: Adder,
    aio: Any,
    make_model: Callable[..., TransferModel],
    qtmodeltester: Any,
    qtbot: QtBot,
    queue: TransferQueue,
    tmp_path: Path,
) -> None:
    model = make_model(queue)
    qtmodeltester.check(model)
    inserted: list[int] = []
    removed: list[int] = []
    model.rowsInserted.connect(lambda _parent, first, _last: inserted.append(first))
    model.rowsRemoved.connect(lambda _parent, first, _last: removed.append(first))
    first = add(plan(tmp_path, "a", files=2))
    add(plan(tmp_path, "b"))
    assert inserted == [0, 1] and model.rowCount() == 2

    async def removing() -> None:
        queue.remove(first.id)

    aio.run(removing())
    assert removed == [0]
    assert model.rowCount() == 1
    assert text(model, 0, Column.NAME) == "b-0.bin"
    qtmodeltester.check(model)


def test_filter_proxy_passes_modeltester_and_counts(
    make_model: Callable[..., TransferModel],
    qtmodeltester: Any,
    queue: TransferQueue,
    filled: dict[str, TransferItem],
) -> None:
    model = make_model(queue)
    proxy = TransferFilterProxy()
    proxy.setSourceModel(model)
    qtmodeltester.check(proxy)
    assert proxy.counts() == {"all": 4, "active": 1, "paused": 1, "failed": 1, "done": 1}
    expected = {"all": 4, "active": 1, "paused": 1, "failed": 1, "done": 1}
    for name in FILTERS:
        proxy.set_status_filter(name)
        qtmodeltester.check(proxy)
        assert proxy.rowCount() == expected[name], name
    proxy.set_status_filter("done")
    # A shown transfer shows its blob rows too.
    assert proxy.rowCount(proxy.index(0, 0)) == 3
    assert filter_label("failed", proxy.counts()) == "Failed (1)"
    with pytest.raises(ValueError):
        proxy.set_status_filter("bogus")


def test_proxy_refilters_when_a_state_changes(
    make_model: Callable[..., TransferModel],
    qtbot: QtBot,
    queue: TransferQueue,
    filled: dict[str, TransferItem],
) -> None:
    model = make_model(queue, interval=10)
    proxy = TransferFilterProxy()
    proxy.setSourceModel(model)
    proxy.set_status_filter("failed")
    assert proxy.rowCount() == 1
    paused = filled["paused"]
    paused.transfer.state = TransferState.FAILED
    with qtbot.waitSignal(proxy.counts_changed) as blocker:
        notify(queue, "changed", paused)
    assert blocker.args == [{"all": 4, "active": 1, "paused": 0, "failed": 2, "done": 1}]
    assert proxy.rowCount() == 2


def test_updates_are_coalesced(
    add: Adder,
    make_model: Callable[..., TransferModel],
    qtbot: QtBot,
    queue: TransferQueue,
    tmp_path: Path,
) -> None:
    item = add(plan(tmp_path, "busy"))
    model = make_model(queue, interval=100)
    changes: list[tuple[int, int]] = []
    model.dataChanged.connect(lambda a, b, _roles=(): changes.append((a.row(), b.column())))
    record = item.transfer.blobs[0]
    for n in range(200):
        event = BlobEvent(item.id, record.name, BlobState.UPLOADING, n, n, record.size)
        item.blobs[record.name] = event
        notify(queue, "changed", item)
    assert changes == [], "listener callbacks must only mark rows dirty"
    qtbot.waitUntil(lambda: bool(changes), timeout=2000)
    qtbot.wait(300)  # watching that no second repaint follows (3 flush intervals): no event
    assert changes == [(0, len(Column) - 1)], "one repaint of the row for 200 events"


def test_rows_read_as_text(
    make_model: Callable[..., TransferModel], queue: TransferQueue, filled: dict[str, TransferItem]
) -> None:
    model = make_model(queue)
    assert text(model, 0, Column.NAME) == "paused-0.bin, paused-1.bin, paused-2.bin"
    assert text(model, 0, Column.TARGET) == TARGET
    assert text(model, 0, Column.PROGRESS) == "0 B / 2.93 KiB (0%)"
    assert text(model, 0, Column.STATUS) == "Paused"
    failed = text(model, 1, Column.STATUS)
    assert failed.startswith("Failed: ") and "was modified since the upload began" in failed
    assert failed.endswith(
        "restart this transfer to push the new content "
        "(Retry in the window, or `hoist resume ID --restart-changed`)."
    )
    assert "Traceback" not in failed and "Error(" not in failed
    tooltip = model.data(model.index(1, Column.STATUS), Qt.ItemDataRole.ToolTipRole)
    assert "was modified" in tooltip
    assert text(model, 2, Column.PROGRESS) == "3 MiB / 3 MiB (100%)"
    assert model.data(model.index(2, Column.PROGRESS), ProgressRole) == 1.0
    assert model.data(model.index(2, 0), StateRole) == "done"
    done = model.index(2, 0)
    assert [text(model, r, Column.NAME, done) for r in range(3)] == [
        f"{p}" for p in (b.name for b in filled["done"].transfer.blobs)
    ]
    assert [text(model, r, Column.STATUS, done) for r in range(3)] == [
        "Done",
        "Already in the registry",
        "Mounted from gui/other",
    ]
    assert model.data(model.index(1, 0), Qt.ItemDataRole.DecorationRole) is not None


def test_blob_rows_show_live_progress_and_waiting(
    add: Adder, make_model: Callable[..., TransferModel], queue: TransferQueue, tmp_path: Path
) -> None:
    item = add(plan(tmp_path, "live", files=2))
    model = make_model(queue)
    first, second = item.transfer.blobs

    class Busy:  # a running task, as far as the model can tell
        def done(self) -> bool:
            return False

    item.task = Busy()  # type: ignore[assignment]
    item.transfer.state = TransferState.RUNNING
    item.blobs[first.name] = BlobEvent(
        item.id, first.name, BlobState.UPLOADING, 500, 500, first.size, rate=2048.0, eta=1.0
    )
    item.blobs[second.name] = BlobEvent(
        item.id, second.name, BlobState.WAITING, 0, 0, second.size,
        message=NetworkError("connection to registry failed").message, retry_in=8,
    )  # fmt: skip
    parent = model.index(0, 0)
    assert text(model, 0, Column.PROGRESS, parent) == "500 B / 1000 B (50%)"
    assert text(model, 0, Column.SPEED, parent) == "2 KiB/s"
    assert text(model, 0, Column.ETA, parent) == "1s"
    assert text(model, 1, Column.STATUS, parent) == ("Connection to registry failed, retry in 8 s")
    assert text(model, 0, Column.STATUS) == "Connection to registry failed, retry in 8 s"
    item.task = None


# -- actions as data --------------------------------------------------------------------------


class FakeQueue:
    """Records what the controller asks of the queue."""

    def __init__(self, items: list[TransferItem]) -> None:
        self.items = items
        self.listeners: list[Callable[[str, TransferItem], None]] = []
        self.calls: list[tuple[str, str]] = []

    def pause(self, transfer_id: str) -> None:
        self.calls.append(("pause", transfer_id))

    def resume(self, transfer_id: str) -> None:
        self.calls.append(("resume", transfer_id))

    def retry(self, transfer_id: str) -> None:
        self.calls.append(("retry", transfer_id))

    def remove(self, transfer_id: str) -> None:
        self.calls.append(("remove", transfer_id))

    async def cancel(self, transfer_id: str) -> None:
        self.calls.append(("cancel", transfer_id))

    def pause_all(self) -> None:
        self.calls.append(("pause_all", ""))

    def resume_all(self) -> None:
        self.calls.append(("resume_all", ""))


def fake_item(state: TransferState, *, running: bool = False) -> TransferItem:
    transfer = Push(
        id=f"t-{state.value}", target=parse_reference(TARGET), kind="artifact", blobs=[]
    )
    transfer.state = state
    if state == TransferState.DONE:
        transfer.result = "sha256:" + "cd" * 32
    item = TransferItem(transfer)
    if running:

        class Busy:
            def done(self) -> bool:
                return False

        item.task = Busy()  # type: ignore[assignment]
    return item


def controller_for(
    items: list[TransferItem], *, browse: bool = True
) -> tuple[TransferController, FakeQueue, list[str], list[Reference]]:
    fake = FakeQueue(items)
    copied: list[str] = []
    shown: list[Reference] = []
    controller = TransferController(
        fake,  # type: ignore[arg-type]
        copy_text=copied.append,
        show_in_browse=shown.append if browse else None,
    )
    return controller, fake, copied, shown


ENABLED = {
    # state, running → the per-item actions that are enabled (the only item can't move)
    (TransferState.RUNNING, True): {"pause", "cancel", "copy", "browse"},
    (TransferState.PAUSING, True): {"cancel", "copy", "browse"},
    (TransferState.QUEUED, False): {"pause", "cancel", "remove", "copy", "browse"},
    (TransferState.PAUSED, False): {"resume", "cancel", "remove", "copy", "browse"},
    (TransferState.FAILED, False): {"retry", "cancel", "remove", "copy", "browse"},
    (TransferState.DONE, False): {"remove", "copy", "browse"},
}


@pytest.mark.parametrize(("state", "running"), list(ENABLED), ids=lambda v: str(v))
def test_actions_enabled_by_state(state: TransferState, running: bool) -> None:
    item = fake_item(state, running=running)
    controller, *_ = controller_for([item])
    specs = transfer_actions([item], [item], controller)
    assert list(specs) == [*ITEM_ACTIONS, "pause_all", "resume_all"]
    enabled = {key for key in ITEM_ACTIONS if specs[key].enabled}
    assert enabled == ENABLED[(state, running)]
    assert specs["pause_all"].enabled == (state in (TransferState.RUNNING, TransferState.QUEUED))
    assert specs["resume_all"].enabled == (state == TransferState.PAUSED)
    for key, spec in specs.items():
        label, shortcut, callback, _enabled = spec  # plain tuples
        assert label and shortcut == SHORTCUTS[key] and callable(callback)


def test_no_selection_disables_item_actions() -> None:
    items = [fake_item(TransferState.PAUSED)]
    controller, *_ = controller_for(items)
    specs = transfer_actions([], items, controller)
    assert not any(specs[key].enabled for key in ITEM_ACTIONS)
    assert specs["resume_all"].enabled


def test_browse_needs_one_item_and_a_browse_area() -> None:
    a, b = fake_item(TransferState.PAUSED), fake_item(TransferState.DONE)
    controller, *_ = controller_for([a, b])
    assert not transfer_actions([a, b], [a, b], controller)["browse"].enabled
    controller, *_ = controller_for([a], browse=False)
    assert not transfer_actions([a], [a], controller)["browse"].enabled


def test_shortcuts_are_unique() -> None:
    assert len(set(SHORTCUTS.values())) == len(SHORTCUTS)
    assert {k for group in MENU_LAYOUT for k in group} == set(SHORTCUTS)


@pytest.mark.parametrize(
    ("key", "state", "expected"),
    [
        ("pause", TransferState.RUNNING, [("pause", "t-running")]),
        ("resume", TransferState.PAUSED, [("resume", "t-paused")]),
        ("retry", TransferState.FAILED, [("retry", "t-failed")]),
        ("remove", TransferState.DONE, [("remove", "t-done")]),
        ("pause_all", TransferState.RUNNING, [("pause_all", "")]),
        ("resume_all", TransferState.PAUSED, [("resume_all", "")]),
    ],
)
def test_action_callbacks_reach_the_queue(
    key: str, state: TransferState, expected: list[tuple[str, str]]
) -> None:
    item = fake_item(state, running=state == TransferState.RUNNING)
    controller, fake, _, _ = controller_for([item])
    transfer_actions([item], [item], controller)[key].callback()
    assert fake.calls == expected


def test_copy_and_browse_callbacks() -> None:
    done = fake_item(TransferState.DONE)
    paused = fake_item(TransferState.PAUSED)
    controller, _, copied, shown = controller_for([done, paused])
    transfer_actions([done, paused], [done, paused], controller)["copy"].callback()
    assert copied == [f"{TARGET}@sha256:{'cd' * 32}\n{TARGET}"]
    transfer_actions([done], [done], controller)["browse"].callback()
    assert [str(r) for r in shown] == [f"{TARGET}@sha256:{'cd' * 32}"]


def test_cancel_runs_in_the_background(aio: Any) -> None:
    item = fake_item(TransferState.PAUSED)
    controller, fake, _, _ = controller_for([item])

    async def scenario() -> None:
        transfer_actions([item], [item], controller)["cancel"].callback()
        assert controller.tasks, "the cancel task is kept until it ends"
        await aio.until(lambda: not controller.tasks, 5, "cancel to finish")

    aio.run(scenario())
    assert fake.calls == [("cancel", "t-paused")]


# -- the view --------------------------------------------------------------------------------


def test_view_paints_and_builds_its_menu_from_data(
    make_model: Callable[..., TransferModel],
    qtbot: QtBot,
    queue: TransferQueue,
    filled: dict[str, TransferItem],
) -> None:
    model = make_model(queue)
    controller = TransferController(queue, copy_text=lambda _t: None)
    view = TransferView(model, controller)
    qtbot.addWidget(view)
    view.resize(900, 300)
    view.show()
    qtbot.waitExposed(view)
    view.expandAll()
    assert not view.grab().isNull()  # the progress delegate paints every row
    view.select_transfer(filled["failed"].id)
    assert [i.id for i in view.selected_items()] == [filled["failed"].id]
    menu = view.build_menu()
    labels = [a.text().replace("&", "") if not a.isSeparator() else "-" for a in menu.actions()]
    assert labels == [
        "Pause", "Resume", "Retry", "-", "Cancel and delete the upload", "Remove from list",
        "-", "Move to top", "Move up", "Move down", "Rate limit…",
        "-", "Copy reference", "Show in Browse",
    ]  # fmt: skip
    enabled = {
        a.text().replace("&", "") for a in menu.actions() if a.isEnabled() and not a.isSeparator()
    }
    assert enabled == {
        "Retry", "Cancel and delete the upload", "Remove from list", "Copy reference",
        "Move to top", "Move up", "Move down",  # the second of four
    }  # fmt: skip
    assert view.qactions["retry"].shortcut().toString() == SHORTCUTS["retry"]


def test_view_shortcut_removes_selected_transfer(
    aio: Any,
    make_model: Callable[..., TransferModel],
    qtbot: QtBot,
    queue: TransferQueue,
    filled: dict[str, TransferItem],
) -> None:
    model = make_model(queue)
    controller = TransferController(queue, copy_text=lambda _t: None)
    view = TransferView(model, controller)
    qtbot.addWidget(view)
    with qtbot.waitActive(view):
        view.show()
        view.activateWindow()
    view.setFocus()
    view.select_transfer(filled["done"].id)

    async def press_delete() -> None:  # removing journals in a task: the loop must run
        qtbot.keyClick(view, Qt.Key.Key_Delete)

    aio.run(press_delete())
    assert filled["done"] not in queue.items
    assert model.rowCount() == 3


# -- notifications ---------------------------------------------------------------------------


@pytest.mark.parametrize(("ran", "notified"), [(5.0, False), (120.0, True)])
def test_long_transfers_notify_when_they_end(ran: float, notified: bool) -> None:
    now = [1000.0]
    seen: list[tuple[str, str, bool]] = []
    notifier = FinishNotifier(lambda *a: seen.append(a), threshold=60, clock=lambda: now[0])
    item = fake_item(TransferState.RUNNING)
    notifier("changed", item)
    now[0] += ran
    item.transfer.state = TransferState.FAILED
    item.transfer.error = "the registry refused the credentials."
    notifier("changed", item)
    notifier("changed", item)  # the same state again: no second notification
    assert bool(seen) == notified
    if notified:
        assert seen == [("Push failed", f"{TARGET}: the registry refused the credentials.", True)]


def test_a_long_download_notifies_where_its_files_are(tmp_path: Path) -> None:
    now = [1000.0]
    seen: list[tuple[str, str, bool]] = []
    notifier = FinishNotifier(lambda *a: seen.append(a), threshold=60, clock=lambda: now[0])
    transfer = plan_download(parse_reference(f"{TARGET}@sha256:{'ab' * 32}"), tmp_path / "out")
    transfer.state = TransferState.RUNNING
    item = TransferItem(transfer)
    notifier("changed", item)
    now[0] += 600
    transfer.state = TransferState.DONE
    notifier("changed", item)
    assert seen == [("Download finished", f"test:v1 is in {tmp_path / 'out'}", False)]


@pytest.mark.parametrize("name", STATUS_ICONS)
def test_every_status_icon_renders(qapp: Any, name: str) -> None:
    """A missing icon raises inside a delegate's sizeHint, which PySide 6.11 turns into a
    segmentation fault: each must exist and draw."""
    assert not icons.icon(name).pixmap(16, 16).isNull()


def test_download_rows_learn_their_files_and_read_as_downloads(
    queue: TransferQueue,
    add: Adder,
    make_model: Callable[..., TransferModel],
    qtmodeltester: Any,
    tmp_path: Path,
) -> None:
    """A download has no child rows until its manifest is read; then one per blob (a split
    file's parts name the file they join), and its Target is the folder."""
    source = parse_reference(f"{TARGET}@sha256:{'ab' * 32}")
    transfer = plan_download(source, tmp_path / "out", platform="linux/arm64")
    item = add(transfer)
    model = make_model(queue)
    qtmodeltester.check(model)
    row = model.index_of(item.id)
    assert model.rowCount(row) == 0
    assert model.index(row.row(), Column.NAME).data() == "test:v1 (linux/arm64)"
    assert model.index(row.row(), Column.TARGET).data() == str(tmp_path / "out")
    out = tmp_path / "out"
    transfer.parts = [
        DownloadPart("big.bin.part0001", 6, str(out / "big.bin"), 6, BlobState.DONE, "split"),
        DownloadPart("big.bin.part0002", 4, str(out / "big.bin"), 1, BlobState.PAUSED, "split"),
        DownloadPart("data", 10, str(out / ".data.hoist-folder"), 0, kind="folder"),
    ]
    notify(queue, "changed", item)
    model.flush()
    qtmodeltester.check(model)
    assert model.rowCount(row) == 3
    cells = [
        [model.index(r, c, row).data() for c in (Column.NAME, Column.TARGET, Column.STATUS)]
        for r in range(3)
    ]
    assert cells == [
        ["big.bin.part0001", "big.bin", "Done"],
        ["big.bin.part0002", "big.bin", "Paused at 25%"],
        ["data", "", "Not started"],
    ]
    tip = model.index(2, Column.NAME, row).data(Qt.ItemDataRole.ToolTipRole)
    assert tip == str(out / "data")  # the folder, not its hidden archive
    assert item.acknowledged == 7 and item.total == 20
    # Copy reference gives what was fetched, even once done (not the platform's manifest).
    transfer.state, transfer.result = TransferState.DONE, "sha256:" + "cd" * 32
    copied: list[str] = []
    TransferController(queue, copy_text=copied.append).copy_reference([item])
    assert copied == [str(source)]


def test_open_download_folder_that_is_gone_says_so(queue: TransferQueue, tmp_path: Path) -> None:
    from hoist.gui.main_window import open_folder

    item = TransferItem(plan_download(parse_reference(f"{TARGET}@sha256:{'ab' * 32}"),
                                      tmp_path / "gone"))  # fmt: skip
    shown: list[str] = []
    controller = TransferController(
        queue, copy_text=lambda _t: None, on_error=shown.append, open_folder=open_folder
    )
    controller.open_folder(item)
    assert shown and "is not there any more" in shown[0]


def test_progress_shows_bytes_sent_smoothly_and_what_the_registry_acknowledged(
    add: Adder, make_model: Callable[..., TransferModel], queue: TransferQueue, tmp_path: Path
) -> None:
    """The bar and its text follow bytes sent as the engine reports them during a chunk;
    the acknowledged part is the bar's solid edge and is named in the tooltip."""
    item = add(plan(tmp_path, "moving", files=2))
    model = make_model(queue)
    first, _second = item.transfer.blobs
    clock = [100.0]
    item.rate_estimator = RateEstimator(clock=lambda: clock[0])

    class Busy:
        def done(self) -> bool:
            return False

    item.task = Busy()  # type: ignore[assignment]
    item.transfer.state = TransferState.RUNNING
    item.run_started()
    parent = model.index(0, 0)
    shown = []
    for sent in range(100, 800, 100):  # one chunk of 500 B acknowledged at 500
        clock[0] += 0.25
        acked = 500 if sent >= 500 else 0
        queue._on_event(
            item, BlobEvent(item.id, first.name, BlobState.UPLOADING, sent, acked, first.size)
        )
        model.flush()
        shown.append(text(model, 0, Column.PROGRESS, parent))
    assert shown == [f"{n} B / 1000 B ({n // 10}%)" for n in range(100, 800, 100)]
    total = item.total
    assert text(model, 0, Column.PROGRESS) == f"700 B / 1.95 KiB ({100 * 700 // total}%)"
    tip = model.data(model.index(0, Column.PROGRESS), Qt.ItemDataRole.ToolTipRole)
    assert tip == "700 B sent, 500 B acknowledged by the registry"
    child = model.index(0, Column.PROGRESS, parent)
    assert model.data(child, ProgressRole) == pytest.approx(0.5)
    assert model.data(child, SentRole) == pytest.approx(0.7)
    assert model.data(model.index(0, Column.PROGRESS), SentRole) == pytest.approx(700 / total)
    assert text(model, 0, Column.SPEED) == "400 B/s"  # 600 B in the 1.5 s since the first
    item.task = None
    model.flush()
    assert text(model, 0, Column.PROGRESS, parent) == "500 B / 1000 B (50%)", "paused: acked"
    assert model.data(child, SentRole) is None


def test_a_pausing_transfer_reads_pausing_and_counts_as_active(
    make_model: Callable[..., TransferModel], qapp: Any
) -> None:
    item = fake_item(TransferState.PAUSING, running=True)
    model = make_model(FakeQueue([item]))
    assert text(model, 0, Column.STATUS) == "Pausing…"
    assert model.counts()["active"] == 1 and model.counts()["paused"] == 0
