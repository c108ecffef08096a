"""A real Secret Service (GNOME Keyring) on a private D-Bus session bus, run as child processes.

`tests/test_credentials.py` proves the keychain logic against an in-memory keyring; this is the
daemon the desktop really talks to, so a test can check that what Hoist stores lands there (read
back with libsecret's `secret-tool`, not through Hoist or the `keyring` library).

The bus has its own config with no service directories: nothing can be D-Bus-activated, so no
second keyring daemon and no unlock prompter (gcr-prompter, which would wait forever for a click
on a display) can be started behind the test's back. An unlock request on a locked collection is
therefore dismissed at once, as when a user cancels the prompt.

Both daemons run in the foreground in their own process groups and are killed and reaped at
close: a `--daemonize`d gnome-keyring-daemon would be reparented to init, which in a container
may never reap it.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Self

import pytest

from support.service import Service

#: Program → the Debian package that provides it (what `make test` must install).
REQUIRED_PROGRAMS = {
    "dbus-daemon": "dbus-daemon",
    "gnome-keyring-daemon": "gnome-keyring",
    "secret-tool": "libsecret-tools",
}
SECRETS_BUS_NAME = "org.freedesktop.secrets"
LOGIN_COLLECTION = "/org/freedesktop/secrets/collection/login"
#: The attribute `keyring`'s SecretService backend puts on every item it writes.
KEYRING_APPLICATION = "Python keyring library"

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0
_TOOL_TIMEOUT = 10.0

_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


class SecretServiceStartError(RuntimeError):
    """The bus or the keyring daemon did not come up; the message says why."""


def missing_packages() -> list[str]:
    """Debian packages whose programs are not on PATH (empty when all are there)."""
    return sorted({pkg for prog, pkg in REQUIRED_PROGRAMS.items() if shutil.which(prog) is None})


def require_packages() -> None:
    """Fail the test with a sentence naming what to install: a skip would hide that nothing
    was proved, and `make test` installs them."""
    if missing := missing_packages():
        pytest.fail(
            f"the Secret Service tests need the Debian packages {', '.join(missing)}: run "
            f"`apt-get install -y {' '.join(missing)}` (or `make test`, which installs them)",
            pytrace=False,
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, SIGKILL it after a while; always reap the leader."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(_STOP_TIMEOUT)
    proc.wait()
    # Whatever else ran in the group (nothing is expected) goes with it.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


class SecretService(Service):
    """gnome-keyring-daemon (secrets component) unlocked with `password`, on its own bus.

    `env` is what a process needs to use it: the bus address and a private HOME / XDG dirs
    (the daemon keeps its keyring files in `$XDG_DATA_HOME/keyrings`).
    """

    def __init__(self, password: str = "unlock-the-test-keyring") -> None:
        self.password = password
        self.root = Path(tempfile.mkdtemp(prefix="hoist-secret-service-"))
        self.home = self.root / "home"
        self.data = self.root / "data"
        self.runtime = self.root / "run"
        for folder in (self.home, self.data, self.runtime):
            folder.mkdir(mode=0o700)
        self.address = ""
        self._bus: subprocess.Popen[bytes] | None = None
        self._daemon: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        return {
            "HOME": str(self.home),
            "XDG_DATA_HOME": str(self.data),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "XDG_RUNTIME_DIR": str(self.runtime),
            "DBUS_SESSION_BUS_ADDRESS": self.address,
        }

    def _child_env(self) -> dict[str, str]:
        env = {**os.environ, **self.env}
        for var in ("DISPLAY", "WAYLAND_DISPLAY", "GNOME_KEYRING_CONTROL", "SSH_AUTH_SOCK"):
            env.pop(var, None)
        return env

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in (self._bus, self._daemon) if p is not None]

    def start(self) -> Self:
        try:
            self._start_bus()
            self._start_daemon()
        except BaseException:
            self.close()
            raise
        return self

    def _start_bus(self) -> None:
        config = self.root / "bus.conf"
        config.write_text(_BUS_CONFIG.format(socket=self.root / "bus"))
        with (self.root / "dbus.log").open("wb") as log:
            self._bus = subprocess.Popen(
                ["dbus-daemon", f"--config-file={config}", "--nofork", "--nopidfile",
                 "--print-address=1"],
                stdout=subprocess.PIPE, stderr=log, env=self._child_env(),
                start_new_session=True,
            )  # fmt: skip
        assert self._bus.stdout is not None
        ready, _, _ = select.select([self._bus.stdout], [], [], _START_TIMEOUT)
        line = self._bus.stdout.readline().decode().strip() if ready else ""
        self._bus.stdout.close()
        if not line:
            raise SecretServiceStartError(f"dbus-daemon printed no address: {self._log('dbus')}")
        self.address = line

    def _start_daemon(self) -> None:
        with (self.root / "keyring.log").open("wb") as log:
            self._daemon = subprocess.Popen(
                ["gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets"],
                stdin=subprocess.PIPE, stdout=log, stderr=log, env=self._child_env(),
                start_new_session=True,
            )  # fmt: skip
        assert self._daemon.stdin is not None
        # --unlock reads the login keyring's password from stdin up to EOF; a fresh data dir
        # makes the daemon create the login keyring with it, unlocked.
        self._daemon.stdin.write(self.password.encode())
        self._daemon.stdin.close()
        deadline = time.monotonic() + _START_TIMEOUT
        while not self._name_has_owner(SECRETS_BUS_NAME):
            if self._daemon.poll() is not None or time.monotonic() > deadline:
                raise SecretServiceStartError(
                    f"gnome-keyring-daemon did not take {SECRETS_BUS_NAME} on the bus: "
                    f"{self._log('keyring')}"
                )
            time.sleep(0.02)

    def _name_has_owner(self, name: str) -> bool:
        from jeepney.bus_messages import message_bus
        from jeepney.io.blocking import open_dbus_connection

        with open_dbus_connection(bus=self.address) as conn:
            reply = conn.send_and_get_reply(message_bus.NameHasOwner(name), timeout=_START_TIMEOUT)
        return bool(reply.body[0])

    def _log(self, name: str) -> str:
        path = self.root / f"{name}.log"
        text = path.read_text(errors="replace").strip() if path.exists() else ""
        return text[-2000:] or "(nothing logged)"

    # -- what a test asks the real service, without Hoist or `keyring` in between ------------

    def secret_tool(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["secret-tool", *args], capture_output=True, text=True, env=self._child_env(),
            timeout=_TOOL_TIMEOUT, check=False,
        )  # fmt: skip

    def lookup(self, service: str, username: str) -> str | None:
        """The secret stored under keyring's attributes, or None (`secret-tool lookup`)."""
        result = self.secret_tool("lookup", "service", service, "username", username)
        return result.stdout if result.returncode == 0 else None

    def items(self, service: str) -> int:
        """How many items carry `service` (`secret-tool search --all`; one `[/N]` line each)."""
        result = self.secret_tool("search", "--all", "service", service)
        return sum(line.startswith("[/") for line in result.stdout.splitlines())

    def lock(self) -> None:
        """Lock the login collection over D-Bus (`secret-tool lock` needs a full object path
        and then waits forever on gnome-keyring 42, so the Secret Service call is made here)."""
        import secretstorage
        from jeepney.io.blocking import open_dbus_connection

        with open_dbus_connection(bus=self.address) as conn:
            collection = secretstorage.Collection(conn, LOGIN_COLLECTION)
            collection.lock()
            if not collection.is_locked():
                raise RuntimeError("the login collection did not lock")

    # -- lifetime -----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop both daemons (keyring first, then its bus) and delete every file."""
        for proc in (self._daemon, self._bus):
            if proc is not None:
                _stop(proc)
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def keyring_uses(service: SecretService, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process's `keyring` finds `service` by its own backend detection, until the end.

    HOME and the XDG dirs become the service's private ones, so no docker or podman file and
    no keyring config of the real user is read, and PYTHON_KEYRING_BACKEND (the other tests
    force the null backend) is unset. keyring's chosen backend and its once-per-process list
    of viable backends are forgotten, so it detects again, and both come back afterwards: a
    later test must not meet a Secret Service backend whose bus is gone.
    """
    import keyring.core
    from keyring.backend import get_all_keyring

    for var, value in service.env.items():
        monkeypatch.setenv(var, value)
    for var in ("PYTHON_KEYRING_BACKEND", "DOCKER_CONFIG", "REGISTRY_AUTH_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(keyring.core, "_keyring_backend", None)
    detected = vars(get_all_keyring).pop("saved_result", None)
    try:
        yield
    finally:
        vars(get_all_keyring).pop("saved_result", None)
        if detected is not None:
            get_all_keyring.saved_result = detected
