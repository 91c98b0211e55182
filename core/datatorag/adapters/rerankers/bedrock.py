"""``Reranker`` on Amazon Bedrock's Rerank API (Bedrock Agent Runtime, ``POST /rerank``).

Request, per the API reference: ``queries=[{"type": "TEXT", "textQuery": {"text": question}}]``,
``sources=[{"type": "INLINE", "inlineDocumentSource": {"type": "TEXT", "textDocument":
{"text": passage}}}]`` and ``rerankingConfiguration={"type": "BEDROCK_RERANKING_MODEL",
"bedrockRerankingConfiguration": {"numberOfResults": k, "modelConfiguration": {"modelArn":
arn}}}``. The reply's ``results`` hold ``index`` (the source's position in the request) and
``relevanceScore``, best first. A passage is sent as its title, heading and text, as it was
embedded. Throttling, 5xx and timeouts are retryable; a refused request is permanent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from datatorag.domain.errors import PermanentError, RetryableError
from datatorag.domain.models import SearchHit
from datatorag.settings import Settings

_RETRYABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "ServiceQuotaExceededException",
        "InternalServerException",
        "DependencyFailedException",
        "BadGatewayException",
        "ServiceUnavailableException",
    }
)


class RerankUnavailable(RetryableError):
    """The Rerank API did not answer now (throttled, a server error, a timeout)."""


class RerankRejected(PermanentError):
    """The Rerank API refused the request (access, validation, unknown model)."""


class BedrockReranker:
    def __init__(self, client: Any, model_arn: str) -> None:
        self.client = client
        self.model_arn = model_arn

    @classmethod
    def from_settings(cls, settings: Settings, *, timeout: float = 10.0) -> BedrockReranker:
        config = Config(
            connect_timeout=5,
            read_timeout=timeout,
            retries={"mode": "standard", "total_max_attempts": 2},
        )
        client = boto3.client(
            "bedrock-agent-runtime",
            region_name=settings.aws_region,
            endpoint_url=settings.aws_endpoint_url,
            config=config,
        )
        return cls(client, settings.bedrock_rerank_model_arn)

    def rerank(self, question: str, passages: Sequence[SearchHit], top_k: int) -> list[SearchHit]:
        if not passages:
            return []
        try:
            reply = self.client.rerank(
                queries=[{"type": "TEXT", "textQuery": {"text": question}}],
                sources=[_source(p) for p in passages],
                rerankingConfiguration={
                    "type": "BEDROCK_RERANKING_MODEL",
                    "bedrockRerankingConfiguration": {
                        "numberOfResults": min(top_k, len(passages)),
                        "modelConfiguration": {"modelArn": self.model_arn},
                    },
                },
            )
        except ClientError as err:
            code = str(err.response.get("Error", {}).get("Code", ""))
            status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            if code in _RETRYABLE_CODES or status >= 500 or status == 429:
                raise RerankUnavailable(f"Bedrock Rerank unavailable ({code or status})") from None
            raise RerankRejected(f"Bedrock Rerank refused the request ({code or status})") from None
        except BotoCoreError as err:  # timeouts, connection failures
            raise RerankUnavailable(f"Bedrock Rerank unreachable ({type(err).__name__})") from None
        return _ordered(reply, passages, top_k)


def _source(passage: SearchHit) -> dict[str, Any]:
    context = " > ".join(part for part in (passage.title, passage.heading) if part)
    text = f"{context}\n{passage.text}" if context else passage.text
    return {
        "type": "INLINE",
        "inlineDocumentSource": {"type": "TEXT", "textDocument": {"text": text}},
    }


def _ordered(reply: Any, passages: Sequence[SearchHit], top_k: int) -> list[SearchHit]:
    """The passages in the reply's order (best first), each once, scored by relevance."""
    out: list[SearchHit] = []
    seen: set[int] = set()
    results = reply.get("results") if isinstance(reply, dict) else None
    if not isinstance(results, list):
        raise RerankUnavailable("Bedrock Rerank sent a reply without results")
    for result in sorted(results, key=lambda r: -float(r.get("relevanceScore", 0.0))):
        index = result.get("index")
        if isinstance(index, int) and 0 <= index < len(passages) and index not in seen:
            seen.add(index)
            score = float(result.get("relevanceScore", 0.0))
            out.append(passages[index].model_copy(update={"score": score}))
    return out[:top_k]
