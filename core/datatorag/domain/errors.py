"""Typed errors shared by every service.

Workers split failures in two: a ``RetryableError`` leaves the message on the queue so it is
received again (and reaches the dead-letter queue after the retry limit); a ``PermanentError``
marks the document failed with its reason and dead-letters the message at once.
"""


class DatatoRAGError(Exception):
    """Base of every error this project raises on purpose."""


class RetryableError(DatatoRAGError):
    """A transient fault (network, endpoint busy): trying again later may succeed."""


class PermanentError(DatatoRAGError):
    """Trying again cannot help: the input itself is the problem."""


class DocumentRejected(PermanentError):
    """A document that cannot be turned into text; ``str(err)`` is a reason a person can act on."""


class BlobNotFound(DatatoRAGError):
    """The blob store holds no object under that key."""


class EmbeddingUnavailable(RetryableError):
    """The embedding endpoint did not answer or answered with a server error."""


class EmbeddingRequestRejected(PermanentError):
    """The embedding endpoint refused the request (4xx): sending the same texts cannot help."""


class InvalidKey(DatatoRAGError):
    """A blob key or identifier that would escape its namespace (``..``, absolute paths)."""


class SourceError(DatatoRAGError):
    """A document source could not be listed or read (bad URI, refused login, missing folder)."""


class OcrTimeout(PermanentError):
    """Reading the scanned pages took longer than the document's OCR time budget."""
