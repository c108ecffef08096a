"""Transfers: a push or a download from start to end, journaled so it survives anything.

`upload` sends one blob (check, open, send chunks, commit); `push` drives a whole push and
`download` a whole download; `journal` keeps each transfer on disk; `queue` runs many of them.
The top of the engine: only the command line (`core.cli`) and the window build on it.
"""
