"""Credentials against a real Secret Service: GNOME Keyring on a private D-Bus session bus.

The keychain logic is tested with an in-memory keyring in test_credentials.py; here Hoist's own
functions and the `hoist` CLI run against gnome-keyring-daemon through the `keyring` library's
own backend detection (no backend is forced), and every claim is checked with libsecret's
`secret-tool`, which reads the daemon without Hoist or `keyring` in between.

Needs Debian's gnome-keyring, libsecret-tools and dbus-daemon; `make test` installs them. When
they are missing the tests fail and say so: skipping would hide that nothing was proved.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from pushing import ISOLATED_ENV, ROOT
from support.registry import RegistryProcess
from support.secret_service import (
    KEYRING_APPLICATION,
    SecretService,
    keyring_uses,
    require_packages,
)
from test_push import make_file

from hoist.core.registry.auth import Credentials
from hoist.core.registry.credentials import (
    KEYRING_SERVICE,
    CredentialSource,
    delete_credentials,
    find_credentials,
    keyring_available,
    resolve_credentials,
    store_credentials,
)

SECRET = "gk-s3cr3t-hunter2"
CLI_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def secret_service() -> Iterator[SecretService]:
    """One unlocked GNOME Keyring for the module, torn down (and reaped) at the end."""
    require_packages()
    with SecretService() as service:
        yield service
    for pid in service.pids:
        assert not Path(f"/proc/{pid}").exists(), f"process {pid} outlived the Secret Service"


@pytest.fixture
def use_service(
    secret_service: SecretService, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SecretService]:
    """This process uses `secret_service` as its keyring; each test leaves no `hoist` items."""
    with keyring_uses(secret_service, monkeypatch):
        yield secret_service
        _clear_hoist_items(secret_service)


def _clear_hoist_items(service: SecretService) -> None:
    result = service.secret_tool("clear", "service", KEYRING_SERVICE)
    assert result.returncode in (0, 1), result.stderr
    assert service.items(KEYRING_SERVICE) == 0


def _stored(service: SecretService, host: str) -> dict[str, str] | None:
    raw = service.lookup(KEYRING_SERVICE, host)
    return None if raw is None else json.loads(raw)


def _files_holding(folder: Path, needle: str) -> list[Path]:
    data = needle.encode()
    return [p for p in folder.rglob("*") if p.is_file() and data in p.read_bytes()]


# -- Hoist's functions in this process ------------------------------------------------------------


def test_keyring_detection_finds_the_secret_service(use_service: SecretService) -> None:
    from keyring.backends import SecretService as SecretServiceBackend

    assert keyring_available()
    backend = keyring.get_keyring()
    chosen = getattr(backend, "backends", [backend])
    assert any(isinstance(b, SecretServiceBackend.Keyring) for b in chosen), backend


def test_store_look_up_delete(use_service: SecretService, caplog: pytest.LogCaptureFixture) -> None:
    service = use_service
    host = "reg.example.com:5000"
    with caplog.at_level(logging.DEBUG):
        store_credentials("https://Reg.Example.com:5000/", Credentials("alice", SECRET))
        # The item is in the daemon, under keyring's attributes, in Hoist's layout.
        assert _stored(service, host) == {"username": "alice", "password": SECRET}
        attributes = service.secret_tool("search", "--all", "service", KEYRING_SERVICE).stderr
        assert f"attribute.username = {host}" in attributes
        assert f"attribute.application = {KEYRING_APPLICATION}" in attributes

        found = find_credentials(host)
        assert found is not None
        assert found.credentials == Credentials("alice", SECRET)
        assert found.source is CredentialSource.KEYRING

        # Storing again replaces the item instead of adding a second one.
        store_credentials(host, Credentials("alice", "rotated-" + SECRET))
        assert service.items(KEYRING_SERVICE) == 1
        assert resolve_credentials(host) == Credentials("alice", "rotated-" + SECRET)

        assert delete_credentials(host) is True
        assert service.lookup(KEYRING_SERVICE, host) is None
        assert resolve_credentials(host) is None
        assert delete_credentials(host) is False
    assert "stored credentials for reg.example.com:5000" in caplog.text
    assert SECRET not in caplog.text  # neither Hoist's log nor keyring's / secretstorage's


def test_each_registry_host_has_its_own_entry(use_service: SecretService) -> None:
    service = use_service
    store_credentials("a.example.com", Credentials("alice", "a-" + SECRET))
    store_credentials("b.example.com:5000", Credentials("bob", "b-" + SECRET))
    assert service.items(KEYRING_SERVICE) == 2

    assert resolve_credentials("a.example.com") == Credentials("alice", "a-" + SECRET)
    assert resolve_credentials("b.example.com:5000") == Credentials("bob", "b-" + SECRET)
    # Same name, other port; other host: nothing (no prefix or "any entry" match).
    assert resolve_credentials("b.example.com") is None
    assert resolve_credentials("a.example.com:443") is None
    assert resolve_credentials("c.example.com") is None
    # A username that only another host has is not borrowed from it.
    assert find_credentials("a.example.com", "bob") is None

    assert delete_credentials("a.example.com") is True
    assert service.lookup(KEYRING_SERVICE, "a.example.com") is None
    assert _stored(service, "b.example.com:5000") == {"username": "bob", "password": "b-" + SECRET}


def test_docker_hub_aliases_share_one_item(use_service: SecretService) -> None:
    store_credentials("registry-1.docker.io", Credentials("<token>", SECRET))
    assert _stored(use_service, "docker.io") == {"username": "<token>", "password": SECRET}
    for name in ("docker.io", "index.docker.io", "https://index.docker.io/v1/"):
        creds = resolve_credentials(name)
        assert creds is not None and creds.is_identity_token
    assert delete_credentials("index.docker.io") is True
    assert use_service.items(KEYRING_SERVICE) == 0


# -- the CLI, as a person runs it -------------------------------------------------------------


def _hoist(
    service: SecretService, state_dir: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m hoist.core ARGS` with the service's bus and keyring's own backend detection."""
    env = {**os.environ, **ISOLATED_ENV, **service.env}
    env["DOCKER_CONFIG"] = str(service.home / ".docker")
    env["REGISTRY_AUTH_FILE"] = str(service.home / "auth.json")
    env["HOIST_STATE_DIR"] = str(state_dir)
    env["HOIST_CONFIG_DIR"] = str(state_dir.parent / "config")
    env.pop("PYTHON_KEYRING_BACKEND")  # the tests elsewhere force the null backend
    return subprocess.run(
        [sys.executable, "-m", "hoist.core", *args], cwd=ROOT, env=env, input=stdin,
        capture_output=True, text=True, timeout=CLI_TIMEOUT, check=False,
    )  # fmt: skip


def test_cli_login_push_logout(
    use_service: SecretService, auth_registry: RegistryProcess, state_dir: Path, tmp_path: Path
) -> None:
    service, host = use_service, auth_registry.host
    assert auth_registry.credentials is not None
    user, password = auth_registry.credentials
    payload = make_file(tmp_path / "weights.bin", 3000, seed=7)
    said: list[str] = []

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        result = _hoist(service, state_dir, *args, stdin=stdin)
        said.extend((result.stdout, result.stderr))
        return result

    wrong = run("login", host, "-u", user, "--password-stdin", stdin="not-the-password\n")
    assert wrong.returncode == 1 and wrong.stderr.startswith("hoist: ")
    assert service.items(KEYRING_SERVICE) == 0  # a refused login stores nothing

    login = run("login", host, "-u", user, "--password-stdin", stdin=password + "\n")
    assert login.returncode == 0, login.stderr
    assert "in the system keyring" in login.stderr
    assert _stored(service, host) == {"username": user, "password": password}

    # No -u: the credentials come from the Secret Service (docker and podman files are empty).
    pushed = run("push", f"{host}/keyring/model:v1", str(payload))
    assert pushed.returncode == 0, pushed.stderr
    assert pushed.stdout.startswith(f"{host}/keyring/model@sha256:")
    # The same registry by another name is another host: the login does not follow it there.
    other_name = host.replace("127.0.0.1", "localhost")
    refused = run("push", f"{other_name}/keyring/model:v2", str(payload))
    assert refused.returncode == 1
    assert "hoist login" in refused.stderr and "Traceback" not in refused.stderr

    logout = run("logout", host)
    assert logout.returncode == 0, logout.stderr
    assert f"removed the credentials for {host}" in logout.stderr
    assert service.lookup(KEYRING_SERVICE, host) is None
    again = run("logout", host)
    assert again.returncode == 0 and f"no stored credentials for {host}" in again.stderr
    anonymous = run("push", f"{host}/keyring/model:v3", str(payload))
    assert anonymous.returncode == 1 and "hoist login" in anonymous.stderr

    assert not [text for text in said if password in text]
    # Nothing on disk holds the password in clear: not Hoist's state or config folders, and
    # not the daemon's own files (its keyring file is encrypted).
    for folder in (state_dir, state_dir.parent / "config", service.root):
        assert _files_holding(folder, password) == [], folder


def test_locked_keyring_is_a_sentence(auth_registry: RegistryProcess, state_dir: Path) -> None:
    """A locked login keyring that no prompter can unlock: each command says so in a line."""
    require_packages()
    host = auth_registry.host
    assert auth_registry.credentials is not None
    user, password = auth_registry.credentials
    with SecretService() as service:
        service.lock()
        # What to do next fits the action: entering a password is no way around a keyring
        # that can't store or delete (the login just entered one).
        commands = {
            ("login", host, "-u", user, "--password-stdin"): (
                "store",
                "Unlock the keyring and try again.",
            ),
            ("catalog", host): (
                "read",
                "Unlock the keyring and try again, or enter the username and password.",
            ),
            ("logout", host): ("delete", "Unlock the keyring and try again."),
        }
        for args, (action, next_step) in commands.items():
            result = _hoist(service, state_dir, *args, stdin=password + "\n")
            assert result.returncode == 1, result.stderr
            assert "Traceback" not in result.stderr and password not in result.stderr
            (line,) = result.stderr.splitlines()
            assert line.startswith(f"hoist: the OS keyring could not {action} the entry for {host}")
            assert "(KeyringLocked)" in line
            assert line.endswith(next_step), line
