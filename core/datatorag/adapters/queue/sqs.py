"""Queue on Amazon SQS (standard queues), with a redrive policy and large-message offloading.

Bodies over ``SQS_MAX_MESSAGE_BYTES`` go to the blob store under ``sqs-payloads/<uuid>`` and a
small pointer message travels instead (the SQS extended-client pattern); ``receive`` fetches the
payload back, ``delete`` removes it. For a pointer message the receipt carries the payload key.
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import boto3
from botocore.exceptions import ClientError

from datatorag.adapters.blob.s3 import S3BlobStore
from datatorag.domain.batching import bounded_batches
from datatorag.domain.errors import BlobNotFound, DatatoRAGError, PermanentError, RetryableError
from datatorag.domain.messages import DLQ_SUFFIX, REDRIVE_REASON
from datatorag.ports import BlobStore, ReceivedMessage
from datatorag.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import (
        MessageAttributeValueTypeDef,
        MessageTypeDef,
        ReceiveMessageRequestTypeDef,
    )

log = logging.getLogger(__name__)

# Limits of the SQS API.
SQS_BATCH_SIZE = 10  # entries per SendMessageBatch / messages per ReceiveMessage
# Per message and per batch. SQS has accepted 1 MiB since 2025; 256 KiB works everywhere
# (older LocalStack, other regions' quotas) and large bodies take the S3 path anyway.
SQS_MAX_MESSAGE_BYTES = 262_144
SQS_MAX_WAIT_SECONDS = 20  # long polling
SQS_MAX_VISIBILITY_SECONDS = 43_200

PAYLOAD_PREFIX = "sqs-payloads/"
PAYLOAD_ATTRIBUTE = "datatorag-payload-key"  # marks a pointer message; value: the blob key
REASON_ATTRIBUTE = "reason"  # why a message was dead-lettered
_RECEIPT_SEP = " payload="  # receipt handles are base64: a space never occurs in them
_MAX_REASON_CHARS = 4096
_PEEK_HIDE_SECONDS = 30  # dead_letters() hides what it has read while it pages, then releases
# What SQS answers for a receipt that no longer names an in-flight message (query and JSON names).
_STALE_RECEIPT = {
    "ReceiptHandleIsInvalid",
    "AWS.SimpleQueueService.ReceiptHandleIsInvalid",
    "MessageNotInflight",
    "AWS.SimpleQueueService.MessageNotInflight",
}
_NO_QUEUE = {"QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue"}


def sqs_client(settings: Settings) -> SQSClient:
    client: SQSClient = boto3.client(
        "sqs", region_name=settings.aws_region, endpoint_url=settings.aws_endpoint_url
    )
    return client


class SqsQueue:
    """One SQS queue and its dead-letter queue; see the module docstring for large messages."""

    def __init__(
        self,
        client: SQSClient,
        queue_url: str,
        *,
        name: str | None = None,
        payloads: BlobStore | None = None,
        dlq_url: str | None = None,
    ) -> None:
        self.client = client
        self.queue_url = queue_url
        self.name = name or queue_url.rstrip("/").rsplit("/", 1)[-1]
        self.payloads = payloads
        self._dlq_url = dlq_url

    @classmethod
    def from_settings(cls, settings: Settings, name: str, *, create: bool = False) -> SqsQueue:
        """The queue ``<sqs_queue_prefix><name>``; ``create`` makes it and its DLQ if missing."""
        client = sqs_client(settings)
        payloads = S3BlobStore.from_settings(settings)
        queue_name = settings.sqs_queue_prefix + name
        if create:
            return cls.ensure(
                client,
                queue_name,
                max_receives=settings.max_receives,
                visibility_timeout=settings.visibility_timeout_s,
                payloads=payloads,
                name=name,
            )
        try:
            url = client.get_queue_url(QueueName=queue_name)["QueueUrl"]
        except ClientError as err:
            if _code(err) in _NO_QUEUE:
                raise DatatoRAGError(
                    f"SQS queue {queue_name!r} does not exist: deploy the stack's queues or "
                    "create them with SqsQueue.from_settings(settings, name, create=True)"
                ) from err
            raise
        return cls(client, url, name=name, payloads=payloads)

    @classmethod
    def ensure(
        cls,
        client: SQSClient,
        queue_name: str,
        *,
        max_receives: int,
        visibility_timeout: float,
        payloads: BlobStore | None = None,
        name: str | None = None,
    ) -> SqsQueue:
        """Create (or update) the queue and ``<queue_name>-dlq`` with the redrive policy."""
        dlq_url = client.create_queue(
            QueueName=queue_name + DLQ_SUFFIX,
            Attributes={"MessageRetentionPeriod": "1209600"},  # 14 days, the SQS maximum
        )["QueueUrl"]
        dlq_arn = client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        url = client.create_queue(QueueName=queue_name)["QueueUrl"]
        # set_queue_attributes also updates a queue that existed with other settings.
        client.set_queue_attributes(
            QueueUrl=url,
            Attributes={
                "VisibilityTimeout": str(_seconds(visibility_timeout)),
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receives)}
                ),
            },
        )
        return cls(client, url, name=name or queue_name, payloads=payloads, dlq_url=dlq_url)

    # Sending

    def send(self, body: str) -> str:
        return self.send_batch([body])[0]

    def send_batch(self, bodies: Sequence[str]) -> list[str]:
        outgoing = [self._outgoing(body, {}) for body in bodies]
        ids = [""] * len(outgoing)
        sizes = [_size(b, a) for b, a in outgoing]
        for group in bounded_batches(
            range(len(outgoing)),
            lambda i: sizes[i],
            max_count=SQS_BATCH_SIZE,
            max_bytes=SQS_MAX_MESSAGE_BYTES,
        ):
            response = self.client.send_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {
                        "Id": str(i),
                        "MessageBody": outgoing[i][0],
                        "MessageAttributes": _attributes(outgoing[i][1]),
                    }
                    for i in group
                ],
            )
            for ok in response.get("Successful", []):
                ids[int(ok["Id"])] = ok["MessageId"]
            _raise_failures(response.get("Failed", []))
        return ids

    def _outgoing(self, body: str, attributes: dict[str, str]) -> tuple[str, dict[str, str]]:
        """The body and string attributes to send: the message itself, or a pointer to it."""
        size = _size(body, attributes)
        if size <= SQS_MAX_MESSAGE_BYTES:
            return body, attributes
        if self.payloads is None:
            raise ValueError(
                f"a {size}-byte message exceeds SQS's {SQS_MAX_MESSAGE_BYTES}-byte limit and "
                f"queue {self.name!r} has no blob store for large payloads"
            )
        key = f"{PAYLOAD_PREFIX}{uuid.uuid4()}"
        self.payloads.put(key, body.encode())
        return _pointer(key, size), {**attributes, PAYLOAD_ATTRIBUTE: key}

    # Receiving

    def receive(
        self,
        max_messages: int = 1,
        wait_seconds: float = 0.0,
        visibility_timeout: float | None = None,
    ) -> list[ReceivedMessage]:
        """Long-polls in calls of at most 20 s (SQS's limit); SQS counts whole seconds."""
        deadline = time.monotonic() + max(wait_seconds, 0.0)
        count = min(max(max_messages, 1), SQS_BATCH_SIZE)
        while True:
            wait = min(SQS_MAX_WAIT_SECONDS, math.ceil(max(deadline - time.monotonic(), 0.0)))
            raw = self._receive_raw(self.queue_url, count, wait, visibility_timeout)
            messages = [m for m in map(self._decode, raw) if m is not None]
            if messages or time.monotonic() >= deadline:
                return messages

    def _receive_raw(
        self, url: str, count: int, wait: int, visibility_timeout: float | None
    ) -> list[MessageTypeDef]:
        request: ReceiveMessageRequestTypeDef = {
            "QueueUrl": url,
            "MaxNumberOfMessages": count,
            "WaitTimeSeconds": wait,
            "MessageSystemAttributeNames": ["ApproximateReceiveCount"],
            "MessageAttributeNames": ["All"],
        }
        if visibility_timeout is not None:  # else the queue's own default applies
            request["VisibilityTimeout"] = _seconds(visibility_timeout)
        return self.client.receive_message(**request).get("Messages", [])

    def _decode(self, raw: MessageTypeDef) -> ReceivedMessage | None:
        handle = raw["ReceiptHandle"]
        count = int(raw.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
        key = _string_attribute(raw, PAYLOAD_ATTRIBUTE)
        if key is None:
            return ReceivedMessage(raw["MessageId"], raw["Body"], handle, count)
        try:
            body = self._payload(key)
        except BlobNotFound:
            # Payloads are removed only by an acknowledged delete: this pointer was handled.
            log.warning("queue %s: payload %s is gone; dropping its pointer", self.name, key)
            self._delete_handle(handle)
            return None
        return ReceivedMessage(raw["MessageId"], body, handle + _RECEIPT_SEP + key, count)

    def _payload(self, key: str) -> str:
        if self.payloads is None:
            raise ValueError(
                f"queue {self.name!r} got a large-payload pointer but has no blob store"
            )
        data: bytes = self.payloads.get(key)
        return data.decode()

    # Acknowledging

    def delete(self, receipt: str) -> None:
        handle, key = _split(receipt)
        if self._delete_handle(handle) and key is not None and self.payloads is not None:
            self.payloads.delete(key)

    def _delete_handle(self, handle: str) -> bool:
        """False when SQS refuses the handle as stale: nothing to do then."""
        try:
            self.client.delete_message(QueueUrl=self.queue_url, ReceiptHandle=handle)
        except ClientError as err:
            if _stale(err):
                return False
            raise
        return True

    def change_visibility(self, receipt: str, timeout_seconds: float) -> None:
        """Rounded up to whole seconds; ignored when the receipt is stale."""
        handle, _ = _split(receipt)
        try:
            self.client.change_message_visibility(
                QueueUrl=self.queue_url,
                ReceiptHandle=handle,
                VisibilityTimeout=_seconds(timeout_seconds),
            )
        except ClientError as err:
            if not _stale(err):
                raise

    # Dead letters

    def dead_letter(self, message: ReceivedMessage, reason: str) -> None:
        """Send to the DLQ with a ``reason`` attribute, then delete the original."""
        handle, key = _split(message.receipt)
        attributes = {REASON_ATTRIBUTE: reason[:_MAX_REASON_CHARS] or "unspecified"}
        if key is None:
            body, attributes = self._outgoing(message.body, attributes)
        else:  # the payload is already stored: the DLQ copy points at it and keeps it alive
            body = _pointer(key, len(message.body.encode()))
            attributes[PAYLOAD_ATTRIBUTE] = key
        self.client.send_message(
            QueueUrl=self._dead_letter_url(),
            MessageBody=body,
            MessageAttributes=_attributes(attributes),
        )
        self._delete_handle(handle)

    def dead_letters(self) -> list[tuple[str, str]]:
        """Reads the whole DLQ, then makes what it read visible again.

        Short polling: on real SQS a listing taken right after a send may miss a few messages.
        """
        url = self._dead_letter_url()
        seen: dict[str, tuple[str, str]] = {}
        handles: list[str] = []
        while raw := self._receive_raw(url, SQS_BATCH_SIZE, 0, _PEEK_HIDE_SECONDS):
            for message in raw:
                handles.append(message["ReceiptHandle"])
                seen.setdefault(message["MessageId"], self._dead_letter_entry(message))
        for start in range(0, len(handles), SQS_BATCH_SIZE):
            self.client.change_message_visibility_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0}
                    for i, h in enumerate(handles[start : start + SQS_BATCH_SIZE])
                ],
            )
        return list(seen.values())

    def _dead_letter_entry(self, raw: MessageTypeDef) -> tuple[str, str]:
        reason = _string_attribute(raw, REASON_ATTRIBUTE) or REDRIVE_REASON
        key = _string_attribute(raw, PAYLOAD_ATTRIBUTE)
        try:
            return (raw["Body"] if key is None else self._payload(key)), reason
        except BlobNotFound:
            return raw["Body"], reason

    def _dead_letter_url(self) -> str:
        """From the queue's redrive policy, unless given to the constructor."""
        if self._dlq_url is None:
            policy = self.client.get_queue_attributes(
                QueueUrl=self.queue_url, AttributeNames=["RedrivePolicy"]
            )["Attributes"].get("RedrivePolicy")
            if not policy:
                raise DatatoRAGError(f"SQS queue {self.name!r} has no dead-letter queue")
            arn = json.loads(policy)["deadLetterTargetArn"]
            _, _, _, _, account, dlq_name = arn.split(":", 5)
            self._dlq_url = self.client.get_queue_url(
                QueueName=dlq_name, QueueOwnerAWSAccountId=account
            )["QueueUrl"]
        return self._dlq_url

    def depth(self) -> int:
        attributes = self.client.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return sum(int(value) for value in attributes.values())


def _seconds(timeout: float) -> int:
    """SQS takes whole seconds: round up so a message is never hidden for less than asked."""
    return min(max(math.ceil(timeout), 0), SQS_MAX_VISIBILITY_SECONDS)


def _size(body: str, attributes: Mapping[str, str]) -> int:
    """Bytes SQS counts against its limit: the body plus each attribute's name, type and value."""
    extra = sum(len(k.encode()) + len("String") + len(v.encode()) for k, v in attributes.items())
    return len(body.encode()) + extra


def _pointer(key: str, size: int) -> str:
    return json.dumps({"payload_key": key, "bytes": size})


def _attributes(values: Mapping[str, str]) -> dict[str, MessageAttributeValueTypeDef]:
    return {k: {"DataType": "String", "StringValue": v} for k, v in values.items()}


def _string_attribute(raw: MessageTypeDef, name: str) -> str | None:
    attribute = raw.get("MessageAttributes", {}).get(name)
    return None if attribute is None else attribute.get("StringValue")


def _split(receipt: str) -> tuple[str, str | None]:
    handle, sep, key = receipt.partition(_RECEIPT_SEP)
    return handle, (key if sep else None)


def _raise_failures(failed: Sequence[Mapping[str, object]]) -> None:
    if not failed:
        return
    detail = "; ".join(f"{f.get('Code')}: {f.get('Message')}" for f in failed)
    if any(f.get("SenderFault") for f in failed):
        raise PermanentError(f"SQS refused {len(failed)} message(s): {detail}")
    raise RetryableError(f"SQS failed to store {len(failed)} message(s): {detail}")


def _stale(err: ClientError) -> bool:
    """SQS's answers for a receipt that no longer names an in-flight message."""
    message = str(err.response.get("Error", {}).get("Message", "")).lower()
    code = _code(err)
    return code in _STALE_RECEIPT or (code == "InvalidParameterValue" and "receipt" in message)


def _code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))
