"""The registry dialog against a real Secret Service (GNOME Keyring on a private D-Bus bus):
the window finds it by keyring's own detection, what it saves is in the daemon (read back with
`secret-tool`), and editing the entry signs in with it without showing the password.

test_registry_dialog.py covers the dialog's behaviour with an in-memory keyring."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from support.registry import DEFAULT_PASSWORD, DEFAULT_USER, RegistryProcess
from support.secret_service import SecretService, keyring_uses, require_packages
from test_registry_dialog import Dialogs, dialogs, fill

from hoist.core.registry.credentials import KEYRING_SERVICE
from hoist.gui.settings.registry_dialog import SAVED_PLACEHOLDER, RegistryDialog
from hoist.gui.settings.store import RegistrySettings

__all__ = ["dialogs"]  # the fixture, shared with test_registry_dialog.py


@pytest.fixture(scope="module")
def secret_service() -> Iterator[SecretService]:
    require_packages()
    with SecretService() as service:
        yield service


@pytest.fixture
def use_service(
    secret_service: SecretService, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SecretService]:
    with keyring_uses(secret_service, monkeypatch):
        yield secret_service
        secret_service.secret_tool("clear", "service", KEYRING_SERVICE)


def test_save_stores_the_password_in_the_secret_service(
    auth_registry: RegistryProcess, dialogs: Dialogs, use_service: SecretService
) -> None:
    service, host = use_service, auth_registry.host

    async def scenario() -> None:
        dialog = dialogs.open()
        dialog.show()
        await dialogs.aio.until(lambda: dialog.keyring_checked, what="keyring check")
        assert dialog.keyring_ok and not dialog.keyring_note.isVisible()
        fill(dialog, host, DEFAULT_USER, DEFAULT_PASSWORD)
        saved: list[RegistrySettings] = []
        dialog.saved.connect(saved.append)
        dialog.save_button.click()
        await dialogs.aio.until(lambda: saved, what="saved")
        assert dialog.result() == RegistryDialog.DialogCode.Accepted
        stored = service.lookup(KEYRING_SERVICE, host)
        assert stored is not None
        assert json.loads(stored) == {"username": DEFAULT_USER, "password": DEFAULT_PASSWORD}
        assert dialog.password_edit.text() == ""
        assert DEFAULT_PASSWORD not in json.dumps(saved[0].to_json())

        # Edited later: the username comes from the daemon, the password stays hidden, and
        # the connection test signs in with what the daemon holds.
        again = dialogs.open(RegistrySettings("r", host))
        again.show()
        await dialogs.aio.until(lambda: again.keyring_checked, what="keyring check")
        assert again.username_edit.text() == DEFAULT_USER
        assert again.password_edit.text() == ""
        assert again.password_edit.placeholderText() == SAVED_PLACEHOLDER
        assert await again.test_connection() == (
            f"Connected: this registry lists its repositories (signed in as {DEFAULT_USER})"
        )

    dialogs.run(scenario())
