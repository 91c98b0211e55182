"""The HTTP side: the SageMaker inference container contract, served by FastAPI.

Response shape: the Hugging Face inference toolkit's ``sentence-embeddings`` task (what a Hugging
Face DLC runs for a sentence-transformers model with ``HF_TASK=sentence-embeddings``) answers
``{"embeddings": model.encode(inputs).tolist()}``; this endpoint answers the same. (The TEI-based
Hugging Face Embedding Container answers a bare ``[[...], ...]``; ``HttpEmbeddings`` reads both.)

- ``GET /ping``: 200 once the model is loaded, with ``{"status": "ready", "model", "space",
  "dimension", "max_seq_length", "runtime", "precision", "batch_size", "small_batch_runtime"}``
  (``small_batch_runtime``: the runtime, fp32, of passes of a few texts where it differs, else
  null; both runtimes embed in the same space); 503 while it loads, 500 when loading failed.
  ``space`` names the embedding space (``datatorag.domain.spaces``).
- ``POST /invocations`` with ``{"inputs": ["text", ...]}`` (at most 256 texts, 6 MB): 200 with
  ``{"embeddings": [[float, ...], ...], "space": "<model>/<weights>/<dimension>"}``, one
  L2-normalised vector per input, in order. ``space`` travels with every answer, so a client
  can never file vectors of a swapped model under the old one (readers of the DLC's shape
  ignore the extra key).
- ``POST /endpoints/{name}/invocations``: the same handler, so boto3's ``sagemaker-runtime``
  ``invoke_endpoint`` works with ``endpoint_url`` pointed here (the name is ignored).
- ``GET /stats``: batching counters (requests, texts, batches, forward passes).

Errors are ``{"error": code, "message": text}`` with an ``x-amzn-ErrorType`` header, so boto3
raises a ``ClientError`` carrying the code and message: 400 ``ValidationError`` for a bad body,
413 ``PayloadTooLarge``, 503 ``ServiceUnavailable`` while loading or overloaded, 500 on a model
failure.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from datatorag_embedding_endpoint.batcher import Batcher, BatcherStopped, Overloaded
from datatorag_embedding_endpoint.model import EmbeddingModel

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 6 * 1024 * 1024  # SageMaker real-time endpoints cap a request body at 6 MB
MAX_INPUTS = 256  # texts per request; more costs a client timeout, not a useful batch
_JSON_IN_WORKER = 64  # encode responses with more vectors off the event loop


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400, code: str = "ValidationError") -> None:
        super().__init__(message)
        self.message, self.status, self.code = message, status, code


@dataclass
class _State:
    model: EmbeddingModel | None = None
    batcher: Batcher | None = None
    error: str | None = None
    ready: threading.Event = field(default_factory=threading.Event)


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"error": code, "message": message}, status_code=status, headers={"x-amzn-ErrorType": code}
    )


def create_app(
    load: Callable[[], EmbeddingModel],
    *,
    max_inputs: int = MAX_INPUTS,
    max_body_bytes: int = MAX_BODY_BYTES,
    max_wait_s: float = 0.002,
) -> FastAPI:
    """The endpoint; ``load`` runs in a background thread so ``/ping`` answers 503 meanwhile."""
    state = _State()

    def load_in_background() -> None:
        try:
            model = load()
            batcher = Batcher(
                model.embed,
                max_batch=model.batch_size,
                max_wait_s=max_wait_s,
                forward_passes=model.forward_passes,
            )
            batcher.start()
            state.model, state.batcher = model, batcher
        except Exception as exc:
            log.exception("loading the embedding model failed")
            state.error = f"{type(exc).__name__}: {exc}"
        finally:
            state.ready.set()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        threading.Thread(target=load_in_background, name="model-loader", daemon=True).start()
        yield
        if state.batcher is not None:
            state.batcher.stop()

    app = FastAPI(title="DatatoRAG embedding endpoint", lifespan=lifespan)
    app.state.endpoint = state

    @app.get("/ping")
    async def ping() -> JSONResponse:
        if state.error is not None:
            return JSONResponse({"status": "failed", "error": state.error}, status_code=500)
        if state.model is None:
            return JSONResponse({"status": "loading"}, status_code=503)
        return JSONResponse({"status": "ready", **_model_info(state.model)})

    @app.get("/stats")
    async def stats() -> JSONResponse:
        if state.batcher is None:
            return JSONResponse({"status": "loading"}, status_code=503)
        return JSONResponse(state.batcher.stats())

    async def invoke(request: Request) -> Response:
        if state.batcher is None:
            reason = state.error or "the model is still loading"
            return _error(503, "ServiceUnavailable", reason)
        try:
            texts = _parse_inputs(await _read_body(request, max_body_bytes), max_inputs)
        except BadRequest as exc:
            return _error(exc.status, exc.code, exc.message)
        try:
            vectors = await state.batcher.embed(texts) if texts else None
        except (Overloaded, BatcherStopped) as exc:
            return _error(503, "ServiceUnavailable", str(exc))
        except Exception as exc:  # noqa: BLE001 - the batcher logged the traceback for the batch
            return _error(500, "ModelError", f"embedding failed: {type(exc).__name__}: {exc}")
        rows: list[list[float]] = [] if vectors is None else vectors.tolist()
        space = state.model.space if state.model is not None else None
        body = (
            await asyncio.to_thread(_encode, rows, space)
            if len(rows) > _JSON_IN_WORKER
            else _encode(rows, space)
        )
        return Response(
            body,
            media_type="application/json",
            headers={"x-Amzn-Invoked-Production-Variant": "AllTraffic"},
        )

    app.add_api_route("/invocations", invoke, methods=["POST"])
    app.add_api_route("/endpoints/{endpoint_name}/invocations", invoke, methods=["POST"])
    return app


def _model_info(model: EmbeddingModel) -> dict[str, Any]:
    return {
        "model": model.name,
        "space": model.space,
        "dimension": model.dimension,
        "max_seq_length": model.max_seq_length,
        "runtime": model.runtime,
        "precision": model.precision,
        "batch_size": model.batch_size,
        "small_batch_runtime": model.small_batch_runtime,
    }


def _encode(rows: list[list[float]], space: str | None) -> bytes:
    return json.dumps({"embeddings": rows, "space": space}, separators=(",", ":")).encode()


async def _read_body(request: Request, limit: int) -> bytes:
    too_large = BadRequest(
        f"request body is larger than {limit} bytes; send fewer or shorter texts per request",
        status=413,
        code="PayloadTooLarge",
    )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > limit:
            raise too_large
    return bytes(body)


def _parse_inputs(body: bytes, max_inputs: int) -> list[str]:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(
            f'body is not valid JSON ({exc}); send {{"inputs": ["text", ...]}}'
        ) from exc
    if not isinstance(payload, dict) or "inputs" not in payload:
        raise BadRequest('body must be a JSON object with an "inputs" list: {"inputs": ["text"]}')
    inputs = payload["inputs"]
    if not isinstance(inputs, list):
        raise BadRequest(f'"inputs" must be a list of strings, not {type(inputs).__name__}')
    if len(inputs) > max_inputs:
        raise BadRequest(
            f"too many inputs: {len(inputs)} in one request, at most {max_inputs}; "
            "split them over several requests"
        )
    for i, text in enumerate(inputs):
        if not isinstance(text, str):
            raise BadRequest(f'"inputs"[{i}] is {type(text).__name__}, not a string')
    return [_valid_unicode(text) for text in inputs]


def _valid_unicode(text: str) -> str:
    """JSON may carry lone surrogates (``"\\ud800"``); the tokenizer cannot: make them U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text
