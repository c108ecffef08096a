"""`hoist`: the command line over the engine (`main`).

The manifest reference goes to stdout (`REF@sha256:...`), everything else to stderr: a bar on a
terminal, a plain line every few seconds on a pipe, or JSON lines with `--progress json`.

One module a role: `parser` (the argparse tree and the limits of its flags), `commands` (which
function runs each command, and what an error exits with), `transfer_commands` (push, resume,
cancel, transfers, pull), `browse_commands` (catalog, tags, inspect, delete),
`registry_commands` (login, logout, profile), `connect` (a client and upload settings from the
flags), `display` (progress on stderr) and `exit_codes`.
"""

from hoist.core.cli.commands import main

__all__ = ["main"]
