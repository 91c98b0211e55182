"""What only ``SageMakerEmbeddings`` does, against the real local embedding endpoint over HTTP.

The behaviour every Embeddings adapter shares is tests/contracts/test_sagemaker_embeddings.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from datatorag.adapters.embeddings.sagemaker import EmbeddingRequestRejected, SageMakerEmbeddings
from datatorag.domain.errors import PermanentError
from tests.fixtures.embedding import SAGEMAKER_ENDPOINT_NAME, sagemaker_runtime

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_requests_are_split_and_the_order_kept(embedding_endpoint: str) -> None:
    texts = [f"Clause {i}: overtime is paid at time and a half." for i in range(9)]
    whole = SageMakerEmbeddings(sagemaker_runtime(embedding_endpoint), SAGEMAKER_ENDPOINT_NAME)
    split = SageMakerEmbeddings(
        sagemaker_runtime(embedding_endpoint), SAGEMAKER_ENDPOINT_NAME, max_inputs=2
    )
    np.testing.assert_allclose(split.embed(texts), whole.embed(texts), atol=1e-3)


def test_an_endpoint_validation_error_is_permanent(embedding_endpoint: str) -> None:
    # The endpoint takes at most 256 texts a request: it answers 400 ValidationError.
    adapter = SageMakerEmbeddings(
        sagemaker_runtime(embedding_endpoint), SAGEMAKER_ENDPOINT_NAME, max_inputs=300
    )
    with pytest.raises(EmbeddingRequestRejected, match="ValidationError") as caught:
        adapter.embed(["text"] * 257)
    assert isinstance(caught.value, PermanentError)
