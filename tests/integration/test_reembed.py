"""A model change on the running stack, end to end: real processes, the real model.

The stack indexes the example handbooks with the bundled all-MiniLM-L6-v2; then the endpoint is
restarted on another real model, the same weights with CLS pooling instead of mean pooling (a
different vector space of the same dimension, as a fine-tuned or quantised model would be).
Searches must never compare the new questions with the old vectors (keywords, flagged), a
document embedded by the new model must not be mixed into the old index, and `datatorag
reembed` must move the tenant while searches keep answering, ending in the new space.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from datatorag.adapters.index.sqlite import SqliteSearchIndex
from datatorag.settings import Settings, bundled_model_dir
from datatorag_cli.stack import Stack
from tests.fixtures.stack import RunningStack, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "hr-policies"
TENANT = "acme"
QUESTION = "How many weeks of parental leave do new parents get?"
# Asked only after the model change: no API process has it cached from the old model (a vector
# cached then would still be compared with the old index, rightly: it is in the old space).
LATER_QUESTION = "What paid leave do parents get after a birth or an adoption?"
WOMBAT = (
    b"# Wombat care leave\n\nEmployees who foster a wombat get three days of wombat care leave.\n"
)


def cls_pooled_copy(target: Path) -> Path:
    """The bundled model with CLS pooling: the same weights, another embedding space."""
    source = bundled_model_dir()
    target.mkdir()
    for item in source.iterdir():
        if item.name != "1_Pooling":
            (target / item.name).symlink_to(item)
    (target / "1_Pooling").mkdir()
    config = json.loads((source / "1_Pooling" / "config.json").read_text())
    config.update(pooling_mode_cls_token=True, pooling_mode_mean_tokens=False)
    (target / "1_Pooling" / "config.json").write_text(json.dumps(config))
    return target


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    data_dir = tmp_path_factory.mktemp("reembed")
    env = {
        **{k: v for k, v in os.environ.items() if k != "DATATORAG_EMBEDDING_URL"},
        "DATATORAG_DATA_DIR": str(data_dir),
        "DATATORAG_PORT": str(free_port()),
        "DATATORAG_EMBEDDING_PORT": str(free_port()),
        "DATATORAG_EMBEDDING_RUNTIME": "torch",  # no ONNX export of each model: faster here
        # A document refused for its space is retried (5 s, 10 s, 20 s...) until the re-embed.
        "DATATORAG_MAX_RECEIVES": "10",
        "DATATORAG_POLL_WAIT_S": "0.2",
        "DATATORAG_CONNECTOR_INTERVAL_S": "3600",
        "HF_HUB_OFFLINE": "1",
    }
    settings = Settings(
        _env_file=None,
        data_dir=data_dir,
        port=int(env["DATATORAG_PORT"]),
        embedding_port=int(env["DATATORAG_EMBEDDING_PORT"]),
    )
    running = Stack(settings, env={k: v for k, v in env.items() if k.startswith("DATATORAG_")})
    running.start()
    try:
        running.wait_ready(timeout=240)
        yield RunningStack(running, env)
    finally:
        running.stop()


def endpoint_space(stack: RunningStack) -> str:
    space: str = httpx.get(f"{stack.settings.embedding_url}/ping", timeout=5).json()["space"]
    return space


def index_space(stack: RunningStack) -> str | None:
    index = SqliteSearchIndex(stack.settings.data_dir / "index")
    try:
        return index.vector_space(TENANT)
    finally:
        index.close()


def test_a_model_change_is_never_mixed_and_reembed_moves_the_tenant_without_downtime(
    stack: RunningStack, tmp_path: Path
) -> None:
    summary = stack.ingest(EXAMPLES, TENANT)
    assert summary["exit_code"] == 0 and summary["indexed"] == 6, summary
    old_space = endpoint_space(stack)
    assert index_space(stack) == old_space
    api = stack.client(TENANT)
    before = api.post("/v1/search", json={"query": QUESTION, "top_k": 3}).json()
    assert before["keyword_only"] is None
    assert "parental-leave" in before["hits"][0]["source_uri"]

    # The operator changes the model: the endpoint restarts on it.
    stack.stack.env["DATATORAG_EMBEDDING_MODEL"] = str(cls_pooled_copy(tmp_path / "minilm-cls"))
    stack.stack.restart("embedding-endpoint")
    stack.stack.wait_ready(timeout=240)
    new_space = endpoint_space(stack)
    assert new_space.startswith("minilm-cls-") and new_space != old_space

    # New questions are in the new space: keywords only, and the response says why.
    degraded = api.post("/v1/search", json={"query": LATER_QUESTION, "top_k": 3}).json()
    assert degraded["keyword_only"] and "datatorag reembed" in degraded["keyword_only"]
    assert degraded["hits"], "searches still answer, from keywords"
    answer = api.post("/v1/query", json={"question": LATER_QUESTION}).json()
    assert answer["keyword_only"] and answer["hits"]

    # A document embedded by the new model is refused by the old index, not mixed into it.
    upload = api.post("/v1/documents", files={"file": ("wombat.md", WOMBAT, "text/markdown")})
    assert upload.status_code == 202, upload.text
    wombat = upload.json()["doc_id"]
    refused = _wait(lambda: "VectorSpaceMismatch" in stack.stack.log("embedder-client").read_text())
    assert refused, "the embedder-client never tried the new document"
    assert api.get(f"/v1/documents/{wombat}").json()["status"] != "indexed"
    keyword = api.post("/v1/search", json={"query": "wombat", "mode": "keyword"}).json()
    assert keyword["hits"] == []
    assert index_space(stack) == old_space

    # Re-embed while searches keep coming.
    answers: list[tuple[int, int, bool]] = []
    done = threading.Event()

    def keep_searching() -> None:
        with stack.client(TENANT) as searcher:
            while not done.is_set():
                body = {"query": LATER_QUESTION, "top_k": 3}
                response = searcher.post("/v1/search", json=body)
                body = response.json() if response.status_code == 200 else {}
                hits = body.get("hits", [])
                answers.append((response.status_code, len(hits), body.get("keyword_only") is None))

    thread = threading.Thread(target=keep_searching)
    thread.start()
    try:
        result = stack.cli("reembed", "--tenant", TENANT)
    finally:
        time.sleep(1.0)  # a few searches after the swap
        done.set()
        thread.join()
    assert result.returncode == 0, result.stderr
    assert f"moved from {old_space} to {new_space}" in result.stdout
    assert "documents (" in result.stderr and "to go" in result.stderr  # progress lines
    assert index_space(stack) == new_space
    assert answers and all(status == 200 and hits > 0 for status, hits, _ in answers), answers
    assert not answers[0][2] and answers[-1][2], "keywords during, vectors after the swap"

    # Vector search in the new space, and the refused document lands on its next retry.
    after = api.post("/v1/search", json={"query": QUESTION, "top_k": 3, "mode": "vector"}).json()
    assert after["keyword_only"] is None
    assert "parental-leave" in after["hits"][0]["source_uri"]
    landed = _wait(
        lambda: api.get(f"/v1/documents/{wombat}").json()["status"] == "indexed", timeout=300
    )
    assert landed, api.get(f"/v1/documents/{wombat}").json()
    hits = api.post("/v1/search", json={"query": "fostering a wombat", "mode": "vector"}).json()
    assert hits["hits"][0]["doc_id"] == wombat
    again = stack.cli("reembed", "--tenant", TENANT)
    assert again.returncode == 0 and f"already in {new_space}" in again.stdout
    api.close()


def _wait(condition: Callable[[], bool], timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.5)
    return False
