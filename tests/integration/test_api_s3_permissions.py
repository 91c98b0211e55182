"""Every S3 call the query API makes is allowed by its ECS task role (security.yaml).

The API runs on S3 (moto's server) with every feature that keeps something in the bucket driven
over real HTTP: API keys (the operators' CLI runs in the API task), uploads, retries, deletes,
answers with feedback and the audit log (and its retention purge), sources and sync requests;
portal sessions and employee-token signing secrets through the app's own services (the portal's
forms need a browser, tests/browser/ drives them). botocore reports each call with its
operation, bucket and key; each is then checked against the role's statements as IAM would
(https://docs.aws.amazon.com/AmazonS3/latest/userguide/using-with-s3-policy-actions.html:
HeadBucket and ListObjectsV2 need s3:ListBucket on the bucket, HeadObject s3:GetObject; see
``tests/fixtures/cfn.py``).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from datatorag.domain.models import DocumentStatus
from datatorag.settings import Settings
from datatorag_query_api.app import Services, create_app
from datatorag_query_api.bootstrap import build_services, key_store
from tests.fixtures.aws import AWS_TEST_CREDENTIALS, AWS_TEST_REGION
from tests.fixtures.cfn import S3Calls
from tests.fixtures.stack import free_port

pytestmark = pytest.mark.integration

TENANT = "acme"
OLD_DAY = "2020-01-02"  # activity older than any retention: the purge deletes it


@pytest.fixture
def recorded_api(
    moto_server: str,
    aws_client: Callable[[str], Any],
    unique_name: Callable[[str], str],
    embedding_endpoint: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[Settings, Services, S3Calls, Any]]:
    for name, value in AWS_TEST_CREDENTIALS.items():
        monkeypatch.setenv(name.upper(), value)
    bucket = unique_name("api-role")
    s3 = aws_client("s3")
    s3.create_bucket(Bucket=bucket)
    recorder = S3Calls()
    recorder.attach(monkeypatch)
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path,
        port=free_port(),
        blob_backend="s3",
        secrets_backend="secretsmanager",
        aws_endpoint_url=moto_server,
        aws_region=AWS_TEST_REGION,
        s3_bucket=bucket,
        secrets_prefix=f"{unique_name('api-role')}/",
        embedding_url=embedding_endpoint,
    )
    services = build_services(settings)
    server = uvicorn.Server(
        uvicorn.Config(create_app(services), port=settings.port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the API did not start"
        time.sleep(0.05)
    try:
        yield settings, services, recorder, s3
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_every_s3_call_of_the_api_is_allowed_by_its_task_role(
    recorded_api: tuple[Settings, Services, S3Calls, Any],
) -> None:
    settings, services, recorder, s3 = recorded_api
    bucket = settings.s3_bucket
    # What other services and earlier days left: a chunk set, last year's activity.
    activity = f"tenants/{TENANT}/activity"
    s3.put_object(Bucket=bucket, Key=f"{activity}/admin/{OLD_DAY}/000000000000-0a1b2c3d.json")
    s3.put_object(
        Bucket=bucket,
        Key=f"{activity}/answer-ids/0a1b2c3d.json",
        Body=json.dumps({"at": f"{OLD_DAY}T00:00:00+00:00"}).encode(),
    )

    key = key_store(settings).create(TENANT)  # `datatorag keys create` in the API task
    api = httpx.Client(
        base_url=f"http://127.0.0.1:{settings.port}", headers={"X-API-Key": key}, timeout=60
    )
    with api:
        # Documents: upload, a failed one retried, deleted with its chunk sets.
        uploaded = api.post(
            "/v1/documents",
            files={"file": ("leave.md", b"# Leave\n\nStaff get 25 days of annual leave.\n")},
        )
        assert uploaded.status_code == 202, uploaded.text
        doc_id = uploaded.json()["doc_id"]
        s3.put_object(Bucket=bucket, Key=f"tenants/{TENANT}/chunks/{doc_id}/v1.json", Body=b"{}")
        services.index.set_status(TENANT, doc_id, DocumentStatus.FAILED, reason="test: failed")
        assert api.post(f"/v1/documents/{doc_id}/retry").status_code == 202
        assert api.get(f"/v1/documents/{doc_id}").status_code == 200
        assert api.delete(f"/v1/documents/{doc_id}").status_code == 200
        left = s3.list_objects_v2(Bucket=bucket, Prefix=f"tenants/{TENANT}/")
        assert not [o["Key"] for o in left.get("Contents", []) if "/activity/" not in o["Key"]]

        # Answers, feedback, the audit log and analytics; the first answer purges old entries.
        answer = api.post("/v1/query", json={"question": "How many days of annual leave?"})
        assert answer.status_code == 200, answer.text
        feedback = api.post(
            f"/v1/answers/{answer.json()['answer_id']}/feedback", json={"helpful": True}
        )
        assert feedback.status_code in {200, 204}, feedback.text
        assert api.get("/v1/audit").status_code == 200
        assert api.get("/v1/analytics").status_code == 200
        old = s3.list_objects_v2(Bucket=bucket, Prefix=f"{activity}/admin/{OLD_DAY}/")
        assert "Contents" not in old  # the purge ran

        # Sources: register, ask for a sync, list, remove.
        source = api.post("/v1/sources", json={"uri": "ftp://hr:secret@ftp.example.com/policies"})
        assert source.status_code == 201, source.text
        source_id = source.json()["id"]
        assert api.post(f"/v1/sources/{source_id}/sync").status_code == 202
        assert api.get("/v1/sources").status_code == 200
        assert api.delete(f"/v1/sources/{source_id}").status_code in {200, 202}

    # Portal sessions and employee-token signing secrets.
    info = services.keys.authenticate(key)
    assert info is not None
    token = services.sessions.start(info)
    assert services.sessions.get(token) is not None
    services.sessions.end(token)
    kid, _ = services.signing.create(TENANT)
    assert [s.kid for s in services.signing.list(TENANT)] == [kid]
    assert services.signing.revoke(TENANT, kid)

    refused = recorder.refused_by("ApiTaskRole", bucket)
    assert not refused, "the API task role refuses:\n" + "\n".join(refused)
    assert {"PutObject", "GetObject", "DeleteObject", "ListObjectsV2"} <= recorder.operations()
