"""The embedded ``SearchIndex``: one SQLite file per tenant, vectors and BM25 in memory."""

from datatorag.adapters.index.sqlite.index import SqliteSearchIndex

__all__ = ["SqliteSearchIndex"]
