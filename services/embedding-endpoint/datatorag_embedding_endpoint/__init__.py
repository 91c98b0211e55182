"""embedding-endpoint service."""
