"""``AnswerGenerator`` on any OpenAI-compatible Chat Completions endpoint (OpenAI, vLLM, Ollama...).

``POST {base_url}/chat/completions`` with ``model``, a system and a user message, ``temperature``
0 and ``max_tokens``; the reply is ``choices[0].message.content``. The prompt and the checks on
the reply are shared with Bedrock (``answer_prompt``): a sentence survives only with a citation
of a passage it was given and a quote found in that passage.

No retries here: the query API would rather fail fast and let the client retry.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import httpx
from pydantic import SecretStr

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


class OpenAICompatibleGenerator:
    """Answers with a chat model behind an OpenAI-compatible ``/chat/completions`` endpoint."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | SecretStr | None = None,
        timeout: float = 60.0,
        max_tokens: int = 1024,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        url = httpx.URL(base_url.rstrip("/"))
        self._shown_url = str(url.copy_with(username=None, password=None, query=None))
        self.model = model
        self.max_tokens = max_tokens
        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.Client(
            base_url=url, headers=headers, timeout=timeout, transport=transport
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAICompatibleGenerator:
        return cls(settings.openai_base_url, settings.openai_model, api_key=settings.openai_api_key)

    def __enter__(self) -> OpenAICompatibleGenerator:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def generate(self, question: str, passages: Sequence[SearchHit]) -> GeneratedAnswer:
        if not passages or not question.strip():
            return ABSTAINED
        started = time.monotonic()
        reply, finish_reason = self._complete(build_user_prompt(question, passages))
        answer = parse_answer(reply, passages)
        log.info(
            "answer.generated",
            backend="openai",
            model=self.model,
            passages=len(passages),
            sentences=len(answer.sentences),
            abstained=answer.abstained,
            finish_reason=finish_reason,
            latency_ms=round((time.monotonic() - started) * 1000),
        )
        return answer

    def request_body(self, user_prompt: str) -> dict[str, Any]:
        """The Chat Completions request for one question (exposed for tests and debugging)."""
        return {
            "model": self.model,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": user_prompt},
            ],
            "temperature": 0,
            "max_tokens": self.max_tokens,
        }

    def _complete(self, user_prompt: str) -> tuple[str | None, str | None]:
        """The model's reply text (None when it sent none) and its finish reason."""
        body = self._post("/chat/completions", self.request_body(user_prompt))
        try:
            choice = body["choices"][0]
            message = choice["message"]
        except (KeyError, IndexError, TypeError) as exc:
            raise GeneratorUnavailable(
                f"model endpoint {self._shown_url} answered without choices[0].message"
            ) from exc
        if not isinstance(message, dict) or message.get("refusal"):
            return None, str(choice.get("finish_reason"))
        return _content_text(message.get("content")), str(choice.get("finish_reason"))

    def _post(self, path: str, payload: dict[str, Any]) -> Any:
        """Send one request; map every failure to a retryable or a permanent error."""
        where = f"{self._shown_url}{path}"
        try:
            response = self._client.post(path, json=payload)
        except httpx.TimeoutException as exc:
            raise GeneratorUnavailable(f"model endpoint {where} timed out: {exc!r}") from exc
        except httpx.HTTPError as exc:
            raise GeneratorUnavailable(f"model endpoint {where} unreachable: {exc!r}") from exc
        status = response.status_code
        if is_retryable_status(status):
            raise GeneratorUnavailable(
                f"model endpoint {where} answered {status}: {_reason(response)}"
            )
        if status >= 400:
            raise GeneratorRequestRejected(
                f"model endpoint {where} refused the request ({status}): {_reason(response)}"
            )
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise GeneratorUnavailable(
                f"model endpoint {where} answered {status} with a body that is not JSON"
            ) from exc


def _content_text(content: Any) -> str | None:
    """A message's text: a string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text", "") for p in content if isinstance(p, dict)]
        return "".join(p for p in parts if isinstance(p, str)) or None
    return None


def _reason(response: httpx.Response) -> str:
    """The endpoint's own error message (OpenAI: ``{"error": {"message": ...}}``), shortened."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:300]
        for key in ("message", "detail", "error"):
            if body.get(key):
                return str(body[key])[:300]
    return str(body)[:200]
