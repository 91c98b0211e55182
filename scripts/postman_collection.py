"""Write the Postman collection (v2.1) of the query API from its OpenAPI document.

    python scripts/postman_collection.py http://127.0.0.1:8000/openapi.json  # or a file

One request per operation, with the document's own example body, and tests that check the
status and the fields the document says a success carries. The documents folder runs as a
scenario: it uploads ``example-policy.md`` (beside the collection), keeps its ``doc_id`` in the
``docId`` variable, reads it back and deletes it. One more request checks that a call without a
key is a 401 problem. Set ``baseUrl`` and ``apiKey`` (collection variables) to run it, e.g.
``newman run COLLECTION --env-var baseUrl=URL --env-var apiKey=KEY --working-dir docs/postman``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import httpx

SCHEMA = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
DEFAULT_OUT = (
    Path(__file__).resolve().parents[1] / "docs" / "postman" / "datatorag.postman_collection.json"
)
UPLOAD_FILE = "example-policy.md"
PROBLEM = "application/problem+json"
# Operations in the order a scenario needs them: the upload sets docId before it is read, the
# query sets answerId before its feedback, adding a source sets sourceId.
ORDER = [
    ("/healthz", "get"),
    ("/readyz", "get"),
    ("/v1/search", "post"),
    ("/v1/query", "post"),
    ("/v1/answers/{answer_id}/feedback", "post"),
    ("/v1/documents", "post"),
    ("/v1/documents", "get"),
    ("/v1/documents/{doc_id}", "get"),
    ("/v1/documents/{doc_id}/retry", "post"),
    ("/v1/documents/{doc_id}", "delete"),
    ("/v1/sources", "post"),
    ("/v1/sources", "get"),
    ("/v1/sources/{source_id}", "get"),
    ("/v1/sources/{source_id}/sync", "post"),
    ("/v1/sources/{source_id}", "delete"),
]
# Path parameters and the collection variables that fill them (set by earlier responses).
VARIABLES = {"doc_id": "docId", "answer_id": "answerId", "source_id": "sourceId"}
# Operations whose success a generic scenario cannot reach: the documented problem instead.
EXPECTED_PROBLEM = {
    ("/v1/documents/{doc_id}/retry", "post"): 409,  # the example document has not failed
    ("/v1/webhooks/bamboohr/{source_id}", "post"): 401,  # an unsigned delivery is refused
}


def collection(spec: dict[str, Any]) -> dict[str, Any]:
    folders: dict[str, list[dict[str, Any]]] = {}
    operations = [
        (path, method, op)
        for path, methods in spec["paths"].items()
        for method, op in methods.items()
    ]
    operations.sort(key=lambda o: _rank(o[0], o[1]))
    for path, method, op in operations:
        tag = (op.get("tags") or ["default"])[0]
        folders.setdefault(tag, []).append(_item(spec, path, method, op))
    folders.setdefault("errors", []).append(_unauthenticated())
    return {
        "info": {
            "name": spec["info"]["title"],
            "description": f"{spec['info'].get('description', '')}\n\nGenerated from the OpenAPI "
            "document by scripts/postman_collection.py: do not edit by hand.",
            "schema": SCHEMA,
        },
        "auth": {
            "type": "apikey",
            "apikey": [
                {"key": "key", "value": "X-API-Key", "type": "string"},
                {"key": "value", "value": "{{apiKey}}", "type": "string"},
                {"key": "in", "value": "header", "type": "string"},
            ],
        },
        "variable": [
            {"key": "baseUrl", "value": "http://127.0.0.1:8000"},
            {"key": "apiKey", "value": ""},
            *({"key": name, "value": ""} for name in VARIABLES.values()),
        ],
        "item": [{"name": name, "item": items} for name, items in folders.items()],
    }


def _rank(path: str, method: str) -> int:
    return ORDER.index((path, method)) if (path, method) in ORDER else len(ORDER)


def _item(spec: dict[str, Any], path: str, method: str, op: dict[str, Any]) -> dict[str, Any]:
    url_path = path
    for parameter, variable in VARIABLES.items():
        url_path = url_path.replace("{" + parameter + "}", "{{" + variable + "}}")
    query = [
        {"key": p["name"], "value": str(p["schema"]["default"])}
        for p in op.get("parameters", [])
        if p["in"] == "query" and "default" in p.get("schema", {})
    ]
    raw = "{{baseUrl}}" + url_path
    if query:
        raw += "?" + "&".join(f"{q['key']}={q['value']}" for q in query)
    request: dict[str, Any] = {
        "method": method.upper(),
        "header": [],
        "url": {
            "raw": raw,
            "host": ["{{baseUrl}}"],
            "path": url_path.strip("/").split("/"),
            **({"query": query} if query else {}),
        },
        "description": op.get("description", ""),
    }
    if not path.startswith("/v1/"):
        request["auth"] = {"type": "noauth"}
    body = op.get("requestBody", {}).get("content", {})
    if "application/json" in body:
        example = _example(spec, body["application/json"]["schema"])
        request["header"].append({"key": "Content-Type", "value": "application/json"})
        request["body"] = {
            "mode": "raw",
            "raw": json.dumps(example, indent=2),
            "options": {"raw": {"language": "json"}},
        }
    elif "multipart/form-data" in body:
        request["body"] = {
            "mode": "formdata",
            "formdata": [
                {"key": "file", "type": "file", "src": UPLOAD_FILE},
                {"key": "title", "type": "text", "value": "Example policy"},
                {"key": "tags", "type": "text", "value": "example,postman"},
                {"key": "metadata", "type": "text", "value": '{"department": "people"}'},
            ],
        }
    return {
        "name": op.get("summary") or f"{method.upper()} {path}",
        "request": request,
        "event": [
            {
                "listen": "test",
                "script": {"type": "text/javascript", "exec": _tests(spec, path, method, op)},
            }
        ],
    }


def _tests(spec: dict[str, Any], path: str, method: str, op: dict[str, Any]) -> list[str]:
    """Status in the documented successes, JSON, and the success's required fields (or, where
    a scenario cannot succeed, the documented problem)."""
    if (path, method) in EXPECTED_PROBLEM:
        status = EXPECTED_PROBLEM[(path, method)]
        return [
            f"pm.test('is a {status} problem', function () {{",
            f"    pm.response.to.have.status({status});",
            f"    pm.response.to.have.header('Content-Type', '{PROBLEM}');",
            "});",
        ]
    successes = sorted(int(s) for s in op["responses"] if s.startswith("2"))
    content = op["responses"][str(successes[0])].get("content", {})
    lines = [
        f"pm.test('answers {' or '.join(map(str, successes))}', function () {{",
        f"    pm.expect(pm.response.code).to.be.oneOf({json.dumps(successes)});",
        "});",
    ]
    if "application/json" not in content:
        return lines
    required = _resolve(spec, content["application/json"].get("schema", {})).get("required", [])
    lines += [
        "pm.test('carries the documented fields', function () {",
        "    const body = pm.response.json();",
        *(f"    pm.expect(body).to.have.property({json.dumps(f)});" for f in required),
        "});",
    ]
    # Identifiers later requests of the scenario use (a new source's is its ``id``).
    captured = {**VARIABLES, **({"id": "sourceId"} if path == "/v1/sources" else {})}
    for field, variable in captured.items():
        if field in required and method == "post":
            lines.append(f"if (pm.response.json().{field}) {{")
            lines.append(
                f"    pm.collectionVariables.set('{variable}', pm.response.json().{field});"
            )
            lines.append("}")
    return lines


def _unauthenticated() -> dict[str, Any]:
    return {
        "name": "A search without a key is a 401 problem",
        "request": {
            "auth": {"type": "noauth"},
            "method": "POST",
            "header": [{"key": "Content-Type", "value": "application/json"}],
            "url": {
                "raw": "{{baseUrl}}/v1/search",
                "host": ["{{baseUrl}}"],
                "path": ["v1", "search"],
            },
            "body": {
                "mode": "raw",
                "raw": '{"query": "leave"}',
                "options": {"raw": {"language": "json"}},
            },
        },
        "event": [
            {
                "listen": "test",
                "script": {
                    "type": "text/javascript",
                    "exec": [
                        "pm.test('is a 401 problem', function () {",
                        "    pm.response.to.have.status(401);",
                        f"    pm.response.to.have.header('Content-Type', '{PROBLEM}');",
                        "    pm.expect(pm.response.json().status).to.eql(401);",
                        "});",
                    ],
                },
            }
        ],
    }


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _example(spec: dict[str, Any], schema: dict[str, Any]) -> Any:
    schema = _resolve(spec, schema)
    if schema.get("examples"):
        return schema["examples"][0]
    return {name: "" for name in schema.get("required", [])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("openapi", help="the OpenAPI document: a URL or a file")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    if args.openapi.startswith(("http://", "https://")):
        spec = httpx.get(args.openapi, timeout=30).raise_for_status().json()
    else:
        spec = json.loads(Path(args.openapi).read_text())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(collection(spec), indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
