"""``Embeddings`` over HTTP: the embedding endpoint's SageMaker contract, spoken with httpx.

``POST {base_url}/invocations`` with ``{"inputs": [...]}``; the answer is
``{"embeddings": [[...], ...]}`` (a SageMaker HF DLC with ``HF_TASK=sentence-embeddings``, and
``services/embedding-endpoint``) or a bare ``[[...], ...]`` (Text Embeddings Inference).
``services/embedding-endpoint`` adds ``"space"``, the embedding space of those vectors; for an
endpoint that does not, the space is ``default_space`` (``DATATORAG_EMBEDDING_SPACE``) or
``unreported/unknown/<dimension>``.

No retries here: the embedder-client retries ``RetryableError`` with backoff, and the query API
would rather fail fast.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np

from datatorag.domain.errors import EmbeddingRequestRejected, EmbeddingUnavailable
from datatorag.domain.http import is_retryable_status
from datatorag.domain.spaces import check_space, fallback_space
from datatorag.ports import Embedded, Vectors


class HttpEmbeddings:
    """Embeddings from an endpoint that speaks the SageMaker inference contract over HTTP.

    ``dimension`` is asked of the endpoint once: the ``dimension`` field of ``GET /ping``'s JSON,
    or, when the endpoint's ping carries no such field, the length of one embedded probe text.
    Long lists go out as several requests of at most ``max_texts_per_request`` texts, which keeps
    each request well inside the endpoint's limits (256 texts, 6 MB) and the timeout.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 60.0,
        max_texts_per_request: int = 64,
        default_space: str | None = None,
    ) -> None:
        if max_texts_per_request < 1:
            raise ValueError("max_texts_per_request must be at least 1")
        self.max_texts_per_request = max_texts_per_request
        self.default_space = check_space(default_space) if default_space else None
        url = httpx.URL(base_url.rstrip("/"))
        self._shown_url = str(url.copy_with(username=None, password=None))  # for messages
        self._client = httpx.Client(base_url=url, timeout=timeout)
        self._dimension: int | None = None

    def __enter__(self) -> HttpEmbeddings:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._dimension = self._ping_dimension() or int(
                self.embed(["dimension probe"]).shape[1]
            )
        return self._dimension

    def embed(self, texts: Sequence[str]) -> Vectors:
        return self.embed_in_space(texts).vectors

    def embed_in_space(self, texts: Sequence[str]) -> Embedded:
        if not texts:
            return Embedded(np.empty((0, self.dimension), dtype=np.float32), self._space(None))
        step = self.max_texts_per_request
        parts = [self._embed_request(texts[i : i + step]) for i in range(0, len(texts), step)]
        spaces = {space for _, space in parts}
        if len(spaces) > 1:  # the model was swapped between two of this call's requests
            raise self._malformed(f"vectors of one call came in several spaces: {sorted(spaces)}")
        vectors = parts[0][0] if len(parts) == 1 else np.concatenate([v for v, _ in parts])
        return Embedded(vectors, spaces.pop())

    def _space(self, reported: object) -> str:
        if reported is None:
            return fallback_space(self.default_space, self.dimension)
        try:
            return check_space(str(reported))
        except ValueError as exc:
            raise self._malformed(str(exc)) from exc

    def _embed_request(self, texts: Sequence[str]) -> tuple[Vectors, str]:
        payload = self._call("POST", "/invocations", json={"inputs": list(texts)})
        rows = payload.get("embeddings") if isinstance(payload, dict) else payload
        try:
            vectors = np.asarray(rows, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise self._malformed(f"embeddings are not a matrix of numbers ({exc})") from exc
        if vectors.ndim != 2 or vectors.shape[0] != len(texts):
            raise self._malformed(f"expected {len(texts)} vectors, got shape {vectors.shape}")
        if self._dimension is None:
            self._dimension = int(vectors.shape[1])
        elif vectors.shape[1] != self._dimension:
            # The endpoint now runs another model: learn its dimension, let the space tell.
            self._dimension = int(vectors.shape[1])
        reported = payload.get("space") if isinstance(payload, dict) else None
        return vectors, self._space(reported)

    def _ping_dimension(self) -> int | None:
        info = self._call("GET", "/ping")
        dim = info.get("dimension") if isinstance(info, dict) else None
        return dim if isinstance(dim, int) and dim > 0 else None

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send one request; map every failure to a retryable or a permanent error."""
        where = f"{self._shown_url}{path}"
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise EmbeddingUnavailable(f"embedding endpoint {where} timed out: {exc!r}") from exc
        except httpx.HTTPError as exc:
            raise EmbeddingUnavailable(f"embedding endpoint {where} unreachable: {exc!r}") from exc
        status = response.status_code
        if is_retryable_status(status):
            raise EmbeddingUnavailable(
                f"embedding endpoint {where} answered {status}: {_reason(response)}"
            )
        if status >= 400:
            raise EmbeddingRequestRejected(
                f"embedding endpoint {where} refused the request ({status}): {_reason(response)}"
            )
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise self._malformed(f"{path} answered {status} with a body that is not JSON") from exc

    def _malformed(self, detail: str) -> EmbeddingUnavailable:
        # The endpoint misbehaved, not the input: another attempt (or instance) may do better.
        return EmbeddingUnavailable(f"embedding endpoint {self._shown_url}: {detail}")


def _reason(response: httpx.Response) -> str:
    """The endpoint's own message when it sent one, else the start of the body."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict):
        for key in ("message", "Message", "detail", "error"):
            if body.get(key):
                return str(body[key])
    return str(body)[:200]
