"""How a delete is done: which manifests go, which other tags go with them, then deleting.

Registries delete by digest, so every tag pointing at a chosen tag's manifest goes too: a
`DeletePlan` names them before anything is deleted, for the window (which asks) and for
`hoist delete` (which refuses without --yes) alike. The sentences are each interface's own.

Registry behaviours handled here: distribution answers DELETE with 405 UNSUPPORTED when
deletion is turned off (`DeleteRefused`).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hoist.core.errors import DeleteRefused, NotFound, RegistryError
from hoist.core.oci.digest import is_digest
from hoist.core.oci.manifest import ACCEPT_ALL
from hoist.core.registry.browse import display_name, gather_bounded, reference_text
from hoist.core.registry.client import RegistryClient
from hoist.core.registry.listing import all_tags

#: Tags resolved at once when planning a delete.
RESOLVE_CONCURRENCY = 4


@dataclass(frozen=True)
class DeletePlan:
    """What a delete removes: the chosen tags' manifests, and every tag pointing at them.

    Attributes:
        chosen: the references chosen (tags, or a digest).
        digests: each manifest to delete → every tag pointing at it (chosen or not).
    """

    repository: str
    chosen: tuple[str, ...]
    digests: Mapping[str, tuple[str, ...]]

    @property
    def removed_tags(self) -> list[str]:
        out = list(self.chosen)
        for tags in self.digests.values():
            out.extend(t for t in tags if t not in out)
        return out

    @property
    def also_removed(self) -> list[str]:
        """The tags that go too without having been chosen: what to name before deleting."""
        return [t for t in self.removed_tags if t not in self.chosen]


def delete_plan(
    repository: str,
    chosen: Sequence[str],
    digest_of: Mapping[str, str],
    sharing: Mapping[str, Sequence[str]],
) -> DeletePlan:
    """Group the chosen tags by manifest; `sharing[digest]` lists every tag pointing at it."""
    digests: dict[str, tuple[str, ...]] = {}
    for tag in chosen:
        digest = digest_of[tag]
        if digest in digests:
            continue
        tags = [t for t in chosen if digest_of[t] == digest]
        tags += [t for t in sharing.get(digest, ()) if t not in tags]
        digests[digest] = tuple(tags)
    return DeletePlan(repository, tuple(chosen), digests)


async def plan_delete(
    client: RegistryClient,
    repository: str,
    references: Sequence[str],
    every: list[str] | None = None,
) -> DeletePlan:
    """Resolve the chosen tags or digests (a few at once) and find every tag sharing their
    manifests.

    `every`: all the repository's tags when they are listed already (saves listing them).

    Raises:
        NotFound: a chosen tag does not exist.
    """
    limit = asyncio.Semaphore(RESOLVE_CONCURRENCY)

    async def resolve(reference: str) -> str:
        async with limit:
            return await resolve_digest(client, repository, reference)

    digests = list(await asyncio.gather(*(resolve(r) for r in references)))
    digest_of = dict(zip(references, digests, strict=True))
    sharing = {}
    for digest in dict.fromkeys(digests):
        sharing[digest] = await tags_sharing_digest(client, repository, digest, tags=every)
    return delete_plan(repository, references, digest_of, sharing)


async def delete_manifests(client: RegistryClient, plan: DeletePlan, deleted: list[str]) -> None:
    """Delete the plan's manifests one by one; `deleted` lists those gone (even on a refusal)."""
    for digest in plan.digests:
        await delete(client, plan.repository, digest)
        deleted.append(digest)


async def resolve_digest(client: RegistryClient, repository: str, reference: str) -> str:
    """The digest a tag points at (HEAD with every manifest type accepted, so the registry
    does not convert it), or the reference itself when it is a digest.

    Raises:
        NotFound: the tag does not exist.
    """
    if is_digest(reference):
        return reference
    digest = await client.head_manifest(repository, reference)
    if digest is None:
        raise NotFound(
            f"{reference_text(client, repository, reference)} does not exist",
            status=404,
            code="MANIFEST_UNKNOWN",
        )
    if not is_digest(digest):  # no Docker-Content-Digest header: hash the manifest itself
        digest = (await client.get_manifest(repository, reference, ACCEPT_ALL)).digest
    return digest


async def delete(client: RegistryClient, repository: str, reference: str) -> str:
    """Delete a manifest; return the digest deleted.

    A tag is first resolved to its digest, because registries delete by digest: every tag
    pointing at that digest goes too (see `tags_sharing_digest` to warn first).

    Raises:
        DeleteRefused: the registry does not allow deleting (distribution without
            `storage.delete.enabled` answers 405 UNSUPPORTED), or not for these credentials.
        NotFound: no such tag or manifest.
    """
    digest = await resolve_digest(client, repository, reference)
    try:
        await client.delete_manifest(repository, digest)
    except RegistryError as exc:
        if exc.status == 405 or exc.has_code("UNSUPPORTED"):
            why = ": deleting is turned off on this registry"
            hint = "Its operator can turn deletion on (distribution: storage.delete.enabled)"
        elif exc.status in (401, 403) or exc.has_code("DENIED", "UNAUTHORIZED"):
            why, hint = "", "These credentials may not delete here"
        else:
            raise
        target = f"{display_name(client, repository)}@{digest}"
        raise DeleteRefused(
            f"{client.host} refused to delete {target}{why} ({exc.message})",
            status=exc.status,
            code=exc.code,
            details=exc.details,
            hint=hint,
        ) from exc
    return digest


async def tags_sharing_digest(
    client: RegistryClient,
    repository: str,
    digest: str,
    *,
    tags: list[str] | None = None,
    concurrency: int = 8,
) -> list[str]:
    """The tags pointing at `digest` (each resolved with HEAD), to warn before a delete that
    removes every one of them. `tags` limits the search (default: every tag)."""
    names = tags if tags is not None else await all_tags(client, repository)

    async def check(tag: str) -> str:
        try:
            found = await client.head_manifest(repository, tag)
        except NotFound:
            return ""
        return tag if found == digest else ""

    calls = [functools.partial(check, tag) for tag in names]
    return [t for t in await gather_bounded(calls, max(1, concurrency)) if t]


__all__ = [
    "DeletePlan",
    "delete",
    "delete_manifests",
    "delete_plan",
    "plan_delete",
    "resolve_digest",
    "tags_sharing_digest",
]
