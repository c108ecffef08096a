"""The Settings dialog: edits a copy of Settings; the window applies it when accepted."""

from __future__ import annotations

import copy

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from hoist.core.errors import HoistError, InvalidReference
from hoist.core.oci.reference import parse_registry
from hoist.core.units import MiB, format_size, parse_size
from hoist.gui.settings.store import MAX_AT_ONCE, MAX_CHUNK, MIN_CHUNK, RegistrySettings, Settings
from hoist.gui.widgets.dialogs import ok_cancel_buttons

CHUNK_CHOICES = (4 * MiB, 16 * MiB, 64 * MiB, 256 * MiB)


class RateLimitBox(QDoubleSpinBox):
    """An upload rate in MiB/s; 0 shows as "No limit". `bytes_per_second()` is the value."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setDecimals(1)
        self.setRange(0.0, 100000.0)
        self.setSingleStep(1.0)
        self.setSuffix(" MiB/s")
        self.setSpecialValueText("No limit")
        self.setAccelerated(True)
        self.setKeyboardTracking(False)  # apply on Enter or arrows, not on every keystroke
        self.setToolTip("Upload rate limit for all transfers together (0: no limit)")

    def bytes_per_second(self) -> int:
        return round(self.value() * MiB)

    def set_bytes_per_second(self, rate: int) -> None:
        self.setValue(rate / MiB)


class TransferRateDialog(QDialog):
    """One transfer's own rate cap (a push's or a download's), as download managers allow;
    the window's upload cap still applies to pushes on top of it.

    `rate_box` holds the answer; `bytes_per_second()` reads it once accepted.
    """

    def __init__(self, name: str, rate: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("transfer-rate-dialog")
        self.setWindowTitle("Rate limit")
        self.rate_box = RateLimitBox(self)
        self.rate_box.setObjectName("transfer-rate")
        self.rate_box.setToolTip("This transfer's own rate limit (0: none of its own)")
        self.rate_box.set_bytes_per_second(rate)
        label = QLabel(f"Rate limit for {name}:", self)
        label.setWordWrap(True)
        label.setBuddy(self.rate_box)
        note = QLabel("The window's upload limit still applies to all pushes together.", self)
        note.setWordWrap(True)
        buttons = ok_cancel_buttons(self)
        layout = QVBoxLayout(self)
        layout.addWidget(label)
        layout.addWidget(self.rate_box)
        layout.addWidget(note)
        layout.addWidget(buttons)
        # Fixed limits before it is shown: the window never resizes itself afterwards.
        self.setMinimumSize(QSize(360, 0).expandedTo(self.minimumSizeHint()))

    def bytes_per_second(self) -> int:
        return self.rate_box.bytes_per_second()


def parse_chunk(text: str) -> int:
    """A chunk size from the combo's text. Raises HoistError with the allowed range."""
    size = parse_size(text.replace(" ", ""))
    if not MIN_CHUNK <= size <= MAX_CHUNK:
        raise HoistError(
            f"a chunk of {format_size(size)} is outside "
            f"{format_size(MIN_CHUNK)}–{format_size(MAX_CHUNK)}"
        )
    return size


class SettingsDialog(QDialog):
    """Transfers (chunk size, how many at once, rate limit, resume on start-up) and registries.

    The dialog edits a deep copy; `settings()` gives the edited copy once accepted.
    """

    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Hoist Settings")
        self.setObjectName("settings-dialog")
        self._settings = copy.deepcopy(settings)
        self._registries = [copy.deepcopy(r) for r in settings.registries]
        self._current = -1

        tabs = QTabWidget(self)
        tabs.addTab(self._transfers_page(), "Transfers")
        tabs.addTab(self._registries_page(), "Registries")

        self.error = QLabel(self)
        self.error.setObjectName("settings-error")
        self.error.setWordWrap(True)
        self.error.hide()

        buttons = ok_cancel_buttons(self)

        layout = QVBoxLayout(self)
        layout.addWidget(tabs)
        layout.addWidget(self.error)
        layout.addWidget(buttons)
        self._load_registry_list()
        # An explicit minimum: the size limits never change once shown (see MainWindow).
        self.setMinimumSize(self.minimumSizeHint())

    # -- pages --------------------------------------------------------------------------------

    def _transfers_page(self) -> QWidget:
        page = QWidget(self)
        form = QFormLayout(page)
        s = self._settings
        self.chunk = QComboBox(page)
        self.chunk.setEditable(True)
        for size in CHUNK_CHOICES:
            self.chunk.addItem(format_size(size))
        self.chunk.setEditText(format_size(s.chunk_size))
        self.chunk.setToolTip(
            "Bytes per request. Smaller chunks lose less on a broken connection; some "
            "registries limit them (GHCR takes at most 4 MiB)."
        )
        form.addRow("Chunk size:", self.chunk)
        self.max_active = QSpinBox(page)
        self.max_active.setRange(1, MAX_AT_ONCE)
        self.max_active.setValue(s.max_active)
        form.addRow("Transfers at once:", self.max_active)
        self.parallel = QSpinBox(page)
        self.parallel.setRange(1, MAX_AT_ONCE)
        self.parallel.setValue(s.parallel_blobs)
        self.parallel.setToolTip("Files, parts or layers uploaded at once within one transfer")
        form.addRow("Blobs at once:", self.parallel)
        self.rate = RateLimitBox(page)
        self.rate.set_bytes_per_second(s.rate_limit)
        form.addRow("Upload limit:", self.rate)
        self.resume = QCheckBox("Resume unfinished transfers when Hoist starts", page)
        self.resume.setChecked(s.resume_on_start)
        form.addRow("", self.resume)
        self.ask_quit = QCheckBox("Ask before quitting while transfers run", page)
        self.ask_quit.setToolTip("Off: Quit pauses every transfer and quits without asking")
        self.ask_quit.setChecked(s.ask_before_quit)
        form.addRow("", self.ask_quit)
        return page

    def _registries_page(self) -> QWidget:
        page = QWidget(self)
        self.registry_list = QListWidget(page)
        self.registry_list.setObjectName("registry-list")
        self.registry_list.currentRowChanged.connect(self._select)
        add = QPushButton("Add", page)
        add.clicked.connect(self._add_registry)
        self.remove_button = QPushButton("Remove", page)
        self.remove_button.clicked.connect(self._remove_registry)
        side = QVBoxLayout()
        side.addWidget(self.registry_list)
        row = QHBoxLayout()
        row.addWidget(add)
        row.addWidget(self.remove_button)
        side.addLayout(row)

        self.reg_form = QWidget(page)
        form = QFormLayout(self.reg_form)
        self.reg_name = QLineEdit(self.reg_form)
        self.reg_url = QLineEdit(self.reg_form)
        self.reg_url.setPlaceholderText("ghcr.io, or http://localhost:5000")
        self.reg_user = QLineEdit(self.reg_form)
        self.reg_user.setPlaceholderText("empty for anonymous access")
        self.reg_insecure = QCheckBox("Don't verify the TLS certificate", self.reg_form)
        self.reg_ca = QLineEdit(self.reg_form)
        self.reg_ca.setPlaceholderText("extra CA certificates (PEM), optional")
        ca_row = QHBoxLayout()
        ca_row.addWidget(self.reg_ca)
        pick = QPushButton("Choose…", self.reg_form)
        pick.clicked.connect(self._pick_ca)
        ca_row.addWidget(pick)
        form.addRow("Name:", self.reg_name)
        form.addRow("Address:", self.reg_url)
        form.addRow("Username:", self.reg_user)
        form.addRow("", self.reg_insecure)
        form.addRow("CA bundle:", ca_row)
        note = QLabel(
            "Passwords are never written to settings: Hoist keeps them in the system keyring "
            "(or uses your docker login).",
            self.reg_form,
        )
        note.setWordWrap(True)
        form.addRow(note)
        for edit in (self.reg_name, self.reg_url, self.reg_user, self.reg_ca):
            edit.editingFinished.connect(self._store_current)
        self.reg_insecure.toggled.connect(self._store_current)

        layout = QHBoxLayout(page)
        layout.addLayout(side, 1)
        layout.addWidget(self.reg_form, 2)
        return page

    # -- registries ---------------------------------------------------------------------------

    def _load_registry_list(self) -> None:
        self.registry_list.clear()
        for reg in self._registries:
            self.registry_list.addItem(reg.name)
        self._current = -1
        if self._registries:
            self.registry_list.setCurrentRow(0)
        self._select(self.registry_list.currentRow())

    def _select(self, row: int) -> None:
        if 0 <= self._current < len(self._registries):
            self._store_current()
        self._current = row
        has = 0 <= row < len(self._registries)
        self.reg_form.setEnabled(has)
        self.remove_button.setEnabled(has)
        reg = self._registries[row] if has else RegistrySettings("", "")
        self.reg_name.setText(reg.name)
        self.reg_url.setText(reg.url)
        self.reg_user.setText(reg.username)
        self.reg_insecure.setChecked(reg.insecure)
        self.reg_ca.setText(reg.ca_bundle)

    def _store_current(self) -> None:
        row = self._current
        if not 0 <= row < len(self._registries):
            return
        reg = self._registries[row]
        reg.name = self.reg_name.text().strip() or reg.name
        reg.url = self.reg_url.text().strip()
        reg.username = self.reg_user.text().strip()
        reg.insecure = self.reg_insecure.isChecked()
        reg.ca_bundle = self.reg_ca.text().strip()
        item = self.registry_list.item(row)
        if item is not None and item.text() != reg.name:
            item.setText(reg.name)

    def _add_registry(self) -> None:
        self._store_current()
        names = {r.name for r in self._registries}
        name, n = "New registry", 2
        while name in names:
            name, n = f"New registry ({n})", n + 1
        self._registries.append(RegistrySettings(name, ""))
        self.registry_list.addItem(name)
        self.registry_list.setCurrentRow(len(self._registries) - 1)
        self.reg_url.setFocus()

    def _remove_registry(self) -> None:
        row = self._current
        if not 0 <= row < len(self._registries):
            return
        self._current = -1
        del self._registries[row]
        self.registry_list.takeItem(row)
        self._select(self.registry_list.currentRow())

    def _ca_chosen(self, path: str) -> None:
        self.reg_ca.setText(path)
        self._store_current()

    def _pick_ca(self) -> None:
        dialog = QFileDialog(self, "CA bundle", "", "PEM certificates (*.pem *.crt);;All (*)")
        dialog.fileSelected.connect(self._ca_chosen)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()

    # -- result -------------------------------------------------------------------------------

    def validate(self) -> str | None:
        """A sentence saying what is wrong, or None."""
        self._store_current()
        try:
            parse_chunk(self.chunk.currentText())
        except HoistError as exc:
            return f"Chunk size: {exc.sentence(window=True)}"
        names: set[str] = set()
        for reg in self._registries:
            if not reg.url:
                return f"Registry {reg.name!r} needs an address (e.g. ghcr.io)."
            try:
                parse_registry(reg.url)
            except InvalidReference as exc:
                return f"Registry {reg.name!r}: {exc.sentence(window=True)}"
            if reg.name in names:
                return f"Two registries are named {reg.name!r}; rename one of them."
            names.add(reg.name)
        return None

    def accept(self) -> None:
        problem = self.validate()
        if problem:
            self.error.setText(problem)
            self.error.show()
            if self.isVisible():
                self.adjustSize()
            return
        self.error.hide()
        super().accept()

    def settings(self) -> Settings:
        """The edited settings (call after the dialog was accepted)."""
        self._store_current()
        s = copy.deepcopy(self._settings)
        s.chunk_size = parse_chunk(self.chunk.currentText())
        s.max_active = self.max_active.value()
        s.parallel_blobs = self.parallel.value()
        s.rate_limit = self.rate.bytes_per_second()
        s.resume_on_start = self.resume.isChecked()
        s.ask_before_quit = self.ask_quit.isChecked()
        s.registries = [copy.deepcopy(r) for r in self._registries]
        if s.registry(s.selected_registry) is None:
            s.selected_registry = s.registries[0].name if s.registries else ""
        return s


__all__ = ["RateLimitBox", "SettingsDialog", "parse_chunk"]
