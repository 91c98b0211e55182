"""Typed errors shared by every service.

Workers split failures in two: a ``RetryableError`` leaves the message on the queue so it is
received again (and reaches the dead-letter queue after the retry limit); a ``PermanentError``
marks the document failed with its reason and dead-letters the message at once.

A caller's mistake (a bad filter, an invalid tenant name) is an ``InvalidRequest``: the query
API answers it with a 4xx that shows its message. Any other exception there is a 500 whose
message stays in the log.
"""


class DatatoRAGError(Exception):
    """Base of every error this project raises on purpose."""


class InvalidRequest(DatatoRAGError, ValueError):
    """The caller asked for something invalid; ``str(err)`` says what to change.

    Also a ``ValueError``, as Python code expects of a bad argument (pydantic validators turn
    it into a validation error).
    """


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


class InvalidKey(InvalidRequest):
    """A blob key or identifier that would escape its namespace (``..``, absolute paths)."""


class SourceError(DatatoRAGError):
    """A document source could not be listed or read (bad URI, refused login, missing folder)."""


class GenerationFailed(DatatoRAGError):
    """The answer generator failed; ``retryable`` tells a busy model from a refusal."""

    def __init__(self, cause: Exception, *, retryable: bool) -> None:
        super().__init__(str(cause) or type(cause).__name__)
        self.retryable = retryable


class SecretNotFound(DatatoRAGError):
    """The secret store holds no secret under that name."""


class SecretUnreadable(PermanentError):
    """A stored secret cannot be decrypted (the key changed) or read: set it again."""


class OcrTimeout(PermanentError):
    """Reading the scanned pages took longer than the document's OCR time budget."""


class VectorSpaceMismatch(RetryableError):
    """Vectors of one embedding space were about to meet an index (or a query) in another
    (``domain.spaces``).

    Retryable: a document embedded in the new space is written once its tenant has been
    re-embedded (``datatorag reembed``); until then its earlier version stays searchable.
    """

    def __init__(self, tenant: str, index_space: str, given_space: str) -> None:
        super().__init__(
            f"tenant {tenant!r} is indexed in embedding space {index_space!r}, not "
            f"{given_space!r}: run `datatorag reembed --tenant {tenant}` to move it"
        )
        self.tenant, self.index_space, self.given_space = tenant, index_space, given_space
