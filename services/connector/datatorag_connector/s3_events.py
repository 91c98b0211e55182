"""Immediate updates for ``s3://`` sources: the bucket's event notifications, read from SQS.

The bucket sends ``s3:ObjectCreated:*`` and ``s3:ObjectRemoved:*`` to the queue named by the
source's ``?queue=`` (Amazon S3 User Guide, "Event message structure", version 2.x: keys are
URL-encoded with '+' for spaces). Each change under the source's prefix is applied at once; a
message is deleted only after its changes were applied, so one that fails on an outage is
received again. A message that is not an S3 event (the ``s3:TestEvent`` S3 sends when the
notification is set up, or anything malformed) is logged and deleted. The interval sync still
runs: it catches whatever an event could not say (a lost message, a queue set up late).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from botocore.exceptions import BotoCoreError, ClientError

from datatorag.domain.errors import SourceError
from datatorag.domain.sources import RegisteredSource
from datatorag.log import get_logger
from datatorag.usecases.sources import SourceCatalog
from datatorag_connector.sources import open_source
from datatorag_connector.sources.s3 import ObjectGone, S3Source, aws_client
from datatorag_connector.sync import Syncer

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

log = get_logger(__name__)
REGISTRY_TTL_S = 30.0  # a newly registered S3 source is watched within this


def apply_events(
    syncer: Syncer,
    source: S3Source,
    tenant: str,
    sqs: SQSClient,
    *,
    metadata: dict[str, Any] | None = None,
    wait_s: int = 0,
) -> int:
    """Receive one batch of the source's event messages and apply them; the count applied."""
    if not source.queue:
        return 0
    answer = sqs.receive_message(
        QueueUrl=source.queue, MaxNumberOfMessages=10, WaitTimeSeconds=wait_s
    )
    applied = 0
    for message in answer.get("Messages", []):
        try:
            applied += _apply(syncer, source, tenant, metadata, message.get("Body", ""))
        except SourceError as err:  # the object could not be read now: leave it for redelivery
            log.warning("s3.event_not_applied", source=source.display_uri, reason=str(err))
            continue
        sqs.delete_message(QueueUrl=source.queue, ReceiptHandle=message["ReceiptHandle"])
    return applied


def _apply(
    syncer: Syncer, source: S3Source, tenant: str, metadata: dict[str, Any] | None, body: str
) -> int:
    try:
        records = json.loads(body).get("Records")
    except (ValueError, AttributeError):
        records = None
    if not isinstance(records, list):
        log.info("s3.event_ignored", source=source.display_uri)  # e.g. s3:TestEvent
        return 0
    applied = 0
    for record in records:
        s3 = record.get("s3") if isinstance(record, dict) else None
        if not isinstance(s3, dict) or s3.get("bucket", {}).get("name") != source.bucket:
            continue
        obj = s3.get("object", {})
        file = source.file_at(unquote_plus(str(obj.get("key", ""))), int(obj.get("size") or 0))
        if file is None:
            continue
        if str(record.get("eventName", "")).startswith("ObjectRemoved"):
            applied += syncer.remove_file(source, file, tenant)
        else:
            try:
                syncer.sync_file(source, file, tenant, metadata)
            except ObjectGone:  # deleted since: its ObjectRemoved event follows
                continue
            applied += 1
    return applied


class S3EventWatcher:
    """For the connector's loop: apply the events of every registered ``s3://?queue=`` source."""

    def __init__(self, syncer: Syncer, catalog: SourceCatalog, *, max_bytes: int) -> None:
        self.syncer, self.catalog, self.max_bytes = syncer, catalog, max_bytes
        self._sqs: SQSClient | None = None
        self._watched: list[RegisteredSource] = []
        self._read_at = -REGISTRY_TTL_S

    def poll(self) -> bool:
        """Apply what is waiting; False when no registered source has a queue."""
        if time.monotonic() - self._read_at >= REGISTRY_TTL_S:  # not a listing every poll
            self._read_at = time.monotonic()
            self._watched = [
                r for r in self._registered() if r.kind == "s3" and "queue=" in r.display_uri
            ]
        watched = self._watched
        for registered in watched:
            try:
                self._poll_one(registered)
            except (SourceError, ClientError, BotoCoreError) as err:
                log.warning("s3.events_failed", source=registered.display_uri, reason=str(err))
            except Exception as err:  # noqa: BLE001 - a bug must not stop the connector's loop
                log.error(
                    "s3.events_crashed", source=registered.display_uri, error=type(err).__name__
                )
        return bool(watched)

    def _registered(self) -> list[RegisteredSource]:
        try:
            return self.catalog.all()
        except Exception as err:  # noqa: BLE001 - the blob store is down: try again later
            log.error("connector.registry_unreadable", error=f"{type(err).__name__}: {err}")
            return []

    def _poll_one(self, registered: RegisteredSource) -> None:
        source = open_source(self.catalog.uri(registered), max_bytes=self.max_bytes)
        assert isinstance(source, S3Source)
        if self._sqs is None:
            self._sqs = aws_client("sqs")
        apply_events(
            self.syncer, source, registered.tenant, self._sqs, metadata=registered.metadata
        )
