"""Add or edit a registry: address, username, password, TLS choices, and a connection test.

The password goes to the system keyring (`hoist.core.registry.credentials.store_credentials`,
in a worker
thread: a keyring may block on an unlock prompt) and is never shown again: the field stays
empty, with "saved in the system keyring" as its placeholder. Where no keyring backend exists
the dialog says so and keeps the password for this session only (`session_credentials`);
Hoist never writes a password to a file.

"Test connection" runs the real `RegistryClient.ping` (and the login it implies) and one
catalog page, and says the outcome as a sentence; `connection_sentence` builds that sentence
from data and is tested without widgets.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Coroutine
from dataclasses import dataclass, replace
from typing import Any

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QFont, QPalette, QShowEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from hoist.core.errors import (
    AccessDenied,
    AuthenticationFailed,
    CatalogUnavailable,
    CredentialsError,
    HoistError,
    InvalidReference,
    NetworkError,
    RegistryError,
)
from hoist.core.oci.reference import parse_registry
from hoist.core.registry.auth import Credentials
from hoist.core.registry.credentials import (
    KeyringKeychain,
    find_credentials,
    keyring_available,
    store_credentials,
)
from hoist.core.registry.listing import catalog_pages
from hoist.gui.settings.store import RegistrySettings, make_client
from hoist.gui.widgets.tasks import spawn_reported
from hoist.gui.widgets.theme import plain_buttons, tone_color

log = logging.getLogger(__name__)

SAVED_PLACEHOLDER = "saved in the system keyring"
NO_KEYRING = (
    "No system keyring is available on this computer: a password entered here is kept for "
    "this session only, never written to disk. Install and unlock a keyring service (GNOME "
    "Keyring or KWallet) to have it remembered"
)
INSECURE_WARNING = (
    "Hoist will not check this registry's certificate: anyone on the network between you and "
    "the registry could read or change what you push and pull, and see your password. Use "
    "this only for a registry you trust on a network you trust"
)
ADDRESS_HINT = "Write the address as host[:port] or https://host[:port], e.g. 127.0.0.1:5000"


# -- the connection test, as data -----------------------------------------------------------


@dataclass(frozen=True)
class ProbeResult:
    """How a connection test ended.

    Attributes:
        host: the registry host as the user wrote it.
        username: who the test signed in as ("" when anonymous).
        lists: whether the registry lists its repositories (None when the test failed).
        error: what went wrong, if anything.
    """

    host: str
    username: str = ""
    lists: bool | None = None
    error: HoistError | None = None


def _cause_text(exc: BaseException) -> str:
    parts: list[str] = []
    seen: BaseException | None = exc
    while seen is not None and len(parts) < 6:
        parts.append(f"{type(seen).__name__}: {seen}")
        seen = seen.__cause__ or seen.__context__
    return " | ".join(parts)


def connection_sentence(result: ProbeResult) -> str:
    """The sentence "Test connection" shows, saying what to do next when it failed."""
    host, exc = result.host, result.error
    if exc is None:
        who = f" (signed in as {result.username})" if result.username else ""
        if result.lists:
            return f"Connected: this registry lists its repositories{who}"
        return (
            f"Connected{who}: this registry does not list its repositories; "
            "type a repository name to browse it"
        )
    if isinstance(exc, AuthenticationFailed):
        if result.username:
            return "Wrong username or password: check them, or log in with docker login"
        return (
            "This registry needs a username and password: enter them, or log in with docker login"
        )
    if isinstance(exc, AccessDenied):
        who = result.username or "anonymous users"
        return f"Connected, but {who} may not read this registry: ask its owner for access"
    if isinstance(exc, NetworkError):
        detail = _cause_text(exc)
        if "CERTIFICATE_VERIFY_FAILED" in detail:
            return (
                f"Can't verify the certificate of {host}: choose the CA bundle that signed it, "
                "or turn off verification for this registry"
            )
        if "WRONG_VERSION_NUMBER" in detail or "SSL" in detail:
            return (
                f"Can't talk TLS with {host}: if it serves plain HTTP, write its address "
                f"as http://{host}"
            )
        if "did not answer in time" in exc.message:
            return f"Can't reach {host}: it did not answer in time. Is the registry running?"
        return f"Can't reach {host}: is the registry running?"
    if isinstance(exc, InvalidReference):
        return f"{exc.message}. {ADDRESS_HINT}"
    if isinstance(exc, RegistryError) and exc.status == 404:
        return f"{host} answered, but not as a registry (404 at /v2/): check the address and port"
    return exc.sentence(window=True)


async def probe_registry(entry: RegistrySettings, credentials: Credentials | None) -> ProbeResult:
    """Ping the registry (logging in with `credentials`) and read one catalog page.

    Never raises a HoistError: the outcome is data for `connection_sentence`.
    """
    try:
        host = entry.host
    except InvalidReference as exc:
        return ProbeResult(entry.url.strip(), error=exc)
    username = credentials.username if credentials is not None else ""
    client = make_client(entry, credentials)
    try:
        try:
            await client.ping()
        except (OSError, ssl.SSLError) as exc:  # the CA bundle could not be loaded
            raise HoistError(
                f"can't use the CA bundle {entry.ca_bundle} ({type(exc).__name__}: {exc})",
                hint="Choose a PEM file of CA certificates",
            ) from exc
        lists = True
        try:
            pages = catalog_pages(client, page_size=1)
            try:
                await anext(pages)
            except StopAsyncIteration:
                pass
            finally:
                await pages.aclose()  # type: ignore[attr-defined]
        except CatalogUnavailable:
            lists = False
        return ProbeResult(host, username, lists)
    except HoistError as exc:
        return ProbeResult(host, username, error=exc)
    finally:
        await client.aclose()


def stored_username(host: str) -> str | None:
    """The username of the keyring's entry for `host`, or None (blocking: a worker thread)."""
    found = KeyringKeychain().resolve(host)
    return found.credentials.username if found is not None else None


# -- the dialog -----------------------------------------------------------------------------


class RegistryDialog(QDialog):
    """Add or edit one registry entry.

    Args:
        registry: the entry to edit (None: a new one). Its name, demo flag and last
            repository are kept.

    After `saved`, read `entry` (the RegistrySettings to put in settings) and, when there is
    no keyring, `session_credentials` (the password for this session only).

    Signals:
        saved(object): the RegistrySettings, after the password (if any) was stored.
        tested(str): the sentence a connection test ended with.
    """

    saved = Signal(object)
    tested = Signal(str)

    def __init__(
        self, parent: QWidget | None = None, registry: RegistrySettings | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("registry-dialog")
        self.setWindowTitle("Edit registry" if registry is not None else "Add a registry")
        self.original = registry
        self.entry: RegistrySettings | None = None
        self.session_credentials: Credentials | None = None
        self.password_stored = False
        self.keyring_ok: bool | None = None
        self.keyring_checked = False
        self.tasks: set[asyncio.Task[Any]] = set()
        self._checked_once = False
        self._build()
        if registry is not None:
            self.name_edit.setText(registry.name)
            self.url_edit.setText(registry.url)
            self.username_edit.setText(registry.username)
            self.ca_edit.setText(registry.ca_bundle)
            self.insecure_check.setChecked(registry.insecure)
        self._insecure_toggled(self.insecure_check.isChecked())

    def _build(self) -> None:
        self.name_edit = QLineEdit(self)
        self.name_edit.setObjectName("registry-name")
        self.name_edit.setPlaceholderText("shown in the registry selector (default: the host)")
        self.url_edit = QLineEdit(self)
        self.url_edit.setObjectName("registry-url")
        self.url_edit.setPlaceholderText("registry.example.com, 127.0.0.1:5000 or https://…")
        self.username_edit = QLineEdit(self)
        self.username_edit.setObjectName("registry-username")
        self.username_edit.setPlaceholderText("empty for anonymous access")
        self.password_edit = QLineEdit(self)
        self.password_edit.setObjectName("registry-password")
        self.password_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.keyring_note = QLabel(self)
        self.keyring_note.setObjectName("keyring-note")
        self.keyring_note.setWordWrap(True)
        self.keyring_note.hide()
        self.ca_edit = QLineEdit(self)
        self.ca_edit.setObjectName("ca-bundle")
        self.ca_edit.setPlaceholderText("a PEM file of extra CA certificates (optional)")
        self.ca_button = QPushButton("C&hoose…", self)
        ca_row = QHBoxLayout()
        ca_row.addWidget(self.ca_edit, 1)
        ca_row.addWidget(self.ca_button)
        self.insecure_check = QCheckBox("&Insecure (no TLS verification)", self)
        self.insecure_check.setObjectName("insecure")
        self.insecure_warning = QLabel(INSECURE_WARNING, self)
        self.insecure_warning.setObjectName("insecure-warning")
        self.insecure_warning.setWordWrap(True)
        warn_palette = self.insecure_warning.palette()  # red for the palette (no style sheet)
        warn_palette.setColor(QPalette.ColorRole.WindowText, tone_color("failed", warn_palette))
        self.insecure_warning.setPalette(warn_palette)
        warn_font = self.insecure_warning.font()
        warn_font.setWeight(QFont.Weight.DemiBold)
        self.insecure_warning.setFont(warn_font)

        form = QFormLayout()
        for text, widget in (
            ("&Name:", self.name_edit),
            ("&Address:", self.url_edit),
            ("&Username:", self.username_edit),
            ("&Password:", self.password_edit),
        ):
            form.addRow(text, widget)
        form.addRow("", self.keyring_note)
        ca_label = QLabel("&CA bundle:", self)
        ca_label.setBuddy(self.ca_edit)
        form.addRow(ca_label, ca_row)
        form.addRow("", self.insecure_check)
        form.addRow("", self.insecure_warning)

        self.test_button = QPushButton("&Test connection", self)
        self.test_button.setObjectName("test-connection")
        self.test_button.setAutoDefault(False)
        self.test_result = QLabel(self)
        self.test_result.setObjectName("test-result")
        self.test_result.setWordWrap(True)
        self.test_result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        test_row = QHBoxLayout()
        test_row.addWidget(self.test_button)
        test_row.addWidget(self.test_result, 1)

        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel, self
        )
        self.save_button = self.buttons.button(QDialogButtonBox.StandardButton.Save)
        plain_buttons(self.buttons)
        self.problem = QLabel(self)
        self.problem.setObjectName("registry-problem")
        self.problem.setWordWrap(True)
        self.problem.hide()

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(test_row)
        layout.addWidget(self.problem)
        layout.addWidget(self.buttons)
        # A fixed minimum, taken with every optional line shown: the dialog does not jump
        # when a warning appears (and the offscreen test platform takes no size hints).
        optional = (self.keyring_note, self.insecure_warning, self.problem)
        for label in optional:
            label.setText(label.text() or INSECURE_WARNING)
            label.show()
        self.setMinimumSize(QSize(560, 0).expandedTo(self.minimumSizeHint()))
        for label in optional:
            label.hide()
        self.keyring_note.clear()
        self.problem.clear()

        self.save_button.clicked.connect(lambda: self.spawn(self.save()))
        self.buttons.rejected.connect(self.reject)
        self.test_button.clicked.connect(lambda: self.spawn(self.test_connection()))
        self.insecure_check.toggled.connect(self._insecure_toggled)
        self.ca_button.clicked.connect(self._choose_ca)
        self.url_edit.editingFinished.connect(
            lambda: self.spawn(self.refresh_keyring_state()) if self._checked_once else None
        )

    # -- tasks -------------------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        return spawn_reported(self.tasks, coro)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self._checked_once:
            self._checked_once = True
            self.spawn(self.refresh_keyring_state())

    def done(self, result: int) -> None:
        """Closing ends the background checks: they read fields that go with the dialog
        (Enter saves while the address field's check is still running)."""
        try:
            current = asyncio.current_task()  # save() closes the dialog from its own task
        except RuntimeError:  # no running loop
            current = None
        for task in list(self.tasks):
            if task is not current:
                task.cancel()
        super().done(result)

    # -- fields ------------------------------------------------------------------------------

    def registry_settings(self) -> RegistrySettings:
        """The entry as the fields say (no password: that is in the keyring).

        Raises:
            InvalidReference: the address is not a registry host.
        """
        url = self.url_edit.text().strip()
        host = parse_registry(url)
        name = self.name_edit.text().strip() or host
        base = self.original or RegistrySettings(name, url)
        return replace(
            base,
            name=name,
            url=url,
            username=self.username_edit.text().strip(),
            insecure=self.insecure_check.isChecked(),
            ca_bundle=self.ca_edit.text().strip(),
        )

    def _insecure_toggled(self, on: bool) -> None:
        self.insecure_warning.setVisible(on)

    def _choose_ca(self) -> None:
        dialog = QFileDialog(self, "CA bundle", "", "PEM certificates (*.pem *.crt);;All files (*)")
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.fileSelected.connect(self.ca_edit.setText)
        dialog.open()

    def _show_problem(self, text: str) -> None:
        self.problem.setText(text)
        self.problem.setVisible(bool(text))

    # -- keyring -----------------------------------------------------------------------------

    async def refresh_keyring_state(self) -> None:
        """Is there a keyring, and does it hold a password for this host? (worker thread)"""
        try:
            self.keyring_ok = await asyncio.to_thread(keyring_available)
            stored: str | None = None
            problem = ""
            try:
                host = parse_registry(self.url_edit.text())
            except InvalidReference:
                host = ""
            if self.keyring_ok and host:
                try:
                    stored = await asyncio.to_thread(stored_username, host)
                except CredentialsError as exc:
                    problem = exc.sentence(window=True)
            typed_user = self.username_edit.text().strip()
            if stored is not None and not typed_user:
                self.username_edit.setText(stored)
                typed_user = stored
            self.password_stored = stored is not None and stored == typed_user
            self.password_edit.setPlaceholderText(SAVED_PLACEHOLDER if self.password_stored else "")
            if not self.keyring_ok:
                self.keyring_note.setText(NO_KEYRING + ".")
            else:
                self.keyring_note.setText(problem)
            self.keyring_note.setVisible(bool(self.keyring_note.text()))
        finally:
            self.keyring_checked = True

    async def _credentials_for_test(self, entry: RegistrySettings) -> Credentials | None:
        """What the test signs in with: the typed password, else what this session or the
        keychain (keyring, docker and podman files) knows for the username."""
        password = self.password_edit.text()
        if entry.username and password:
            return Credentials(entry.username, password)
        session = self.session_credentials
        if session is not None and session.username == entry.username:
            return session
        if not entry.username:
            return None
        found = await asyncio.to_thread(find_credentials, entry.host, entry.username)
        return found.credentials if found is not None else None

    # -- actions -----------------------------------------------------------------------------

    async def test_connection(self) -> str:
        """Ping the registry with the credentials; show and return the sentence."""
        self.test_button.setEnabled(False)
        self.test_result.setText("Testing…")
        try:
            try:
                entry = self.registry_settings()
                credentials = await self._credentials_for_test(entry)
            except HoistError as exc:
                result = ProbeResult(self.url_edit.text().strip(), error=exc)
            else:
                result = await probe_registry(entry, credentials)
            sentence = connection_sentence(result)
        finally:
            self.test_button.setEnabled(True)
        self.test_result.setText(sentence + ".")
        self.tested.emit(sentence)
        return sentence

    async def save(self) -> bool:
        """Store the password (if one was typed) and close with the entry in `entry`."""
        self.save_button.setEnabled(False)
        try:
            try:
                entry = self.registry_settings()
            except InvalidReference as exc:
                self._show_problem(f"{exc.message}. {ADDRESS_HINT}.")
                return False
            password = self.password_edit.text()
            if password:
                if not entry.username:
                    self._show_problem("Enter the username that goes with the password.")
                    return False
                credentials = Credentials(entry.username, password)
                if self.keyring_ok is None:
                    await self.refresh_keyring_state()
                if self.keyring_ok:
                    try:
                        await asyncio.to_thread(store_credentials, entry.host, credentials)
                    except CredentialsError as exc:
                        self._show_problem(exc.sentence(window=True))
                        return False
                    self.password_stored = True
                    self.session_credentials = None
                    self.password_edit.clear()
                    self.password_edit.setPlaceholderText(SAVED_PLACEHOLDER)
                else:
                    self.session_credentials = credentials
            self._show_problem("")
            self.entry = entry
            self.saved.emit(entry)
            self.accept()
            return True
        finally:
            self.save_button.setEnabled(True)


__all__ = [
    "INSECURE_WARNING",
    "NO_KEYRING",
    "SAVED_PLACEHOLDER",
    "ProbeResult",
    "RegistryDialog",
    "connection_sentence",
    "probe_registry",
    "stored_username",
]
