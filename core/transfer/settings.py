"""What a transfer's upload settings are for a registry host: one decision for every caller.

The command line and the window both start from the user's choices and pass them through
`apply_profile`, so a limit learned by one (a proxy's 413, a registry that refuses chunked
PATCH) shapes the other's next push too.
"""

from __future__ import annotations

from hoist.core.bandwidth import BandwidthLimiter
from hoist.core.errors import ProfileUnwritable
from hoist.core.registry.profile import ProfileStore, RegistryProfile
from hoist.core.retry import RetryPolicy
from hoist.core.transfer.upload import DEFAULT_CHUNK, UploadSettings
from hoist.core.units import GiB, format_size


def apply_profile(settings: UploadSettings, host: str, store: ProfileStore) -> UploadSettings:
    """Start from what the host taught us, and keep teaching the store as the upload learns."""
    profile = store.get(host)
    if profile.max_chunk:
        settings.max_chunk = profile.max_chunk
    if profile.min_chunk:
        settings.min_chunk = max(settings.min_chunk, profile.min_chunk)
    if profile.chunked is False:
        settings.chunked = False
    if profile.streamed is False:
        settings.streamed = False

    def learn(lesson: RegistryProfile) -> None:
        try:
            store.learn(host, lesson)
        except ProfileUnwritable as exc:  # a lesson lost costs re-learning, never the push
            store.warn(exc.sentence())

    settings.on_limit = learn
    return settings


def transfer_settings(
    host: str,
    *,
    chunk_size: int | None = None,
    limit_rate: int | None = None,
    give_up_after: float | None = None,
    store: ProfileStore | None = None,
) -> UploadSettings:
    """The one place that decides how a transfer to `host` is sent; the CLI and the window
    both call it, so a host's learned profile applies whichever the user runs.

    Args:
        host: the registry's API host (`Reference.api_host`), the key of its profile.
        chunk_size: the user's own chunk size, kept exactly; None: adaptive from 64 MiB.
        limit_rate: the user's cap for this transfer (bytes/s); None: the host's profile
            cap, if any. 0: no cap of its own.
        give_up_after: seconds of retrying before a transfer fails; None: retry until the
            user pauses (the window shows the countdown).
        store: the profiles (default: the user's config folder).
    """
    store = store or ProfileStore()
    settings = UploadSettings(
        chunk_size=chunk_size or DEFAULT_CHUNK,
        adaptive=not chunk_size,
        retry=RetryPolicy(give_up_after=give_up_after),
    )
    apply_profile(settings, host, store)
    rate = store.get(host).limit_rate if limit_rate is None else limit_rate
    if rate:
        settings.throttle = BandwidthLimiter(rate).take
    return settings


#: Files larger than this get split mode offered where a cut upload restarts from byte 0.
SPLIT_THRESHOLD = 8 * GiB


def split_advice(name: str, size: int, profile: RegistryProfile, part_size: int) -> str:
    """The sentence offering split mode for a file, or "" when it isn't worth it.

    Offered when the file is larger than SPLIT_THRESHOLD and the registry keeps nothing of
    an upload cut mid-chunk (learned: `resumable` False; not yet learned: distribution 2.x
    and Harbor, the most common, keep nothing). Says what split mode gives and costs.
    """
    if size <= SPLIT_THRESHOLD or profile.resumable:
        return ""
    why = (
        "this registry keeps nothing of an upload cut mid-chunk"
        if profile.resumable is False
        else "registries like distribution 2 and Harbor keep nothing of an upload cut mid-chunk"
    )
    return (
        f"{name} is {format_size(size)} and {why}: after a lost session it would start again "
        f"from the beginning. Split mode sends it as {format_size(part_size)} parts, so a cut "
        "costs at most one part, and parts can go in parallel. The cost: the registry holds "
        "parts (`oras pull` gives them; Hoist's download joins them, as `cat NAME.part* > "
        "NAME` does)."
    )
