"""The add sheet: where dropped or picked files, folders and images go, checked before queueing.

Steps, each one awaited so the window never freezes: look up credentials (worker thread) →
core's check before a push (`check_before_push`: reachable, is the tag already there, may
these credentials push; an existing tag is asked about: overwrite, choose another tag, or
cancel) → plan (walking a folder, packing it if asked, or reading an image's manifests, in a
worker thread) → add to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from hoist.core.errors import HoistError
from hoist.core.oci.digest import short_digest
from hoist.core.oci.reference import Reference, parse_reference
from hoist.core.registry.profile import ProfileStore, RegistryProfile
from hoist.core.sources.artifact import SplitOptions
from hoist.core.sources.formats import list_images
from hoist.core.transfer.model import Transfer
from hoist.core.transfer.preflight import check_before_push
from hoist.core.transfer.push import plan_file_push_in_thread, plan_image_push
from hoist.core.transfer.queue import TransferItem, TransferQueue
from hoist.core.transfer.settings import split_advice
from hoist.core.units import GiB, MiB, format_size, parse_size
from hoist.gui.add.planning import (
    CredentialCache,
    SourceChoice,
    describe_as_files,
    suggest_repository,
    suggest_tag,
)
from hoist.gui.settings.store import RegistrySettings, Settings, make_client
from hoist.gui.widgets.theme import plain_buttons

log = logging.getLogger(__name__)

PART_CHOICES = (256 * MiB, 1 * GiB, 4 * GiB)
#: How a folder may go (`hoist push`, `--pack=tar`, `--pack`): its files, or one tar.
PACK_CHOICES = (
    ("As its files", None),
    ("As one tar, uncompressed", "tar"),
    ("As one tar.gz, as oras packs folders", "tar.gz"),
)
ALL_PLATFORMS = "All platforms"


def split_image_name(name: str) -> tuple[str, str]:
    """(repository suggestion, tag) from how a source names an image.

    An OCI layout's `ref.name` is usually a bare tag (`1.0`); a `docker save` names images
    `busybox:latest` or `ghcr.io/team/tool:2`, whose last path component is proposed.
    """
    if not name:
        return "", ""
    if "/" not in name and ":" not in name:
        return "", name
    last = name.rsplit("/", 1)[-1]
    repo, sep, tag = last.partition(":")
    return repo, tag if sep else ""


class AddSheet(QDialog):
    """Choose where sources go, check the registry, and queue the push.

    Args:
        choice: the sources and whether they are an image or files.
        settings: read for registries and defaults; the chosen repository and tag are
            remembered in it (the window saves it on `queued`).
        queue: where the planned transfer goes.
        credentials: the window's credential cache.
        registry: the registry to propose (the window's current one).

    Signals:
        queued(TransferItem): the transfer was added to the queue (the sheet then closes).
    """

    queued = Signal(object)

    def __init__(
        self,
        choice: SourceChoice,
        *,
        settings: Settings,
        queue: TransferQueue,
        credentials: CredentialCache,
        registry: str | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.choice = choice
        self.settings = settings
        self.queue = queue
        self.credentials = credentials
        self.transfer: Transfer | None = None
        self.item: TransferItem | None = None
        self._task: asyncio.Task[None] | None = None
        self._counting: asyncio.Task[None] | None = None  # dropped folders' files being counted
        self._overwrite_ok = False
        self._images: list[Any] = []
        self._image_tag = ""  # the tag the chosen image names itself with
        #: What Hoist learned of each host (a small file): whether a cut upload is kept.
        self.profiles: dict[str, RegistryProfile] = ProfileStore().all()
        self.setObjectName("add-sheet")
        self.setWindowTitle("Push image" if self.is_image else "Push files")
        self.setWindowModality(Qt.WindowModality.WindowModal)
        self._build(registry)
        # An explicit minimum, so the layout never changes the size limits once shown; parts
        # that appear later (a warning, an error) grow the sheet through `_fit`.
        self.setMinimumSize(QSize(520, 0).expandedTo(self.minimumSizeHint()))

    @property
    def is_image(self) -> bool:
        return self.choice.kind == "image"

    # -- layout ------------------------------------------------------------------------------

    def _build(self, registry: str | None) -> None:
        paths = self.choice.paths
        self.summary = QLabel(self._summary_text(paths, image=self.is_image), self)
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        form = QFormLayout()
        self.registry = QComboBox(self)
        self.registry.setObjectName("registry")
        for reg in self.settings.registries:
            if reg.valid:
                self.registry.addItem(f"{reg.name} ({reg.host})", reg.name)
        wanted = registry or (self.settings.selected.name if self.settings.selected else "")
        at = self.registry.findData(wanted)
        if at >= 0:
            self.registry.setCurrentIndex(at)
        form.addRow("Registry:", self.registry)
        self.repository = QLineEdit(self)
        self.repository.setObjectName("repository")
        self.repository.setPlaceholderText("e.g. team/models")
        form.addRow("Repository:", self.repository)
        self.tag = QLineEdit(self)
        self.tag.setObjectName("tag")
        self.tag.setPlaceholderText("latest")
        form.addRow("Tag:", self.tag)

        # Image choices (filled in the background: reading an archive's index takes a moment).
        self.image_tag = QComboBox(self)
        self.image_tag.setObjectName("image-tag")
        self.platform = QComboBox(self)
        self.platform.setObjectName("platform")
        self.platform.addItem(ALL_PLATFORMS, "")
        if self.is_image:
            self.image_tag.addItem("Reading the image…", None)
            self.image_tag.setEnabled(False)
            form.addRow("Image:", self.image_tag)
            form.addRow("Platform:", self.platform)
        else:
            self.image_tag.hide()
            self.platform.hide()

        # Split mode for very large files.
        self.split = QCheckBox("Split large files into parts", self)
        self.split.setObjectName("split")
        self.split.setToolTip(
            "Each part is its own blob, so a lost upload session costs at most one part. "
            "`oras pull` gives the parts; `cat NAME.part* > NAME` joins them."
        )
        self.part_size = QComboBox(self)
        self.part_size.setEditable(True)
        for size in PART_CHOICES:
            self.part_size.addItem(format_size(size))
        self.part_size.setCurrentIndex(1)
        part_label = QLabel("Part size:", self)
        split_row = QHBoxLayout()
        split_row.addWidget(self.split)
        split_row.addWidget(part_label)
        split_row.addWidget(self.part_size)
        split_row.addStretch(1)
        self.split_note = QLabel(self)
        self.split_note.setObjectName("split-advice")
        self.split_note.setWordWrap(True)
        self.split_note.hide()
        self._file_sizes: list[tuple[str, int]] = []
        if not self.is_image:
            form.addRow("", split_row)
            for p in paths:
                with contextlib.suppress(OSError):
                    if p.is_file():
                        self._file_sizes.append((p.name, p.stat().st_size))
        else:
            for w in (self.split, part_label, self.part_size):
                w.hide()
        self.part_size.setEnabled(self.split.isChecked())
        self.split.toggled.connect(self.part_size.setEnabled)

        # A folder goes as its files (small ones in bundles), or packed into one blob.
        self.pack = QComboBox(self)
        self.pack.setObjectName("pack")
        self.pack.setToolTip(
            "As its files, only what changed goes again, and any ORAS client pulls the files. "
            "As one tar, the folder is one blob, packed first in Hoist's state folder; the oras "
            "command can't unpack an uncompressed one (Hoist and oras-py can)."
        )
        for label, form_name in PACK_CHOICES:
            self.pack.addItem(label, form_name)
        if not self.is_image and any(p.is_dir() for p in paths):
            form.addRow("Folders:", self.pack)
        else:
            self.pack.hide()
        self.part_size.currentTextChanged.connect(lambda _text: self._part_size_changed())

        # "The tag already exists" (shown after the HEAD check).
        self.exists_box = QFrame(self)
        self.exists_box.setObjectName("tag-exists")
        self.exists_box.setFrameShape(QFrame.Shape.StyledPanel)
        self.exists_label = QLabel(self.exists_box)
        self.exists_label.setWordWrap(True)
        self.overwrite_button = QPushButton("Overwrite", self.exists_box)
        self.overwrite_button.setObjectName("overwrite")
        self.overwrite_button.clicked.connect(self.overwrite)
        self.other_tag_button = QPushButton("Choose another tag", self.exists_box)
        self.other_tag_button.clicked.connect(self.choose_another_tag)
        box = QVBoxLayout(self.exists_box)
        box.addWidget(self.exists_label)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.other_tag_button)
        row.addWidget(self.overwrite_button)
        box.addLayout(row)
        self.exists_box.hide()

        self.message = QLabel(self)
        self.message.setObjectName("message")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message.hide()
        if self.choice.note:
            self.show_message(self.choice.note)

        self.busy_label = QLabel(self)
        self.busy_label.setObjectName("busy")
        self.busy_label.hide()
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 0)  # busy: the steps have no measurable progress
        self.progress.setTextVisible(False)
        self.progress.hide()

        self.buttons = QDialogButtonBox(self)
        self.push_button = self.buttons.addButton("Push", QDialogButtonBox.ButtonRole.AcceptRole)
        self.push_button.setObjectName("push")
        self.push_button.setDefault(True)
        self.cancel_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.push_button.clicked.connect(self.start_push)
        self.cancel_button.clicked.connect(self.reject)
        plain_buttons(self.buttons)

        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addSpacing(6)
        layout.addLayout(form)
        layout.addWidget(self.split_note)
        layout.addWidget(self.exists_box)
        layout.addWidget(self.message)
        layout.addWidget(self.busy_label)
        layout.addWidget(self.progress)
        layout.addWidget(self.buttons)

        self.registry.currentIndexChanged.connect(self._registry_changed)
        self.repository.textEdited.connect(self._target_edited)
        self.tag.textEdited.connect(self._target_edited)
        self._registry_changed()
        if not self.registry.count():
            self.push_button.setEnabled(False)
            self.show_message(
                "No registry is set up yet. Add one in Settings → Registries, or start the "
                "local demo registry from the window."
            )

    @staticmethod
    def _summary_text(paths: list[Path], *, image: bool = False) -> str:
        def describe(p: Path) -> str:
            try:
                if image:
                    if p.is_dir():
                        return f"{p.name}/ (OCI image layout)"
                    return f"{p.name} (image archive, {format_size(p.stat().st_size)})"
                if p.is_dir():
                    return f"{p.name}/ (folder: counting its files…)"
                return f"{p.name} ({format_size(p.stat().st_size)})"
            except OSError:
                return p.name

        shown = [describe(p) for p in paths[:6]]
        if len(paths) > 6:
            shown.append(f"and {len(paths) - 6} more")
        return ("Push this image:\n" if image else "Push:\n") + "\n".join(shown)

    # -- field logic -------------------------------------------------------------------------

    def current_registry(self) -> RegistrySettings | None:
        name = self.registry.currentData()
        return self.settings.registry(str(name)) if name is not None else None

    def _registry_changed(self) -> None:
        """The repository remembered for this registry, a tag from the source's own name
        (never an earlier push's tag: it would overwrite that push), and split mode offered
        when this registry would restart a cut upload of a very large file."""
        reg = self.current_registry()
        first = self.choice.paths[0] if self.choice.paths else Path("files")
        self.repository.setText((reg.last_repository if reg else "") or suggest_repository(first))
        self.tag.setText(self._image_tag or suggest_tag(first))
        self._advise_split(reg)
        self._target_edited()

    def _advise_split(self, reg: RegistrySettings | None) -> None:
        advice = self._split_advice(reg)
        self.split.setChecked(bool(advice))
        self.split_note.setText(advice)
        self.split_note.setVisible(bool(advice))
        self._fit()

    def _split_advice(self, reg: RegistrySettings | None) -> str:
        if reg is None or not reg.valid or not self._file_sizes:
            return ""
        name, size = max(self._file_sizes, key=lambda pair: pair[1])
        try:
            part = parse_size(self.part_size.currentText().replace(" ", ""))
        except HoistError:
            part = PART_CHOICES[1]  # being typed: the advice names the default part size
        return split_advice(name, size, self.profiles.get(reg.host, RegistryProfile()), part)

    def _part_size_changed(self) -> None:
        if not self.split_note.isHidden():
            self.split_note.setText(self._split_advice(self.current_registry()))

    def _target_edited(self) -> None:
        self._overwrite_ok = False
        if self.exists_box.isVisible():
            self.exists_box.hide()
            self._fit()

    def show_message(self, text: str) -> None:
        self.message.setText(text)
        self.message.setVisible(bool(text))
        self._fit()

    def _fit(self) -> None:
        """Grow (or shrink) to the content after a part appeared or went away."""
        if self.isVisible():
            QTimer.singleShot(0, self.adjustSize)

    def target(self) -> Reference:
        """The reference to push to. Raises InvalidReference with a sentence."""
        reg = self.current_registry()
        if reg is None:
            raise HoistError("choose a registry", hint="Add one in Settings → Registries")
        repo = self.repository.text().strip().strip("/")
        tag = self.tag.text().strip() or "latest"
        if not repo:
            raise HoistError("the repository is empty", hint="Write one, e.g. team/models")
        return parse_reference(f"{reg.host}/{repo}:{tag}")

    def overwrite(self) -> None:
        """The user accepts replacing the existing tag: push."""
        self._overwrite_ok = True
        self.exists_box.hide()
        self._fit()
        self.start_push()

    def choose_another_tag(self) -> None:
        self.exists_box.hide()
        self._fit()
        self.tag.setFocus()
        self.tag.selectAll()

    def _set_busy(self, busy: bool, text: str = "") -> None:
        for w in (self.registry, self.repository, self.tag, self.split, self.part_size,
                  self.pack, self.image_tag, self.platform, self.push_button):  # fmt: skip
            w.setEnabled(not busy)
        if not busy:
            self.part_size.setEnabled(self.split.isChecked())
            self.image_tag.setEnabled(bool(self._images))
            self.push_button.setEnabled(self.registry.count() > 0)
        self.progress.setVisible(busy)
        self.busy_label.setVisible(busy)
        self.busy_label.setText(text)
        self._fit()

    # -- background work ---------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self._task = asyncio.get_running_loop().create_task(coro)

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        if self.is_image and not self._images and self._task is None:
            self._spawn(self.load_image_choices())
        folders = [p for p in self.choice.paths if not self.is_image and p.is_dir()]
        if folders and self._counting is None:
            self._counting = asyncio.get_running_loop().create_task(self._count_folders(folders))

    async def _count_folders(self, folders: list[Path]) -> None:
        """Put each dropped folder's file count and size in the summary (a worker thread walks
        them: a dataset folder can hold many thousands of files)."""
        text = self.summary.text()
        for folder in folders:
            try:
                summary = await asyncio.to_thread(describe_as_files, folder)
            except (HoistError, OSError):
                continue
            files, size = summary.files, summary.size
            noun = "file" if files == 1 else "files"
            text = text.replace(
                f"{folder.name}/ (folder: counting its files…)",
                f"{folder.name}/ (folder: {files:,} {noun}, {format_size(size)})",
            )
            self.summary.setText(text)

    async def load_image_choices(self) -> None:
        """Fill the image and platform pickers from the source (no layer is hashed)."""
        try:
            await self._load_image_choices()
        finally:
            self._task = None

    async def _load_image_choices(self) -> None:
        try:
            images = await asyncio.to_thread(list_images, self.choice.paths[0])
        except (HoistError, OSError) as exc:
            if isinstance(exc, HoistError):
                text = exc.sentence(window=True)
            else:
                text = f"can't read it: {exc}"
            self.show_message(text)
            self.image_tag.clear()
            self.image_tag.addItem("(unreadable)", None)
            return
        self._images = images
        self.image_tag.clear()
        for entry in images:
            label = ", ".join(entry.tags) or (short_digest(entry.digest) or "image")
            self.image_tag.addItem(label, entry.tags[0] if entry.tags else None)
        if not images:
            self.image_tag.addItem("(no image found)", None)
        self.image_tag.setEnabled(len(images) > 1)
        self.image_tag.currentIndexChanged.connect(self._image_changed)
        self._image_changed()

    def _image_changed(self) -> None:
        i = self.image_tag.currentIndex()
        entry = self._images[i] if 0 <= i < len(self._images) else None
        self.platform.clear()
        self.platform.addItem(ALL_PLATFORMS, "")
        if entry is None:
            return
        for platform in entry.platforms:
            self.platform.addItem(platform, platform)
        self.platform.setEnabled(len(entry.platforms) > 1)
        repo, tag = split_image_name(entry.tags[0] if entry.tags else "")
        reg = self.current_registry()
        if repo and not (reg and reg.last_repository):
            self.repository.setText(repo)
        self._image_tag = tag
        if tag:
            self.tag.setText(tag)

    def start_push(self) -> None:
        """The Push button: run `push()` in the background (kept, cancelled on close)."""
        if self._task is not None and not self._task.done():
            return
        self._spawn(self.push())

    async def push(self) -> None:
        """Check the registry, plan, queue. Problems are shown as sentences in the sheet."""
        self.show_message("")
        self._set_busy(True, "Checking the registry…")
        exists: tuple[Reference, str] | None = None
        try:
            target = self.target()
            reg = self.current_registry()
            assert reg is not None
            creds = (
                self.credentials.get(reg.host)
                if self.credentials.known(reg.host)
                else await self.credentials.refresh(reg)
            )
            client = make_client(reg, creds)
            try:
                check = await check_before_push(client, target, overwrite=self._overwrite_ok)
            finally:
                await client.aclose()
            if check.existing is not None:
                exists = (target, check.existing)  # asked once this check has ended
                return
            self._set_busy(True, "Reading the image…" if self.is_image else "Preparing…")
            transfer = await self.plan(target, reg)
            self.transfer = transfer
            self.item = self.queue.add(transfer)
            reg.last_repository = target.repository
            reg.last_tag = target.tag or ""
            self.settings.selected_registry = reg.name
            self._task = None
            self.queued.emit(self.item)
            self.accept()
        except HoistError as exc:
            self.show_message(exc.sentence(window=True))
        finally:
            self._task = None
            self._set_busy(False)
            # Only now: the fields are enabled again and no push is running, so "Choose
            # another tag" can focus the tag and "Overwrite" can start the push at once.
            if exists is not None:
                self._show_exists(*exists)

    def _show_exists(self, target: Reference, digest: str) -> None:
        self.exists_label.setText(
            f"{target.repository}:{target.tag} already exists in {target.registry} "
            f"({short_digest(digest) or 'a manifest'}). Pushing replaces it; anything else "
            "that uses the old manifest by its digest keeps working."
        )
        self.exists_box.show()
        self.overwrite_button.setFocus()
        self._fit()

    async def plan(self, target: Reference, reg: RegistrySettings) -> Transfer:
        """Plan the push in a worker thread: folders are walked and checked; an image's
        manifests and config are checked, its layers left to the registry's check on commit."""
        parallel = self.settings.parallel_blobs
        if not self.is_image:
            split = None
            if self.split.isChecked():
                split = SplitOptions(parse_size(self.part_size.currentText().replace(" ", "")))
            # Cancelled (the sheet or the window closed), the packing stops and leaves nothing.
            return await plan_file_push_in_thread(
                target,
                list(self.choice.paths),
                split=split,
                parallel=parallel,
                plain_http=reg.plain_http,
                pack=self.pack.currentData() or False,
            )
        tag = self.image_tag.currentData()
        platform = self.platform.currentData() or None
        self.busy_label.setText("Checking every layer of the image…")
        return await asyncio.to_thread(
            plan_image_push,
            target,
            self.choice.paths[0],
            image_tag=str(tag) if tag else None,
            platform=platform,
            parallel=parallel,
            plain_http=reg.plain_http,
        )

    def done(self, result: int) -> None:
        """Closing the sheet stops whatever it was doing (the queue is not touched)."""
        for task in (self._task, self._counting):
            if task is not None and not task.done() and task is not asyncio.current_task():
                task.cancel()
        super().done(result)


__all__ = ["AddSheet", "split_image_name"]
