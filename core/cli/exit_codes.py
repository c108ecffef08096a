"""What `hoist` exits with: 0, a failure, a usage error, or a pause (128 + the signal)."""

from __future__ import annotations

import signal

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_PAUSED = 130
#: The signals that pause a transfer, and the exit code each leaves: 128 + the signal, as
#: shells report it (SIGINT 130, SIGTERM 143, SIGHUP 129).
PAUSE_SIGNALS: dict[signal.Signals, int] = {
    getattr(signal, name): 128 + getattr(signal, name).value
    for name in ("SIGINT", "SIGTERM", "SIGHUP")
    if hasattr(signal, name)
}
