"""Adding a transfer: what was dropped or picked, where it goes, checked before it is queued."""
