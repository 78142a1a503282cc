"""The ``s3_parity`` check: the proof that the lake's prefix holds exactly the legacy data,
against moto in this process.

The copy here is made the way the data layer's copy makes it (CopyObject with
``ChecksumAlgorithm=SHA256``; a multipart object copied part by part with UploadPartCopy),
so the proof sees what it will see after the real copy. Every test records the S3 calls
the proof makes (botocore event hooks) and finds no call that writes.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from pydantic import ValidationError

from phasegate.checks import CheckContext, CheckSpec, run_check
from phasegate.checks.parity import target_checksums
from phasegate.checks.s3_manifest import glob_matches
from phasegate.copystep import copy_for_proof
from phasegate.datacopy import CopyOptions, Location, copy_prefix
from phasegate.errors import Interrupted
from phasegate.s3listing import Listing
from phasegate.state import CheckResult, PhaseState, StateStore

REGION = "us-east-1"
SOURCE, TARGET = "legacy-exports", "lake-raw"
SRC_PREFIX, DST_PREFIX = "exports/", "legacy/exports/"
PART = 5 * 1024 * 1024
READS = {"ListObjectsV2", "HeadObject", "GetObject"}

LONG_KEY = SRC_PREFIX + "deep/" + "k" * (1000 - len(SRC_PREFIX + "deep/"))
OBJECTS: dict[str, tuple[bytes, bool]] = {
    # key: (body, written with an S3 SHA-256)
    SRC_PREFIX + "2026/10/01/part-001.csv": (b"id,name\n1,ada\n", True),
    SRC_PREFIX + "2026/10/01/part-002.csv": (b"id,name\n2,grace\n", False),
    SRC_PREFIX + "2026/10/01/empty.csv": (b"", True),
    SRC_PREFIX + "r\u00e9gion/caf\u00e9 \u2713 +%.csv": ("\u00e9t\u00e9\n".encode(), False),
    LONG_KEY: (b"long key\n", True),
    SRC_PREFIX + "tmp/scratch.tmp": (b"not exported\n", False),  # excluded below
    "other/outside.csv": (b"outside the prefix\n", True),
}
MULTIPART_KEY = SRC_PREFIX + "2026/10/01/big.bin"
MULTIPART_BODY = bytes(range(256)) * (PART // 256) + b"tail of the big object"
EXCLUDE = ["tmp/**"]


class Calls:
    """The S3 calls made through a client: (operation, bucket, key)."""

    def __init__(self, client: Any) -> None:
        self.seen: list[tuple[str, str, str]] = []
        self.on_get: Any = None
        client.meta.events.register("before-parameter-build.s3", self._record)

    def _record(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.seen.append((model.name, params.get("Bucket", ""), params.get("Key", "")))
        if model.name == "GetObject" and self.on_get is not None:
            self.on_get(params)

    def count(self, operation: str, bucket: str) -> int:
        return sum(1 for op, b, _ in self.seen if (op, b) == (operation, bucket))

    def operations(self) -> set[str]:
        return {op for op, _, _ in self.seen}


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket=SOURCE)
        client.create_bucket(Bucket=TARGET)
        for key, (body, checksum) in OBJECTS.items():
            extra = {"ChecksumAlgorithm": "SHA256"} if checksum else {}
            client.put_object(Bucket=SOURCE, Key=key, Body=body, **extra)
        _put_multipart(client, SOURCE, MULTIPART_KEY, MULTIPART_BODY)
        _copy_all(client)
        yield client


def _put_multipart(client: Any, bucket: str, key: str, body: bytes) -> None:
    upload = client.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="SHA256")
    parts = []
    for number, start in enumerate(range(0, len(body), PART), 1):
        answer = client.upload_part(
            Bucket=bucket,
            Key=key,
            UploadId=upload["UploadId"],
            PartNumber=number,
            Body=body[start : start + PART],
            ChecksumAlgorithm="SHA256",
        )
        parts.append(
            {
                "PartNumber": number,
                "ETag": answer["ETag"],
                "ChecksumSHA256": answer["ChecksumSHA256"],
            }
        )
    client.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
    )


def _copy(client: Any, key: str) -> None:
    """One object copied as the data layer copies it: multipart sources part by part."""
    target = DST_PREFIX + key[len(SRC_PREFIX) :]
    size = client.head_object(Bucket=SOURCE, Key=key)["ContentLength"]
    if size <= PART:
        client.copy_object(
            Bucket=TARGET,
            Key=target,
            CopySource={"Bucket": SOURCE, "Key": key},
            ChecksumAlgorithm="SHA256",
        )
        return
    upload = client.create_multipart_upload(Bucket=TARGET, Key=target, ChecksumAlgorithm="SHA256")
    parts = []
    for number, start in enumerate(range(0, size, PART), 1):
        answer = client.upload_part_copy(
            Bucket=TARGET,
            Key=target,
            UploadId=upload["UploadId"],
            PartNumber=number,
            CopySource={"Bucket": SOURCE, "Key": key},
            CopySourceRange=f"bytes={start}-{min(start + PART, size) - 1}",
        )
        parts.append({"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]})
    client.complete_multipart_upload(
        Bucket=TARGET, Key=target, UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
    )


def _copy_all(client: Any) -> None:
    for key in [*OBJECTS, MULTIPART_KEY]:
        if key.startswith(SRC_PREFIX) and glob_matches(key[len(SRC_PREFIX) :], ["**"], EXCLUDE):
            _copy(client, key)


PARAMS: dict[str, Any] = {
    "source": {"bucket": "${config.legacy_bucket}", "prefix": SRC_PREFIX},
    "target": {"bucket": "${outputs.lake_buckets.raw}", "prefix": DST_PREFIX},
    "include": ["**"],
    "exclude": EXCLUDE,
    "concurrency": 4,
}


def _ctx(client: Any, work_dir: Path | None = None, **fields: Any) -> CheckContext:
    return CheckContext(
        environment="staging",
        stack="staging-data_layer",
        outputs={"lake_buckets": {"raw": TARGET}},
        config={"legacy_bucket": SOURCE},
        aws=lambda service: client,
        work_dir=work_dir,
        **fields,
    )


def _prove(
    client: Any,
    work_dir: Path | None = None,
    params: dict[str, Any] | None = None,
    listings: Mapping[str, Listing] | None = None,
    **fields: Any,
) -> CheckResult:
    spec = CheckSpec(
        name="lake_has_the_legacy_data",
        kind="s3_parity",
        params={**PARAMS, **(params or {})},
        interval=0,
    )
    return run_check(spec, _ctx(client, work_dir, listings=dict(listings or {}), **fields))


def _expected_manifest(client: Any) -> tuple[int, int, str]:
    """Objects, bytes and manifest digest of the source, from the bodies themselves."""
    lines = []
    for key in sorted([*OBJECTS, MULTIPART_KEY], key=lambda k: k.encode()):
        relative = key[len(SRC_PREFIX) :]
        if not key.startswith(SRC_PREFIX) or not glob_matches(relative, ["**"], EXCLUDE):
            continue
        body = client.get_object(Bucket=SOURCE, Key=key)["Body"].read()
        lines.append((relative, len(body), hashlib.sha256(body).hexdigest()))
    text = "".join(f"{k}\t{n}\t{h}\n" for k, n, h in lines)
    return len(lines), sum(n for _, n, _ in lines), hashlib.sha256(text.encode()).hexdigest()


# --- parity holds ---------------------------------------------------------------------


def test_parity_holds_on_an_identical_copy_and_the_proof_only_reads(s3: Any) -> None:
    objects, size, digest = _expected_manifest(s3)
    calls = Calls(s3)
    result = _prove(s3)
    assert result.result == "pass", result.message
    assert result.message == (
        f"parity: {objects} objects, 5.0 MiB, manifest sha256:{digest[:12]}…: match"
    )
    assert result.detail is not None
    for side, bucket, prefix in (("source", SOURCE, SRC_PREFIX), ("target", TARGET, DST_PREFIX)):
        assert result.detail[side] == {
            "bucket": bucket,
            "prefix": prefix,
            "objects": objects,
            "bytes": size,
            "manifest": f"sha256:{digest}",
        }
    assert (result.detail["mismatches"], result.detail["first_mismatches"]) == (0, [])
    # S3's own SHA-256 where the object has a full-object one; the body read otherwise:
    # on the source the two written without one and the multipart object (its SHA-256 is
    # composite), on the target only the object copied in parts.
    assert result.detail["checksums"] == {
        "source_s3": 3,
        "source_computed": 3,
        "target_s3": 5,
        "target_computed": 1,
    }
    assert calls.operations() == READS
    assert calls.count("GetObject", SOURCE) == 3
    assert calls.count("GetObject", TARGET) == 1
    # Only objects listed with a SHA-256 are asked for it: the others are read at once.
    assert calls.count("HeadObject", SOURCE) == 3
    assert calls.count("HeadObject", TARGET) == 5


def test_what_moto_keeps_of_s3_checksums(s3: Any) -> None:
    """What the proof relies on from the emulator, written down as it behaves."""

    def checksums(bucket: str, key: str) -> dict[str, Any]:
        head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        return {k: v for k, v in head.items() if k.startswith("Checksum")}

    single = SRC_PREFIX + "2026/10/01/part-002.csv"  # written with no ChecksumAlgorithm
    body = OBJECTS[single][0]
    sha = base64.b64encode(hashlib.sha256(body).digest()).decode()
    # PutObject with SHA256: the full-object SHA-256. Without: botocore's default CRC32.
    assert checksums(SOURCE, SRC_PREFIX + "2026/10/01/part-001.csv")["ChecksumSHA256"] == (
        base64.b64encode(
            hashlib.sha256(OBJECTS[SRC_PREFIX + "2026/10/01/part-001.csv"][0]).digest()
        ).decode()
    )
    assert set(checksums(SOURCE, single)) == {"ChecksumCRC32"}
    # CopyObject with ChecksumAlgorithm=SHA256 gives the copy the full-object SHA-256.
    assert checksums(TARGET, DST_PREFIX + "2026/10/01/part-002.csv") == {"ChecksumSHA256": sha}
    # A multipart object's SHA-256 is composite, and moto gives it with neither the "-N"
    # suffix nor ChecksumType: only its ETag tells (hence the proof looks at the ETag).
    head = s3.head_object(Bucket=SOURCE, Key=MULTIPART_KEY, ChecksumMode="ENABLED")
    assert head["ETag"].endswith('-2"')
    assert "-" not in head["ChecksumSHA256"] and "ChecksumType" not in head
    assert head["ChecksumSHA256"] != base64.b64encode(hashlib.sha256(MULTIPART_BODY).digest())


# --- parity fails ---------------------------------------------------------------------


@pytest.mark.parametrize("with_checksum", [True, False], ids=["s3-sha256", "computed"])
def test_a_corrupted_target_object_fails_naming_it_at_the_first_attempt(
    s3: Any, with_checksum: bool
) -> None:
    relative = "2026/10/01/part-001.csv"
    body = OBJECTS[SRC_PREFIX + relative][0]
    bad = body[:-2] + b"X\n"  # same size, one byte differs
    extra = {"ChecksumAlgorithm": "SHA256"} if with_checksum else {}
    s3.put_object(Bucket=TARGET, Key=DST_PREFIX + relative, Body=bad, **extra)
    calls = Calls(s3)
    result = _prove(s3)  # three retries allowed: a mismatch is final all the same
    assert (result.result, result.attempts) == ("fail", 1)
    good, wrong = hashlib.sha256(body).hexdigest(), hashlib.sha256(bad).hexdigest()
    assert result.message == (
        f"parity FAILED: 1 of 6 objects differ: {SRC_PREFIX}{relative}: checksum differs "
        f"(source sha256:{good} target sha256:{wrong})"
    )
    assert result.detail is not None
    assert result.detail["first_mismatches"] == [
        {
            "key": SRC_PREFIX + relative,
            "problem": "checksum differs",
            "source": f"sha256:{good}",
            "target": f"sha256:{wrong}",
        }
    ]
    assert result.detail["source"]["manifest"] != result.detail["target"]["manifest"]
    assert "ListObjectsV2" in calls.operations() <= READS


def test_missing_extra_and_resized_objects_fail_naming_each(s3: Any) -> None:
    s3.delete_object(Bucket=TARGET, Key=DST_PREFIX + "2026/10/01/part-002.csv")
    s3.put_object(Bucket=TARGET, Key=DST_PREFIX + "2026/10/01/stray.csv", Body=b"stray\n")
    s3.put_object(Bucket=TARGET, Key=DST_PREFIX + "2026/10/01/empty.csv", Body=b"now full")
    # Excluded from the copy, so extra under the lake's prefix too.
    s3.put_object(Bucket=TARGET, Key=DST_PREFIX + "tmp/scratch.tmp", Body=b"not exported\n")
    result = _prove(s3)
    assert (result.result, result.attempts) == ("fail", 1)
    assert result.detail is not None
    assert result.detail["mismatches"] == 4
    assert result.detail["first_mismatches"] == [
        {
            "key": SRC_PREFIX + "2026/10/01/empty.csv",
            "problem": "size differs",
            "source": "0 bytes",
            "target": "8 bytes",
        },
        {"key": SRC_PREFIX + "2026/10/01/part-002.csv", "problem": "missing in target"},
        {"key": DST_PREFIX + "2026/10/01/stray.csv", "problem": "extra in target"},
        {"key": DST_PREFIX + "tmp/scratch.tmp", "problem": "extra in target"},
    ]
    assert result.message.startswith(
        f"parity FAILED: 4 of 8 objects differ: {SRC_PREFIX}2026/10/01/empty.csv: size differs "
        f"(source 0 bytes target 8 bytes); {SRC_PREFIX}2026/10/01/part-002.csv: missing in "
        f"target; {DST_PREFIX}2026/10/01/stray.csv: extra in target; and 1 more (the first 10 "
        "in the state file)"
    )


def test_a_source_object_rewritten_during_the_proof_is_named(s3: Any) -> None:
    key = SRC_PREFIX + "2026/10/01/part-002.csv"
    calls = Calls(s3)
    writer = boto3.client("s3", region_name=REGION)

    def rewrite(params: dict[str, Any]) -> None:
        if params["Key"] == key and calls.on_get is not None:
            calls.on_get = None
            writer.put_object(Bucket=SOURCE, Key=key, Body=b"rewritten meanwhile\n")

    calls.on_get = rewrite
    result = _prove(s3)
    assert result.result == "fail"
    assert result.message == (
        f"parity FAILED: 1 of 6 objects differ: {key}: changed on the source during the proof"
    )


# --- the checksum caches -------------------------------------------------------------


def test_a_second_proof_reads_only_what_changed_on_either_side(s3: Any, tmp_path: Path) -> None:
    first = _prove(s3, tmp_path)
    assert first.result == "pass"
    assert (tmp_path / "parity" / "staging-data_layer.json").is_file()
    assert (tmp_path / "parity" / "staging-data_layer.target.json").is_file()
    calls = Calls(s3)
    second = _prove(s3, tmp_path)
    assert second.result == "pass"
    assert second.detail is not None and first.detail is not None
    assert second.detail["source"] == first.detail["source"]
    assert second.detail["checksums"] == {"source_cached": 6, "target_cached": 6}
    for bucket in (SOURCE, TARGET):
        assert calls.count("GetObject", bucket) == calls.count("HeadObject", bucket) == 0

    # A new export and a rewritten one: only those two are read on the source.
    new, rewritten = SRC_PREFIX + "2026/10/02/part-001.csv", SRC_PREFIX + "2026/10/01/part-002.csv"
    s3.put_object(Bucket=SOURCE, Key=new, Body=b"id,name\n3,barbara\n")
    s3.put_object(Bucket=SOURCE, Key=rewritten, Body=b"id,name\n2,grace hopper\n")
    _copy(s3, new)
    _copy(s3, rewritten)
    calls.seen.clear()
    third = _prove(s3, tmp_path)
    assert third.result == "pass", third.message
    assert calls.count("GetObject", SOURCE) == 2
    assert {k for op, b, k in calls.seen if (op, b) == ("GetObject", SOURCE)} == {new, rewritten}
    looked_at = {k for op, b, k in calls.seen if b == TARGET and op != "ListObjectsV2"}
    assert looked_at == {DST_PREFIX + k[len(SRC_PREFIX) :] for k in (new, rewritten)}


def test_the_checksums_s3_answered_to_the_copy_spare_the_first_proof_asking_the_target(
    s3: Any, tmp_path: Path
) -> None:
    """The data copy keeps what each CopyObject answered; the proof then asks the target
    for nothing but its listing, and still sees a copy rewritten since."""
    into = "lake-raw-2"
    s3.create_bucket(Bucket=into)
    checksums = target_checksums(tmp_path, "staging-data_layer", f"s3://{into}/{DST_PREFIX}")
    copied = copy_prefix(
        s3,
        s3,
        Location(SOURCE, SRC_PREFIX),
        Location(into, DST_PREFIX),
        tmp_path / "copy",
        CopyOptions(exclude=tuple(EXCLUDE), multipart_threshold=PART),
        on_copied=lambda key, done: checksums.keep_written(key, done.size, done.written),
    )
    assert copied.ok and copied.copied_objects == 6
    assert checksums.save() is None
    target = {"bucket": into, "prefix": DST_PREFIX}
    calls = Calls(s3)
    first = _prove(s3, tmp_path, params={"target": target})
    assert first.result == "pass", first.message
    assert first.detail is not None
    # The five single-part copies from the copy's answers; the one copied in parts has a
    # composite checksum, which says nothing of the whole content: its body is read.
    assert first.detail["checksums"] == {
        "source_s3": 3,
        "source_computed": 3,
        "target_cached": 5,
        "target_computed": 1,
    }
    assert calls.count("HeadObject", into) == 0
    assert calls.count("GetObject", into) == 1

    rewritten = DST_PREFIX + "2026/10/01/part-001.csv"
    s3.put_object(Bucket=into, Key=rewritten, Body=b"id,name\n1,ada lovelace\n")
    second = _prove(s3, tmp_path, params={"target": target})
    assert second.result == "fail"
    assert f"{SRC_PREFIX}2026/10/01/part-001.csv: size differs" in second.message


def test_the_proof_takes_the_listings_the_copy_took_and_wrote_nothing_to_since(
    s3: Any, tmp_path: Path
) -> None:
    """A copy that wrote objects hands the proof the source's listing only; one that wrote
    nothing hands both, and a re-proof then makes no request at all."""
    into = "lake-raw-3"
    s3.create_bucket(Bucket=into)
    target = {"bucket": into, "prefix": DST_PREFIX}

    def copy_then_prove() -> tuple[int, CheckResult, Calls]:
        calls = Calls(s3)
        copied, listings = copy_for_proof(
            s3,
            Location(SOURCE, SRC_PREFIX),
            Location(into, DST_PREFIX),
            tmp_path / "copy",
            CopyOptions(exclude=tuple(EXCLUDE), multipart_threshold=PART),
            work_dir=tmp_path,
            stack="staging-data_layer",
        )
        calls.seen.clear()
        return copied.copied_objects, _prove(s3, tmp_path, {"target": target}, listings), calls

    written, first, calls = copy_then_prove()
    assert (written, first.result) == (6, "pass"), first.message
    assert first.detail is not None and first.detail["listed_by"] == {
        "source": "copy",
        "target": "proof",
    }
    assert [(op, b) for op, b, _ in calls.seen if op == "ListObjectsV2"] == [
        ("ListObjectsV2", into)
    ]

    written, again, calls = copy_then_prove()
    assert (written, again.result) == (0, "pass"), again.message
    assert again.detail is not None and again.detail["listed_by"] == {
        "source": "copy",
        "target": "copy",
    }
    assert again.detail["source"] == first.detail["source"]
    assert calls.seen == []

    # A copy rewritten behind the migration's back: the next copy lists it as it is now.
    rewritten = DST_PREFIX + "2026/10/01/part-002.csv"
    s3.put_object(Bucket=into, Key=rewritten, Body=b"id,name\n2,GRACE\n")
    written, third, calls = copy_then_prove()
    assert (written, third.result) == (0, "fail")
    assert f"{SRC_PREFIX}2026/10/01/part-002.csv: checksum differs" in third.message
    assert calls.count("GetObject", into) == 1


def test_a_copy_rewritten_after_a_passing_proof_fails_the_next_one(s3: Any, tmp_path: Path) -> None:
    """A cached target checksum is for the version proved: a rewrite is read again."""
    assert _prove(s3, tmp_path).result == "pass"
    relative = "2026/10/01/part-001.csv"
    body = OBJECTS[SRC_PREFIX + relative][0]
    s3.put_object(
        Bucket=TARGET,
        Key=DST_PREFIX + relative,
        Body=body[:-2] + b"X\n",
        ChecksumAlgorithm="SHA256",
    )
    again = _prove(s3, tmp_path)
    assert again.result == "fail"
    assert again.message.startswith(
        f"parity FAILED: 1 of 6 objects differ: {SRC_PREFIX}{relative}: checksum differs"
    )


def test_a_stop_between_objects_interrupts_and_keeps_what_was_computed(
    s3: Any, tmp_path: Path
) -> None:
    stop = threading.Event()
    calls = Calls(s3)
    # One worker: the multipart object is read first, then the stop comes as the next
    # body is asked for.
    stopper = SRC_PREFIX + "2026/10/01/part-002.csv"
    calls.on_get = lambda params: stop.set() if params["Key"] == stopper else None
    with pytest.raises(Interrupted, match="stopped on request during the parity proof"):
        _prove(s3, tmp_path, params={"concurrency": 1}, stop=stop)
    calls.on_get = None
    assert {k for op, b, k in calls.seen if (op, b) == ("GetObject", SOURCE)} == {
        MULTIPART_KEY,
        stopper,
    }
    calls.seen.clear()
    assert _prove(s3, tmp_path).result == "pass"
    # What the stopped proof had finished is not read again; the rest is.
    assert {k for op, b, k in calls.seen if (op, b) == ("GetObject", SOURCE)} == {
        stopper,
        SRC_PREFIX + "r\u00e9gion/caf\u00e9 \u2713 +%.csv",
    }


def test_a_damaged_cache_is_read_as_empty_and_rewritten(s3: Any, tmp_path: Path) -> None:
    cache = tmp_path / "parity" / "staging-data_layer.json"
    cache.parent.mkdir()
    cache.write_text('{"version": 1, "sources": {"s3://legacy-exports/exports/": {"x": [')
    assert _prove(s3, tmp_path).result == "pass"
    assert '"version": 1' in cache.read_text()


# --- params ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "error"),
    [
        pytest.param(
            {"source": {"prefix": "x/"}, "target": {"bucket": "lake"}},
            "params.source.bucket: Field required (s3_parity takes: source, target, include,",
            id="no-bucket",
        ),
        pytest.param(
            {"source": {"bucket": "legacy"}, "target": {"bucket": "lake"}, "includes": ["*"]},
            "params.includes: Extra inputs are not permitted (s3_parity takes:",
            id="unknown-key",
        ),
        pytest.param(
            {"source": {"bucket": "legacy", "prefx": "a/"}, "target": {"bucket": "lake"}},
            "params.source.prefx: Extra inputs are not permitted",
            id="unknown-key-in-a-side",
        ),
        pytest.param(
            {"source": {"bucket": "lake", "prefix": "a/"}, "target": {"bucket": "lake"}},
            "params: source s3://lake/a/ and target s3://lake/ overlap",
            id="overlap",
        ),
    ],
)
def test_bad_params_get_one_line_naming_the_field(params: dict[str, Any], error: str) -> None:
    with pytest.raises(ValidationError) as caught:
        CheckSpec(name="parity", kind="s3_parity", params=params)
    assert error in str(caught.value)


def test_a_reference_that_resolves_to_no_bucket_fails_without_an_attempt(s3: Any) -> None:
    spec = CheckSpec(
        name="parity",
        kind="s3_parity",
        params={**PARAMS, "target": {"bucket": "${outputs.lake_buckets.curated}"}},
    )
    result = run_check(spec, _ctx(s3))
    assert (result.result, result.attempts) == ("fail", 0)
    assert result.message.startswith(
        "params.target.bucket: ${outputs.lake_buckets.curated}: outputs.lake_buckets has no key"
    )


# --- globs and the state file ---------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "include", "exclude", "selected"),
    [
        ("a/b/c.csv", ["**"], [], True),
        ("c.csv", ["**/*.csv"], [], True),
        ("a/b/c.csv", ["**/*.csv"], [], True),
        ("a/b/c.csv", ["*.csv"], [], False),
        ("a/b/c.csv", ["a/*/c.csv"], [], True),
        ("a/b/c.csv", ["a/?/c.csv"], ["a/[bx]/*"], False),
        ("a/c/c.csv", ["a/?/c.csv"], ["a/[!c]/*"], True),
        ("tmp/x/y", ["**"], ["tmp/**"], False),
        ("[x].csv", ["[x].csv"], [], False),
        ("x.csv", ["[x].csv"], [], True),
        ("a+b (1).csv", ["a+b (1).csv"], [], True),
    ],
)
def test_globs_cross_folders_only_with_two_stars(
    key: str, include: list[str], exclude: list[str], selected: bool
) -> None:
    assert glob_matches(key, include, exclude) is selected


def test_the_detail_reaches_the_state_file_and_old_results_stay_as_they_were(
    s3: Any, tmp_path: Path
) -> None:
    store = StateStore(tmp_path, "staging")
    state = PhaseState(stack="staging-data_layer", environment="staging", phase="data_layer")
    plain = CheckResult(name="bucket", kind="s3_bucket", result="pass", message="ok")
    state.checks = [plain, _prove(s3)]
    store.write(state)
    text = store.path("data_layer").read_text()
    assert text.count("detail:") == 1
    again = store.read("data_layer")
    assert again.checks[0].detail is None
    assert again.checks[1].detail == state.checks[1].detail


def test_a_secret_in_the_detail_is_hidden_like_in_the_message(s3: Any) -> None:
    spec = CheckSpec(name="parity", kind="s3_parity", params=PARAMS)
    result = run_check(spec, _ctx(s3, secret_values=(SOURCE,)))
    assert result.result == "pass"
    assert result.detail is not None
    assert result.detail["source"]["bucket"] == "[secret]"
    assert SOURCE not in repr(result.detail)


def test_a_source_that_selects_nothing_proves_nothing_unless_allowed(s3: Any) -> None:
    typo = {"source": {"bucket": SOURCE, "prefix": "export/"}}
    result = _prove(s3, params=typo)
    assert (result.result, result.attempts) == ("fail", 1)
    assert result.message.startswith(
        f"parity: nothing to prove: s3://{SOURCE}/export/ has no object that include ['**']"
    )
    both_empty = {**typo, "target": {"bucket": TARGET, "prefix": "nothing/"}}
    assert _prove(s3, params={**both_empty, "allow_empty": True}).result == "pass"
    # Allowed empty, but the target prefix holds objects: they are extra.
    assert _prove(s3, params={**typo, "allow_empty": True}).result == "fail"


def test_a_bucket_that_does_not_exist_is_named(s3: Any) -> None:
    result = _prove(s3, params={"target": {"bucket": "no-such-lake", "prefix": DST_PREFIX}})
    assert (result.result, result.message) == ("fail", "bucket no-such-lake does not exist")
