"""connector service."""
