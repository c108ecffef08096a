"""Hoist's engine: pushes files and images to OCI registries, resumably.

The core never imports Qt. The CLI, the GUI and the tests all drive the same coroutines.
"""

__version__ = "0.1.0"
