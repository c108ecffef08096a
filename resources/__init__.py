"""Hoist's bundled resources (SVG icons), loaded only through `importlib.resources`.

Being a package lets `importlib.resources.files("hoist.resources")` find the icons in a source tree,
an installed wheel or a zipped app alike.
"""
