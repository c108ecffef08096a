"""Test helpers: push with the real engine, fetch back with plain HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

from hoist.core.oci.reference import parse_reference
from hoist.core.progress import Event
from hoist.core.registry.auth import Credentials
from hoist.core.registry.client import RegistryClient
from hoist.core.sources.artifact import SplitOptions
from hoist.core.transfer.model import Transfer
from hoist.core.transfer.push import TransferRun, plan_file_push
from hoist.core.transfer.upload import UploadSettings

ROOT = Path(__file__).resolve().parent.parent
#: The CLI under test must never read the real user's keyring or docker config.
_ISOLATED_HOME = tempfile.mkdtemp(prefix="hoist-test-home-")
ISOLATED_ENV = {
    "HOME": _ISOLATED_HOME,
    "DOCKER_CONFIG": os.path.join(_ISOLATED_HOME, ".docker"),
    "XDG_RUNTIME_DIR": _ISOLATED_HOME,
    "REGISTRY_AUTH_FILE": os.path.join(_ISOLATED_HOME, "auth.json"),
    "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
}


async def push_paths(
    host: str,
    repo_tag: str,
    paths: list[Path],
    *,
    chunk_size: int = 0,
    credentials: Credentials | None = None,
    split: int | None = None,
    parallel: int = 1,
    events: list[Event] | None = None,
    settings: UploadSettings | None = None,
    pack: bool = False,
) -> tuple[str, Transfer]:
    """Push files as an artifact with the engine; return (manifest digest, transfer).

    Folders go as their files, or with `pack` as one gzip tar each (`hoist push --pack`)."""
    target = parse_reference(f"{host}/{repo_tag}")
    transfer = plan_file_push(
        target, paths, chunk_size=chunk_size, parallel=parallel,
        split=SplitOptions(split) if split else None, pack=pack,
    )  # fmt: skip
    async with RegistryClient(target.api_host, credentials=credentials) as client:
        run = TransferRun(
            transfer, client, settings=settings,
            on_event=events.append if events is not None else None,
        )  # fmt: skip
        digest = await run.run()
    return digest, transfer


def get_manifest(url: str, repo: str, ref: str, auth: tuple[str, str] | None = None) -> Any:
    response = httpx.get(
        f"{url}/v2/{repo}/manifests/{ref}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        auth=auth,
    )
    response.raise_for_status()
    return json.loads(response.content)


def get_blob(url: str, repo: str, digest: str, auth: tuple[str, str] | None = None) -> bytes:
    response = httpx.get(f"{url}/v2/{repo}/blobs/{digest}", auth=auth, follow_redirects=True)
    response.raise_for_status()
    return response.content


def hoist_cli(
    *args: str, env: dict[str, str] | None = None, input: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `python -m hoist.core ARGS` as a real subprocess."""
    full_env = {**os.environ, **ISOLATED_ENV, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "hoist.core", *args],
        cwd=ROOT, env=full_env, input=input, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
