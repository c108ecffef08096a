"""Transfers: a push or a download from start to end, journaled so it survives anything.

`model` holds the two types, `Push` and `Download`, over what both share; `upload` sends one
blob (check, open, send chunks, commit) and `push` drives a whole push; `download` drives a
whole download over `fetch` (one file's resumable, verified GET), `pull_jobs` (what goes
where), `unpack` (a packed folder) and `layout_writer` (an image as an OCI layout); `journal`
keeps each transfer on disk; `queue` runs many of them.
The top of the engine: only the command line (`core.cli`) and the window build on it.
"""
