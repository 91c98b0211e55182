"""Builds adapters from settings: the one place that knows which backend backs each port.

Services call these from their own ``bootstrap``; AWS libraries are imported only when chosen.
"""

from __future__ import annotations

from datatorag.ports import (
    ActivityLog,
    AnswerGenerator,
    BlobStore,
    Embeddings,
    EmployeeDirectory,
    Ocr,
    Queue,
    Reranker,
    SearchIndex,
    SecretStore,
)
from datatorag.settings import Settings


def blob_store(settings: Settings) -> BlobStore:
    if settings.blob_backend == "s3":
        from datatorag.adapters.blob.s3 import S3BlobStore

        return S3BlobStore.from_settings(settings)
    from datatorag.adapters.blob.local import LocalBlobStore

    return LocalBlobStore(settings.data_dir / "blobs")


def activity_log(settings: Settings, blobs: BlobStore | None = None) -> ActivityLog:
    """The question and audit log: SQLite beside the index, or objects in the (S3) blob store."""
    if settings.blob_backend == "s3":
        from datatorag.adapters.activity.blob import BlobActivityLog

        return BlobActivityLog(blobs or blob_store(settings))
    from datatorag.adapters.activity.sqlite import SqliteActivityLog

    return SqliteActivityLog(settings.data_dir / "activity.db")


def queue(settings: Settings, name: str) -> Queue:
    if settings.queue_backend == "sqs":
        from datatorag.adapters.queue.sqs import SqsQueue

        return SqsQueue.from_settings(settings, name)
    from datatorag.adapters.queue.sqlite import SqliteQueue

    # Redrive one delivery after the workers' own limit, so a worker sees the message once more,
    # marks its document failed and dead-letters it; the queue's redrive only catches crash loops.
    return SqliteQueue(
        settings.data_dir / "queues.db",
        name,
        max_receives=settings.max_receives + 1,
        visibility_timeout=settings.visibility_timeout_s,
    )


def search_index(settings: Settings) -> SearchIndex:
    if settings.index_backend == "opensearch":
        from datatorag.adapters.index.opensearch import OpenSearchIndex

        return OpenSearchIndex.from_settings(settings)
    from datatorag.adapters.index.sqlite import SqliteSearchIndex
    from datatorag.adapters.index.sqlite.ann import AnnConfig

    return SqliteSearchIndex(
        settings.data_dir / "index",
        snapshot_memory_bytes=settings.snapshot_memory_mb * 2**20,
        ann=AnnConfig(min_chunks=settings.ann_min_chunks, min_recall=settings.ann_min_recall),
    )


def search_threads(settings: Settings) -> int:
    """How many searches one API process should run at once. The embedded index searches in
    the process's own CPU, where more threads only convoy on the GIL (docs/benchmarks-load.md);
    OpenSearch searches wait on the network, where more overlap."""
    return 32 if settings.index_backend == "opensearch" else 2


def embeddings(settings: Settings, *, timeout_s: float = 60.0) -> Embeddings:
    """``timeout_s`` per request: batches of chunks may take a while, a question should not."""
    if settings.embeddings_backend == "sagemaker":
        from datatorag.adapters.embeddings.sagemaker import SageMakerEmbeddings

        return SageMakerEmbeddings.from_settings(settings, timeout_s=timeout_s)
    from datatorag.adapters.embeddings.http import HttpEmbeddings

    return HttpEmbeddings(
        settings.embedding_url, timeout=timeout_s, default_space=settings.embedding_space
    )


def reranker(settings: Settings) -> Reranker | None:
    """None: the fused order passes through (no local reranker measured better on the dev set)."""
    if settings.reranker_backend == "bedrock":
        from datatorag.adapters.rerankers.bedrock import BedrockReranker

        return BedrockReranker.from_settings(settings)
    return None


def answer_generator(settings: Settings) -> AnswerGenerator:
    if settings.generator_backend == "bedrock":
        from datatorag.adapters.generators.bedrock import BedrockGenerator

        return BedrockGenerator.from_settings(settings)
    if settings.generator_backend == "openai":
        from datatorag.adapters.generators.openai_compatible import OpenAICompatibleGenerator

        return OpenAICompatibleGenerator.from_settings(settings)
    from datatorag.adapters.generators.extractive import ExtractiveGenerator

    return ExtractiveGenerator()


def secret_store(settings: Settings, blobs: BlobStore | None = None) -> SecretStore:
    """Source credentials: Secrets Manager, or Fernet-encrypted objects in the blob store."""
    if settings.secrets_backend == "secretsmanager":
        from datatorag.adapters.secrets.secretsmanager import SecretsManagerStore

        return SecretsManagerStore.from_settings(settings)
    from datatorag.adapters.secrets.fernet import FernetSecretStore, local_key

    key = settings.secrets_key
    if key is None and settings.environment == "production":
        # Each task would make its own key: credentials one stored, another could not read.
        raise ValueError(
            "set DATATORAG_SECRETS_KEY, or DATATORAG_SECRETS_BACKEND=secretsmanager, in production"
        )
    raw = key.get_secret_value().encode() if key else local_key(settings.data_dir / "secrets.key")
    return FernetSecretStore(blobs or blob_store(settings), raw)


def employee_directory(settings: Settings) -> EmployeeDirectory:
    if settings.employees_backend == "dynamodb":
        from datatorag.adapters.employees.dynamodb import DynamoDbEmployeeDirectory

        return DynamoDbEmployeeDirectory.from_settings(settings)
    from datatorag.adapters.employees.sqlite import SqliteEmployeeDirectory

    return SqliteEmployeeDirectory(settings.data_dir / "employees.db")


def ocr(settings: Settings) -> Ocr | None:
    """The OCR for scanned PDF pages, or None when scans are to be rejected."""
    if settings.ocr_backend == "textract":
        from datatorag.adapters.ocr.textract import TextractOcr

        return TextractOcr.from_settings(settings)
    if settings.ocr_backend == "tesseract":
        from datatorag.adapters.ocr.tesseract import TesseractOcr

        return TesseractOcr()
    return None
