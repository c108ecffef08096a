"""Shared fixtures: real registries (plain, Basic, token), fault proxies, isolated state dirs."""

from __future__ import annotations

import contextlib
import gc
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.proxy import FaultProxy, ProxyFactory
from support.registry import DEFAULT_PASSWORD, DEFAULT_USER, RegistryFactory, RegistryProcess
from support.service import service_factory
from support.tokenserver import TokenServer, TokenServerFactory

#: Files whose tests take seconds each: real faults (resets, kills, restarts), long uploads
#: through rate-limited links, registry paging in the window, screenshots on Xvfb, CLI
#: subprocesses, thousands of files, a Secret Service daemon. Every test
#: in them is marked `slow`, so `make test-fast` (`-m 'not slow'`) runs the rest in under a
#: minute; `make test` runs everything.
SLOW_FILES = {
    "test_folders.py",
    "test_hostile_data.py",
    "test_ownership.py",
    "test_pause_any_byte.py",
    "test_queue.py",
    "test_registry_dialog_secret_service.py",
    "test_secret_service.py",
    "test_state_folder.py",
    "test_browse.py",
    "test_browse_pane.py",
    "test_cli_browse.py",
    "test_download_queue.py",
    "test_faults.py",
    "test_filebody.py",
    "test_networks.py",
    "test_registry_dialog.py",
    "test_resume.py",
    "test_screenshots.py",
    "test_token_auth.py",
    "test_window.py",
    "test_hostile.py",
    "test_bundles.py",
    "test_transfer_groups.py",
    "test_packaging.py",
    "test_image_push.py",
    "test_add_pack.py",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in SLOW_FILES:
            item.add_marker(pytest.mark.slow)


# Qt must never try to reach a display in tests; set before any test imports PySide6.
os.environ["QT_QPA_PLATFORM"] = "offscreen"

AUTH_USER = DEFAULT_USER
AUTH_PASSWORD = DEFAULT_PASSWORD


@pytest.fixture(autouse=True)
def _collect_garbage_on_the_main_thread() -> Iterator[None]:
    """Free what a test left (a finished qasync loop and its Qt timers) on the main thread.

    Otherwise the collector may run in a worker thread of a later test, where Qt refuses to
    stop those timers ("Timers cannot be stopped from another thread") or crashes.
    """
    yield
    gc.collect()


@pytest.fixture(scope="session")
def registry() -> Iterator[RegistryProcess]:
    """Shared plain registry (no auth). Do not stop or restart it: use `fresh_registry`."""
    with RegistryProcess() as reg:
        yield reg


@pytest.fixture
def fresh_registry() -> Iterator[RegistryProcess]:
    """A private plain registry this test may kill, restart or fill with junk."""
    with RegistryProcess() as reg:
        yield reg


@pytest.fixture(scope="session")
def auth_registry() -> Iterator[RegistryProcess]:
    """Shared registry with Basic auth for AUTH_USER / AUTH_PASSWORD (`.credentials`)."""
    with RegistryProcess(htpasswd=(AUTH_USER, AUTH_PASSWORD)) as reg:
        yield reg


@pytest.fixture
def registry_factory() -> Iterator[RegistryFactory]:
    """`registry_factory(**RegistryProcess options)` → started registry, closed at teardown."""
    with service_factory(RegistryProcess) as make:
        yield make


@pytest.fixture
def token_server_factory() -> Iterator[TokenServerFactory]:
    """`token_server_factory(**TokenServer options)` → started token server, closed at teardown."""
    with service_factory(TokenServer) as make:
        yield make


@pytest.fixture
def token_registry(
    registry_factory: RegistryFactory, token_server_factory: TokenServerFactory
) -> RegistryProcess:
    """Registry in `auth: token` mode; its TokenServer is `token_registry.token_auth`.

    Users: AUTH_USER / AUTH_PASSWORD; anonymous tokens allowed; every requested action granted.
    Tests may change `token_auth.policy`, `.expires_in`, `.allow_anonymous` on the fly.
    """
    server = token_server_factory()
    return registry_factory(token_auth=server)


@pytest.fixture
def fault_proxy() -> Iterator[ProxyFactory]:
    """`fault_proxy(upstream)` → started FaultProxy (upstream: registry, "host:port" or tuple)."""
    with service_factory(FaultProxy) as make:
        yield make


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Isolated HOIST_STATE_DIR (returned) and HOIST_CONFIG_DIR (its sibling `config`)."""
    state = tmp_path / "state"
    config = tmp_path / "config"
    state.mkdir()
    config.mkdir()
    monkeypatch.setenv("HOIST_STATE_DIR", str(state))
    monkeypatch.setenv("HOIST_CONFIG_DIR", str(config))
    return state


@pytest.fixture
def config_dir(state_dir: Path) -> Path:
    """The HOIST_CONFIG_DIR set up by `state_dir`."""
    return state_dir.parent / "config"


@pytest.fixture
def full_state_dir(state_dir: Path) -> Iterator[Path]:
    """`state_dir`, unable to take anything new: a real full 64 KiB tmpfs when the tests run
    as root (ENOSPC), else read-only folders (EACCES). Request it before any fixture that
    opens files there, so that it is unmounted after they close them."""
    transfers = state_dir / "transfers"
    if os.geteuid() != 0:
        transfers.mkdir()
        for folder in (transfers, state_dir):
            folder.chmod(0o500)
        try:
            yield state_dir
        finally:
            for folder in (state_dir, transfers):
                folder.chmod(0o700)
        return
    mount = ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(state_dir)]
    subprocess.run(mount, check=True)
    try:
        transfers.mkdir()
        with contextlib.suppress(OSError), open(state_dir / "filler", "wb") as filler:
            while True:
                filler.write(b"\0" * 4096)
                filler.flush()
        yield state_dir
    finally:
        subprocess.run(["umount", "--lazy", str(state_dir)], check=True)


@pytest.fixture(params=["sendall", "sendfile"])
def send_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each way hoist.core.registry.filebody sends a body: `sendall` of the hashed buffer (what a
    registry on this machine gets) and `sendfile` (what one on another machine gets). Every
    registry in the suite is on loopback, so the check is stood in for."""
    from hoist.core.registry import filebody

    monkeypatch.setattr(filebody, "_loopback_peer", lambda sock: request.param == "sendall")
    return str(request.param)
