"""Answer quality and latency through the running API (part of `make eval`).

Every dev question goes to ``POST /v1/query`` over HTTP, one client, as a user would send it.
Measures, on the answer text itself (not only its citations):
- evidence in answer: answerable questions whose answer contains the gold evidence, by the
  corpus's own loose match (``build/score.py``);
- blending: answers to a question that does not compare whose citations span two documents;
- abstention on answerable and on unanswerable questions;
- p50/p95 latency of ``/v1/query`` against ``/v1/search`` (hybrid, top 5) on the same questions.
  Each question is searched (prefixed "Q: ", so neither call finds its query vector cached)
  right before it is asked, so both endpoints see the same load on a shared machine.
Each figure is also given for the even and the odd question ids: design on one half, check on
the other, so a change tuned to single questions shows.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx

_COMPARES = re.compile(r"\b(?:compare|comparison|difference|differ|versus|vs)\b", re.I)


def evaluate(
    api: str, key: str, qs: list[dict[str, Any]], loose: Callable[[str], str]
) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    search_ms: list[float] = []
    query_ms: list[float] = []
    with httpx.Client(base_url=api, headers={"X-API-Key": key}, timeout=120) as client:
        for q in qs:  # interleaved, so both endpoints see the same load on a shared machine
            search = {"query": f"Q: {q['question']}", "top_k": 5}
            search_ms.append(_timed(client, "/v1/search", search)[0])
            ms, body = _timed(client, "/v1/query", {"question": q["question"]})
            query_ms.append(ms)
            rows.append(_judge(q, body, loose))
    halves = {
        "all": rows,
        "even ids": [r for r in rows if r["number"] % 2 == 0],
        "odd ids": [r for r in rows if r["number"] % 2 == 1],
    }
    return {
        **{name: _summary(part) for name, part in halves.items()},
        "latency_ms": {
            "query_p50": round(statistics.median(query_ms), 1),
            "query_p95": round(_p95(query_ms), 1),
            "search_p50": round(statistics.median(search_ms), 1),
            "search_p95": round(_p95(search_ms), 1),
            "query_over_search_p95": round(_p95(query_ms) / _p95(search_ms), 2),
        },
        "misses": [r["id"] for r in rows if r["answerable"] and not r["evidence"]],
    }


def _timed(client: httpx.Client, path: str, body: dict[str, Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    response = client.post(path, json=body)
    ms = 1000 * (time.perf_counter() - started)
    response.raise_for_status()
    return ms, response.json()


def _judge(q: dict[str, Any], body: dict[str, Any], loose: Callable[[str], str]) -> dict[str, Any]:
    answerable = bool(q["doc_ids"])
    abstained = bool(body["abstained"])
    docs = {c["doc_id"] for c in body["citations"]}
    return {
        "id": q["id"],
        "number": int(str(q["id"]).rsplit("-", 1)[-1]),
        "answerable": answerable,
        "abstained": abstained,
        "evidence": answerable
        and not abstained
        and loose(str(q["evidence"])) in loose(str(body["answer"])),
        "blends": len(docs) > 1 and not _COMPARES.search(str(q["question"])),
        "answered": not abstained,
    }


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    answered = [r for r in rows if r["answered"]]
    return {
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "evidence_in_answer": _share(answerable, "evidence"),
        "answers_blending_documents": _share(answered, "blends"),
        "answerable_abstained": _share(answerable, "abstained"),
        "unanswerable_abstained": _share(unanswerable, "abstained"),
    }


def _share(rows: list[dict[str, Any]], key: str) -> float:
    return round(sum(bool(r[key]) for r in rows) / len(rows), 3) if rows else 0.0


def _p95(values: list[float]) -> float:
    return (
        statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 else values[0]
    )


def markdown(results: dict[str, dict[str, Any]]) -> str:
    """One row per generator and half of the dev set."""
    lines = [
        "| generator | questions | evidence in answer | answers blending documents | "
        "answerable abstained | unanswerable abstained | /v1/query p95 ms | /v1/search p95 ms |",
        "| --- | --- |" + " ---: |" * 6,
    ]
    for generator, result in results.items():
        latency = result["latency_ms"]
        for half in ("all", "even ids", "odd ids"):
            s = result[half]
            lines.append(
                f"| {generator} | {half} | {s['evidence_in_answer']:.3f} | "
                f"{s['answers_blending_documents']:.3f} | {s['answerable_abstained']:.3f} | "
                f"{s['unanswerable_abstained']:.3f} | "
                + (
                    f"{latency['query_p95']:.0f} | {latency['search_p95']:.0f} |"
                    if half == "all"
                    else " | |"
                )
            )
    return "\n".join(lines)
