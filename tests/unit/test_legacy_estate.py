"""The sandbox's legacy estate, seen through boto3 as any tool would see it: what it
holds by default, and that its objects, made on moto's backend, are what S3 keeps after
the uploads a legacy uploader makes (compared with objects uploaded through boto3), also
after a round trip through the snapshot."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from typing import Any

import crc32c
import pytest
from botocore.config import Config

from phasegate.engines.sandbox import legacy
from phasegate.engines.sandbox.emulator import Emulator
from phasegate.engines.sandbox.legacy import AWKWARD_KEYS, estate_body
from phasegate.engines.sandbox.store import Checkpoint, SandboxStore

REGION = "us-east-1"
BUCKET = legacy.legacy_bucket_name("test")
FIRST = "exports/2026/01/01/part-000.csv"
"""Export 0: SHA256 checksum, user metadata and tags."""
LARGE = "warehouse/snapshots/2026-10/snapshot-00.parquet"


class Estate:
    def __init__(self, store: SandboxStore, checkpoint: Checkpoint) -> None:
        self.store = store
        self.checkpoint = checkpoint

    @property
    def emulator(self) -> Emulator:
        return self.store.cloud(self.checkpoint)

    def s3(self, **config: Any) -> Any:
        session = self.emulator.session()
        return session.client("s3", region_name=REGION, config=Config(**config))


@pytest.fixture(scope="module")
def estate(emu: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Estate]:
    """The default estate, committed (and the cloud left loaded)."""
    root = tmp_path_factory.mktemp("estate")
    store = SandboxStore(root / "sandbox", "test", REGION, key_file=root / "sandbox.key")
    checkpoint = store.load()
    store.cloud(checkpoint)
    store.commit(checkpoint)
    try:
        yield Estate(store, checkpoint)
    finally:
        store.close()


@pytest.fixture(scope="module")
def versions(estate: Estate) -> dict[str, list[dict[str, Any]]]:
    """Every version and delete marker of the legacy bucket, by key, newest first."""
    found: dict[str, list[dict[str, Any]]] = {}
    pages = estate.s3().get_paginator("list_object_versions").paginate(Bucket=BUCKET)
    for page in pages:
        for version in page.get("Versions", []):
            found.setdefault(version["Key"], []).append(version)
        for marker in page.get("DeleteMarkers", []):
            found.setdefault(marker["Key"], []).append({**marker, "DeleteMarker": True})
    return found


def _current(versions: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    return {
        key: latest
        for key, history in versions.items()
        for latest in history
        if latest["IsLatest"] and not latest.get("DeleteMarker")
    }


def test_the_default_estate_holds_what_it_says(
    estate: Estate, versions: dict[str, list[dict[str, Any]]]
) -> None:
    current = _current(versions)
    markers = [v for history in versions.values() for v in history if v.get("DeleteMarker")]
    all_versions = [v for history in versions.values() for v in history if "Size" in v]

    assert len(current) == 5000
    assert len(all_versions) == 5000 + 50 + 25, "overwritten and deleted versions are kept"
    assert len(markers) == 25 and all(m["IsLatest"] for m in markers)
    legacy_summary = estate.checkpoint.legacy
    assert legacy_summary["objects"] == 5000
    assert legacy_summary["bytes"] == sum(v["Size"] for v in current.values())
    assert (legacy_summary["versions"], legacy_summary["delete_markers"]) == (5075, 25)
    exports = [k for k in current if k.startswith("exports/2026/") and k.endswith(".csv")]
    assert len(exports) > 3500 and {"reports", "customers", "media", "warehouse"} <= {
        key.split("/", 1)[0] for key in current
    }
    assert sum(v["Size"] >= 24 << 20 for v in current.values()) == 3, "three large objects"


def test_awkward_keys_are_there_and_read_back(estate: Estate) -> None:
    s3 = estate.s3()
    names = set(AWKWARD_KEYS)
    assert any(len(name.encode()) == 1000 for name in names), "a key of exactly 1,000 bytes"
    assert {"exports/café/menu-é.csv", "exports/日本/東京/データ.csv"} <= names
    assert "exports//double-slash.csv" in names and "archive/2025/" in names
    for name in names:
        head = s3.head_object(Bucket=BUCKET, Key=name)
        body = s3.get_object(Bucket=BUCKET, Key=name)["Body"].read()
        assert len(body) == head["ContentLength"], name
        if name in ("archive/2025/", "markers/_SUCCESS"):
            assert body == b"" and head["ETag"] == '"d41d8cd98f00b204e9800998ecf8427e"'
        else:
            assert body.startswith(b"customer_id,event,amount_cents\n"), name
            assert head["ETag"] == f'"{hashlib.md5(body).hexdigest()}"', name


def test_bodies_are_the_same_bytes_in_every_sandbox(estate: Estate) -> None:
    s3 = estate.s3()
    first = s3.get_object(Bucket=BUCKET, Key=FIRST)["Body"].read()
    large = s3.get_object(Bucket=BUCKET, Key=LARGE)["Body"].read()
    assert hashlib.sha256(first).hexdigest() == (
        "a45164da49bee4b163f51d15a1e5d96762aa21a4f731b4ea582f5aaec22a0227"
    )
    assert len(large) == 24 << 20
    assert hashlib.sha256(large).hexdigest() == (
        "ab39b122bf127b2bfd6cbc35119db4c2f547f7f8782b2d3a314b2e92941842c2"
    )


def test_checksums_metadata_and_tags_are_kept_where_the_uploader_set_them(
    estate: Estate,
) -> None:
    s3 = estate.s3()
    head = s3.head_object(Bucket=BUCKET, Key=FIRST, ChecksumMode="ENABLED")
    body = s3.get_object(Bucket=BUCKET, Key=FIRST)["Body"].read()
    assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(body).digest()).decode()
    assert head["ContentType"] == "text/csv"
    assert head["Metadata"] == {"source": "nightly-export", "batch": "0"}
    tags = s3.get_object_tagging(Bucket=BUCKET, Key=FIRST)["TagSet"]
    assert {t["Key"]: t["Value"] for t in tags} == {"retention": "7y", "classification": "internal"}

    crc = legacy._tree_key(11)  # object 11: CRC32C, nothing else
    head = s3.head_object(Bucket=BUCKET, Key=crc, ChecksumMode="ENABLED")
    body = s3.get_object(Bucket=BUCKET, Key=crc)["Body"].read()
    assert (
        head["ChecksumCRC32C"] == base64.b64encode(crc32c.crc32c(body).to_bytes(4, "big")).decode()
    )
    assert head["Metadata"] == {}
    assert s3.get_object_tagging(Bucket=BUCKET, Key=crc)["TagSet"] == []

    plain = s3.head_object(Bucket=BUCKET, Key=legacy._tree_key(1), ChecksumMode="ENABLED")
    assert not [k for k in plain if k.startswith("Checksum")], "no checksum where none was sent"


def test_multipart_objects_have_part_etags_and_part_counts(estate: Estate) -> None:
    s3 = estate.s3()
    large = s3.head_object(Bucket=BUCKET, Key=LARGE, ChecksumMode="ENABLED")
    assert large["ETag"].endswith('-3"') and large["ContentLength"] == 24 << 20
    assert large["ContentType"] == "application/vnd.apache.parquet"
    assert "ChecksumSHA256" in large
    part = s3.head_object(Bucket=BUCKET, Key=LARGE, PartNumber=2)
    assert part["PartsCount"] == 3 and part["ContentLength"] == 8 << 20
    clip = s3.head_object(Bucket=BUCKET, Key="media/raw/2026/10/01/clip-000.mp4")
    assert clip["ETag"].endswith('-2"')


def test_overwritten_keys_keep_their_older_version_and_deleted_keys_are_not_current(
    estate: Estate, versions: dict[str, list[dict[str, Any]]]
) -> None:
    s3 = estate.s3()
    overwritten = [
        key
        for key, history in versions.items()
        if len(history) == 2 and not any(v.get("DeleteMarker") for v in history)
    ]
    assert len(overwritten) == 50
    old, new = sorted(versions[overwritten[0]], key=lambda v: v["IsLatest"])
    bodies = [
        s3.get_object(Bucket=BUCKET, Key=overwritten[0], VersionId=v["VersionId"])["Body"].read()
        for v in (old, new)
    ]
    assert bodies[0] != bodies[1]
    deleted = [k for k, history in versions.items() if any(v.get("DeleteMarker") for v in history)]
    assert len(deleted) == 25
    with pytest.raises(s3.exceptions.ClientError, match="404"):
        s3.head_object(Bucket=BUCKET, Key=deleted[0])


# --- made on the backend, as boto3 uploads make them ------------------------------------


def _seen(s3: Any, bucket: str, key: str, parts: bool = False) -> dict[str, Any]:
    """What boto3 tells of an object, but what differs between any two uploads."""
    drop = {"ResponseMetadata", "LastModified", "VersionId", "Body"}

    def clean(answer: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in answer.items() if k not in drop}

    got = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    seen = {
        "head": clean(s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")),
        "get": clean(got),
        "body": hashlib.sha256(got["Body"].read()).hexdigest(),
        "attributes": clean(
            s3.get_object_attributes(
                Bucket=bucket,
                Key=key,
                ObjectAttributes=["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"],
            )
        ),
        "tags": s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"],
    }
    if parts:
        seen["part"] = clean(s3.head_object(Bucket=bucket, Key=key, PartNumber=1))
    else:  # moto fails GetObjectAcl on an object uploaded in parts, whoever made it
        seen["acl"] = clean(s3.get_object_acl(Bucket=bucket, Key=key))
    return seen


def _upload_parts(
    s3: Any, bucket: str, key: str, chunks: list[bytes], checksum: str | None, **extra: Any
) -> None:
    upload = s3.create_multipart_upload(
        Bucket=bucket, Key=key, **({"ChecksumAlgorithm": checksum} if checksum else {}), **extra
    )
    done = []
    for number, chunk in enumerate(chunks, 1):
        given: dict[str, str] = {}
        if checksum == "CRC32C":  # sent as computed: botocore computes CRC32C only with awscrt
            given["ChecksumCRC32C"] = base64.b64encode(
                crc32c.crc32c(chunk).to_bytes(4, "big")
            ).decode()
        elif checksum:
            given["ChecksumAlgorithm"] = checksum
        part = s3.upload_part(
            Bucket=bucket,
            Key=key,
            UploadId=upload["UploadId"],
            PartNumber=number,
            Body=chunk,
            **given,
        )
        done.append({"PartNumber": number, "ETag": part["ETag"]})
    s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload["UploadId"], MultipartUpload={"Parts": done}
    )


def _body(s3: Any, key: str) -> bytes:
    body: bytes = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return body


def test_estate_objects_are_what_uploads_through_boto3_make(estate: Estate) -> None:
    s3 = estate.s3()
    plain = estate.s3(request_checksum_calculation="when_required")  # an older SDK
    reference = "phasegate-estate-reference"
    s3.create_bucket(Bucket=reference)
    s3.put_bucket_versioning(Bucket=reference, VersioningConfiguration={"Status": "Enabled"})
    try:
        # Export 0: SHA256, content type, metadata, tags.
        s3.put_object(
            Bucket=reference,
            Key=FIRST,
            Body=_body(s3, FIRST),
            ChecksumAlgorithm="SHA256",
            ContentType="text/csv",
            Metadata={"source": "nightly-export", "batch": "0"},
            Tagging="retention=7y&classification=internal",
        )
        # Object 13: CRC32, as today's SDKs send by default. Object 1: no checksum.
        thirteen, one = legacy._tree_key(13), legacy._tree_key(1)
        s3.put_object(
            Bucket=reference, Key=thirteen, Body=_body(s3, thirteen), ContentType="text/csv"
        )
        plain.put_object(Bucket=reference, Key=one, Body=_body(s3, one), ContentType="text/csv")
        # Clips 0, 1, 2: CRC32C, none, SHA256; two parts, the second one tagged.
        for i, checksum in enumerate(("CRC32C", None, "SHA256")):
            key = f"media/raw/2026/10/{i + 1:02d}/clip-{i:03d}.mp4"
            data = _body(s3, key)
            _upload_parts(
                plain,
                reference,
                key,
                [data[: 5 << 20], data[5 << 20 :]],
                checksum,
                ContentType="video/mp4",
                **({"Tagging": "team=media"} if i % 2 else {}),
            )
        keys = [FIRST, thirteen, one] + [
            f"media/raw/2026/10/{i + 1:02d}/clip-{i:03d}.mp4" for i in range(3)
        ]
        for key in keys:
            made = _seen(s3, BUCKET, key, parts=key.startswith("media/"))
            uploaded = _seen(s3, reference, key, parts=key.startswith("media/"))
            assert made == uploaded, key
    finally:
        for version in s3.list_object_versions(Bucket=reference).get("Versions", []):
            s3.delete_object(Bucket=reference, Key=version["Key"], VersionId=version["VersionId"])
        s3.delete_bucket(Bucket=reference)


def test_the_estate_reads_the_same_after_a_round_trip_through_the_snapshot(
    estate: Estate,
) -> None:
    s3 = estate.s3()
    keys = [FIRST, LARGE, "media/raw/2026/10/02/clip-001.mp4", max(AWKWARD_KEYS, key=len)]
    parts = {key: key.startswith(("media/", "warehouse/")) for key in keys}
    before = {key: _seen(s3, BUCKET, key, parts[key]) for key in keys}
    estate.store.discard()  # loads the cloud as committed: bodies from their recipes again
    after = {key: _seen(estate.s3(), BUCKET, key, parts[key]) for key in keys}
    assert after == before


def test_recipes_make_the_same_bytes_and_refuse_what_they_do_not_know() -> None:
    recipe = ("estate-1", "rows", 7, 30)
    assert estate_body(recipe) == estate_body(recipe)
    with pytest.raises(ValueError, match="unknown legacy estate recipe"):
        estate_body(("estate-0", "rows", 7, 30))
