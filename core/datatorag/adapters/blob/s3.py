"""BlobStore on Amazon S3 (or anything speaking its API: moto, LocalStack, MinIO)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from datatorag.domain.blob_keys import validate_key
from datatorag.domain.errors import BlobNotFound
from datatorag.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_MISSING_KEY = {"NoSuchKey", "404"}
_MISSING_BUCKET = {"NoSuchBucket", "404"}


def s3_client(settings: Settings) -> S3Client:
    """A client for the configured region; path-style addressing for custom endpoints."""
    config = Config(s3={"addressing_style": "path"}) if settings.aws_endpoint_url else None
    client: S3Client = boto3.client(
        "s3", region_name=settings.aws_region, endpoint_url=settings.aws_endpoint_url, config=config
    )
    return client


class S3BlobStore:
    """Objects in one bucket; keys follow the same rules as the local store (``validate_key``)."""

    def __init__(self, client: S3Client, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    @classmethod
    def from_settings(cls, settings: Settings) -> S3BlobStore:
        return cls(s3_client(settings), settings.s3_bucket)

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (deployments usually create it beforehand)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as err:
            if _code(err) not in _MISSING_BUCKET:
                raise
        region = self.client.meta.region_name
        try:
            if region and region != "us-east-1":  # us-east-1 refuses an explicit constraint
                self.client.create_bucket(
                    Bucket=self.bucket,
                    CreateBucketConfiguration={"LocationConstraint": region},  # type: ignore[typeddict-item]
                )
            else:
                self.client.create_bucket(Bucket=self.bucket)
        except ClientError as err:
            if _code(err) != "BucketAlreadyOwnedByYou":  # created meanwhile by another process
                raise

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=validate_key(key), Body=data)

    def get(self, key: str) -> bytes:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=validate_key(key))
        except ClientError as err:
            if _code(err) in _MISSING_KEY:
                raise BlobNotFound(key) from err
            raise
        return response["Body"].read()

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=validate_key(key))

    def list(self, prefix: str) -> Iterator[str]:
        """Streams keys page by page; S3 already returns them in UTF-8 byte (= code point) order."""
        validate_key(prefix, prefix=True)  # now, not at the first next()
        return self._keys(prefix)

    def _keys(self, prefix: str) -> Iterator[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                yield obj["Key"]


def _code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))
