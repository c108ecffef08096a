"""A local demo registry: Debian's `docker-registry` (distribution 2.8) run as a child process.

For a first start with no registry configured, the window (and the CLI, if it wants) can offer
a registry on this machine, listening on a loopback port only, with its storage under
`data_dir()/demo-registry`. It is meant for trying Hoist out, not for serving anyone else.

Two choices make a demo registry behave like a real one across restarts of Hoist:

* the port is kept (`port` file) so transfers in the journal, which name `127.0.0.1:PORT`,
  still point at it next time;
* `http.secret` is kept (`secret` file, mode 0600): without it distribution signs upload
  state with a random secret per start, and every half-sent upload session would be lost when
  the registry restarts (distribution 2.8 and 3.x alike).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import BinaryIO

import httpx

from hoist.core.errors import DemoRegistryError
from hoist.core.paths import data_dir

#: Where Debian and Ubuntu install distribution (`apt install docker-registry`).
DEFAULT_BINARY = Path("/usr/bin/docker-registry")
LOOPBACK = "127.0.0.1"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0

HOW_TO_ADD_A_REGISTRY = (
    "Add a registry in Settings → Registries (for example ghcr.io with your username), or run "
    "one on this machine: `sudo apt install docker-registry` (then Hoist offers a local demo "
    "registry) or `docker run -d -p 5000:5000 registry:2` and add http://localhost:5000"
)


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """Whether `host:port` can be bound right now (a race, but a cheap and honest one)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def stop_process(proc: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM, then SIGKILL after `timeout`; always reaps the child (blocking)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def spawn_registry(
    binary: Path | str, config: Path, log: BinaryIO, cwd: Path, death_signal: str
) -> subprocess.Popen[bytes]:
    """Run `binary serve config`, its output appended to `log`.

    Started from the main thread, it gets `death_signal` when its parent dies, even killed
    (setpriv's PDEATHSIG follows the forking thread, so only the main thread, which lives as
    long as the process, can ask for it). REGISTRY_* variables override the config file: the
    caller's environment keeps them out. Raises OSError when the program can't run.
    """
    cmd = [str(binary), "serve", str(config)]
    setpriv = shutil.which("setpriv")
    if setpriv is not None and threading.current_thread() is threading.main_thread():
        cmd = [setpriv, "--pdeathsig", death_signal, "--", *cmd]
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    return subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd
    )


def _yaml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid double-quoted YAML scalar


class DemoRegistry:
    """One `docker-registry serve` on a loopback port.

    Args:
        root: the folder holding config, storage, secret, port and log
            (default `data_dir()/demo-registry`).
        port: the port to use; 0 reuses the saved one when it is free, else picks a free one.
        binary: the distribution executable.
    """

    def __init__(
        self, root: Path | None = None, *, port: int = 0, binary: Path = DEFAULT_BINARY
    ) -> None:
        self.root = root or data_dir() / "demo-registry"
        self.binary = binary
        self.port = port
        self._proc: subprocess.Popen[bytes] | None = None

    # -- facts -------------------------------------------------------------------------------

    @staticmethod
    def available(binary: Path = DEFAULT_BINARY) -> bool:
        """Whether the registry program is installed (only then is a demo registry offered)."""
        return binary.is_file() and os.access(binary, os.X_OK)

    @property
    def host(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def storage(self) -> Path:
        return self.root / "storage"

    @property
    def log_path(self) -> Path:
        return self.root / "registry.log"

    # -- files -------------------------------------------------------------------------------

    def _secret(self) -> str:
        path = self.root / "secret"
        try:
            text = path.read_text().strip()
        except FileNotFoundError:
            text = ""
        if not text:
            text = secrets.token_hex(32)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(text + "\n")
        return text

    def _choose_port(self) -> int:
        saved_path = self.root / "port"
        candidates = [self.port]
        with contextlib.suppress(FileNotFoundError, ValueError):
            candidates.append(int(saved_path.read_text().strip()))
        for port in candidates:
            if 0 < port < 65536 and port_is_free(port):
                chosen = port
                break
        else:
            chosen = free_port()
        saved_path.write_text(f"{chosen}\n")
        return chosen

    def config_text(self) -> str:
        """distribution's config.yml for this registry (storage, loopback address, secret)."""
        return "\n".join(
            [
                'version: "0.1"',
                "log:",
                '  level: "info"',
                '  formatter: "text"',
                "storage:",
                "  filesystem:",
                f"    rootdirectory: {_yaml_string(str(self.storage))}",
                "  delete:",
                "    enabled: true",
                "  redirect:",
                "    disable: true",
                "http:",
                f"  addr: {_yaml_string(self.host)}",
                f"  secret: {_yaml_string(self._secret())}",
                "  headers:",
                "    X-Content-Type-Options:",
                '      - "nosniff"',
                "",
            ]
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def launch(self) -> None:
        """Start the process (without waiting for it to answer). Raises DemoRegistryError."""
        if self.running:
            return
        if not self.available(self.binary):
            raise DemoRegistryError(f"{self.binary} is not installed", hint=HOW_TO_ADD_A_REGISTRY)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.storage.mkdir(exist_ok=True)
        self.port = self._choose_port()
        config = self.root / "config.yml"
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the secret
        with os.fdopen(fd, "w") as f:
            f.write(self.config_text())
        with open(self.log_path, "ab") as log:
            log.write(f"--- hoist: starting on {self.host} ---\n".encode())
            log.flush()
            try:
                self._proc = spawn_registry(self.binary, config, log, self.root, "TERM")
            except OSError as exc:
                raise DemoRegistryError(f"could not run {self.binary}: {exc.strerror}") from exc

    async def start(self, timeout: float = START_TIMEOUT) -> str:
        """Start and wait until `/v2/` answers; return the host (`127.0.0.1:PORT`)."""
        self.launch()
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=1.0, trust_env=False) as client:
            while True:
                proc = self._proc
                assert proc is not None
                if proc.poll() is not None:
                    self._proc = None
                    raise DemoRegistryError(
                        f"the demo registry exited at once ({proc.returncode}): {self.log_tail()}"
                    )
                with contextlib.suppress(httpx.TransportError):
                    response = await client.get(f"{self.url}/v2/")
                    if response.status_code == 200:
                        return self.host
                if time.monotonic() > deadline:
                    self.stop()
                    raise DemoRegistryError(
                        f"the demo registry did not answer within {timeout:.0f} s: "
                        f"{self.log_tail()}"
                    )
                await asyncio.sleep(0.05)

    def log_tail(self, lines: int = 3) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return " / ".join(line.strip() for line in text.splitlines()[-lines:] if line.strip())

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM, then SIGKILL after `timeout`; always reaps the child (blocking)."""
        if self._proc is not None:
            stop_process(self._proc, timeout)
        self._proc = None

    async def aclose(self) -> None:
        """Stop without blocking the event loop."""
        await asyncio.to_thread(self.stop)


__all__ = [
    "DEFAULT_BINARY",
    "HOW_TO_ADD_A_REGISTRY",
    "DemoRegistry",
    "free_port",
    "port_is_free",
    "stop_process",
]
