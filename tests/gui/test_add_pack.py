"""The add sheet's choice of how a folder goes: as its files, or packed into one tar."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from pushing import get_manifest
from support.registry import RegistryProcess
from test_window import OpenWindow, drop, fill_and_push, open_window, start

from hoist.core.transfer.model import TransferState
from hoist.core.units import MiB
from hoist.gui.add.sheet import AddSheet
from hoist.gui.context import AppContext
from hoist.gui.main_window import MainWindow

__all__ = ["open_window"]  # the fixture, shared with test_window


@pytest.mark.parametrize(
    ("choice", "media_types"),
    [
        (
            None,
            {
                "application/vnd.oci.image.layer.v1.tar+gzip",  # a bundle,
                "application/vnd.oci.image.layer.v1.tar",
            },
        ),  # and a file
        ("tar", {"application/vnd.oci.image.layer.v1.tar"}),
        ("tar.gz", {"application/vnd.oci.image.layer.v1.tar+gzip"}),
    ],
)
def test_a_dropped_folder_goes_as_its_files_or_as_one_tar(
    aio: Any,
    open_window: OpenWindow,
    registry: RegistryProcess,
    tmp_path: Path,
    choice: str | None,
    media_types: set[str],
) -> None:
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.json").write_bytes(b"{}")
    (folder / "b.json").write_bytes(b"[]")
    (folder / "sub" / "weights.bin").write_bytes(os.urandom(2 * MiB))
    window, ctx = open_window()
    tag = choice.replace(".", "-") if choice else "files"

    async def scenario() -> None:
        sheet = await sheet_for(aio, window, ctx, folder)
        assert sheet.pack.isVisibleTo(sheet)
        sheet.pack.setCurrentIndex(sheet.pack.findData(choice))
        await fill_and_push(aio, sheet, "gui/pack", tag)
        assert sheet.item is not None
        item = sheet.item
        await aio.until(lambda: item.state == TransferState.DONE, 60, "the push")

    aio.run(scenario())
    layers = get_manifest(registry.url, "gui/pack", tag)["layers"]
    assert {x["mediaType"] for x in layers} == media_types
    titles = sorted(x["annotations"]["org.opencontainers.image.title"] for x in layers)
    if choice is None:
        assert titles == ["model", "model/sub/weights.bin"]  # the bundle titled by its folder
    else:
        assert titles == ["model"]


def test_the_folder_choice_is_not_offered_for_files(
    aio: Any, open_window: OpenWindow, tmp_path: Path
) -> None:
    file = tmp_path / "model.bin"
    file.write_bytes(b"x" * 1000)
    window, ctx = open_window()

    async def scenario() -> None:
        sheet = await sheet_for(aio, window, ctx, file)
        assert not sheet.pack.isVisibleTo(sheet)

    aio.run(scenario())


async def sheet_for(aio: Any, window: MainWindow, ctx: AppContext, path: Path) -> AddSheet:
    """The add sheet a drop of `path` on the started window opens."""
    await start(ctx, window)
    drop(window, [path])
    await aio.until(lambda: window.add_sheet is not None, 10, "the add sheet")
    assert window.add_sheet is not None
    return window.add_sheet
