"""Deleting tags, in the window's words: what to ask before, what to say after.

The plan (which manifests go, which other tags go with them) and the deleting are core's
(`hoist.core.registry.deletion`), shared with `hoist delete`.
"""

from __future__ import annotations

from collections.abc import Sequence

from hoist.core.oci.digest import short_digest
from hoist.core.registry.deletion import DeletePlan


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
