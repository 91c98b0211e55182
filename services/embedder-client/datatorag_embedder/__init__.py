"""embedder-client service."""
