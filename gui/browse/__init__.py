"""Browse: what a registry holds (repositories, tags, manifests), download and delete."""
