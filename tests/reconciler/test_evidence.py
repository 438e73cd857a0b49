"""Evidence stores (one contract for the folder and S3 stores) and the evidence zip builder.

There is no S3 here: the S3 store runs against a small in-memory stand-in for boto3's client, and
with a real boto3 client only what needs no network (construction, key mapping, presigned URLs).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from reconciler.errors import CourierError, NotFound
from reconciler.evidence import (
    BadEvidenceKey,
    FileEvidenceStore,
    S3EvidenceStore,
    build_zip,
    check_key,
    collect_files,
)
from reconciler.ports import EvidenceStore, evidence_key

KEY = evidence_key("run-9", 2, 3)
BAD_KEYS = [
    "",
    "../x.zip",
    "run/../../x.zip",
    "/etc/passwd",
    "run\\x.zip",
    "run//x.zip",
    "./x.zip",
    "C:/x.zip",
    "run/x\0.zip",
    "run/..",
]


class NoSuchKey(Exception):
    """Shaped like botocore's ClientError for a missing object."""

    def __init__(self) -> None:
        super().__init__("NoSuchKey")
        self.response = {"Error": {"Code": "NoSuchKey"}}


class MemoryS3:
    """The three calls S3EvidenceStore makes, kept in a dict."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}

    def put_object(self, **kwargs: Any) -> Any:
        self.objects[kwargs["Bucket"], kwargs["Key"]] = kwargs["Body"]

    def get_object(self, **kwargs: Any) -> Any:
        try:
            data = self.objects[kwargs["Bucket"], kwargs["Key"]]
        except KeyError:
            raise NoSuchKey() from None
        return {"Body": io.BytesIO(data)}

    def generate_presigned_url(self, *args: Any, **kwargs: Any) -> str:
        params = kwargs["Params"]
        return f"https://{params['Bucket']}.example/{params['Key']}?X-Amz-Expires={kwargs['ExpiresIn']}"


def file_store(tmp_path: Path) -> EvidenceStore:
    return FileEvidenceStore(tmp_path / "evidence")


def s3_store(tmp_path: Path) -> EvidenceStore:
    return S3EvidenceStore("bucket", "courier/evidence/", client=MemoryS3())


STORES: dict[str, Callable[[Path], EvidenceStore]] = {"file": file_store, "s3": s3_store}


@pytest.fixture(params=sorted(STORES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> EvidenceStore:
    return STORES[request.param](tmp_path)


def test_put_then_get(store: EvidenceStore) -> None:
    store.put(KEY, b"PK first")
    store.put(KEY, b"PK second")  # a rerun replaces
    assert store.get(KEY) == b"PK second"


def test_get_of_a_missing_key_is_not_found(store: EvidenceStore) -> None:
    with pytest.raises(NotFound, match="no evidence stored under"):
        store.get(KEY)


@pytest.mark.parametrize("key", BAD_KEYS)
def test_keys_that_could_leave_the_store_are_refused(store: EvidenceStore, key: str) -> None:
    with pytest.raises(BadEvidenceKey):
        store.put(key, b"x")
    with pytest.raises(BadEvidenceKey):
        store.get(key)
    with pytest.raises(BadEvidenceKey):
        store.url(key)


def test_a_bad_key_is_a_user_error_naming_the_key() -> None:
    with pytest.raises(CourierError, match=r"evidence key '\.\./x' has an empty, '\.' or '\.\.'"):
        check_key("../x")


def test_the_file_store_keeps_one_file_per_key(tmp_path: Path) -> None:
    store = FileEvidenceStore(tmp_path / "evidence")
    store.put(KEY, b"zip")
    path = tmp_path / "evidence" / KEY
    assert path.read_bytes() == b"zip"
    assert store.url(KEY) == path.as_uri()
    assert store.url(KEY).startswith("file:///")
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no partial file left
    assert not (tmp_path / "x.zip").exists()


def test_the_file_store_root_may_be_relative(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = FileEvidenceStore(Path(".courier/evidence"))
    store.put(KEY, b"zip")
    assert store.url(KEY) == (tmp_path / ".courier/evidence" / KEY).as_uri()


def test_the_s3_store_puts_keys_under_its_prefix() -> None:
    client = MemoryS3()
    S3EvidenceStore("bucket", "/courier/evidence/", client=client).put(KEY, b"zip")
    assert client.objects == {("bucket", f"courier/evidence/{KEY}"): b"zip"}
    assert S3EvidenceStore("bucket", client=client).object_key(KEY) == KEY


def test_the_s3_store_needs_a_bucket() -> None:
    with pytest.raises(CourierError, match="needs a bucket"):
        S3EvidenceStore("", client=MemoryS3())


def test_the_s3_store_with_boto3_signs_urls_for_15_minutes(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("boto3")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-real-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    store = S3EvidenceStore("courier-bucket", "runs")  # builds a real boto3 client; no request
    url = urlparse(store.url(KEY))
    assert url.scheme == "https"
    assert "courier-bucket" in url.netloc + url.path
    assert url.path.endswith(f"runs/{KEY}")
    query = parse_qs(url.query)
    assert query["X-Amz-Expires"] == ["900"]
    with pytest.raises(BadEvidenceKey):
        store.url("../escape.zip")


def test_a_zip_is_masked_and_dated(tmp_path: Path) -> None:
    when = datetime(2026, 5, 6, 7, 8, 10, tzinfo=UTC)
    big = b"secret " + b"x" * 40000

    def mask(data: bytes) -> bytes:
        return data.replace(b"secret", b"****")

    data = build_zip([("a.txt", b"a secret"), ("secret.txt", b"s"), ("big.txt", big)], when, mask)
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.namelist() == ["a.txt", "****.txt", "big.txt"]
    assert archive.read("a.txt") == b"a ****"
    assert archive.read("big.txt").startswith(b"**** xxx")
    assert archive.getinfo("a.txt").compress_type == zipfile.ZIP_STORED
    assert archive.getinfo("big.txt").compress_type == zipfile.ZIP_DEFLATED
    assert archive.getinfo("a.txt").date_time == (2026, 5, 6, 7, 8, 10)  # zip: 2 s steps
    assert b"secret" not in data


def test_left_files_are_capped_and_symlinks_not_followed(tmp_path: Path) -> None:
    root = tmp_path / "ev"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_bytes(b"a" * 10)
    (root / "sub" / "b.txt").write_bytes(b"b" * 10)
    (root / "z.bin").write_bytes(b"z" * 100)
    (tmp_path / "outside.txt").write_text("outside")
    (root / "link.txt").symlink_to(tmp_path / "outside.txt")
    (root / "dirlink").symlink_to(tmp_path)
    left = collect_files(root, limit=50)
    assert left.members == [("files/a.txt", b"a" * 10), ("files/sub/b.txt", b"b" * 10)]
    assert left.skipped == [
        "dirlink: a symbolic link",
        "link.txt: a symbolic link",
        "z.bin: 100 bytes would pass the 50 byte limit",
    ]
