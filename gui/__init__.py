"""Hoist's desktop window (PySide6 + qasync) over the Qt-free engine in `core`.

Modules: `app` (start-up, event loop, error hook), `main_window` (the window and its services),
`transfers` (model, filter proxy, view, actions as data), `add_sheet` (where a push goes),
`settings` / `settings_dialog` (preferences as JSON), `planning` (Qt-free pre-flight steps),
`icons` (SVG icons via importlib.resources). `browse` and `registry_dialog` are written
separately and used when present.
"""
