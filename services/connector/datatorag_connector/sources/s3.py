"""Files under a prefix of an S3 bucket (``s3://bucket/prefix``): the AWS-native drop zone.

Listed with ListObjectsV2 and read with GetObject (Amazon S3 API Reference). The client takes
the region and endpoint from ``DATATORAG_AWS_REGION`` / ``DATATORAG_AWS_ENDPOINT_URL`` and the
credentials from boto3's usual chain (the task role on ECS).

``?queue=QUEUE_URL`` names an SQS queue that receives the bucket's event notifications
(Amazon S3 User Guide, "Event message structure": ``{"Records": [{"eventName":
"ObjectCreated:Put", "s3": {"bucket": {"name"}, "object": {"key"}}}]}``, keys URL-encoded):
the connector applies each change as it arrives (``s3_events.py``) instead of waiting for the
next round. Keys under the prefix follow the same name rules as folders: hidden, unsafe or
unsupported names are left out.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from datatorag.domain.errors import SourceError
from datatorag.domain.media import is_supported
from datatorag.domain.uris import quote_path
from datatorag_connector.sources.base import (
    BaseSource,
    FileTooLarge,
    Listing,
    SourceFile,
    is_hidden,
    is_safe_name,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class ObjectGone(SourceError):
    """The object was deleted after it was listed or announced (NoSuchKey)."""


class S3Source(BaseSource):
    def __init__(
        self, client: S3Client, bucket: str, prefix: str, *, max_bytes: int, queue: str | None
    ) -> None:
        self.client, self.bucket, self.queue = client, bucket, queue
        self.prefix = prefix.strip("/")
        super().__init__(display_uri(bucket, self.prefix), max_bytes)

    @classmethod
    def from_uri(
        cls, uri: str, *, max_bytes: int, environ: Mapping[str, str] | None = None
    ) -> S3Source:
        bucket, prefix, query = parse_s3_uri(uri)
        client: S3Client = aws_client("s3", environ)
        return cls(client, bucket, prefix, max_bytes=max_bytes, queue=query.get("queue"))

    def listing(self) -> Listing:
        found = Listing()
        start = f"{self.prefix}/" if self.prefix else ""
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=start
            )
            for page in pages:
                for item in page.get("Contents", []):
                    listed = self.file_at(
                        item["Key"], item.get("Size", 0), item.get("LastModified")
                    )
                    if listed is not None:
                        found.files.append(listed)
        except (ClientError, BotoCoreError) as err:
            raise SourceError(f"cannot list {self.display_uri}: {_reason(err)}") from None
        found.files.sort(key=lambda f: f.path)
        return found

    def file_at(self, key: str, size: int, modified: Any = None) -> SourceFile | None:
        """The file a key under the prefix stands for; None if it is outside or not listed."""
        start = f"{self.prefix}/" if self.prefix else ""
        if not key.startswith(start) or key.endswith("/"):
            return None
        rel = key[len(start) :]
        parts = rel.split("/")
        if any(is_hidden(p) or not is_safe_name(p) for p in parts) or not is_supported(rel):
            return None
        return SourceFile(path=rel, size=size, modified=modified)

    def key_of(self, file: SourceFile) -> str:
        return f"{self.prefix}/{file.path}" if self.prefix else file.path

    def read(self, file: SourceFile) -> bytes:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self.key_of(file))
            self._check_size(file, answer.get("ContentLength", 0))
            data = answer["Body"].read(self.max_bytes + 1)
        except (ClientError, BotoCoreError) as err:
            gone = isinstance(err, ClientError) and _reason(err).startswith("NoSuchKey")
            error = ObjectGone if gone else SourceError
            raise error(f"cannot read {self.uri_of(file)}: {_reason(err)}") from None
        if len(data) > self.max_bytes:
            raise FileTooLarge(f"{self.uri_of(file)} is over the limit of {self.max_bytes} bytes")
        return data


def aws_client(service: str, environ: Mapping[str, str] | None = None) -> Any:
    """A boto3 client for the region and endpoint in ``DATATORAG_AWS_*`` (path-style S3)."""
    env = os.environ if environ is None else environ
    endpoint = env.get("DATATORAG_AWS_ENDPOINT_URL") or None
    return boto3.client(  # type: ignore[call-overload]
        service,
        region_name=env.get("DATATORAG_AWS_REGION") or "us-east-1",
        endpoint_url=endpoint,
        config=Config(s3={"addressing_style": "path"}) if endpoint else None,
    )


def parse_s3_uri(uri: str) -> tuple[str, str, dict[str, str]]:
    """Bucket, prefix and query of ``s3://bucket/prefix?queue=...``. Raises ``SourceError``."""
    parts = urlsplit(uri)
    if parts.scheme.lower() != "s3" or not parts.netloc or "@" in parts.netloc:
        raise SourceError("an S3 source is s3://bucket/prefix (credentials come from AWS)")
    return parts.netloc, unquote(parts.path).strip("/"), dict(parse_qsl(parts.query))


def display_uri(bucket: str, prefix: str) -> str:
    return f"s3://{bucket}/{quote_path(prefix)}".rstrip("/")


def _reason(err: Exception) -> str:
    if isinstance(err, ClientError):
        error = err.response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message', '')}".strip(": ")
    return type(err).__name__
