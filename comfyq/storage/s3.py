"""An S3-compatible bucket as a store (AWS, MinIO, Ceph, R2…), through boto3.

The endpoint, bucket and prefix come from ``COMFYQ_S3_*``; credentials from
boto3's usual sources (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, a
profile, an instance role). An object is uploaded only once its bytes are
complete, so a key never holds half a file; clients get presigned URLs. Any
failure to reach the bucket, or a refusal, is a ``StoreUnavailable``.
"""
from __future__ import annotations

import tempfile
from contextlib import contextmanager
from typing import Any, BinaryIO, Callable, Iterator, Mapping, TypeVar

import boto3
from botocore.client import BaseClient
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from ..errors import StoreUnavailable
from .base import Store, content_type

SPOOL_BYTES = 8 * 1024 * 1024  # bigger outputs go through a temporary file on their way up
MISSING = ("404", "NoSuchKey", "NotFound")
T = TypeVar("T")


def _code(exc: ClientError) -> str:
    """Return the error code S3 answered with."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def _guarded(action: Callable[[], T], what: str) -> T:
    """Run one S3 request; turn a failure into StoreUnavailable (a missing key stays a ClientError)."""
    try:
        return action()
    except ClientError as exc:
        if _code(exc) in MISSING:
            raise
        raise StoreUnavailable(f"the S3 store refused to {what}: {exc}") from exc
    except BotoCoreError as exc:
        raise StoreUnavailable(f"the S3 store cannot be reached to {what}: {exc}") from exc


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
        prefix = config["S3_PREFIX"].strip("/")
        return cls(client, config["S3_BUCKET"], f"{prefix}/{area}" if prefix else area, int(config["S3_URL_EXPIRES"]))

    def _key(self, key: str) -> str:
        """Return the object key of ``key``."""
        return self.prefix + key

    @contextmanager
    def writer(self, key: str) -> Iterator[BinaryIO]:
        """Yield a file to write ``key`` into; the object is uploaded when the block succeeds."""
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
            yield spool  # type: ignore[misc]
            spool.seek(0)
            _guarded(lambda: self.client.upload_fileobj(spool, self.bucket, self._key(key),
                                                        ExtraArgs={"ContentType": content_type(key)}), "store " + key)

    def read(self, key: str) -> bytes:
        """Return the bytes of ``key``."""
        try:
            return _guarded(lambda: self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read(),
                            "read " + key)
        except ClientError as exc:  # only a missing key gets here
            raise FileNotFoundError(key) from exc

    def exists(self, key: str) -> bool:
        """Return whether ``key`` is an object."""
        try:
            _guarded(lambda: self.client.head_object(Bucket=self.bucket, Key=self._key(key)), "look up " + key)
        except ClientError:  # only a missing key gets here
            return False
        return True

    def remove_job(self, job_id: str) -> None:
        """Delete every object under the job's key prefix."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._key(f"{job_id}/"))
        for page in _guarded(lambda: list(pages), f"list the outputs of {job_id}"):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if not keys:
                continue
            answer = _guarded(lambda: self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True}), f"delete the outputs of {job_id}")
            if answer.get("Errors"):
                raise StoreUnavailable(f"the S3 store kept {len(answer['Errors'])} outputs of {job_id}: "
                                       f"{answer['Errors'][0].get('Message', '')}")

    def url(self, key: str, download_name: str, content_type: str) -> str | None:
        """Return a presigned GET URL of ``key``, valid for ``url_expires`` seconds."""
        return _guarded(lambda: self.client.generate_presigned_url("get_object", ExpiresIn=self.url_expires, Params={
            "Bucket": self.bucket, "Key": self._key(key), "ResponseContentType": content_type,
            "ResponseContentDisposition": f'attachment; filename="{download_name}"'}), "sign a URL for " + key)
