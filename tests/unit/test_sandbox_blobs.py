"""S3 object bodies beside the cloud snapshot: written once under their hash, never
again by a later commit, collected once no snapshot needs them, and refused by name when
missing or damaged; the legacy estate's bodies are not written at all."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from moto.core.models import MockAWS

from phasegate.engines.sandbox.bodies import BlobError
from phasegate.engines.sandbox.emulator import Emulator
from phasegate.engines.sandbox.legacy import EstateSettings, legacy_bucket_name
from phasegate.engines.sandbox.store import SandboxStore
from phasegate.errors import EngineError

REGION = "us-east-1"
SMALL = EstateSettings(objects=60, large=1, large_mib=2, multipart=2, overwrites=3, deleted=4)
BUCKET = legacy_bucket_name("test")


def _store(tmp_path: Path, estate: EstateSettings | None = SMALL) -> SandboxStore:
    return SandboxStore(
        tmp_path / "sandbox", "test", REGION, key_file=tmp_path / "sandbox.key", estate=estate
    )


@pytest.fixture
def opened(tmp_path: Path, emu: Emulator) -> Iterator[SandboxStore]:
    """A sandbox with a small estate, committed."""
    store = _store(tmp_path)
    checkpoint = store.load()
    store.cloud(checkpoint)
    store.commit(checkpoint)
    try:
        yield store
    finally:
        store.close()


def _blobs(store: SandboxStore) -> dict[str, tuple[int, int]]:
    return {
        p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in store.blobs.directory.iterdir()
    }


def test_a_commit_with_the_default_estate_present_writes_no_blob_again(
    tmp_path: Path, emu: Emulator
) -> None:
    store = _store(tmp_path, estate=None)
    try:
        checkpoint = store.load()
        store.cloud(checkpoint)
        store.commit(checkpoint)
        first, written = _blobs(store), store.blobs.written
        snapshot = (store.directory / str(checkpoint.cloud)).stat().st_size
        assert written == 1 and len(first) == 1, "one segment: the estate's bodies are recipes"
        assert snapshot < 4 << 20, "180 MiB of objects, and a snapshot of a few hundred KiB"

        store.commit(checkpoint)
        assert _blobs(store) == first and store.blobs.written == written
    finally:
        store.close()
    later = _store(tmp_path, estate=None)
    try:
        checkpoint = later.load()
        later.cloud(checkpoint)
        later.commit(checkpoint)
        assert _blobs(later) == first and later.blobs.written == 0
    finally:
        later.close()


def test_a_new_body_is_written_once_and_collected_when_no_snapshot_needs_it(
    opened: SandboxStore,
) -> None:
    checkpoint = opened.load()
    s3 = opened.cloud(checkpoint).client("s3")
    s3.create_bucket(Bucket="phasegate-blob-test")
    body = b"id,value\n" * 5000
    s3.put_object(Bucket="phasegate-blob-test", Key="data.csv", Body=body)
    before = _blobs(opened)
    opened.commit(checkpoint)
    new = {name: size for name, (size, _) in _blobs(opened).items() if name not in before}
    assert list(new.values()) == [len(body)], "one blob: the body, written once"

    opened.commit(checkpoint)
    assert set(_blobs(opened)) == set(before) | set(new)

    s3.delete_object(Bucket="phasegate-blob-test", Key="data.csv")
    opened.commit(checkpoint)
    assert set(_blobs(opened)) == set(before), "collected with the snapshot that needed it"


def test_a_body_read_back_after_a_load_is_the_one_written(
    opened: SandboxStore, tmp_path: Path
) -> None:
    checkpoint = opened.load()
    s3 = opened.cloud(checkpoint).client("s3")
    s3.put_object(Bucket=BUCKET, Key="new/big.bin", Body=b"\x01\x02" * (1 << 20))
    opened.commit(checkpoint)
    opened.close()
    again = _store(tmp_path)
    try:
        s3 = again.cloud(again.load()).client("s3")
        assert s3.get_object(Bucket=BUCKET, Key="new/big.bin")["Body"].read() == b"\x01\x02" * (
            1 << 20
        )
    finally:
        again.close()


def _put_and_close(store: SandboxStore) -> Path:
    """An object put and committed; the blob its body is in."""
    checkpoint = store.load()
    s3 = store.cloud(checkpoint).client("s3")
    before = set(_blobs(store))
    s3.put_object(Bucket=BUCKET, Key="new/one.csv", Body=b"hello\n" * 100)
    store.commit(checkpoint)
    store.close()
    (pack,) = [n for n, (size, _) in _blobs(store).items() if n not in before and size == 600]
    return store.blobs.directory / pack


def test_a_damaged_blob_is_refused_by_name_when_read(opened: SandboxStore, tmp_path: Path) -> None:
    pack = _put_and_close(opened)
    damaged = bytearray(pack.read_bytes())
    damaged[10] ^= 0x20
    pack.write_bytes(bytes(damaged))

    again = _store(tmp_path)
    try:
        s3 = again.cloud(again.load()).client("s3")
        assert s3.head_object(Bucket=BUCKET, Key="new/one.csv")["ContentLength"] == 600
        with pytest.raises(BlobError) as caught:
            s3.get_object(Bucket=BUCKET, Key="new/one.csv")["Body"].read()
        assert str(caught.value).startswith(f"{pack}: blob damaged")
        assert "\n" not in str(caught.value)
    finally:
        again.close()


def test_a_missing_blob_is_refused_by_name_before_the_cloud_loads(
    opened: SandboxStore, tmp_path: Path
) -> None:
    pack = _put_and_close(opened)
    pack.unlink()
    answering = MockAWS._nested_count

    again = _store(tmp_path)
    try:
        with pytest.raises(EngineError) as caught:
            again.cloud(again.load())
        assert str(caught.value).startswith(f"{pack}: blob missing")
        assert MockAWS._nested_count == answering, "the refused cloud stopped answering"
        assert "migrate sandbox reset" in str(caught.value)
    finally:
        again.close()


def test_a_damaged_segment_is_refused_by_name(opened: SandboxStore, tmp_path: Path) -> None:
    (segment,) = opened.blobs.directory.iterdir()  # the small estate: its bucket's keys
    opened.close()
    segment.write_bytes(segment.read_bytes()[:-1] + b"!")
    answering = MockAWS._nested_count

    again = _store(tmp_path)
    try:
        with pytest.raises(EngineError) as caught:
            again.cloud(again.load())
        assert f"{segment}: blob damaged (its content does not match its name)" in str(caught.value)
        assert MockAWS._nested_count == answering, "the refused cloud stopped answering"
    finally:
        again.close()


def test_a_smaller_estate_is_made_as_configured(opened: SandboxStore) -> None:
    checkpoint = opened.load()
    summary = checkpoint.legacy
    assert (summary["objects"], summary["versions"], summary["delete_markers"]) == (60, 67, 4)
    s3 = opened.cloud(checkpoint).client("s3")
    head = s3.head_object(Bucket=BUCKET, Key="warehouse/snapshots/2026-10/snapshot-00.parquet")
    assert head["ContentLength"] == 2 << 20 and head["ETag"].endswith('-1"')


def test_a_change_that_reaches_a_bucket_other_than_by_request_is_saved_too(
    opened: SandboxStore, tmp_path: Path
) -> None:
    """moto's own services write to S3 on its backend (a log export, say): no request
    says the bucket changed, and the bucket's keys are saved again all the same."""
    from moto.backends import get_backend

    checkpoint = opened.load()
    opened.cloud(checkpoint)
    backend = get_backend("s3")["123456789012"]["aws"]
    backend.put_object(BUCKET, "exported/by-another-service.txt", b"log lines\n")
    opened.commit(checkpoint)
    opened.close()
    again = _store(tmp_path)
    try:
        s3 = again.cloud(again.load()).client("s3")
        got = s3.get_object(Bucket=BUCKET, Key="exported/by-another-service.txt")
        assert got["Body"].read() == b"log lines\n"
    finally:
        again.close()


def test_a_copied_object_shares_its_sources_body_and_reads_back_the_same(
    opened: SandboxStore, tmp_path: Path
) -> None:
    """A server-side copy of the estate (the data layer's) writes no body of its own."""
    checkpoint = opened.load()
    s3 = opened.cloud(checkpoint).client("s3")
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET, MaxKeys=20)["Contents"]] + [
        "warehouse/snapshots/2026-10/snapshot-00.parquet"
    ]
    s3.create_bucket(Bucket="phasegate-copy-test")
    for key in keys:
        s3.copy_object(
            Bucket="phasegate-copy-test",
            Key=key,
            CopySource={"Bucket": BUCKET, "Key": key},
            ChecksumAlgorithm="SHA256",  # as the data copy asks: the whole body's
        )
    written = opened.blobs.written
    opened.commit(checkpoint)
    assert opened.blobs.written - written <= 1, "at most the new bucket's keys, no body"
    opened.close()

    again = _store(tmp_path)
    try:
        s3 = again.cloud(again.load()).client("s3")
        for key in keys:
            copied = s3.get_object(Bucket="phasegate-copy-test", Key=key)["Body"].read()
            assert copied == s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    finally:
        again.close()
