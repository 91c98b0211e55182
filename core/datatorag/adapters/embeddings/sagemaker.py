"""``Embeddings`` on an Amazon SageMaker real-time endpoint, through boto3's ``sagemaker-runtime``.

The request and answer are the embedding endpoint's contract (``services/embedding-endpoint``,
a SageMaker Hugging Face DLC with ``HF_TASK=sentence-embeddings``): ``invoke_endpoint`` with
``{"inputs": [...], "truncate": true}`` as JSON, answered by ``{"embeddings": [[...], ...]}`` (or
a bare matrix, as Text Embeddings Inference answers). The local endpoint adds ``"space"``, the
embedding space of the vectors; for a container that does not, ``DATATORAG_EMBEDDING_SPACE``
names it (``domain.spaces.fallback_space``).

Texts go out in requests of at most ``max_inputs`` texts and ``MAX_REQUEST_BYTES`` (SageMaker
refuses real-time payloads over 6 MB). botocore retries in its ``standard`` mode (throttling,
5xx, dropped connections, with backoff); what still fails is mapped for the workers:
throttling, 5xx, ``ModelError`` and connection failures raise ``EmbeddingUnavailable``
(retryable); other 4xx answers (a ``ValidationError``) raise ``EmbeddingRequestRejected``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import boto3
import numpy as np
from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from datatorag.domain.batching import bounded_batches
from datatorag.domain.errors import EmbeddingRequestRejected, EmbeddingUnavailable
from datatorag.domain.http import is_retryable_status
from datatorag.domain.spaces import check_space, fallback_space
from datatorag.ports import Embedded, Vectors
from datatorag.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_sagemaker_runtime import SageMakerRuntimeClient

__all__ = ["SageMakerEmbeddings", "sagemaker_runtime_client"]

MAX_INPUTS_PER_REQUEST = 64  # the local endpoint takes 256; smaller requests batch better
MAX_REQUEST_BYTES = 5 * 1024 * 1024  # SageMaker's real-time limit is 6 MB; keep a margin
MAX_ATTEMPTS = 3  # botocore's standard mode: the first try and two retries
# Answers that say "not now": SageMaker's throttling and capacity codes, and the model's own
# failures (ModelError is a 424 wrapping the container's status).
_RETRYABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "ModelNotReadyException",
        "ServiceUnavailable",
        "InternalFailure",
        "InternalDependencyException",
        "ModelError",
        "ModelStreamError",
    }
)
_MODEL_ERROR_STATUS = 424  # ModelError (above): retryable, as a 5xx is


def sagemaker_runtime_client(
    settings: Settings, *, max_attempts: int = MAX_ATTEMPTS, read_timeout: float = 60.0
) -> SageMakerRuntimeClient:
    """A ``sagemaker-runtime`` client: the settings' region and endpoint, standard retries.

    ``sagemaker_endpoint_url`` wins over ``aws_endpoint_url``, so S3 and SQS can go to one
    emulator (moto) while invocations go to the local embedding endpoint.
    """
    config = Config(
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        connect_timeout=5,
        read_timeout=read_timeout,
    )
    client: SageMakerRuntimeClient = boto3.client(
        "sagemaker-runtime",
        region_name=settings.aws_region,
        endpoint_url=settings.sagemaker_endpoint_url or settings.aws_endpoint_url,
        config=config,
    )
    return client


class SageMakerEmbeddings:
    """Embeddings from the SageMaker endpoint ``endpoint_name``.

    ``dimension`` is learnt from the first answer (a one-text probe when asked before any).
    """

    def __init__(
        self,
        client: SageMakerRuntimeClient,
        endpoint_name: str,
        *,
        max_inputs: int = MAX_INPUTS_PER_REQUEST,
        dimension: int | None = None,
        default_space: str | None = None,
    ) -> None:
        """``default_space``: the embedding space of a container that does not report one in
        its answers (``domain.spaces.fallback_space``)."""
        if max_inputs < 1:
            raise ValueError("max_inputs must be at least 1")
        self.client = client
        self.endpoint_name = endpoint_name
        self.max_inputs = max_inputs
        self._dimension = dimension
        self.default_space = check_space(default_space) if default_space else None

    @classmethod
    def from_settings(cls, settings: Settings, *, timeout_s: float = 60.0) -> SageMakerEmbeddings:
        client = sagemaker_runtime_client(settings, read_timeout=timeout_s)
        return cls(client, settings.sagemaker_endpoint_name, default_space=settings.embedding_space)

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._dimension = int(self.embed(["dimension probe"]).shape[1])
        return self._dimension

    def embed(self, texts: Sequence[str]) -> Vectors:
        return self.embed_in_space(texts).vectors

    def embed_in_space(self, texts: Sequence[str]) -> Embedded:
        if not texts:
            dimension = self.dimension
            empty = np.empty((0, dimension), dtype=np.float32)
            return Embedded(empty, fallback_space(self.default_space, dimension))
        parts = [self._invoke(batch) for batch in _batches(texts, self.max_inputs)]
        spaces = {space for _, space in parts}
        if len(spaces) > 1 or len({v.shape[1] for v, _ in parts}) > 1:
            # The endpoint was updated to another model between two of this call's requests.
            raise self._malformed(f"vectors of one call came in several spaces: {sorted(spaces)}")
        vectors = np.concatenate([v for v, _ in parts]) if len(parts) > 1 else parts[0][0]
        self._dimension = int(vectors.shape[1])  # an endpoint update may change it: the space says
        return Embedded(vectors, spaces.pop())

    def close(self) -> None:
        self.client.close()

    def _invoke(self, texts: list[str]) -> tuple[Vectors, str]:
        """One ``invoke_endpoint`` call; every failure becomes a retryable or a permanent error."""
        where = f"SageMaker endpoint {self.endpoint_name!r}"
        try:
            response = self.client.invoke_endpoint(
                EndpointName=self.endpoint_name,
                ContentType="application/json",
                Accept="application/json",
                Body=_request_body(texts),
            )
            raw = response["Body"].read()
        except ClientError as err:
            raise _classify(err, where) from err
        except (BotoConnectionError, HTTPClientError) as err:
            raise EmbeddingUnavailable(f"{where} unreachable: {err}") from err
        return self._vectors(raw, len(texts))

    def _vectors(self, raw: bytes, expected: int) -> tuple[Vectors, str]:
        try:
            payload: Any = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise self._malformed("the answer is not JSON") from exc
        rows = payload.get("embeddings") if isinstance(payload, dict) else payload
        try:
            vectors = np.asarray(rows, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise self._malformed(f"embeddings are not a matrix of numbers ({exc})") from exc
        if vectors.ndim != 2 or vectors.shape[0] != expected or vectors.shape[1] == 0:
            raise self._malformed(f"expected {expected} vectors, got shape {vectors.shape}")
        if not np.isfinite(vectors).all():
            raise self._malformed("embeddings hold NaN or infinite values")
        # The port promises unit vectors; a container that skips normalisation still keeps it.
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors /= np.where(norms > 0, norms, 1.0).astype(np.float32)
        reported = payload.get("space") if isinstance(payload, dict) else None
        if reported is None:
            return vectors, fallback_space(self.default_space, int(vectors.shape[1]))
        try:
            return vectors, check_space(str(reported))
        except ValueError as exc:
            raise self._malformed(str(exc)) from exc

    def _malformed(self, detail: str) -> EmbeddingUnavailable:
        # The endpoint misbehaved, not the input: another attempt (or instance) may do better.
        return EmbeddingUnavailable(f"SageMaker endpoint {self.endpoint_name!r}: {detail}")


def _request_body(texts: list[str]) -> bytes:
    # "truncate": Text Embeddings Inference (the stack's container) refuses texts over the
    # model's window unless asked to cut them; the local endpoint and the DLC ignore the key.
    return json.dumps({"inputs": texts, "truncate": True}, ensure_ascii=False).encode()


def _batches(texts: Sequence[str], max_inputs: int) -> Iterator[list[str]]:
    """Consecutive groups under the input count and the payload size limits.

    A single text over the size limit travels alone: the endpoint decides whether to refuse it.
    """
    return bounded_batches(texts, _json_cost, max_count=max_inputs, max_bytes=MAX_REQUEST_BYTES)


def _json_cost(text: str) -> int:
    return len(json.dumps(text, ensure_ascii=False).encode()) + 2  # and the ", " before the next


def _classify(err: ClientError, where: str) -> EmbeddingUnavailable | EmbeddingRequestRejected:
    error = err.response.get("Error", {})
    code = str(error.get("Code", ""))
    message = str(error.get("Message", "")) or str(err)
    status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    detail = f"{where} answered {status} {code}: {message}"
    if code in _RETRYABLE_CODES or is_retryable_status(status) or status == _MODEL_ERROR_STATUS:
        return EmbeddingUnavailable(detail)
    return EmbeddingRequestRejected(detail)
