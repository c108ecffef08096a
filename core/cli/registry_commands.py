"""What Hoist keeps about a registry: its credentials in the keyring (login, logout) and what
it learned of it (profile)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from hoist.core.cli.exit_codes import EXIT_FAILED
from hoist.core.errors import InvalidReference
from hoist.core.oci.reference import parse_registry
from hoist.core.registry.auth import Credentials
from hoist.core.registry.connect import client_for_host
from hoist.core.registry.profile import ProfileStore
from hoist.core.units import parse_rate


async def cmd_profile(args: argparse.Namespace) -> int:
    store = ProfileStore()
    host = parse_registry(args.registry) if args.registry else None
    if args.reset:
        store.reset(host)
        print(f"forgot what Hoist learned about {host or 'every registry'}", file=sys.stderr)
        return 0
    if args.limit_rate is not None:
        if host is None:
            raise InvalidReference("name the registry whose default rate to set")
        rate = parse_rate(args.limit_rate)
        store.update(host, limit_rate=rate or None)
    profiles = store.all() if host is None else {host: store.get(host)}
    print(json.dumps({h: p.to_json() for h, p in profiles.items()}, indent=1, sort_keys=True))
    return 0


async def cmd_login(args: argparse.Namespace) -> int:
    from hoist.core.registry.credentials import keyring_available, store_credentials

    host = parse_registry(args.registry)
    username = args.username or input("Username: ")
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        import getpass

        password = getpass.getpass("Password: ")
    creds = Credentials(username, password)
    async with client_for_host(host, credentials=creds, plain_http=args.plain_http or None) as c:
        await c.ping()
    if not keyring_available():
        print(
            "Login succeeded, but this system has no keyring to keep the password in; Hoist "
            "never writes passwords to a file of its own, so pass them each time "
            "(-u USER --password-stdin) or use `docker login`.",
            file=sys.stderr,
        )
        return EXIT_FAILED
    await asyncio.to_thread(store_credentials, host, creds)
    print(f"Login succeeded; credentials for {host} are in the system keyring.", file=sys.stderr)
    return 0


async def cmd_logout(args: argparse.Namespace) -> int:
    from hoist.core.registry.credentials import delete_credentials

    host = parse_registry(args.registry)
    removed = await asyncio.to_thread(delete_credentials, host)
    print(
        f"removed the credentials for {host}" if removed else f"no stored credentials for {host}",
        file=sys.stderr,
    )
    return 0
