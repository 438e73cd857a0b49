"""Evidence zips in an S3 bucket under a prefix, behind the same Protocol as the folder store.

boto3 is an optional extra (`pip install 'courier[s3]'`), imported only when a store is built
without a client. `url` is a presigned GET that expires after 15 minutes, like Chef's.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

from reconciler.errors import CourierError, NotFound
from reconciler.evidence.filesystem import check_key

URL_EXPIRY_SECONDS = 15 * 60


class S3Client(Protocol):
    """The part of a boto3 S3 client this store uses."""

    def put_object(self, **kwargs: Any) -> Any: ...
    def get_object(self, **kwargs: Any) -> Any: ...
    def generate_presigned_url(self, *args: Any, **kwargs: Any) -> str: ...


class S3EvidenceStore:
    """Key `k` is stored as object `prefix/k` of `bucket`."""

    def __init__(self, bucket: str, prefix: str = "", client: S3Client | None = None) -> None:
        if not bucket:
            raise CourierError("an S3 evidence store needs a bucket name")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client if client is not None else _default_client()

    def object_key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(
            Bucket=self.bucket,
            Key=self.object_key(key),
            Body=data,
            ContentType="application/zip",
        )

    def get(self, key: str) -> bytes:
        object_key = self.object_key(key)
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=object_key)
        except Exception as exc:  # botocore's ClientError is only known once boto3 is imported
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404"):
                raise NotFound(f"no evidence stored under {key!r}") from exc
            raise
        body: bytes = response["Body"].read()
        return body

    def url(self, key: str) -> str:
        return self.client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": self.object_key(key)},
            ExpiresIn=URL_EXPIRY_SECONDS,
        )


def _default_client() -> S3Client:
    try:
        boto3 = importlib.import_module("boto3")
        config = importlib.import_module("botocore.config")
    except ImportError as exc:
        raise CourierError("the S3 evidence store needs boto3: pip install 'courier[s3]'") from exc
    # Signature V4 for the presigned URLs: every region accepts it, newer ones accept only it.
    client: S3Client = boto3.client("s3", config=config.Config(signature_version="s3v4"))
    return client
