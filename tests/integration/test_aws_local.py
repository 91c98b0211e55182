"""Local AWS mode (``scripts/aws_local.py``): every service on S3, SQS and SageMaker's protocol.

Runs the script's own flow (moto's server, provisioning, the stack as processes, the CLI's
ingest path, a query over HTTP), then checks with separate boto3 clients what the services left
in moto: the raw documents and chunk sets in the bucket, drained queues, the redrive policy.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import httpx
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("aws_local", REPO / "scripts" / "aws_local.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


aws_local = _load_script()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def client(service: str, url: str) -> Any:
    return boto3.client(  # type: ignore[call-overload]
        service,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def keys_under(s3: Any, bucket: str, prefix: str) -> list[str]:
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for o in listed.get("Contents", [])]


def test_the_whole_stack_runs_on_s3_sqs_and_sagemaker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # This process's adapters (provisioning, the CLI's ingest path) sign requests for moto too.
    for name, value in aws_local.TEST_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    samples = sorted(p for p in aws_local.SAMPLES.rglob("*") if p.is_file())

    with aws_local.moto(tmp_path / "logs" / "moto.log") as server:
        settings, env = aws_local.aws_settings(
            server.url,
            tmp_path,
            port=free_port(),
            embedding_port=free_port(),
            poll_wait_s=0.5,
            connector_interval_s=5,
        )
        aws_local.provision(settings)
        stack = aws_local.start_stack(settings, env)
        try:
            key = aws_local.create_key(settings)
            assert aws_local.ingest(settings, timeout=300), "a sample document failed"
            hits = aws_local.ask(settings, key)
            found = aws_local.usage(settings)
            refused = httpx.post(
                f"{settings.api_url}/v1/search",
                headers={"X-API-Key": key[:-1] + ("A" if key[-1] != "A" else "B")},
                json={"query": aws_local.QUESTION},
            )
        finally:
            stack.stop()

        # A query is answered from the ingested samples.
        assert aws_local.from_samples(hits), hits
        assert any(h["source_uri"].endswith("parental-leave.pdf") for h in hits)
        assert refused.status_code == 401
        assert found.problems() == [], found

        # Seen from outside: the connector wrote every sample to S3, the processor a chunk set
        # for each; the key and the registered source are there too, and no key in clear.
        s3 = client("s3", server.url)
        bucket = settings.s3_bucket
        assert len(keys_under(s3, bucket, "tenants/demo/raw/")) == len(samples)
        chunk_keys = keys_under(s3, bucket, "tenants/demo/chunks/")
        assert len(chunk_keys) == len(samples)
        chunk_set = json.loads(s3.get_object(Bucket=bucket, Key=chunk_keys[0])["Body"].read())
        assert chunk_set["chunks"]
        [key_object] = keys_under(s3, bucket, "system/api-keys/")
        record = s3.get_object(Bucket=bucket, Key=key_object)["Body"].read().decode()
        assert json.loads(record)["tenant"] == "demo" and key not in record
        assert len(keys_under(s3, bucket, "system/sources/demo/")) == 1

        # Both workers consumed their SQS queues; nothing was dead-lettered; redrive as deployed.
        sqs = client("sqs", server.url)
        for name in ("documents", "chunks"):
            url = sqs.get_queue_url(QueueName=settings.sqs_queue_prefix + name)["QueueUrl"]
            attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])[
                "Attributes"
            ]
            assert attributes["ApproximateNumberOfMessages"] == "0"
            assert attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
            policy = json.loads(attributes["RedrivePolicy"])
            assert int(policy["maxReceiveCount"]) == settings.max_receives + 1
            assert policy["deadLetterTargetArn"].endswith(f"{name}-dlq")
        assert found.queues[f"{settings.sqs_queue_prefix}documents-dlq"] == 0

    # Nothing fell back to the embedded blob store or queue; the index is the embedded one.
    assert not (tmp_path / "blobs").exists() and not (tmp_path / "queues.db").exists()
    assert (tmp_path / "index").exists()
    assert found.embedded_texts >= len(samples)  # chunks and the query went through SageMaker's API
