"""What a transfer's upload settings are for a registry host: one decision for every caller.

The command line and the window both start from the user's choices and pass them through
`apply_profile`, so a limit learned by one (a proxy's 413, a registry that refuses chunked
PATCH) shapes the other's next push too.
"""

from __future__ import annotations

from hoist.core.registry.profile import ProfileStore, ProfileUnwritable
from hoist.core.transfer.upload import UploadSettings


def apply_profile(settings: UploadSettings, host: str, store: ProfileStore) -> UploadSettings:
    """Start from what the host taught us, and keep teaching the store as the upload learns."""
    profile = store.get(host)
    if profile.max_chunk:
        settings.max_chunk = profile.max_chunk
    if profile.min_chunk:
        settings.min_chunk = max(settings.min_chunk, profile.min_chunk)
    if profile.chunked is False:
        settings.chunked = False

    def learn(key: str, value: int | bool) -> None:
        try:
            store.update(host, **{key: value})
        except ProfileUnwritable as exc:  # a lesson lost costs re-learning, never the push
            store.warn(exc.sentence())

    settings.on_limit = learn
    return settings
