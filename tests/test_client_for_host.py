"""One place builds a registry client for a host: `hoist` on the command line, the transfer
queue and the window's registry settings get the same client for the same host (its API host,
plain HTTP or TLS, where its credentials come from), and the same settings from its profile."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import keyring
import keyring.backends.null
import keyring.core
import pytest
from support.registry import RegistryProcess

from hoist.core.cli.connect import client_for_args as cli_client
from hoist.core.cli.connect import settings_for_args as cli_settings
from hoist.core.cli.parser import build_parser
from hoist.core.errors import AuthenticationFailed
from hoist.core.oci.reference import parse_reference
from hoist.core.registry.auth import Credentials
from hoist.core.registry.client import RegistryClient, TLSOptions
from hoist.core.registry.profile import ProfileStore, RegistryProfile
from hoist.core.transfer.journal import TransferJournal
from hoist.core.transfer.push import plan_file_push
from hoist.core.transfer.queue import TransferQueue
from hoist.core.transfer.upload import UploadSettings
from hoist.core.units import MiB
from hoist.gui.context import AppContext
from hoist.gui.settings.store import RegistrySettings, Settings, SettingsStore, make_client

#: (the registry as the user writes it, whether plain HTTP is asked for) → a client.
Builder = Callable[[str, bool], RegistryClient]


def from_cli(registry: str, plain: bool, tmp_path: Path) -> RegistryClient:
    ref = f"{registry}/team/model:v1"
    flags = ["--plain-http"] if plain else []
    args = build_parser().parse_args(["push", ref, str(tmp_path / "f.bin"), *flags])
    return cli_client(args, parse_reference(ref))


def from_queue(registry: str, plain: bool, tmp_path: Path) -> RegistryClient:
    transfer = plan_file_push(parse_reference(f"{registry}/team/model:v1"), [tmp_path / "f.bin"])
    transfer.plain_http = True if plain else None
    queue = TransferQueue(TransferJournal(tmp_path / "journal"))
    return queue._client(transfer)


def from_window(registry: str, plain: bool, tmp_path: Path) -> RegistryClient:
    del tmp_path
    settings = RegistrySettings("team", f"http://{registry}" if plain else registry)
    return make_client(settings, None)  # the window's cache holds nothing for it yet


def from_window_queue(registry: str, plain: bool, tmp_path: Path) -> RegistryClient:
    """A transfer the window queues to a registry that is not in its Settings (a journal
    entry from `hoist push`, or a push to a host typed in the sheet)."""
    transfer = plan_file_push(parse_reference(f"{registry}/team/model:v1"), [tmp_path / "f.bin"])
    transfer.plain_http = True if plain else None
    ctx = AppContext.create(SettingsStore(tmp_path / "gui-settings.json"))
    assert ctx.queue.client_factory is not None
    return ctx.queue.client_factory(transfer)


BUILDERS = {
    "cli": from_cli,
    "queue": from_queue,
    "window": from_window,
    "window-queue": from_window_queue,
}


def login(registry: RegistryProcess) -> Credentials:
    assert registry.credentials is not None
    return Credentials(*registry.credentials)


@pytest.fixture
def file(tmp_path: Path) -> Path:
    path = tmp_path / "f.bin"
    path.write_bytes(b"weights")
    return path


@pytest.fixture
def no_keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials come only from the docker config the test writes."""
    monkeypatch.setattr(keyring.core, "_keyring_backend", None)
    keyring.set_keyring(keyring.backends.null.Keyring())


@pytest.mark.parametrize(
    ("registry", "plain", "api_host"),
    [
        ("docker.io", False, "registry-1.docker.io"),
        ("ghcr.io", False, "ghcr.io"),
        ("127.0.0.1:5000", False, "127.0.0.1:5000"),
        ("localhost:5000", True, "localhost:5000"),
    ],
)
def test_command_line_queue_and_window_build_the_same_client(
    registry: str, plain: bool, api_host: str, file: Path, state_dir: Path
) -> None:
    clients = {name: build(registry, plain, file.parent) for name, build in BUILDERS.items()}
    built = {
        name: (c.host, c.plain_http, c.tls, c.credentials, c.credentials_lookup is not None)
        for name, c in clients.items()
    }
    # No credentials given: each asks the keychain when the registry asks for them.
    expected = (api_host, True if plain else None, TLSOptions(), None, True)
    assert built == dict.fromkeys(BUILDERS, expected)


@pytest.mark.parametrize("name", BUILDERS)
async def test_each_finds_the_credentials_the_command_line_finds(
    name: str,
    auth_registry: RegistryProcess,
    file: Path,
    state_dir: Path,
    no_keyring: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`docker login` done, nothing given to Hoist: each finds the login when the registry
    asks (in a worker thread), as `hoist push` does."""
    creds = login(auth_registry)
    monkeypatch.setenv("DOCKER_CONFIG", str(file.parent / "docker"))
    (file.parent / "docker").mkdir()
    auth = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
    (file.parent / "docker" / "config.json").write_text(
        json.dumps({"auths": {auth_registry.host: {"auth": auth}}})
    )
    async with BUILDERS[name](auth_registry.host, False, file.parent) as client:
        await client.ping()
        assert client.auth is not None and client.auth.credentials == creds


async def test_credentials_given_are_used_without_asking_the_keychain(
    auth_registry: RegistryProcess, no_keyring: None
) -> None:
    """A password typed in the window (kept for the session) or given on stdin wins."""
    creds = login(auth_registry)
    async with make_client(RegistrySettings("team", auth_registry.host), creds) as client:
        await client.ping()
    wrong = Credentials(creds.username, "not-the-password")
    async with make_client(RegistrySettings("team", auth_registry.host), wrong) as client:
        with pytest.raises(AuthenticationFailed):
            await client.ping()


def test_command_line_and_window_apply_the_same_learned_profile(
    state_dir: Path, file: Path
) -> None:
    """Every quirk a host taught applies whichever the user runs, and a lesson the window's
    upload learns is what the next `hoist push` starts from."""
    host = "registry.example.com"
    store = ProfileStore()
    store.update(
        host, max_chunk=8 * MiB, min_chunk=MiB, chunked=False, streamed=False, limit_rate=MiB
    )
    ref = f"{host}/team/model:v1"
    args = build_parser().parse_args(["push", ref, str(file)])

    def applied(s: UploadSettings) -> tuple[object, ...]:
        return (s.chunk_size, s.adaptive, s.max_chunk, s.min_chunk, s.chunked, s.streamed,
                s.throttle is not None, s.on_limit is not None)  # fmt: skip

    from_window = Settings().upload_settings(host)
    assert applied(from_window) == applied(cli_settings(args, host))
    assert applied(from_window)[2:] == (8 * MiB, MiB, False, False, True, True)

    assert from_window.on_limit is not None
    from_window.on_limit(RegistryProfile(max_chunk=4 * MiB))
    assert cli_settings(args, host).max_chunk == 4 * MiB
