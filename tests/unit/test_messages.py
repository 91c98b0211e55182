import pytest

from datatorag.domain.errors import PermanentError
from datatorag.domain.messages import ChunksReady, DocumentFetched, DocumentRemoved, decode, encode

pytestmark = pytest.mark.unit


def test_each_message_round_trips_to_its_own_type():
    messages = [
        DocumentFetched(
            tenant="t",
            doc_id="d",
            version="v",
            blob_key="k",
            source_uri="file:///a.pdf",
            filename="a.pdf",
            media_type="application/pdf",
            metadata={"tags": ["x"]},
        ),
        ChunksReady(tenant="t", doc_id="d", version="v", chunks_key="k", chunk_count=3),
        DocumentRemoved(tenant="t", doc_id="d"),
    ]
    for message in messages:
        decoded = decode(encode(message))
        assert type(decoded) is type(message)
        assert decoded == message


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        '{"kind": "document.exploded", "tenant": "t", "doc_id": "d"}',
        '{"kind": "chunks.ready", "schema_version": 2, "tenant": "t", "doc_id": "d",'
        ' "version": "v", "chunks_key": "k", "chunk_count": 1}',
        '{"kind": "chunks.ready", "tenant": "t"}',
    ],
)
def test_unknown_or_malformed_messages_are_permanent_failures(body):
    with pytest.raises(PermanentError, match="unreadable queue message"):
        decode(body)
