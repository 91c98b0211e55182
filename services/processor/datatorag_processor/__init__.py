"""processor service."""
