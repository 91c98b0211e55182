"""``python -m datatorag_embedding_endpoint``: serve the model on ``DATATORAG_EMBEDDING_PORT``.

Settings: ``DATATORAG_EMBEDDING_MODEL`` (a sentence-transformers model dir or cached hub name),
``DATATORAG_EMBEDDING_PRECISION`` (auto|fp32|bf16), ``DATATORAG_EMBEDDING_RUNTIME``
(auto|torch|onnx), ``DATATORAG_EMBEDDING_BATCH_SIZE``, ``DATATORAG_HOST``.
"""

from __future__ import annotations

import os

# torch's OpenMP threads otherwise spin between batches, taking the core the API needs:
# measured +27% throughput and p95 382 -> 28 ms for a lone query (docs/benchmarks.md).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import uvicorn

from datatorag.lifeline import end_with_parent
from datatorag.log import configure
from datatorag.settings import Settings
from datatorag_embedding_endpoint.app import create_app
from datatorag_embedding_endpoint.model import EmbeddingModel, load_model


def main() -> None:
    configure("embedding-endpoint")
    end_with_parent()
    settings = Settings()

    def load() -> EmbeddingModel:
        return load_model(
            settings.embedding_model,
            precision=settings.embedding_precision,
            batch_size=settings.embedding_batch_size,
            runtime=settings.embedding_runtime,
            cache_dir=settings.data_dir / "models",
        )

    app = create_app(load)
    # No access log: SageMaker pings every few seconds and the lines say nothing useful.
    uvicorn.run(app, host=settings.host, port=settings.embedding_port, access_log=False)


if __name__ == "__main__":
    main()
