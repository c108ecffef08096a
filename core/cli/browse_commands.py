"""The commands that read (and delete) what a registry holds: catalog, tags, inspect, delete."""

from __future__ import annotations

import argparse
import json
import sys

from hoist.core.cli.connect import client_for_args, registry_client_for_args
from hoist.core.cli.exit_codes import EXIT_FAILED
from hoist.core.errors import InvalidReference
from hoist.core.oci.reference import parse_reference


async def cmd_catalog(args: argparse.Namespace) -> int:
    from hoist.core.registry.listing import catalog_pages

    async with registry_client_for_args(args, args.registry) as client:
        async for page in catalog_pages(client, page_size=args.page_size):
            for name in page.items:
                print(name, flush=False)
            sys.stdout.flush()
    return 0


async def cmd_tags(args: argparse.Namespace) -> int:
    from hoist.core.registry.listing import tag_pages

    ref = parse_reference(args.repository)
    async with client_for_args(args, ref) as client:
        async for page in tag_pages(client, ref.repository, page_size=args.page_size):
            for tag in page.items:
                print(tag, flush=False)
            sys.stdout.flush()
    return 0


async def cmd_inspect(args: argparse.Namespace) -> int:
    from hoist.core.registry.browse import inspect

    ref = parse_reference(args.ref, default_tag="latest")
    async with client_for_args(args, ref) as client:
        info = await inspect(client, ref.repository, ref.manifest_ref)
    print(json.dumps(info.to_json(), indent=2))
    return 0


async def cmd_delete(args: argparse.Namespace) -> int:
    from hoist.core.registry.deletion import delete_manifests, plan_delete

    ref = parse_reference(args.ref)
    if not (ref.tag or ref.digest):
        raise InvalidReference(f"name the tag or digest to delete in {args.ref!r}")
    async with client_for_args(args, ref) as client:
        plan = await plan_delete(client, ref.repository, [ref.manifest_ref])
        (digest,) = plan.digests
        also = plan.also_removed
        if also and not args.yes:
            print(
                f"{digest} is also tagged {', '.join(also)}: deleting it removes those tags "
                "too. Run again with --yes to delete anyway.",
                file=sys.stderr,
            )
            return EXIT_FAILED
        await delete_manifests(client, plan, [])
    gone_too = f"; the tags {', '.join(also)} pointed at it and are gone too" if also else ""
    print(f"deleted {ref.name}@{digest}{gone_too}", file=sys.stderr)
    return 0
