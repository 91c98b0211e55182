"""Tenant isolation: no endpoint, filter, id or malformed input returns another tenant's data.

Two tenants hold look-alike HR documents on the same topics (so a leak would rank well), each
marked with a word only its own documents use. Both also hold a document with the same id: the
same folder path ingested into each (ids derive from the source URI), with different text. A
hit's doc id alone cannot prove isolation then, so every check also looks for the other
tenant's marker word in what comes back.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datatorag_query_api.bootstrap import key_store
from datatorag_query_api.keys import DEFAULT_CACHE_TTL_S

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROBLEM = "application/problem+json"
MODES = ("hybrid", "vector", "keyword")


@dataclass
class Tenant:
    name: str
    key: str
    marker: str  # a word only this tenant's documents contain
    api: httpx.Client
    source_id: str = ""
    upload_id: str = ""
    common_id: str = ""  # the same id exists in the other tenant
    doc_ids: set[str] = field(default_factory=set)  # every document the tenant owns


@dataclass
class Pair:
    alpha: Tenant
    beta: Tenant
    url: str
    others: dict[str, Tenant] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.others = {self.alpha.name: self.beta, self.beta.name: self.alpha}

    def other(self, tenant: Tenant) -> Tenant:
        return self.others[tenant.name]


def policy_text(company: str, marker: str, weeks: int) -> str:
    return (
        f"# {company} parental leave\n\n"
        f"At {company} the {marker} plan gives birthing parents {weeks} weeks of paid parental "
        f"leave and other parents {weeks - 4} weeks. Leave starts within a year of the birth.\n\n"
        f"## Paid time off\n\nEmployees of {company} accrue {weeks + 6} days of paid time off a "
        f"year under the {marker} scheme. Unused days carry over once.\n"
    )


def handbook_text(company: str, marker: str) -> bytes:
    return (
        f"# {company} travel and expenses\n\nThe {marker} travel policy reimburses economy "
        f"flights, hotels up to 200 dollars a night and meals on business trips at {company}.\n"
    ).encode()


def ingest(running_stack: Any, folder: Any, tenant: Tenant) -> None:
    summary = running_stack.ingest(folder, tenant.name)
    assert summary["exit_code"] == 0 and summary["indexed"] == 1, summary
    tenant.source_id = summary["source_id"]
    docs = tenant.api.get("/v1/documents", params={"source_id": tenant.source_id}).json()
    tenant.common_id = docs["documents"][0]["doc_id"]
    tenant.doc_ids.add(tenant.common_id)


def upload(owner: Tenant, name: str, data: bytes, **fields: str) -> httpx.Response:
    response = owner.api.post("/v1/documents", files={"file": (name, data)}, data=fields)
    if response.status_code == 202:
        owner.doc_ids.add(response.json()["doc_id"])
    return response


def wait_for(tenant: Tenant, doc_id: str, status: str) -> None:
    deadline = time.monotonic() + 90
    while tenant.api.get(f"/v1/documents/{doc_id}").json()["status"] != status:
        assert time.monotonic() < deadline, f"{doc_id} not {status} in time"
        time.sleep(0.3)


def upload_and_wait(tenant: Tenant) -> None:
    response = upload(tenant, "handbook.md", handbook_text(tenant.name, tenant.marker))
    assert response.status_code == 202, response.text
    tenant.upload_id = response.json()["doc_id"]
    wait_for(tenant, tenant.upload_id, "indexed")


@pytest.fixture(scope="module")
def pair(running_stack, tmp_path_factory) -> Iterator[Pair]:
    def tenant(name: str, marker: str) -> Tenant:
        key = running_stack.key(name)
        api = httpx.Client(base_url=running_stack.url, headers={"X-API-Key": key}, timeout=30)
        return Tenant(name, key, marker, api)

    alpha, beta = tenant("iso-alpha", "aardvark"), tenant("iso-beta", "bandicoot")
    folder = tmp_path_factory.mktemp("iso-common")
    (folder / "policy.md").write_text(policy_text("Alpha Corp", alpha.marker, 14))
    ingest(running_stack, folder, alpha)
    (folder / "policy.md").write_text(policy_text("Beta Ltd", beta.marker, 20))
    ingest(running_stack, folder, beta)
    assert alpha.common_id == beta.common_id  # the same id, in two tenants
    upload_and_wait(alpha)
    upload_and_wait(beta)
    try:
        yield Pair(alpha, beta, running_stack.url)
    finally:
        alpha.api.close()
        beta.api.close()


def assert_problem(response: httpx.Response, *statuses: int) -> None:
    assert response.status_code in statuses, (response.status_code, response.text)
    assert response.headers["content-type"] == PROBLEM, response.headers
    body = response.json()
    assert body["status"] == response.status_code and body["title"]


def assert_own(pair: Pair, tenant: Tenant, hits: list[dict[str, Any]]) -> None:
    other = pair.other(tenant)
    for hit in hits:
        assert hit["doc_id"] in tenant.doc_ids, hit
        assert other.marker not in hit["text"].lower() + hit["title"].lower(), hit
        assert other.name not in hit["source_uri"], hit


def both(pair: Pair) -> list[Tenant]:
    return [pair.alpha, pair.beta]


# -- search and answers ------------------------------------------------------------------------


def test_each_tenant_finds_its_own_documents(pair):
    for tenant in both(pair):
        for mode in MODES:
            response = tenant.api.post(
                "/v1/search", json={"query": f"{tenant.marker} parental leave", "mode": mode}
            )
            assert response.status_code == 200, response.text
            hits = response.json()["hits"]
            assert hits and any(tenant.marker in h["text"] for h in hits), (tenant.name, mode)
            assert_own(pair, tenant, hits)


def test_search_never_crosses_tenants_in_any_mode_or_filter(pair):
    for tenant in both(pair):
        other = pair.other(tenant)
        filters: list[dict[str, Any] | None] = [
            None,
            {"doc_id": other.upload_id},
            {"doc_id": [other.upload_id, other.common_id]},
            {"doc_id": other.common_id},
            {"source_id": other.source_id},
            {"source_id": "upload"},
            {"media_type": "text/markdown"},
            {"metadata.path": "handbook.md"},
        ]
        for mode in MODES:
            for where in filters:
                response = tenant.api.post(
                    "/v1/search",
                    json={
                        "query": f"{other.marker} travel parental leave",
                        "mode": mode,
                        "filters": where,
                        "top_k": 50,
                    },
                )
                assert response.status_code == 200, response.text
                assert_own(pair, tenant, response.json()["hits"])
        # Filtered on the other tenant's upload id: nothing at all.
        response = tenant.api.post(
            "/v1/search", json={"query": other.marker, "filters": {"doc_id": other.upload_id}}
        )
        assert response.json()["hits"] == []


def test_answers_cite_only_the_callers_documents(pair):
    for tenant in both(pair):
        other = pair.other(tenant)
        for where in (None, {"doc_id": other.upload_id}, {"source_id": other.source_id}):
            response = tenant.api.post(
                "/v1/query",
                json={
                    "question": f"What does the {other.marker} plan give parents?",
                    "filters": where,
                },
            )
            assert response.status_code == 200, response.text
            body = response.json()
            assert_own(pair, tenant, body["hits"])
            assert {c["doc_id"] for c in body["citations"]} <= tenant.doc_ids
            assert other.marker not in body["answer"].lower()
            assert all(other.marker not in c["quote"].lower() for c in body["citations"])


# -- documents -----------------------------------------------------------------------------------


def test_the_other_tenants_documents_are_404_and_survive_a_delete(pair):
    alpha, beta = pair.alpha, pair.beta
    assert_problem(beta.api.get(f"/v1/documents/{alpha.upload_id}"), 404)
    assert_problem(beta.api.delete(f"/v1/documents/{alpha.upload_id}"), 404)
    own = alpha.api.get(f"/v1/documents/{alpha.upload_id}")
    assert own.status_code == 200 and own.json()["status"] == "indexed"
    assert own.json()["tenant"] == alpha.name
    hits = alpha.api.post("/v1/search", json={"query": alpha.marker, "mode": "keyword"}).json()
    assert alpha.upload_id in {h["doc_id"] for h in hits["hits"]}
    # The shared id is each tenant's own document: reading it shows the caller's copy only.
    for tenant in both(pair):
        doc = tenant.api.get(f"/v1/documents/{tenant.common_id}").json()
        assert doc["tenant"] == tenant.name


def test_deleting_a_shared_id_removes_only_the_callers_copy(pair, running_stack, tmp_path):
    alpha, beta = pair.alpha, pair.beta
    (tmp_path / "note.md").write_text("# Note\n\nThe wallaby rota covers the front desk.\n")
    for tenant in both(pair):
        summary = running_stack.ingest(tmp_path, tenant.name)
        assert summary["exit_code"] == 0 and summary["indexed"] == 1, summary
    shared = alpha.api.get("/v1/documents", params={"source_id": summary["source_id"]}).json()
    doc_id = shared["documents"][0]["doc_id"]
    alpha.doc_ids.add(doc_id)
    beta.doc_ids.add(doc_id)
    deleted = beta.api.delete(f"/v1/documents/{doc_id}")
    assert deleted.status_code == 200 and deleted.json()["status"] == "deleted"
    assert alpha.api.get(f"/v1/documents/{doc_id}").json()["status"] == "indexed"
    mine = alpha.api.post("/v1/search", json={"query": "wallaby rota", "mode": "keyword"})
    assert doc_id in {h["doc_id"] for h in mine.json()["hits"]}
    gone = beta.api.post("/v1/search", json={"query": "wallaby rota", "mode": "keyword"})
    assert gone.json()["hits"] == []


def test_listing_and_paging_show_only_the_callers_documents(pair):
    for tenant in both(pair):
        other = pair.other(tenant)
        seen: list[dict[str, Any]] = []
        offset: int | None = 0
        while offset is not None:
            page = tenant.api.get("/v1/documents", params={"limit": 1, "offset": offset}).json()
            seen += page["documents"]
            assert len(page["documents"]) <= 1
            offset = page["next_offset"]
        assert {d["tenant"] for d in seen} == {tenant.name}
        assert tenant.upload_id in {d["doc_id"] for d in seen}
        assert other.upload_id not in {d["doc_id"] for d in seen}
        assert all(other.name not in d["source_uri"] for d in seen)
        beyond = tenant.api.get("/v1/documents", params={"offset": 10_000}).json()
        assert beyond["documents"] == [] and beyond["next_offset"] is None
        for params in (
            {"source_id": other.source_id},
            {"source_id": "upload", "status": "indexed"},
        ):
            docs = tenant.api.get("/v1/documents", params=params).json()["documents"]
            assert all(d["tenant"] == tenant.name for d in docs)
            assert other.upload_id not in {d["doc_id"] for d in docs}
        too_far = {"offset": 2**63}  # past SQLite's integers: a 500 before
        for bad in ({"limit": 0}, {"offset": -1}, {"limit": 501}, {"status": "other"}, too_far):
            assert_problem(tenant.api.get("/v1/documents", params=bad), 422)


@pytest.mark.parametrize(
    "doc_id",
    [
        "../iso-alpha",
        "..",
        "../../keys",
        "%2e%2e",
        "..%2F..%2Fiso-alpha",
        "doc_" + "a" * 4000,
        "ümlaut-文書-🦘",
        "doc_' OR '1'='1",
        "doc_%00",
        "doc_\x00",
        " ",
    ],
)
def test_odd_document_ids_are_404_problems(pair, doc_id):
    path = "/v1/documents/" + quote(doc_id, safe="")
    for tenant in both(pair):
        assert_problem(tenant.api.get(path), 404)
        assert_problem(tenant.api.delete(path), 404)


# -- keys and headers ---------------------------------------------------------------------------


def test_header_tricks_never_switch_tenants(pair, running_stack):
    alpha, beta = pair.alpha, pair.beta
    url = pair.url + "/v1/search"
    body = {"query": f"{alpha.marker} travel", "mode": "keyword"}
    with httpx.Client(timeout=30) as raw:
        two = raw.post(url, json=body, headers=[("X-API-Key", beta.key), ("X-API-Key", alpha.key)])
        assert_problem(two, 400)
        two = raw.post(url, json=body, headers=[("X-API-Key", alpha.key), ("x-api-key", beta.key)])
        assert_problem(two, 400)
        for headers in (
            {"Authorization": f"Bearer {alpha.key}"},
            {"X-API-Key": alpha.key[:-1]},
            {"X-API-Key": alpha.key + "x"},
            {"X-API-Key": f"{alpha.key},{beta.key}"},
            {"X-API-Key": ""},
            {"X-Tenant": alpha.name},
        ):
            assert_problem(raw.post(url, json=body, headers=headers), 401)
        tricks = raw.post(
            url,
            params={"tenant": alpha.name},
            json=body,
            headers={"X-API-Key": beta.key, "X-Tenant": alpha.name, "Host": "iso-alpha"},
        )
        assert tricks.status_code == 200
        assert_own(pair, beta, tricks.json()["hits"])


def test_a_revoked_key_is_refused(pair, running_stack):
    key = running_stack.key(pair.beta.name)
    headers = {"X-API-Key": key}
    assert httpx.get(pair.url + "/v1/documents", headers=headers).status_code == 200
    assert key_store(running_stack.settings).revoke(pair.beta.name, key)
    time.sleep(DEFAULT_CACHE_TTL_S + 0.5)  # how long any API process may trust a cached key
    for _ in range(4):  # new connections: each API worker process gets its turn
        assert_problem(httpx.get(pair.url + "/v1/documents", headers=headers), 401)
        query = httpx.post(pair.url + "/v1/query", json={"question": "x"}, headers=headers)
        assert_problem(query, 401)


def test_bodies_naming_another_tenant_or_malformed_are_refused(pair):
    beta, alpha = pair.beta, pair.alpha
    for path, body in (
        ("/v1/search", {"query": alpha.marker, "tenant": alpha.name}),
        ("/v1/query", {"question": alpha.marker, "tenant": alpha.name}),
        ("/v1/search", {"query": alpha.marker, "filters": {"tenant": alpha.name}}),
        ("/v1/search", {"query": alpha.marker, "filters": {"metadata.tenant": alpha.name}}),
        ("/v1/query", {"question": alpha.marker, "filters": {"tenant": alpha.name}}),
    ):
        response = beta.api.post(path, json=body)
        if response.status_code == 200:  # a metadata key may be filtered on: nothing matches
            assert response.json()["hits"] == []
        else:
            assert_problem(response, 400, 422)
    for content in (
        b"{",
        b"[]",
        b'"text"',
        b"null",
        b'{"query": 5}',
        '{"query": "\xff"}'.encode("latin-1"),
    ):
        response = beta.api.post(
            "/v1/search", content=content, headers={"content-type": "application/json"}
        )
        assert_problem(response, 400, 422)
    naming = upload(beta, "koala.md", b"# Mine\n\nA koala note.", tenant=alpha.name)
    assert_problem(naming, 422)  # a form field "tenant" is refused, as in JSON bodies
    sneaky = upload(
        beta,
        "../../iso-alpha/koala.md",
        b"# Mine\n\nA koala note.",
        metadata=json.dumps({"tenant": alpha.name}),
    )
    assert sneaky.status_code == 202, sneaky.text
    doc = beta.api.get(sneaky.json()["status_url"]).json()
    assert doc["tenant"] == beta.name
    assert doc["source_uri"] == f"upload://{beta.name}/koala.md"
    assert_problem(alpha.api.get(sneaky.json()["status_url"]), 404)
    listed = alpha.api.get("/v1/documents", params={"source_id": "upload"}).json()["documents"]
    assert [d["doc_id"] for d in listed] == [alpha.upload_id]


# -- generated inputs ----------------------------------------------------------------------------


VALID_FIELDS = ("doc_id", "source_id", "media_type", "metadata.path", "metadata.tags")
ODD_FIELDS = ("effective_date", "tenant", "metadata.x y", "metadata.", "")


@st.composite
def filters(draw: st.DrawFn, ids: list[str]) -> dict[str, Any] | None:
    """Mostly well-formed filters naming either tenant's ids; some malformed ones (4xx)."""
    ids_or_text = st.one_of(st.sampled_from(ids), st.text(max_size=20))
    valid = st.dictionaries(
        st.sampled_from(VALID_FIELDS),
        st.one_of(ids_or_text, st.lists(st.sampled_from(ids), min_size=1, max_size=3)),
        max_size=2,
    )
    scalar = st.one_of(
        ids_or_text,
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.none(),
        st.booleans(),
    )
    odd = st.dictionaries(
        st.sampled_from(VALID_FIELDS + ODD_FIELDS),
        st.one_of(
            scalar,
            st.lists(scalar, max_size=3),
            st.dictionaries(st.sampled_from(["gte", "lt", "eq", "$ne"]), scalar, max_size=2),
        ),
        min_size=1,
        max_size=3,
    )
    return draw(st.one_of(st.none(), valid, valid, odd))


@pytest.mark.timeout(300)
def test_generated_queries_and_filters_stay_in_the_tenant(pair):
    everyone = sorted(pair.alpha.doc_ids | pair.beta.doc_ids | {pair.alpha.source_id, "upload"})
    words = st.sampled_from(["aardvark", "bandicoot", "parental", "leave", "travel", "OR", "*"])
    queries = st.one_of(
        st.text(min_size=1, max_size=60),
        st.lists(words, min_size=1, max_size=6).map(" ".join),
    )
    answered: list[int] = []  # hits seen on 200 answers: the test must not pass on errors alone

    @settings(
        max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(
        query=queries,
        where=filters(everyone),
        mode=st.sampled_from(MODES),
        top_k=st.one_of(st.integers(min_value=1, max_value=50), st.integers(-1, 200)),
        answer=st.booleans(),
        as_beta=st.booleans(),
    )
    def check(query, where, mode, top_k, answer, as_beta):
        tenant = pair.beta if as_beta else pair.alpha
        if answer:
            body = {"question": query, "filters": where, "top_k": top_k}
            response = tenant.api.post("/v1/query", json=body)
        else:
            body = {"query": query, "filters": where, "top_k": top_k, "mode": mode}
            response = tenant.api.post("/v1/search", json=body)
        if response.status_code != 200:
            assert_problem(response, 400, 422)
            return
        result = response.json()
        answered.append(len(result["hits"]))
        assert_own(pair, tenant, result["hits"])
        if answer:
            assert {c["doc_id"] for c in result["citations"]} <= tenant.doc_ids

    check()
    assert sum(n > 0 for n in answered) >= 10, answered
