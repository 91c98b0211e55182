"""The Bedrock reranker through the real boto3 ``bedrock-agent-runtime`` client, against a named
fake of the Rerank API's wire format (tests/fixtures/rerank_server.py)."""

from __future__ import annotations

import pytest

from datatorag import wiring
from datatorag.adapters.rerankers.bedrock import BedrockReranker, RerankRejected, RerankUnavailable
from datatorag.domain.models import SearchHit
from datatorag.settings import Settings
from tests.fixtures.rerank_server import FakeBedrockRerankServer, make_bedrock_agent_runtime_client

pytestmark = pytest.mark.integration

ARN = "arn:aws:bedrock:us-west-2::foundation-model/amazon.rerank-v1:0"


def _hit(n: int, text: str) -> SearchHit:
    return SearchHit(
        chunk_id=f"d{n}:v:0",
        doc_id=f"d{n}",
        title=f"Policy {n}",
        source_uri=f"file:///{n}.pdf",
        pages=[1],
        heading="Rules",
        text=text,
        score=0.5,
    )


PASSAGES = [
    _hit(0, "Offices close at 6 pm on Fridays."),
    _hit(1, "Birthing parents receive 16 weeks of paid parental leave."),
    _hit(2, "Parental leave must be taken within 12 months."),
]


def _reranker(server: FakeBedrockRerankServer) -> BedrockReranker:
    return BedrockReranker(make_bedrock_agent_runtime_client(server.url), ARN)


def test_request_follows_the_rerank_api_and_the_reply_orders_the_passages(
    fake_rerank_server: FakeBedrockRerankServer,
) -> None:
    question = "How many weeks of paid parental leave do birthing parents receive?"
    ranked = _reranker(fake_rerank_server).rerank(question, PASSAGES, 2)
    assert [h.chunk_id for h in ranked] == ["d1:v:0", "d2:v:0"]
    assert ranked[0].score > ranked[1].score
    assert fake_rerank_server.paths == ["/rerank"]
    (body,) = fake_rerank_server.requests
    assert body["queries"] == [{"type": "TEXT", "textQuery": {"text": question}}]
    assert body["sources"][1] == {
        "type": "INLINE",
        "inlineDocumentSource": {
            "type": "TEXT",
            "textDocument": {"text": "Policy 1 > Rules\n" + PASSAGES[1].text},
        },
    }
    assert body["rerankingConfiguration"] == {
        "type": "BEDROCK_RERANKING_MODEL",
        "bedrockRerankingConfiguration": {
            "numberOfResults": 2,
            "modelConfiguration": {"modelArn": ARN},
        },
    }


def test_no_passages_cost_no_call(fake_rerank_server: FakeBedrockRerankServer) -> None:
    assert _reranker(fake_rerank_server).rerank("anything", [], 5) == []
    assert fake_rerank_server.requests == []


@pytest.mark.parametrize(
    ("status", "kind", "error"),
    [
        (429, "ThrottlingException", RerankUnavailable),
        (500, "InternalServerException", RerankUnavailable),
        (503, "ServiceUnavailableException", RerankUnavailable),
        (403, "AccessDeniedException", RerankRejected),
        (400, "ValidationException", RerankRejected),
        (404, "ResourceNotFoundException", RerankRejected),
    ],
)
def test_errors_are_retryable_or_permanent(
    fake_rerank_server: FakeBedrockRerankServer, status: int, kind: str, error: type
) -> None:
    fake_rerank_server.fail(status, kind)
    with pytest.raises(error):
        _reranker(fake_rerank_server).rerank("parental leave", PASSAGES, 2)


def test_an_unreachable_endpoint_is_retryable() -> None:
    reranker = BedrockReranker(make_bedrock_agent_runtime_client("http://127.0.0.1:9"), ARN)
    with pytest.raises(RerankUnavailable):
        reranker.rerank("parental leave", PASSAGES, 2)


def test_wiring_picks_the_reranker_by_settings(fake_rerank_server: FakeBedrockRerankServer) -> None:
    assert wiring.reranker(Settings(_env_file=None)) is None  # type: ignore[call-arg]
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, reranker_backend="bedrock", aws_endpoint_url=fake_rerank_server.url
    )
    reranker = wiring.reranker(settings)
    assert isinstance(reranker, BedrockReranker)
    assert reranker.model_arn == settings.bedrock_rerank_model_arn
