"""Talking to one registry: the HTTP client, authentication, credentials, what it holds.

One method per protocol step (`client`), answers to the registry's challenges (`auth`), where
credentials come from (`credentials`), request bodies sent straight from files (`filebody`),
what was learned about a host (`profile`), catalog/tag/manifest browsing and deletion
(`browse`), and a local demo registry. Policy (chunking, retries of a transfer, resume) lives
a layer up, in `transfer`.
"""
