"""Local "AWS mode": the whole stack on the AWS adapters, on one machine, with no AWS account.

moto's server stands in for S3, SQS, Secrets Manager (source credentials) and DynamoDB (the
employee directory); the bucket, the table and the queues with their dead-letter queues are
created here, as ``infra/cloudformation`` does on AWS; the local embedding endpoint answers
sagemaker-runtime's ``InvokeEndpoint`` (``POST /endpoints/{name}/invocations``), so the
SageMaker adapter runs unchanged; the index stays the embedded one (OpenSearch cannot run here).
Every service runs as a process (``datatorag_cli.stack.Stack``) with::

    DATATORAG_BLOB_BACKEND=s3  DATATORAG_QUEUE_BACKEND=sqs  DATATORAG_EMBEDDINGS_BACKEND=sagemaker
    DATATORAG_SECRETS_BACKEND=secretsmanager  DATATORAG_EMPLOYEES_BACKEND=dynamodb
    DATATORAG_AWS_ENDPOINT_URL=<moto>  DATATORAG_SAGEMAKER_ENDPOINT_URL=<embedding endpoint>

Usage::

    python scripts/aws_local.py          # `make run-aws-local`: ingest, then run until Ctrl-C
    python scripts/aws_local.py --check  # `make test-aws-local`: exit 0 only if a query is answered

moto keeps its state in memory, so each run starts from an empty bucket and a fresh data
directory (``.datatorag/aws-local`` for ``run``, a temporary one for ``--check``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from datatorag.adapters.blob.s3 import S3BlobStore, s3_client
from datatorag.adapters.employees.dynamodb import DynamoDbEmployeeDirectory
from datatorag.adapters.queue.sqs import SqsQueue, sqs_client
from datatorag.domain.messages import CHUNKS_QUEUE, DLQ_SUFFIX, DOCUMENTS_QUEUE
from datatorag.log import configure
from datatorag.settings import Settings
from datatorag_cli.stack import Stack, StackError

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "examples" / "hr-policies"
RUN_DATA_DIR = REPO / ".datatorag" / "aws-local"
TENANT = "demo"
QUESTION = "How much parental leave do I get?"
QUEUES = (DOCUMENTS_QUEUE, CHUNKS_QUEUE)
# moto accepts any credentials; fixed ones keep real ones (or a profile) out of the picture.
TEST_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
MOTO_START_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# moto


@dataclass
class MotoServer:
    url: str
    process: subprocess.Popen[bytes]
    log_file: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise StackError(
                f"moto exited with code {self.process.returncode}: see {self.log_file}"
            )


def start_moto(log_file: Path, port: int | None = None) -> MotoServer:
    """``python -m moto.server`` on 127.0.0.1, in its own session (Ctrl-C is ours to handle)."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as out:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter, no shell
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = MotoServer(url, process, log_file)
    deadline = time.monotonic() + MOTO_START_TIMEOUT_S
    while True:
        server.check_alive()
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):  # noqa: S310 - loopback
                return server
        except OSError:  # refused, reset or timed out: not listening yet
            if time.monotonic() > deadline:
                server.stop()
                raise StackError(
                    f"moto not up after {MOTO_START_TIMEOUT_S:.0f} s: see {log_file}"
                ) from None
            time.sleep(0.1)


@contextmanager
def moto(log_file: Path, port: int | None = None) -> Iterator[MotoServer]:
    server = start_moto(log_file, port)
    try:
        yield server
    finally:
        server.stop()


# Settings and provisioning


def aws_settings(
    moto_url: str,
    data_dir: Path,
    *,
    port: int,
    embedding_port: int,
    **overrides: Any,
) -> tuple[Settings, dict[str, str]]:
    """Settings for this process and the environment the services get, on the AWS adapters."""
    embedding_url = f"http://127.0.0.1:{embedding_port}"
    values: dict[str, Any] = {
        "data_dir": data_dir.resolve(),
        "port": port,
        "embedding_port": embedding_port,
        "embedding_url": embedding_url,
        "blob_backend": "s3",
        "queue_backend": "sqs",
        "embeddings_backend": "sagemaker",
        "index_backend": "local",
        "secrets_backend": "secretsmanager",
        "employees_backend": "dynamodb",
        "aws_endpoint_url": moto_url,
        "sagemaker_endpoint_url": embedding_url,
        **overrides,
    }
    settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
    env = {f"DATATORAG_{name.upper()}": str(value) for name, value in values.items()}
    env |= {
        "DATATORAG_AWS_REGION": settings.aws_region,
        "DATATORAG_S3_BUCKET": settings.s3_bucket,
        "DATATORAG_SQS_QUEUE_PREFIX": settings.sqs_queue_prefix,
        "DATATORAG_SAGEMAKER_ENDPOINT_NAME": settings.sagemaker_endpoint_name,
        "AWS_DEFAULT_REGION": settings.aws_region,
        **TEST_CREDENTIALS,
    }
    return settings, env


def provision(settings: Settings) -> dict[str, SqsQueue]:
    """The bucket, the employees table, and each queue with its DLQ; redrive one delivery after
    the workers' limit."""
    S3BlobStore.from_settings(settings).ensure_bucket()
    DynamoDbEmployeeDirectory.from_settings(settings).ensure_table()
    client = sqs_client(settings)
    return {
        name: SqsQueue.ensure(
            client,
            settings.sqs_queue_prefix + name,
            # As datatorag.wiring and infra/cloudformation/queues.yaml: the worker sees the
            # message once more, marks its document failed and dead-letters it itself.
            max_receives=settings.max_receives + 1,
            visibility_timeout=settings.visibility_timeout_s,
            payloads=S3BlobStore.from_settings(settings),
            name=name,
        )
        for name in QUEUES
    }


# The flow


def start_stack(settings: Settings, env: dict[str, str], timeout: float = 240.0) -> Stack:
    stack = Stack(settings, env=env)
    stack.start()
    try:
        stack.wait_ready(timeout=timeout)
    except BaseException:
        stack.stop()
        raise
    return stack


def create_key(settings: Settings, tenant: str = TENANT) -> str:
    from datatorag_query_api.bootstrap import key_store

    return key_store(settings).create(tenant)


def ingest(
    settings: Settings, folder: Path = SAMPLES, tenant: str = TENANT, timeout: float = 600.0
) -> bool:
    """The CLI's ingest path: register the source, sync it, wait until every document is done."""
    from datatorag_cli.cli import _ingest

    return _ingest(
        settings, str(folder.resolve()), tenant, wait=True, as_json=False, timeout=timeout
    )


def ask(
    settings: Settings, key: str, question: str = QUESTION, top_k: int = 3
) -> list[dict[str, Any]]:
    """Hits from the running query API (``POST /v1/search``), as JSON objects."""
    response = httpx.post(
        f"{settings.api_url}/v1/search",
        headers={"X-API-Key": key},
        json={"query": question, "top_k": top_k},
        timeout=60,
    )
    response.raise_for_status()
    hits: list[dict[str, Any]] = response.json()["hits"]
    return hits


def from_samples(hits: list[dict[str, Any]], folder: Path = SAMPLES) -> list[dict[str, Any]]:
    """Hits whose source is one of the sample files."""
    names = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    return [h for h in hits if any(str(h.get("source_uri", "")).endswith(n) for n in names)]


@dataclass
class Usage:
    """What the run left in moto and on disk: evidence the services used S3 and SQS."""

    objects: dict[str, int] = field(default_factory=dict)  # prefix -> object count
    queues: dict[str, int] = field(default_factory=dict)  # queue (and DLQ) -> depth
    local_fallbacks: list[str] = field(default_factory=list)  # embedded-backend files found
    embedded_texts: int = 0  # texts the embedding endpoint embedded (chunks and queries)
    connector_syncs: int = 0  # syncs the connector service ran from the registry in S3

    def problems(self) -> list[str]:
        found = [f"no objects under {p}" for p, n in self.objects.items() if n == 0]
        found += [f"{q} holds {n} message(s)" for q, n in self.queues.items() if n]
        found += [f"embedded backend used: {f}" for f in self.local_fallbacks]
        found += [] if self.embedded_texts else ["the embedding endpoint embedded nothing"]
        found += [] if self.connector_syncs else ["the connector service synced no source"]
        return found


def usage(settings: Settings, tenant: str = TENANT, drain_timeout: float = 15.0) -> Usage:
    """What the running stack left behind; waits for the queues to drain and a connector sync.

    The connector service sees a source only through the registry in the bucket, so a sync in
    its log shows it read S3; it runs every ``connector_interval_s``.
    """
    s3 = s3_client(settings)
    prefixes = [
        f"tenants/{tenant}/raw/",  # connector
        f"tenants/{tenant}/chunks/",  # processor
        "system/api-keys/",  # query API keys
        f"system/sources/{tenant}/",  # registered sources
    ]
    result = Usage()
    for prefix in prefixes:
        listed = s3.list_objects_v2(Bucket=settings.s3_bucket, Prefix=prefix)
        result.objects[prefix] = int(listed.get("KeyCount", 0))
    sqs = sqs_client(settings)
    names = [settings.sqs_queue_prefix + q + s for q in QUEUES for s in ("", DLQ_SUFFIX)]
    deadline = time.monotonic() + drain_timeout
    while True:
        result.queues = {name: _depth(sqs, name) for name in names}
        if not any(result.queues.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    data_dir = settings.data_dir
    result.local_fallbacks = [
        str(p)
        for p in (
            data_dir / "blobs",
            data_dir / "queues.db",
            data_dir / "secrets.key",
            data_dir / "employees.db",
        )
        if p.exists()
    ]
    stats = httpx.get(f"{settings.embedding_url}/stats", timeout=10).json()
    result.embedded_texts = int(stats.get("texts", 0))
    deadline = time.monotonic() + settings.connector_interval_s + drain_timeout
    while True:
        result.connector_syncs = _count_events(data_dir, "connector", "source.synced")
        if result.connector_syncs or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    return result


def _count_events(data_dir: Path, service: str, event: str) -> int:
    """Lines of a service's JSON log with that event."""
    log = data_dir / "logs" / f"{service}.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    count = 0
    for line in text.splitlines():
        try:
            count += json.loads(line).get("event") == event
        except (ValueError, AttributeError):  # not a JSON object: a traceback or print
            continue
    return count


def _depth(sqs: Any, queue_name: str) -> int:
    url = sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attributes.values())


# Entry points


def use_test_credentials() -> None:
    """This process's boto3 clients (provisioning, ingest, checks) talk to moto as well."""
    os.environ.pop("AWS_PROFILE", None)
    os.environ.update(TEST_CREDENTIALS)


def run(port: int, embedding_port: int, moto_port: int | None) -> int:
    """``make run-aws-local``: ingest the samples, answer one query, run until Ctrl-C."""
    from datatorag_cli.cli import _print_welcome, console

    shutil.rmtree(RUN_DATA_DIR, ignore_errors=True)  # moto starts empty: so does the rest
    with moto(RUN_DATA_DIR / "logs" / "moto.log", moto_port) as server:
        settings, env = aws_settings(
            server.url, RUN_DATA_DIR, port=port, embedding_port=embedding_port
        )
        provision(settings)
        console.print(f"moto (S3, SQS) at [bold]{server.url}[/], bucket {settings.s3_bucket!r}")
        stack = Stack(settings, env=env)
        try:
            stack.start()
            with console.status("Loading the embedding model ..."):
                stack.wait_ready()
            key = create_key(settings)
            if not ingest(settings):
                console.print("[yellow]some documents failed: see the logs[/]")
            for hit in from_samples(ask(settings, key))[:1]:
                pages = ", ".join(map(str, hit["pages"])) or "-"
                console.print(f"Q: {QUESTION}\nA: {hit['source_uri']}, p. {pages}")
                console.print("   " + hit["text"][:300].replace("\n", " "), markup=False)
            _print_welcome(settings, TENANT, key)
            while True:
                stack.check_alive()
                server.check_alive()
                time.sleep(1)
        except KeyboardInterrupt:
            console.print("Stopping ...")
        except (StackError, httpx.HTTPError) as err:
            console.print(f"[red]error:[/] {err}")
            return 1
        finally:
            stack.stop()
    return 0


def check() -> int:
    """``make test-aws-local``: the same flow, then verify; 0 only when a sample answers."""
    with tempfile.TemporaryDirectory(prefix="datatorag-aws-") as tmp:
        data_dir = Path(tmp)
        try:
            report = check_once(data_dir)
        except (StackError, httpx.HTTPError, OSError) as err:
            report = {"ok": False, "problems": [f"{type(err).__name__}: {err}"]}
        if not report["ok"]:
            print_log_tails(data_dir / "logs")
    print(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


def check_once(data_dir: Path) -> dict[str, Any]:
    """Start moto and the stack, ingest the samples, ask, inspect, stop; a JSON-able report."""
    with moto(data_dir / "logs" / "moto.log") as server:
        settings, env = aws_settings(
            server.url,
            data_dir,
            port=free_port(),
            embedding_port=free_port(),
            poll_wait_s=0.5,
            connector_interval_s=5,
        )
        provision(settings)
        stack = start_stack(settings, env)
        try:
            key = create_key(settings)
            ingested = ingest(settings, timeout=300)
            hits = from_samples(ask(settings, key))
            found = usage(settings)
            stack.check_alive()
        finally:
            stack.stop()
    problems = found.problems() + ([] if ingested else ["some sample documents failed"])
    problems += [] if hits else [f"no hit from {SAMPLES.name} for {QUESTION!r}"]
    return {
        "ok": not problems,
        "problems": problems,
        "hits": [{"source_uri": h["source_uri"], "score": h["score"]} for h in hits],
        "objects": found.objects,
        "queues": found.queues,
        "embedded_texts": found.embedded_texts,
        "connector_syncs": found.connector_syncs,
    }


def print_log_tails(logs: Path, lines: int = 20) -> None:
    for log in sorted(logs.glob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        print(f"--- {log.name} (last {len(tail)} lines)", *tail, sep="\n", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="run once, verify, exit 0 or 1")
    parser.add_argument("--port", type=int, default=Settings().port, help="query API port")
    parser.add_argument("--embedding-port", type=int, default=Settings().embedding_port)
    parser.add_argument("--moto-port", type=int, default=None, help="default: a free port")
    args = parser.parse_args(argv)
    configure("aws-local", level="WARNING")  # stdout is for the report
    use_test_credentials()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # SIGTERM (from `timeout`, CI) stops like Ctrl-C: the stack and moto are shut down.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        if args.check:
            return check()
        return run(args.port, args.embedding_port, args.moto_port)
    except StackError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
