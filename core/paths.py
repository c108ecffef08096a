"""Where Hoist keeps things: state (the journal), config (registries, profiles), data.

platformdirs gives each OS its usual place; `HOIST_STATE_DIR`, `HOIST_CONFIG_DIR` and
`HOIST_DATA_DIR` override them for tests and portable use.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP = "hoist"


def _dir(env: str, default: str) -> Path:
    path = Path(os.environ.get(env) or default)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def state_dir() -> Path:
    return _dir("HOIST_STATE_DIR", platformdirs.user_state_dir(APP))


def config_dir() -> Path:
    return _dir("HOIST_CONFIG_DIR", platformdirs.user_config_dir(APP))


def data_dir() -> Path:
    return _dir("HOIST_DATA_DIR", platformdirs.user_data_dir(APP))
