"""PyInstaller runtime hook: give the programs Hoist starts the user's library path back.

On Linux the bootloader points LD_LIBRARY_PATH at the bundle's `_internal/` and re-executes
itself, so the frozen process finds its own libraries. Every child inherits that variable:
`docker-registry` (the demo registry), `docker-credential-*` helpers (and the `pass`/`gpg` they
run), `setpriv`, `xdg-open` and whatever it opens would load the bundle's glib, libgcrypt,
libstdc++, ... instead of the system's, and break wherever those differ. The dynamic loader read
the variable when this process started, so restoring it now changes nothing for Hoist itself
(Qt plugins still find the bundled libraries): only children see the user's original value.
packaging/smoke_test.sh checks it through a credential helper.
"""

import os
import sys

if getattr(sys, "frozen", False) and sys.platform.startswith("linux"):
    original = os.environ.pop("LD_LIBRARY_PATH_ORIG", None)
    if original is None:
        os.environ.pop("LD_LIBRARY_PATH", None)
    else:
        os.environ["LD_LIBRARY_PATH"] = original
