"""What ``OpenSearchIndex`` sends to OpenSearch, checked against OpenSearch's documented shapes.

OpenSearch cannot run here, so the adapter talks, through the real ``opensearchpy.OpenSearch``
client and its real HTTP transport, to ``FakeOpenSearch`` (``tests/fixtures/opensearch_fake.py``):
a FAKE of the few REST endpoints the adapter uses, on 127.0.0.1, that records every request and
answers in OpenSearch's documented response formats. The behaviour of a real cluster is
tested by ``tests/contracts/test_opensearch_index.py`` and
``tests/integration/test_opensearch_cluster.py``.

Documentation the expected shapes come from:
- k-NN index and method: https://docs.opensearch.org/latest/vector-search/creating-vector-index/method/
  and https://docs.opensearch.org/latest/mappings/supported-field-types/knn-methods-engines/
- efficient filtering (``filter`` inside ``knn``):
  https://docs.opensearch.org/latest/vector-search/filter-search-knn/efficient-knn-filtering/
- spaces and scores: https://docs.opensearch.org/latest/mappings/supported-field-types/knn-spaces/
- bulk: https://docs.opensearch.org/latest/api-reference/document-apis/bulk/
- optimistic concurrency (``if_seq_no``/``if_primary_term``):
  https://docs.opensearch.org/latest/api-reference/document-apis/index-document/
- normalization processor:
  https://docs.opensearch.org/latest/search-plugins/search-pipelines/normalization-processor/
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from opensearchpy import OpenSearch

from datatorag.adapters.index.opensearch import OpenSearchIndex
from datatorag.adapters.index.opensearch.client import SearchIndexUnavailable, opensearch_client
from datatorag.adapters.index.opensearch.mappings import hybrid_pipeline_body, metadata_fields
from datatorag.adapters.index.opensearch.queries import MATCH_NONE, filter_clauses
from datatorag.domain.errors import PermanentError, RetryableError, VectorSpaceMismatch
from datatorag.domain.models import DocumentFacts, DocumentStatus
from datatorag.settings import Settings
from tests.contracts.search_index import (
    OTHER_SPACE,
    SPACE,
    TENANT,
    make_chunks,
    record,
    unit,
)
from tests.fixtures.opensearch_fake import FakeOpenSearch, Request

pytestmark = pytest.mark.unit

PREFIX = "t-"
CHUNKS = f"{PREFIX}chunks-{TENANT}"
DOCUMENTS = f"{PREFIX}documents"
MANIFESTS = f"{PREFIX}manifests"


@pytest.fixture
def fake(fake_opensearch: FakeOpenSearch) -> FakeOpenSearch:
    return fake_opensearch


@pytest.fixture
def index(fake: FakeOpenSearch) -> Iterator[OpenSearchIndex]:
    """Tenants in their own indices here; ``test_opensearch_pool.py`` has the pooled layout."""
    adapter = OpenSearchIndex(OpenSearch(hosts=[fake.url]), prefix=PREFIX, replicas=0, pooled=False)
    yield adapter
    adapter.close()


def swap(
    index: OpenSearchIndex, doc_id: str, version: str, texts: list[str], **fields: Any
) -> None:
    index.upsert_document(record(doc_id, version, **fields))
    assert index.replace_chunks(TENANT, doc_id, version, make_chunks(doc_id, version, texts))


def active(fake: FakeOpenSearch) -> dict[str, str]:
    manifest: dict[str, str] = fake.source(MANIFESTS, TENANT)["active"]
    return manifest


# -- index creation ------------------------------------------------------------------------------

# Method parameters per engine, from the "Supported methods" tables.
HNSW_SPACES = {
    "lucene": {"l2", "cosinesimil", "innerproduct"},
    "faiss": {"l2", "innerproduct", "hamming"},
}
HNSW_PARAMETERS = {
    "lucene": {"m", "ef_construction"},
    "faiss": {"m", "ef_construction", "ef_search"},
}


def check_knn_vector(mapping: dict[str, Any], dimension: int) -> None:
    """A ``knn_vector`` field with an HNSW method definition, as documented."""
    assert mapping["type"] == "knn_vector"
    assert mapping["dimension"] == dimension
    method = mapping["method"]
    assert set(method) <= {"name", "engine", "space_type", "parameters"}
    assert method["name"] == "hnsw"
    assert method["engine"] in HNSW_SPACES, "nmslib is deprecated"
    assert method["space_type"] in HNSW_SPACES[method["engine"]]
    parameters = method["parameters"]
    assert set(parameters) <= HNSW_PARAMETERS[method["engine"]]
    assert 2 <= parameters["m"] <= 100  # "Keep this value between 2 and 100"
    assert all(isinstance(v, int) and v > 0 for v in parameters.values())


def test_the_chunk_index_is_a_knn_index_with_an_hnsw_field(
    index: OpenSearchIndex, fake: FakeOpenSearch
) -> None:
    swap(index, "d1", "v1", ["Parental leave is sixteen weeks."])
    [create] = fake.calls("PUT", CHUNKS)
    settings, mappings = create.body["settings"], create.body["mappings"]
    assert settings["index"]["knn"] is True
    assert settings["index"]["number_of_replicas"] == 0
    check_knn_vector(mappings["properties"]["embedding"], 384)
    # Efficient filtering needs the lucene or faiss engine.
    assert mappings["properties"]["embedding"]["method"]["engine"] in {"lucene", "faiss"}
    analyzers = settings["analysis"]["analyzer"]
    for name in ("title", "heading", "search_text"):
        assert mappings["properties"][name]["type"] == "text"
        assert mappings["properties"][name]["analyzer"] in analyzers
    for name in ("doc_id", "source_id", "media_type", "version", "generation", "meta_keys"):
        assert mappings["properties"][name]["type"] == "keyword"
    templates = {next(iter(t)): next(iter(t.values())) for t in mappings["dynamic_templates"]}
    assert templates["metadata_text"]["mapping"]["type"] == "keyword"
    assert templates["metadata_number"]["mapping"]["type"] == "double"


def test_indices_exist_before_the_first_write(index: OpenSearchIndex, fake: FakeOpenSearch) -> None:
    swap(index, "d1", "v1", ["Text."])
    first_record = next(
        r for r in fake.requests if r.path[:2] == [DOCUMENTS, "_doc"] and r.method == "PUT"
    )
    assert fake.requests.index(fake.calls("PUT", DOCUMENTS)[0]) < fake.requests.index(first_record)
    assert first_record.params == {"op_type": "create"}  # put-if-absent
    assert fake.requests.index(fake.calls("PUT", CHUNKS)[0]) < fake.requests.index(
        fake.calls("POST", "_bulk")[0]
    )
    assert fake.requests.index(fake.calls("PUT", MANIFESTS)[0]) < fake.requests.index(
        next(r for r in fake.requests if r.path[:2] == [MANIFESTS, "_doc"] and r.method == "PUT")
    )
    assert fake.calls("DELETE") == []  # service roles may lack es:ESHttpDelete


# -- bulk writes ---------------------------------------------------------------------------------


def test_chunks_go_in_bulk_batches_of_500(index: OpenSearchIndex, fake: FakeOpenSearch) -> None:
    index.upsert_document(record("big", metadata={"country": "US", "grade": 7, "tags": ["a"]}))
    rng = np.random.default_rng(0)
    chunks = make_chunks(
        "big",
        "v1",
        [f"chunk {i}" for i in range(1201)],
        [rng.normal(size=8).tolist() for _ in range(1201)],
    )
    assert index.replace_chunks(TENANT, "big", "v1", chunks)

    bulks = fake.calls("POST", "_bulk")
    assert [len(b.body) // 2 for b in bulks] == [500, 500, 201]
    # Every batch waits for the next refresh (never forces one): all are searchable before the
    # record names their generation.
    assert [b.params.get("refresh") for b in bulks] == ["wait_for"] * 3
    lines = [line for b in bulks for line in b.body]
    actions, sources = lines[::2], lines[1::2]
    generation = sources[0]["generation"]
    for chunk, action, source in zip(chunks, actions, sources, strict=True):
        # An action line names exactly one operation, then its document follows.
        assert action == {
            "index": {"_index": CHUNKS, "_id": f"{generation}:{chunk.chunk_id}", "routing": TENANT}
        }
        assert source["tenant"] == TENANT
        assert source["chunk_id"] == chunk.chunk_id and source["generation"] == generation
        assert source["version"] == "v1" and source["doc_id"] == "big"
        # BM25 field: the title twice (weight 2), then heading and text (weight 1).
        assert source["search_text"] == f"Title of big\nTitle of big\n{chunk.heading}\n{chunk.text}"
        assert np.linalg.norm(source["embedding"]) == pytest.approx(1.0, abs=1e-5)
    assert sources[0]["meta_text"] == {"country": "US", "tags": ["a"]}
    assert sources[0]["meta_number"] == {"grade": 7.0}
    assert sources[0]["meta_keys"] == ["country", "grade", "tags"]
    assert all(s["generation"] == generation for s in sources)


@pytest.fixture
def backoffs(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The sleeps of opensearch-py's bulk helper between retries, recorded instead of slept."""
    slept: list[float] = []
    monkeypatch.setattr("opensearchpy.helpers.actions.time.sleep", slept.append)
    return slept


def test_a_chunk_the_cluster_rejects_with_429_is_sent_again(
    index: OpenSearchIndex, fake: FakeOpenSearch, backoffs: list[float]
) -> None:
    index.upsert_document(record("d1"))
    fake.bulk_item_failures = [(429, "rejected_execution_exception")]
    chunks = make_chunks("d1", "v1", ["First.", "Second."])
    assert index.replace_chunks(TENANT, "d1", "v1", chunks)

    first, again = fake.calls("POST", "_bulk")
    assert len(first.body) == 4 and again.body == first.body[:2]  # only the rejected chunk
    assert backoffs == [1]
    assert len(fake.indices[CHUNKS].docs) == 2


def test_chunks_still_rejected_with_429_are_a_retryable_error(
    index: OpenSearchIndex, fake: FakeOpenSearch, backoffs: list[float]
) -> None:
    index.upsert_document(record("d1"))
    fake.bulk_item_failures = [(429, "rejected_execution_exception")] * 4
    with pytest.raises(SearchIndexUnavailable, match="rejected_execution_exception"):
        index.replace_chunks(TENANT, "d1", "v1", make_chunks("d1", "v1", ["Only."]))
    assert backoffs == [1, 2, 4]  # exponential back-off, then it gives up
    [cleanup] = fake.calls("POST", CHUNKS, "_delete_by_query")  # its generation goes
    assert cleanup.body["query"]["bool"]["filter"][1]["terms"]["generation"]
    doc = index.get_document(TENANT, "d1")
    assert doc is not None and doc.status == DocumentStatus.FETCHED


def test_a_chunk_the_cluster_refuses_fails_the_document_for_good(
    index: OpenSearchIndex, fake: FakeOpenSearch, backoffs: list[float]
) -> None:
    index.upsert_document(record("d1"))
    fake.bulk_item_failures = [(400, "mapper_parsing_exception")]
    with pytest.raises(PermanentError, match="mapper_parsing_exception"):
        index.replace_chunks(TENANT, "d1", "v1", make_chunks("d1", "v1", ["Bad.", "Good."]))
    assert backoffs == []  # retrying cannot help
    assert fake.calls("POST", CHUNKS, "_delete_by_query")
    assert fake.calls("PUT", MANIFESTS, "_doc", TENANT) == []


def test_metadata_is_copied_by_type() -> None:
    fields = metadata_fields(
        {
            "s": "x",
            "i": 3,
            "f": 2.5,
            "b": True,
            "n": None,
            "l": [1],
            "ls": ["US", "GB"],  # a keyword array: a term query matches any item
            "o": {"a": 1},
            "bad key": "x",
        }
    )
    assert fields == {
        "meta_text": {"s": "x", "ls": ["US", "GB"]},
        "meta_number": {"i": 3.0, "f": 2.5, "b": 1.0},
        "meta_keys": ["s", "i", "f", "b", "l", "ls", "o"],
    }


# -- the swap ------------------------------------------------------------------------------------


def test_the_swap_indexes_then_commits_the_record_then_the_manifest(
    index: OpenSearchIndex, fake: FakeOpenSearch
) -> None:
    swap(index, "d1", "v1", ["Old text."])
    old = active(fake)["d1"]
    index.upsert_document(record("d1", "v2"))
    assert active(fake)["d1"] == old  # announcing v2 leaves v1 visible
    fake.requests.clear()

    chunks = make_chunks("d1", "v2", ["New text.", "More new text."])
    assert index.replace_chunks(TENANT, "d1", "v2", chunks, facts=DocumentFacts(page_count=4))

    steps = [(r.method, r.path[0], r.path[-1] if len(r.path) > 1 else "") for r in fake.requests]
    assert steps == [
        ("GET", DOCUMENTS, f"{TENANT}:d1"),  # is v2 still the version?
        ("GET", MANIFESTS, TENANT),  # where do the tenant's chunks live?
        ("POST", "_bulk", ""),  # new chunks, searchable before anything names them
        ("GET", DOCUMENTS, f"{TENANT}:d1"),
        ("PUT", DOCUMENTS, f"{TENANT}:d1"),  # record: indexed, active generation
        ("GET", MANIFESTS, TENANT),
        ("GET", DOCUMENTS, f"{TENANT}:d1"),
        ("PUT", MANIFESTS, TENANT),  # the commit point
    ]
    bulk, commit, manifest_write = fake.requests[2], fake.requests[4], fake.requests[7]
    new = bulk.body[1]["generation"]
    assert new != old
    assert bulk.params["refresh"] == "wait_for"
    # Conditional writes: optimistic concurrency on the record and on the manifest.
    for write in (commit, manifest_write):
        assert set(write.params) == {"if_seq_no", "if_primary_term"}
    assert commit.body["active_generation"] == new
    assert (commit.body["status"], commit.body["chunk_count"], commit.body["page_count"]) == (
        "indexed",
        2,
        4,
    )
    assert manifest_write.body["active"] == {"d1": new}
    [retired] = manifest_write.body["retired"]
    assert retired["doc_id"] == "d1" and retired["generation"] == old
    assert retired["at"] == pytest.approx(time.time(), abs=60)


def test_a_stale_version_writes_nothing(index: OpenSearchIndex, fake: FakeOpenSearch) -> None:
    index.upsert_document(record("d1", "v2"))
    fake.requests.clear()
    assert not index.replace_chunks(TENANT, "d1", "v1", make_chunks("d1", "v1", ["Stale."]))
    assert [(r.method, r.path) for r in fake.requests] == [
        ("GET", [DOCUMENTS, "_doc", f"{TENANT}:d1"])
    ]


def test_a_version_announced_mid_swap_wins_and_the_swap_cleans_up(
    index: OpenSearchIndex, fake: FakeOpenSearch
) -> None:
    swap(index, "d1", "v1", ["First."])
    visible = active(fake)
    index.upsert_document(record("d1", "v2"))

    def announce_v3(request: Request) -> None:
        """Another connector announces v3 just before the swap's conditional commit."""
        if request.method == "PUT" and request.path == [DOCUMENTS, "_doc", f"{TENANT}:d1"]:
            fake.hook = None
            newer = {**fake.source(DOCUMENTS, f"{TENANT}:d1"), "version": "v3"}
            fake.put_source(DOCUMENTS, f"{TENANT}:d1", newer)

    fake.hook = announce_v3
    fake.requests.clear()
    assert not index.replace_chunks(TENANT, "d1", "v2", make_chunks("d1", "v2", ["Second."]))

    generation = fake.calls("POST", "_bulk")[0].body[1]["generation"]
    [cleanup] = fake.calls("POST", CHUNKS, "_delete_by_query")
    assert cleanup.body == {
        "query": {
            "bool": {
                "filter": [{"term": {"tenant": TENANT}}, {"terms": {"generation": [generation]}}]
            }
        }
    }
    assert (cleanup.params["conflicts"], cleanup.params["routing"]) == ("proceed", TENANT)
    assert fake.calls("PUT", MANIFESTS, "_doc", TENANT) == []
    assert active(fake) == visible
    assert fake.source(DOCUMENTS, f"{TENANT}:d1")["version"] == "v3"


def test_deleting_retires_the_generation(index: OpenSearchIndex, fake: FakeOpenSearch) -> None:
    swap(index, "d1", "v1", ["Text."])
    generation = active(fake)["d1"]
    index.delete_document(TENANT, "d1")
    record_now = fake.source(DOCUMENTS, f"{TENANT}:d1")
    assert (record_now["status"], record_now["chunk_count"], record_now["active_generation"]) == (
        "deleted",
        0,
        None,
    )
    manifest = fake.source(MANIFESTS, TENANT)
    assert manifest["active"] == {}
    assert [r["generation"] for r in manifest["retired"]] == [generation]
    assert fake.calls("POST", CHUNKS, "_delete_by_query") == []  # within the grace: kept


def test_retired_generations_are_deleted_after_the_grace(fake: FakeOpenSearch) -> None:
    index = OpenSearchIndex(
        OpenSearch(hosts=[fake.url]), prefix=PREFIX, retire_grace_s=0.0, pooled=False
    )
    swap(index, "d1", "v1", ["One."])
    old = active(fake)["d1"]
    swap(index, "d1", "v2", ["Two."])
    [purge] = fake.calls("POST", CHUNKS, "_delete_by_query")
    assert purge.body == {
        "query": {
            "bool": {"filter": [{"term": {"tenant": TENANT}}, {"terms": {"generation": [old]}}]}
        }
    }
    assert fake.source(MANIFESTS, TENANT)["retired"] == []
    left = {d.source["generation"] for d in fake.indices[CHUNKS].docs.values()}
    assert left == {active(fake)["d1"]}


def test_set_status_is_conditional(index: OpenSearchIndex, fake: FakeOpenSearch) -> None:
    index.upsert_document(record("d1", "v2"))
    fake.requests.clear()
    assert not index.set_status(TENANT, "d1", DocumentStatus.FAILED, version="v1", reason="x")
    assert fake.calls("PUT") == []
    assert index.set_status(TENANT, "d1", DocumentStatus.FAILED, version="v2", reason="corrupt")
    [write] = fake.calls("PUT")
    assert set(write.params) == {"if_seq_no", "if_primary_term"}
    assert (write.body["status"], write.body["reason"]) == ("failed", "corrupt")


# -- queries -------------------------------------------------------------------------------------


FILTERS = {
    "source_id": "ftp",
    "metadata.country": ["US", "FR"],
    "effective_date": {"gte": "2024-01-01", "lte": "2024-12-31"},
    "metadata.grade": {"gt": 5},
}
TRANSLATED = [
    {"term": {"source_id": "ftp"}},
    {"terms": {"meta_text.country": ["US", "FR"]}},
    {"range": {"meta_text.effective_date": {"gte": "2024-01-01", "lte": "2024-12-31"}}},
    {"range": {"meta_number.grade": {"gt": 5.0}}},
]


def test_the_knn_query_filters_inside_the_knn_clause(
    index: OpenSearchIndex, fake: FakeOpenSearch
) -> None:
    swap(index, "d1", "v1", ["Text."])
    generation = active(fake)["d1"]
    fake.requests.clear()
    index.vector_search(TENANT, unit(1), 7, FILTERS)

    [search] = fake.calls("POST", CHUNKS, "_search")
    body = search.body
    assert set(body) <= {"size", "query", "_source", "track_total_hits"}  # no post_filter
    assert body["size"] == 7
    [(field_name, knn)] = body["query"]["knn"].items()
    assert field_name == "embedding"
    assert set(knn) == {"vector", "k", "filter"}
    assert len(knn["vector"]) == 384 and knn["k"] >= 7
    assert knn["filter"] == {
        "bool": {
            "filter": [
                {"term": {"tenant": TENANT}},
                {"terms": {"generation": [generation]}},
                *TRANSLATED,
            ]
        }
    }
    assert search.params["routing"] == TENANT
    assert body["_source"] == {"excludes": ["embedding*"]}


def test_the_bm25_query_is_words_with_the_same_filters(
    index: OpenSearchIndex, fake: FakeOpenSearch
) -> None:
    swap(index, "d1", "v1", ["Text."])
    generation = active(fake)["d1"]
    fake.requests.clear()
    index.keyword_search(TENANT, 'How do "vacations" accrue? heading:*', 5, FILTERS)

    [search] = fake.calls("POST", CHUNKS, "_search")
    query = search.body["query"]["bool"]
    assert query["must"] == [
        {"match": {"search_text": {"query": "vacations accrue heading", "operator": "or"}}}
    ]
    assert query["filter"] == [
        {"term": {"tenant": TENANT}},
        {"terms": {"generation": [generation]}},
        *TRANSLATED,
    ]
    assert search.body["size"] == 5 and search.params["routing"] == TENANT


def test_an_unknown_tenant_sends_no_search(index: OpenSearchIndex, fake: FakeOpenSearch) -> None:
    assert index.keyword_search("nobody", "leave", 5) == []
    assert index.vector_search("nobody", unit(1), 5) == []
    assert index.list_documents("nobody") == []
    assert [r for r in fake.requests if r.path[-1] == "_search"] == []


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"doc_id": "d1"}, [{"term": {"doc_id": "d1"}}]),
        ({"media_type": ["a", "b"]}, [{"terms": {"media_type": ["a", "b"]}}]),
        ({"media_type": []}, [MATCH_NONE]),
        ({"source_id": {"gte": "b"}}, [{"range": {"source_id": {"gte": "b"}}}]),
        ({"source_id": {"gte": 1}}, [MATCH_NONE]),  # a string field never compares with numbers
        ({"metadata.country": "US"}, [{"term": {"meta_text.country": "US"}}]),
        ({"metadata.grade": 20}, [{"term": {"meta_number.grade": 20.0}}]),
        ({"metadata.flag": True}, [{"term": {"meta_number.flag": 1.0}}]),  # True == 1
        ({"metadata.k": None}, [{"bool": {"must_not": [{"term": {"meta_keys": "k"}}]}}]),
        (
            {"metadata.k": ["US", 1]},
            [
                {
                    "bool": {
                        "should": [
                            {"terms": {"meta_text.k": ["US"]}},
                            {"terms": {"meta_number.k": [1.0]}},
                        ],
                        "minimum_should_match": 1,
                    }
                }
            ],
        ),
        ({"metadata.k": {"gte": "2024", "lt": 5}}, [MATCH_NONE]),
        (
            {"metadata.k": {"gt": 1, "lte": 2.5}},
            [{"range": {"meta_number.k": {"gt": 1.0, "lte": 2.5}}}],
        ),
        (
            {"metadata.countries": {"missing_or_in": ["GB"]}},
            [
                {
                    "bool": {
                        "should": [
                            {"bool": {"must_not": [{"term": {"meta_keys": "countries"}}]}},
                            {"terms": {"meta_text.countries": ["GB"]}},
                        ],
                        "minimum_should_match": 1,
                    }
                }
            ],
        ),
        ({}, []),
    ],
    ids=repr,
)
def test_filters_translate_to_bool_clauses(filters: dict[str, Any], expected: list[Any]) -> None:
    assert filter_clauses(filters) == expected


def test_invalid_filters_are_refused_before_any_request(
    index: OpenSearchIndex, fake: FakeOpenSearch
) -> None:
    with pytest.raises(ValueError, match="unknown filter field"):
        index.vector_search(TENANT, unit(1), 5, {"colour": "red"})
    assert fake.requests == []


def test_hits_report_cosine_and_bm25_scores(index: OpenSearchIndex, fake: FakeOpenSearch) -> None:
    swap(index, "d1", "v1", ["Text."])
    source = {
        "chunk_id": "d1:v1:0",
        "doc_id": "d1",
        "title": "Leave",
        "source_uri": "file:///leave.pdf",
        "pages": [2],
        "heading": "Section 0",
        "text": "Text.",
    }
    fake.hits = [{"_index": CHUNKS, "_id": "g:d1:v1:0", "_score": 0.9, "_source": source}]
    [hit] = index.vector_search(TENANT, unit(1), 1)
    assert hit.score == pytest.approx(0.8)  # lucene cosinesimil: (1 + cos) / 2
    assert (hit.chunk_id, hit.title, hit.pages, hit.text) == ("d1:v1:0", "Leave", [2], "Text.")
    [hit] = index.keyword_search(TENANT, "text", 1)
    assert hit.score == pytest.approx(0.9)


def test_list_documents_sorts_and_pages(index: OpenSearchIndex, fake: FakeOpenSearch) -> None:
    index.upsert_document(record("d1"))
    fake.requests.clear()
    index.list_documents(TENANT, source_id="ftp", status=DocumentStatus.INDEXED, limit=2, offset=4)
    refresh, search = fake.requests
    assert (refresh.method, refresh.path) == ("POST", [DOCUMENTS, "_refresh"])
    assert search.body == {
        "query": {
            "bool": {
                "filter": [
                    {"term": {"tenant": TENANT}},
                    {"term": {"source_id": "ftp"}},
                    {"term": {"status": "indexed"}},
                ]
            }
        },
        "sort": [{"source_uri": "asc"}, {"doc_id": "asc"}],
        "track_total_hits": False,
        "from": 4,
        "size": 2,
    }


# -- failures ------------------------------------------------------------------------------------


def test_slow_searches_are_retried_then_refused(fake: FakeOpenSearch) -> None:
    index = OpenSearchIndex(
        OpenSearch(hosts=[fake.url]), prefix=PREFIX, retire_grace_s=0.2, pooled=False
    )
    swap(index, "d1", "v1", ["Text."])
    fake.search_delay = 0.15  # over half the grace: the generations might be purged meanwhile
    fake.requests.clear()
    with pytest.raises(SearchIndexUnavailable, match="longer than"):
        index.keyword_search(TENANT, "text", 5)
    assert len(fake.calls("POST", CHUNKS, "_search")) == 3


def test_an_overloaded_cluster_is_a_retryable_error(
    index: OpenSearchIndex, fake: FakeOpenSearch
) -> None:
    swap(index, "d1", "v1", ["Text."])
    fake.fail_search = 429
    with pytest.raises(RetryableError, match="429"):
        index.keyword_search(TENANT, "text", 5)


def test_an_unreachable_cluster_is_a_retryable_error() -> None:
    index = OpenSearchIndex(OpenSearch(hosts=["http://127.0.0.1:1"], max_retries=0))
    with pytest.raises(SearchIndexUnavailable, match="did not answer"):
        index.get_document(TENANT, "d1")


# -- settings and the hybrid pipeline ------------------------------------------------------------


def test_credentials_in_the_url_become_basic_auth(fake: FakeOpenSearch) -> None:
    url = fake.url.replace("http://", "http://admin:s3cret@")
    index = OpenSearchIndex(opensearch_client(Settings(opensearch_url=url)), prefix=PREFIX)
    index.get_document(TENANT, "d1")
    expected = "Basic " + base64.b64encode(b"admin:s3cret").decode()
    headers = {k.lower(): v for k, v in fake.requests[0].headers.items()}
    assert headers["authorization"] == expected


def test_from_settings_needs_a_url() -> None:
    with pytest.raises(Exception, match="DATATORAG_OPENSEARCH_URL"):
        OpenSearchIndex.from_settings(Settings(opensearch_url=None))


def test_the_hybrid_pipeline_follows_the_normalization_processor_docs(
    index: OpenSearchIndex, fake: FakeOpenSearch
) -> None:
    assert index.ensure_hybrid_pipeline(weights=(0.3, 0.7)) == f"{PREFIX}hybrid"
    [put] = fake.calls("PUT", "_search", "pipeline", f"{PREFIX}hybrid")
    [processor] = put.body["phase_results_processors"]
    assert processor == {
        "normalization-processor": {
            "normalization": {"technique": "min_max"},
            "combination": {"technique": "arithmetic_mean", "parameters": {"weights": [0.3, 0.7]}},
        }
    }
    for bad in ((0.5, 0.6), (1.2, -0.2)):
        with pytest.raises(ValueError, match="weights"):
            hybrid_pipeline_body(bad)


def test_purge_finishes_a_swap_that_stopped_before_the_manifest(
    index: OpenSearchIndex, fake: FakeOpenSearch
) -> None:
    swap(index, "d1", "v1", ["Text."])
    committed = {**fake.source(DOCUMENTS, f"{TENANT}:d1"), "active_generation": "g-crashed"}
    fake.put_source(DOCUMENTS, f"{TENANT}:d1", committed)  # step 3 done, then the process died
    fake.hits = [
        {
            "_index": DOCUMENTS,
            "_id": f"{TENANT}:d1",
            "_score": None,
            "_source": {"doc_id": "d1", "active_generation": "g-crashed"},
            "sort": ["d1"],
        }
    ]
    fake.requests.clear()
    index.purge(TENANT)

    walk = fake.calls("POST", DOCUMENTS, "_search")[0].body
    assert walk["query"] == {"bool": {"filter": [{"term": {"tenant": TENANT}}]}}
    assert walk["sort"] == [{"doc_id": "asc"}]
    assert active(fake) == {"d1": "g-crashed"}
    sweep = fake.calls("POST", CHUNKS, "_delete_by_query")[-1].body["query"]["bool"]
    assert sweep["filter"] == [
        {"term": {"tenant": TENANT}},
        {"range": {"indexed_at": {"lt": "now-3600s"}}},
    ]
    [known] = sweep["must_not"]
    assert "g-crashed" in known["terms"]["generation"]


def test_the_manifest_records_the_space_and_nothing_crosses_it(
    index: OpenSearchIndex, fake: FakeOpenSearch
) -> None:
    index.upsert_document(record("d1"))
    chunks = make_chunks("d1", "v1", ["Parental leave is sixteen weeks."])
    assert index.replace_chunks(TENANT, "d1", "v1", chunks, space=SPACE)
    assert fake.source(MANIFESTS, TENANT)["space"] == SPACE
    assert index.vector_space(TENANT) == SPACE
    index.upsert_document(record("d2"))
    fake.requests.clear()
    other = make_chunks("d2", "v1", ["Wombat allowance."])
    with pytest.raises(VectorSpaceMismatch):
        index.replace_chunks(TENANT, "d2", "v1", other, space=OTHER_SPACE)
    assert [r for r in fake.requests if r.method != "GET"] == []  # nothing indexed or written
    with pytest.raises(VectorSpaceMismatch):
        index.vector_search(TENANT, unit(1), 5, space=OTHER_SPACE)
    assert [r for r in fake.requests if r.path[-1] == "_search"] == []  # never compared
    assert fake.source(DOCUMENTS, f"{TENANT}:d2")["status"] != "indexed"
