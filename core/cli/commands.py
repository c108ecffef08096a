"""Which function runs each command, and what an error exits with (`hoist.core.cli.main`)."""

from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import Sequence

from hoist.core.cli.browse_commands import cmd_catalog, cmd_delete, cmd_inspect, cmd_tags
from hoist.core.cli.exit_codes import EXIT_FAILED, EXIT_PAUSED, EXIT_USAGE
from hoist.core.cli.parser import build_parser
from hoist.core.cli.registry_commands import cmd_login, cmd_logout, cmd_profile
from hoist.core.cli.transfer_commands import (
    cmd_cancel,
    cmd_pull,
    cmd_push,
    cmd_resume,
    cmd_transfers,
)
from hoist.core.errors import HoistError, InvalidReference, InvalidSize

#: Commands that don't retry by themselves: a temporary error's hint must not promise it.
_NO_RETRY = frozenset({"catalog", "tags", "inspect", "delete", "login", "cancel"})


COMMANDS = {
    "push": cmd_push,
    "resume": cmd_resume,
    "cancel": cmd_cancel,
    "transfers": cmd_transfers,
    "profile": cmd_profile,
    "login": cmd_login,
    "logout": cmd_logout,
    "catalog": cmd_catalog,
    "tags": cmd_tags,
    "inspect": cmd_inspect,
    "pull": cmd_pull,
    "delete": cmd_delete,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit code (a usage error 2, a failure 1, a pause 128 + signal)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if args.command == "resume" and not args.all and not args.id:
        parser.error("name a transfer ID or use --all")
    # What start-up built (modules, classes) lives until exit: the collector need not scan it
    # again during the push, nor at exit (bench/push_throughput.py counts every CPU second).
    gc.freeze()
    try:
        return asyncio.run(COMMANDS[args.command](args))
    except KeyboardInterrupt:
        return EXIT_PAUSED
    except (InvalidReference, InvalidSize) as exc:  # what was typed: a usage error
        print(f"hoist: {exc.sentence()}", file=sys.stderr)
        return EXIT_USAGE
    except HoistError as exc:
        if exc.temporary and args.command in _NO_RETRY:
            exc.hint = "The registry or the network had a temporary problem; try again shortly"
        print(f"hoist: {exc.sentence()}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        gc.freeze()
