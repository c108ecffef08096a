"""The registry dialog: the real ping and login against a Basic-auth registry, passwords to an
in-memory keyring (never the real one), and the sentences the user reads."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import keyring
import pytest
from keyring.backend import KeyringBackend
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot
from support.registry import DEFAULT_PASSWORD, DEFAULT_USER, RegistryProcess, free_port

from hoist.core.errors import (
    AccessDenied,
    AuthenticationFailed,
    HoistError,
    InvalidReference,
    NetworkError,
    NotFound,
)
from hoist.core.registry.auth import Credentials
from hoist.core.registry.credentials import KEYRING_SERVICE
from hoist.gui.settings.registry_dialog import (
    INSECURE_WARNING,
    SAVED_PLACEHOLDER,
    ProbeResult,
    RegistryDialog,
    connection_sentence,
)
from hoist.gui.settings.store import RegistrySettings

TIMEOUT = 60


class MemoryKeyring(KeyringBackend):
    """A keyring that keeps entries in a dict, for tests (never the user's keyring)."""

    priority = 1

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.entries.pop((service, username), None)


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(previous)


@pytest.fixture(autouse=True)
def collect_in_main_thread() -> Iterator[None]:
    """Collect garbage in the main thread after each test (see test_browse.py: a closed
    qasync loop collected in a worker thread of asyncio.to_thread upsets Qt)."""
    yield
    gc.collect()


class Dialogs:
    """Opens dialogs and runs scenarios; stops the dialogs' tasks while the loop runs."""

    def __init__(self, qtbot: QtBot, aio: Any) -> None:
        self.qtbot = qtbot
        self.aio = aio
        self.opened: list[RegistryDialog] = []

    def open(self, registry: RegistrySettings | None = None) -> RegistryDialog:
        dialog = RegistryDialog(None, registry)
        self.qtbot.addWidget(dialog)
        self.opened.append(dialog)
        return dialog

    def run(self, scenario: Coroutine[Any, Any, None]) -> None:
        async def wrapped() -> None:
            try:
                await scenario
            finally:
                for dialog in self.opened:
                    for task in list(dialog.tasks):
                        task.cancel()
                    if dialog.tasks:
                        await asyncio.wait(list(dialog.tasks))

        self.aio.run(wrapped(), TIMEOUT)


@pytest.fixture
def dialogs(qtbot: QtBot, aio: Any) -> Dialogs:
    return Dialogs(qtbot, aio)


def fill(dialog: RegistryDialog, url: str, username: str = "", password: str = "") -> None:
    dialog.url_edit.setText(url)
    dialog.username_edit.setText(username)
    dialog.password_edit.setText(password)


# -- the connection test against the real registry ------------------------------------------


def test_good_credentials_connect(
    auth_registry: RegistryProcess, dialogs: Dialogs, memory_keyring: MemoryKeyring
) -> None:
    async def scenario() -> None:
        dialog = dialogs.open()
        fill(dialog, auth_registry.host, DEFAULT_USER, DEFAULT_PASSWORD)
        sentence = await dialog.test_connection()
        assert sentence == (
            f"Connected: this registry lists its repositories (signed in as {DEFAULT_USER})"
        )
        assert dialog.test_result.text() == sentence + "."
        assert dialog.test_button.isEnabled()
        assert memory_keyring.entries == {}  # testing stores nothing

    dialogs.run(scenario())


@pytest.mark.parametrize(
    ("username", "password", "expected"),
    [
        (DEFAULT_USER, "wrong-pass", "Wrong username or password: check them, or log in with "
                                     "docker login"),
        ("nobody", DEFAULT_PASSWORD, "Wrong username or password"),
        ("", "", "This registry needs a username and password: enter them, or log in with "
                 "docker login"),
        (DEFAULT_USER, "", "This registry needs a username and password"),  # nothing stored
    ],
)  # fmt: skip
def test_bad_or_missing_credentials_are_said(
    auth_registry: RegistryProcess,
    dialogs: Dialogs,
    memory_keyring: MemoryKeyring,
    username: str,
    password: str,
    expected: str,
) -> None:
    async def scenario() -> None:
        dialog = dialogs.open()
        fill(dialog, auth_registry.host, username, password)
        sentence = await dialog.test_connection()
        assert sentence.startswith(expected)

    dialogs.run(scenario())


def test_unreachable_registry(dialogs: Dialogs) -> None:
    port = free_port()

    async def scenario() -> None:
        dialog = dialogs.open()
        fill(dialog, f"127.0.0.1:{port}")
        tested: list[str] = []
        dialog.tested.connect(tested.append)
        sentence = await dialog.test_connection()
        assert sentence == f"Can't reach 127.0.0.1:{port}: is the registry running?"
        assert tested == [sentence]

    dialogs.run(scenario())


def test_open_registry_without_credentials(registry: RegistryProcess, dialogs: Dialogs) -> None:
    async def scenario() -> None:
        dialog = dialogs.open()
        fill(dialog, f"http://{registry.host}")
        assert await dialog.test_connection() == ("Connected: this registry lists its repositories")

    dialogs.run(scenario())


def test_ca_bundle_that_is_not_a_file(
    registry: RegistryProcess, dialogs: Dialogs, tmp_path: Path
) -> None:
    async def scenario() -> None:
        dialog = dialogs.open()
        fill(dialog, f"https://{registry.host}")
        dialog.ca_edit.setText(str(tmp_path / "missing.pem"))
        sentence = await dialog.test_connection()
        assert sentence.startswith(f"can't use the CA bundle {tmp_path / 'missing.pem'}")
        assert sentence.endswith("Choose a PEM file of CA certificates.")

    dialogs.run(scenario())


# -- passwords and the keyring --------------------------------------------------------------


def test_save_stores_the_password_in_the_keyring_and_never_shows_it(
    auth_registry: RegistryProcess, dialogs: Dialogs, memory_keyring: MemoryKeyring
) -> None:
    async def scenario() -> None:
        dialog = dialogs.open()
        dialog.show()
        await dialogs.aio.until(lambda: dialog.keyring_checked, what="keyring check")
        assert dialog.keyring_ok and not dialog.keyring_note.isVisible()
        fill(dialog, auth_registry.host, DEFAULT_USER, DEFAULT_PASSWORD)
        dialog.name_edit.setText("Team registry")
        saved: list[RegistrySettings] = []
        dialog.saved.connect(saved.append)
        dialog.save_button.click()
        await dialogs.aio.until(lambda: saved, what="saved")
        entry = saved[0]
        assert entry == RegistrySettings("Team registry", auth_registry.host, DEFAULT_USER)
        assert dialog.entry == entry and dialog.result() == RegistryDialog.DialogCode.Accepted
        stored = memory_keyring.entries[(KEYRING_SERVICE, auth_registry.host)]
        assert json.loads(stored) == {"username": DEFAULT_USER, "password": DEFAULT_PASSWORD}
        assert dialog.session_credentials is None
        assert dialog.password_edit.text() == ""
        assert dialog.password_edit.placeholderText() == SAVED_PLACEHOLDER
        assert DEFAULT_PASSWORD not in json.dumps(entry.to_json())

        # Opened again: the password is not shown, the placeholder says where it is, and the
        # test signs in with it.
        again = dialogs.open(entry)
        again.show()
        await dialogs.aio.until(lambda: again.keyring_checked, what="keyring check")
        assert again.password_edit.text() == ""
        assert again.password_edit.placeholderText() == SAVED_PLACEHOLDER
        assert again.password_stored
        assert await again.test_connection() == (
            f"Connected: this registry lists its repositories (signed in as {DEFAULT_USER})"
        )
        assert again.windowTitle() == "Edit registry"

    dialogs.run(scenario())


def test_stored_username_is_filled_in(
    auth_registry: RegistryProcess, dialogs: Dialogs, memory_keyring: MemoryKeyring
) -> None:
    memory_keyring.entries[(KEYRING_SERVICE, auth_registry.host)] = json.dumps(
        {"username": DEFAULT_USER, "password": DEFAULT_PASSWORD}
    )

    async def scenario() -> None:
        dialog = dialogs.open(RegistrySettings("r", auth_registry.host))
        dialog.show()
        await dialogs.aio.until(lambda: dialog.keyring_checked, what="keyring check")
        assert dialog.username_edit.text() == DEFAULT_USER
        assert dialog.password_edit.placeholderText() == SAVED_PLACEHOLDER

    dialogs.run(scenario())


def test_without_a_keyring_the_password_is_kept_for_this_session(
    auth_registry: RegistryProcess, dialogs: Dialogs
) -> None:
    """The conftest sets keyring's null backend: there is no keyring here."""

    async def scenario() -> None:
        dialog = dialogs.open()
        dialog.show()
        await dialogs.aio.until(lambda: dialog.keyring_checked, what="keyring check")
        assert dialog.keyring_ok is False
        assert dialog.keyring_note.isVisible()
        assert dialog.keyring_note.text().startswith(
            "No system keyring is available on this computer: a password entered here is kept "
            "for this session only, never written to disk"
        )
        fill(dialog, auth_registry.host, DEFAULT_USER, DEFAULT_PASSWORD)
        assert await dialog.save()
        assert dialog.session_credentials == Credentials(DEFAULT_USER, DEFAULT_PASSWORD)
        assert not dialog.password_stored

    dialogs.run(scenario())


def test_password_without_username_and_bad_address_are_refused(dialogs: Dialogs) -> None:
    async def scenario() -> None:
        dialog = dialogs.open()
        dialog.show()
        fill(dialog, "not a host!", "", "secret")
        assert not await dialog.save()
        assert dialog.problem.isVisible()
        assert "is not a registry host. Write the address as host[:port]" in dialog.problem.text()
        fill(dialog, "registry.example.com", "", "secret")
        assert not await dialog.save()
        assert dialog.problem.text() == "Enter the username that goes with the password."
        assert dialog.result() != RegistryDialog.DialogCode.Accepted
        dialog.url_edit.setText("not a host!")
        assert (await dialog.test_connection()).startswith("'not a host!' is not a registry host")

    dialogs.run(scenario())


def test_insecure_shows_a_warning(dialogs: Dialogs, qtbot: QtBot) -> None:
    async def scenario() -> None:
        dialog = dialogs.open(RegistrySettings("r", "reg.example.com:8443", ca_bundle="/ca.pem"))
        dialog.show()
        assert not dialog.insecure_warning.isVisible()
        qtbot.keyClick(dialog.insecure_check, Qt.Key.Key_Space)  # from the keyboard
        assert dialog.insecure_check.isChecked()
        assert dialog.insecure_warning.isVisible()
        assert dialog.insecure_warning.text() == INSECURE_WARNING
        entry = dialog.registry_settings()
        assert entry.insecure and entry.ca_bundle == "/ca.pem"
        assert entry.tls().insecure
        dialog.insecure_check.setChecked(False)
        assert not dialog.insecure_warning.isVisible()

    dialogs.run(scenario())


def test_entry_keeps_what_the_dialog_does_not_edit(dialogs: Dialogs) -> None:
    original = RegistrySettings("Demo", "127.0.0.1:5000", demo=True, last_repository="m/x",
                                last_tag="v2")  # fmt: skip
    dialog = dialogs.open(original)
    dialog.name_edit.clear()
    dialog.url_edit.setText("https://127.0.0.1:5001")
    entry = dialog.registry_settings()
    assert entry.name == "127.0.0.1:5001"
    assert entry.url == "https://127.0.0.1:5001" and entry.plain_http is False
    assert (entry.demo, entry.last_repository, entry.last_tag) == (True, "m/x", "v2")
    assert original.url == "127.0.0.1:5000"  # not changed in place
    dialog.url_edit.setText("")
    with pytest.raises(InvalidReference):
        dialog.registry_settings()


# -- the sentences, as data -----------------------------------------------------------------


def error(cls: type[Exception], message: str, **kw: Any) -> Any:
    return cls(message, **kw)


def network_error(cause: Exception, message: str = "ping: connection to h failed") -> Any:
    try:
        raise NetworkError(message) from cause
    except NetworkError as exc:
        return exc


@pytest.mark.parametrize(
    ("result", "sentence"),
    [
        (ProbeResult("h", "me", True), "Connected: this registry lists its repositories "
                                       "(signed in as me)"),
        (ProbeResult("h", "", False), "Connected: this registry does not list its "
                                      "repositories; type a repository name to browse it"),
        (ProbeResult("h", "me", error=error(AuthenticationFailed, "401", status=401)),
         "Wrong username or password: check them, or log in with docker login"),
        (ProbeResult("h", "", error=error(AuthenticationFailed, "401", status=401)),
         "This registry needs a username and password: enter them, or log in with docker "
         "login"),
        (ProbeResult("h", "me", error=error(AccessDenied, "403", status=403)),
         "Connected, but me may not read this registry: ask its owner for access"),
        (ProbeResult("h:5000", error=network_error(ConnectionRefusedError("refused"))),
         "Can't reach h:5000: is the registry running?"),
        (ProbeResult("h", error=network_error(OSError("[SSL: CERTIFICATE_VERIFY_FAILED] x"))),
         "Can't verify the certificate of h: choose the CA bundle that signed it, or turn off "
         "verification for this registry"),
        (ProbeResult("h", error=network_error(OSError("[SSL: WRONG_VERSION_NUMBER] x"))),
         "Can't talk TLS with h: if it serves plain HTTP, write its address as http://h"),
        (ProbeResult("h", error=NetworkError("ping: h did not answer in time")),
         "Can't reach h: it did not answer in time. Is the registry running?"),
        (ProbeResult("h", error=error(NotFound, "ping: registry answered 404", status=404)),
         "h answered, but not as a registry (404 at /v2/): check the address and port"),
        (ProbeResult("x y", error=InvalidReference("'x y' is not a registry host")),
         "'x y' is not a registry host. Write the address as host[:port] or "
         "https://host[:port], e.g. 127.0.0.1:5000"),
        (ProbeResult("h", error=HoistError("something else", hint="Do this")),
         "something else. Do this."),
    ],
)  # fmt: skip
def test_connection_sentence(result: ProbeResult, sentence: str) -> None:
    assert connection_sentence(result) == sentence
