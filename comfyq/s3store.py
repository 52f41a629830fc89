"""An S3-compatible bucket as a store (AWS, MinIO, Ceph, R2…), through boto3.

The endpoint, bucket and prefix come from ``COMFYQ_S3_*``; credentials from
boto3's usual sources (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, a
profile, an instance role). An object is uploaded only once its bytes are
complete, so a key never holds half a file; clients get presigned URLs.
"""
from __future__ import annotations

import tempfile
from contextlib import contextmanager
from typing import Any, BinaryIO, Iterator, Mapping

import boto3
from botocore.client import BaseClient
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

from .storage import Store, content_type

SPOOL_BYTES = 8 * 1024 * 1024  # bigger outputs go through a temporary file on their way up


class S3Store(Store):
    """Objects ``<prefix><key>`` in one bucket."""

    def __init__(self, client: BaseClient, bucket: str, prefix: str = "", url_expires: int = 3600) -> None:
        self.client, self.bucket, self.prefix, self.url_expires = client, bucket, prefix, url_expires

    @classmethod
    def from_config(cls, config: Mapping[str, Any], area: str) -> "S3Store":
        """Return the store of one area (``outputs/`` or ``inputs/``) of the configured bucket."""
        settings = BotoConfig(signature_version="s3v4", retries={"mode": "standard", "max_attempts": 5},
                              connect_timeout=5, read_timeout=30)
        client = boto3.client("s3", endpoint_url=config["S3_ENDPOINT_URL"], region_name=config["S3_REGION"],
                              config=settings)
        return cls(client, config["S3_BUCKET"], config["S3_PREFIX"] + area, int(config["S3_URL_EXPIRES"]))

    def _key(self, key: str) -> str:
        """Return the object key of ``key``."""
        return self.prefix + key

    @contextmanager
    def writer(self, key: str) -> Iterator[BinaryIO]:
        """Yield a file to write ``key`` into; the object is uploaded when the block succeeds."""
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
            yield spool  # type: ignore[misc]
            spool.seek(0)
            self.client.upload_fileobj(spool, self.bucket, self._key(key),
                                       ExtraArgs={"ContentType": content_type(key)})

    def read(self, key: str) -> bytes:
        """Return the bytes of ``key``."""
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise FileNotFoundError(key) from exc
            raise

    def exists(self, key: str) -> bool:
        """Return whether ``key`` is an object."""
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def remove_job(self, job_id: str) -> None:
        """Delete every object under the job's key prefix."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._key(f"{job_id}/"))
        for page in pages:
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})

    def url(self, key: str, download_name: str, content_type: str) -> str | None:
        """Return a presigned GET URL of ``key``, valid for ``url_expires`` seconds."""
        return self.client.generate_presigned_url("get_object", ExpiresIn=self.url_expires, Params={
            "Bucket": self.bucket, "Key": self._key(key), "ResponseContentType": content_type,
            "ResponseContentDisposition": f'attachment; filename="{download_name}"'})
