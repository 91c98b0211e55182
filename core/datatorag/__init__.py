"""DatatoRAG shared core: settings, queue messages, domain models, ports and their adapters."""

__version__ = "0.1.0"
