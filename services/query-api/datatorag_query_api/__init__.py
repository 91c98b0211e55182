"""query-api service."""
