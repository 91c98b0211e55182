"""HTTP status rules every remote adapter applies the same way."""

from __future__ import annotations

# Timeouts and throttling say "not now" rather than "never", like a server error.
RETRYABLE_4XX = frozenset({408, 429})


def is_retryable_status(status: int) -> bool:
    """True for 5xx, 408 and 429: the same request may succeed later."""
    return status >= 500 or status in RETRYABLE_4XX
