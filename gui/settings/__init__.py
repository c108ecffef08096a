"""The window's settings: stored data, the Settings dialog, and the registry dialog."""
