"""A real `distribution` 2.8 registry (Debian's `docker-registry`) run as a child process.

Tests talk to the reference implementation instead of a mock because its quirks (upload
`_state`, session loss on restart without `http.secret`, exact error codes) are what the
uploader has to survive.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import httpx

from hoist.core.registry.demo_registry import free_port, spawn_registry, stop_process
from support.service import Service

if TYPE_CHECKING:
    from .tokenserver import TokenServer

REGISTRY_BINARY = os.environ.get("HOIST_TEST_REGISTRY_BINARY", "/usr/bin/docker-registry")
HTPASSWD_REALM = "hoist-test"
DEFAULT_USER = "hoist"
DEFAULT_PASSWORD = "s3cret-pass"

_START_TIMEOUT = 15.0
_STOP_TIMEOUT = 5.0
_BIND_ATTEMPTS = 3

# Every process still running, so an interpreter exit (even after a failed teardown) kills them.
_LIVE: weakref.WeakSet[RegistryProcess] = weakref.WeakSet()


def _kill_all_at_exit() -> None:
    for reg in list(_LIVE):
        with contextlib.suppress(Exception):
            reg.kill()


atexit.register(_kill_all_at_exit)


class RegistryStartError(RuntimeError):
    """The registry did not come up; the message carries the tail of its log."""


def _yaml_scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, str):
        # JSON strings are valid YAML double-quoted scalars.
        return json.dumps(value)
    raise TypeError(f"unsupported YAML scalar: {value!r}")


def _yaml_lines(obj: Any, indent: int) -> Iterator[str]:
    pad = "  " * indent
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            if isinstance(value, Mapping) and value:
                yield f"{pad}{key}:"
                yield from _yaml_lines(value, indent + 1)
            elif isinstance(value, list | tuple) and value:
                yield f"{pad}{key}:"
                for item in value:
                    if isinstance(item, Mapping):
                        sub = list(_yaml_lines(item, indent + 2))
                        yield f"{pad}  - {sub[0].lstrip()}"
                        yield from sub[1:]
                    else:
                        yield f"{pad}  - {_yaml_scalar(item)}"
            elif isinstance(value, Mapping):
                yield f"{pad}{key}: {{}}"
            elif isinstance(value, list | tuple):
                yield f"{pad}{key}: []"
            else:
                yield f"{pad}{key}: {_yaml_scalar(value)}"
    else:
        raise TypeError("top level of the YAML document must be a mapping")


def to_yaml(config: Mapping[str, Any]) -> str:
    """Tiny YAML emitter for nested dicts/lists/scalars (avoids a PyYAML dependency)."""
    return "\n".join(_yaml_lines(config, 0)) + "\n"


def deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Merge `extra` into a copy of `base`; nested mappings merge, everything else replaces."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def make_htpasswd(user: str, password: str) -> str:
    """One bcrypt htpasswd line; distribution only accepts bcrypt."""
    htpasswd = shutil.which("htpasswd")
    if htpasswd is None:
        raise RuntimeError("htpasswd not found: apt-get install -y apache2-utils")
    out = subprocess.run(
        [htpasswd, "-nbB", "-C", "4", user, password],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return out.strip() + "\n"


class RegistryProcess(Service):
    """One `docker-registry serve` child on 127.0.0.1 with throw-away filesystem storage.

    `stop()`/`kill()` end the process but keep storage so `restart()` can bring it back on the
    same port with the same config; `close()` ends it and deletes the temp folder.
    Without `http_secret` every start gets a random secret, so upload sessions die on restart.
    """

    def __init__(
        self,
        *,
        htpasswd: tuple[str, str] | None = None,
        http_secret: str | None = None,
        token_auth: TokenServer | None = None,
        catalog_maxentries: int | None = None,
        extra_config: Mapping[str, Any] | None = None,
        workdir: Path | None = None,
    ) -> None:
        if htpasswd is not None and token_auth is not None:
            raise ValueError("choose htpasswd or token_auth, not both")
        self.htpasswd = htpasswd
        self.http_secret = http_secret
        self.token_auth = token_auth
        self.catalog_maxentries = catalog_maxentries
        self.extra_config: dict[str, Any] = dict(extra_config or {})
        self._own_workdir = workdir is None
        if workdir is None:
            workdir = Path(tempfile.mkdtemp(prefix="hoist-registry-"))
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.storage = self.workdir / "storage"
        self.storage.mkdir(exist_ok=True)
        self.config_path = self.workdir / "config.yml"
        self.log_path = self.workdir / "registry.log"
        self.port = 0
        self._log_offset = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    # -- public properties -------------------------------------------------------------------

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def tls(self) -> bool:
        """Serving HTTPS (a `http: tls:` section in `extra_config`)."""
        return bool(self.extra_config.get("http", {}).get("tls"))

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def credentials(self) -> tuple[str, str] | None:
        """(user, password) for Basic auth registries, else None."""
        return self.htpasswd

    # -- config ------------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """The config dict written to config.yml (before YAML encoding)."""
        http: dict[str, Any] = {
            "addr": self.host,
            "headers": {"X-Content-Type-Options": ["nosniff"]},
        }
        if self.http_secret is not None:
            http["secret"] = self.http_secret
        cfg: dict[str, Any] = {
            "version": "0.1",
            "log": {"level": "info", "formatter": "text"},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage)},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
                "redirect": {"disable": True},
            },
            "http": http,
        }
        if self.htpasswd is not None:
            htfile = self.workdir / "htpasswd"
            if not htfile.exists():
                htfile.write_text(make_htpasswd(*self.htpasswd))
            cfg["auth"] = {"htpasswd": {"realm": HTPASSWD_REALM, "path": str(htfile)}}
        elif self.token_auth is not None:
            cfg["auth"] = {"token": self.token_auth.registry_auth_config()}
        if self.catalog_maxentries is not None:
            cfg["catalog"] = {"maxentries": self.catalog_maxentries}
        return deep_merge(cfg, self.extra_config)

    def _write_config(self) -> None:
        self.config_path.write_text(to_yaml(self.config()))

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        """Start on a fresh free port, retrying if another process grabbed it first."""
        if self.running:
            return self
        last: Exception | None = None
        for _ in range(_BIND_ATTEMPTS):
            self.port = free_port()
            try:
                self._launch()
                return self
            except RegistryStartError as exc:
                last = exc
                if "address already in use" not in str(exc):
                    raise
        assert last is not None
        raise last

    def restart(self) -> Self:
        """Stop and start again with the same port, storage and config."""
        if not self.port:
            return self.start()
        self.stop()
        self._launch()
        return self

    def _launch(self) -> None:
        self._write_config()
        with self._lock, open(self.log_path, "ab") as log:
            log.write(f"--- hoist: starting on {self.host} ---\n".encode())
            log.flush()
            self._log_offset = self.log_path.stat().st_size
            # Dies with the test process even if it is SIGKILLed.
            self._proc = spawn_registry(
                REGISTRY_BINARY, self.config_path, log, self.workdir, "KILL"
            )
            _LIVE.add(self)
        try:
            self._wait_ready()
        except BaseException:
            self.kill()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        with httpx.Client(timeout=1.0, trust_env=False, verify=not self.tls) as client:
            while True:
                proc = self._proc
                assert proc is not None
                if proc.poll() is not None:
                    raise RegistryStartError(
                        f"registry exited with {proc.returncode}:\n{self._log_tail()}"
                    )
                with contextlib.suppress(httpx.TransportError):
                    r = client.get(f"{self.url}/v2/")
                    if r.status_code in (200, 401):
                        return
                if time.monotonic() > deadline:
                    raise RegistryStartError(f"registry not ready in time:\n{self._log_tail()}")
                time.sleep(0.02)

    def _log_tail(self) -> str:
        text = self.log_path.read_text(errors="replace")[self._log_offset :]
        return "\n".join(text.splitlines()[-20:])

    def stop(self, timeout: float = _STOP_TIMEOUT) -> None:
        """SIGTERM, then SIGKILL after `timeout`; always reaps the child."""
        with self._lock:
            proc = self._proc
            if proc is None:
                return
            stop_process(proc, timeout)
            self._proc = None
            _LIVE.discard(self)

    def kill(self) -> None:
        """SIGKILL (a crash, not a shutdown); storage stays for `restart()`."""
        with self._lock:
            proc = self._proc
            if proc is None:
                return
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            self._proc = None
            _LIVE.discard(self)

    def close(self) -> None:
        """Stop and delete the temporary folder (if we created it)."""
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- inspection --------------------------------------------------------------------------

    def log_text(self) -> str:
        """Everything the registry logged, across restarts."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def upload_dirs(self, repository: str) -> list[Path]:
        """Upload session folders on disk for a repository (to check cleanup)."""
        base = self.storage / "docker/registry/v2/repositories" / repository / "_uploads"
        return sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []

    def blob_exists(self, digest: str) -> bool:
        """Whether the blob's data file is in storage (independent of any repository link)."""
        algo, _, hexpart = digest.partition(":")
        return (
            self.storage / "docker/registry/v2/blobs" / algo / hexpart[:2] / hexpart / "data"
        ).is_file()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<RegistryProcess {self.url} pid={self.pid} {state}>"


# The `registry_factory` fixture's type: `(**RegistryProcess options) -> started registry`.
RegistryFactory = Callable[..., RegistryProcess]
