"""``SageMakerEmbeddings`` against the ``Embeddings`` behaviour suite, over real HTTP.

The adapter's boto3 ``sagemaker-runtime`` client points at the real local embedding endpoint
(which also answers SageMaker's ``POST /endpoints/{name}/invocations``), so every call is a
signed botocore request, a real model forward pass and botocore's response parsing.

What only this adapter does (request splitting, the error mapping against a named fake)
sits in tests/integration/test_sagemaker_embeddings.py and tests/unit/test_sagemaker_errors.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from datatorag.adapters.embeddings.sagemaker import (
    SageMakerEmbeddings,
)
from tests.contracts.embeddings import EmbeddingsContract
from tests.fixtures.embedding import SAGEMAKER_ENDPOINT_NAME, sagemaker_runtime


@pytest.mark.integration
@pytest.mark.slow
class TestSageMakerEmbeddings(EmbeddingsContract):
    @pytest.fixture
    def embeddings(self, embedding_endpoint: str) -> Iterator[SageMakerEmbeddings]:
        adapter = SageMakerEmbeddings(
            sagemaker_runtime(embedding_endpoint), SAGEMAKER_ENDPOINT_NAME
        )
        yield adapter
        adapter.close()
