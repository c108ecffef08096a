"""Deleting tags: which manifests go, which other tags go with them, what to ask and say.

Registries delete by digest, so every tag pointing at a chosen tag's manifest goes too: the
plan names them before the user confirms.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hoist.core.registry.browse import delete, resolve_digest, tags_sharing_digest
from hoist.core.registry.client import RegistryClient
from hoist.gui.browse.models import (
    short_digest,
)

# -- deleting, as data ----------------------------------------------------------------------


@dataclass(frozen=True)
class DeletePlan:
    """What a delete removes: the chosen tags' manifests, and every tag pointing at them.

    Attributes:
        chosen: the tags the user picked.
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


def delete_message(plan: DeletePlan) -> tuple[str, str]:
    """(question, explanation) for the confirmation, warning about tags that go too."""
    chosen = plan.chosen
    if len(chosen) == 1:
        question = f"Delete {plan.repository}:{chosen[0]}?"
    else:
        question = f"Delete {len(chosen)} tags from {plan.repository}?"
    also = plan.also_removed
    parts: list[str] = []
    if len(plan.digests) == 1:
        digest = next(iter(plan.digests))
        parts.append(f"The manifest {short_digest(digest)} is deleted from the registry.")
    else:
        parts.append(f"{len(plan.digests)} manifests are deleted from the registry.")
    if also:
        count = "1 other tag points" if len(also) == 1 else f"{len(also)} other tags point"
        same = "the same manifest" if len(plan.digests) == 1 else "these manifests"
        parts.append(
            f"Registries delete by digest: {count} at {same} and will be deleted too: "
            f"{', '.join(also)}."
        )
    parts.append("This can't be undone.")
    return question, " ".join(parts)


def delete_outcome(plan: DeletePlan, deleted: Sequence[str]) -> str:
    """The sentence after a delete (tags in the order of `removed_tags`)."""
    gone = {t for digest in deleted for t in plan.digests[digest]}
    tags = [t for t in plan.removed_tags if t in gone]
    names = ", ".join(tags)
    return f"Deleted {names} from {plan.repository}" if tags else "Nothing was deleted"


async def plan_delete(
    client: RegistryClient, repository: str, tags: Sequence[str], every: list[str] | None
) -> DeletePlan:
    """Resolve the chosen tags (four at once) and find every tag sharing their manifests.

    `every`: all the repository's tags when they are listed already (saves listing them).
    """
    limit = asyncio.Semaphore(4)

    async def resolve(tag: str) -> str:
        async with limit:
            return await resolve_digest(client, repository, tag)

    digests = list(await asyncio.gather(*(resolve(t) for t in tags)))
    digest_of = dict(zip(tags, digests, strict=True))
    sharing = {}
    for digest in dict.fromkeys(digests):
        sharing[digest] = await tags_sharing_digest(client, repository, digest, tags=every)
    return delete_plan(repository, tags, digest_of, sharing)


async def delete_manifests(client: RegistryClient, plan: DeletePlan, deleted: list[str]) -> None:
    """Delete the plan's manifests one by one; `deleted` lists those gone (even on a refusal)."""
    for digest in plan.digests:
        await delete(client, plan.repository, digest)
        deleted.append(digest)
