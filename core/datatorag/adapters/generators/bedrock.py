"""``AnswerGenerator`` on Amazon Bedrock's Converse API (any model that supports messages).

``converse(modelId, system=[{"text": ...}], messages=[{"role": "user", "content": [{"text":
...}]}], inferenceConfig={"maxTokens": ..., "temperature": 0})``; the reply is the text blocks of
``output.message.content``. The prompt and the checks on the reply are shared with the
OpenAI-compatible adapter (``answer_prompt``).

botocore retries throttling once (standard mode); anything still failing becomes a
``RetryableError`` (throttled, model not ready, timeouts, 5xx) or a ``GeneratorRequestRejected``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
)

from datatorag.adapters.generators.prompt import (
    ABSTAINED,
    SYSTEM_PROMPT,
    GeneratorRequestRejected,
    GeneratorUnavailable,
    build_user_prompt,
    parse_answer,
)
from datatorag.domain.http import is_retryable_status
from datatorag.domain.models import SearchHit
from datatorag.log import get_logger
from datatorag.ports import GeneratedAnswer
from datatorag.settings import Settings

log = get_logger(__name__)

# Converse errors that say "not now" (the API reference's error list; 424 is the model failing).
_RETRYABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "ServiceUnavailableException",
        "InternalServerException",
        "ModelTimeoutException",
        "ModelNotReadyException",
        "ModelErrorException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
# Stop reasons after which the text is not an answer to trust.
_BLOCKED = frozenset({"guardrail_intervened", "content_filtered"})
# Client-side faults that no retry fixes: missing credentials, region or a malformed request.
_CONFIGURATION_ERRORS = (NoCredentialsError, PartialCredentialsError, NoRegionError)


def bedrock_runtime_client(settings: Settings, *, timeout: float = 60.0, attempts: int = 2) -> Any:
    """A ``bedrock-runtime`` client for the configured region (and endpoint, e.g. LocalStack)."""
    config = Config(
        connect_timeout=5,
        read_timeout=timeout,
        retries={"mode": "standard", "total_max_attempts": attempts},
    )
    return boto3.client(
        "bedrock-runtime",
        region_name=settings.aws_region,
        endpoint_url=settings.aws_endpoint_url,
        config=config,
    )


class BedrockGenerator:
    """Answers with a Bedrock model through the Converse API."""

    def __init__(self, client: Any, model_id: str, *, max_tokens: int = 1024) -> None:
        self.client = client
        self.model_id = model_id
        self.max_tokens = max_tokens

    @classmethod
    def from_settings(cls, settings: Settings) -> BedrockGenerator:
        return cls(bedrock_runtime_client(settings), settings.bedrock_model_id)

    def generate(self, question: str, passages: Sequence[SearchHit]) -> GeneratedAnswer:
        if not passages or not question.strip():
            return ABSTAINED
        started = time.monotonic()
        response = self._converse(build_user_prompt(question, passages))
        stop_reason = str(response.get("stopReason", ""))
        reply = None if stop_reason in _BLOCKED else _reply_text(response)
        answer = parse_answer(reply, passages)
        usage = response.get("usage") or {}
        log.info(
            "answer.generated",
            backend="bedrock",
            model=self.model_id,
            passages=len(passages),
            sentences=len(answer.sentences),
            abstained=answer.abstained,
            stop_reason=stop_reason,
            input_tokens=usage.get("inputTokens"),
            output_tokens=usage.get("outputTokens"),
            latency_ms=round((time.monotonic() - started) * 1000),
        )
        return answer

    def request(self, user_prompt: str) -> dict[str, Any]:
        """The Converse arguments for one question (exposed for tests and debugging)."""
        return {
            "modelId": self.model_id,
            "system": [{"text": SYSTEM_PROMPT}],
            "messages": [{"role": "user", "content": [{"text": user_prompt}]}],
            "inferenceConfig": {"maxTokens": self.max_tokens, "temperature": 0},
        }

    def _converse(self, user_prompt: str) -> dict[str, Any]:
        where = f"Bedrock model {self.model_id}"
        try:
            response: dict[str, Any] = self.client.converse(**self.request(user_prompt))
        except ClientError as exc:
            raise _client_error(where, exc) from exc
        except (ParamValidationError, *_CONFIGURATION_ERRORS) as exc:
            raise GeneratorRequestRejected(f"{where}: {exc}") from exc
        except BotoCoreError as exc:  # connection refused or reset, read or connect timeout
            raise GeneratorUnavailable(f"{where} unreachable: {exc}") from exc
        return response


def _client_error(where: str, exc: ClientError) -> GeneratorUnavailable | GeneratorRequestRejected:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    detail = f"{where} answered {status} {code}: {error.get('Message', '')}".rstrip(": ")
    if code in _RETRYABLE_CODES or is_retryable_status(status):
        return GeneratorUnavailable(detail)
    return GeneratorRequestRejected(detail)


def _reply_text(response: dict[str, Any]) -> str | None:
    """The text blocks of ``output.message.content``, joined (other block kinds are skipped)."""
    message = (response.get("output") or {}).get("message") or {}
    blocks = message.get("content") or []
    texts = [b["text"] for b in blocks if isinstance(b, dict) and isinstance(b.get("text"), str)]
    return "".join(texts) or None
