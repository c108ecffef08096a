"""`hoist` bare opens the window on a desktop; otherwise, and with arguments, the command line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hoist.gui.entry import display_present


def test_display_detection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert not display_present()
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    assert display_present()


def test_bare_hoist_without_a_display_is_the_command_line() -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}
    result = subprocess.run(
        [sys.executable, "-m", "hoist.gui.entry"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 2 and "usage: hoist" in result.stderr
    version = subprocess.run(
        [sys.executable, "-m", "hoist.gui.entry", "--version"], capture_output=True, text=True,
        env={**env, "DISPLAY": ":99"}, timeout=60,
    )  # fmt: skip
    assert version.stdout.strip().startswith("hoist ")  # arguments: never the window
