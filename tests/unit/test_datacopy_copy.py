"""The S3 copy library against the emulated cloud: a faithful full copy, a re-run that
only lists, the delta, a stopped or killed run resumed, throttling, globs, and the
source bucket never written to."""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse, HeadersDict

from phasegate.datacopy import (
    CopyOptions,
    DataCopyError,
    Location,
    Progress,
    copy_prefix,
    journal_path,
    s3_client,
)
from phasegate.engines.sandbox.emulator import Emulator, _answer_from_moto

MIB = 1024 * 1024
BIG = "big/model.bin"  # above the test threshold: copied in parts
AWKWARD = {
    "with space/a b.csv": b"space",
    "plus+sign.csv": b"plus",
    "per%cent%20.csv": b"percent",
    "unicodé/数据/ファイル.csv": b"unicode",
    "empty.bin": b"",
    "deep/" + "k" * 995: b"a key of 1,000 bytes",  # 1,008 with "exports/"
}
OPTIONS = CopyOptions(
    workers=8, multipart_threshold=5 * MIB, part_size=5 * MIB, backoff=0.01, progress_interval=0
)
_names = itertools.count()


class Calls:
    """Every S3 API call made through the clients it watches: (operation, bucket, method)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()

    def watch(self, client: Any) -> Any:
        client.meta.events.register("before-parameter-build.s3", self._record)
        return client

    def _record(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        with self._lock:
            self.seen.append((model.name, params.get("Bucket", ""), model.http["method"]))

    def on(self, bucket: str) -> list[tuple[str, str]]:
        return [(op, method) for op, b, method in self.seen if b == bucket]

    def clear(self) -> None:
        self.seen.clear()


def _error(status: int, code: str) -> AWSResponse:
    body = f"<Error><Code>{code}</Code><Message>injected</Message></Error>".encode()

    class Raw(io.BytesIO):
        def stream(self, **_: Any) -> Iterator[bytes]:
            yield body

    return AWSResponse(
        "https://s3", status, HeadersDict({"content-type": "application/xml"}), Raw(body)
    )


class Estate:
    """A legacy bucket full of awkward objects, an empty lake bucket and a KMS key."""

    def __init__(self, emu: Emulator, tmp_path: Path) -> None:
        n = next(_names)
        self.calls = Calls()
        # The copy's client, watched; the test's own calls go through another.
        self.s3 = self.calls.watch(s3_client(emu.session(), workers=8, max_attempts=4))
        self.admin = emu.session().client("s3")
        self.legacy, self.lake = f"legacy-{n}", f"lake-{n}"
        self.admin.create_bucket(Bucket=self.legacy)
        self.admin.create_bucket(Bucket=self.lake)
        self.key = emu.client("kms").create_key()["KeyMetadata"]["Arn"]
        self.source = Location(self.legacy, "exports")
        self.target = Location(self.lake, "raw/legacy/")
        self.journal_dir = tmp_path / "copy"
        self.bodies: dict[str, bytes] = {}
        for i in range(300):
            self.put(f"day-{i % 7}/part-{i:04d}.csv", f"row,{i}\n".encode() * (i % 5 + 1))
        for key, body in AWKWARD.items():
            self.put(key, body, ContentType="application/octet-stream")
        self.put("tagged/report.json", b'{"a": 1}', ContentType="application/json",
                 Metadata={"owner": "finance", "schema": "v2"}, Tagging="class=pii&team=data",
                 CacheControl="max-age=60")  # fmt: skip
        self.put(BIG, os.urandom(11 * MIB), ContentType="application/x-model",
                 Metadata={"framework": "torch"}, Tagging="tier=gold")  # fmt: skip

    def put(self, key: str, body: bytes, **extra: Any) -> None:
        self.admin.put_object(Bucket=self.legacy, Key=self.source.prefix + key, Body=body, **extra)
        self.bodies[key] = body

    def copy(self, options: CopyOptions | None = None, **kwargs: Any) -> Any:
        options = options or CopyOptions(**{**_fields(OPTIONS), "kms_key_id": self.key})
        return copy_prefix(
            self.s3, self.s3, self.source, self.target, self.journal_dir, options, **kwargs
        )

    def copied(self) -> dict[str, bytes]:
        found = {}
        for page in self.admin.get_paginator("list_objects_v2").paginate(
            Bucket=self.lake, Prefix=self.target.prefix
        ):
            for obj in page.get("Contents", ()):
                key = obj["Key"][len(self.target.prefix) :]
                found[key] = self.admin.get_object(Bucket=self.lake, Key=obj["Key"])["Body"].read()
        return found


def _fields(options: CopyOptions) -> dict[str, Any]:
    return {name: getattr(options, name) for name in options.__dataclass_fields__}


@pytest.fixture
def estate(emu: Emulator, tmp_path: Path) -> Estate:
    return Estate(emu, tmp_path)


def test_a_full_copy_is_byte_identical_and_faithful(estate: Estate) -> None:
    result = estate.copy()

    assert result.ok, result.failures
    assert result.copied_objects == result.listed_objects == len(estate.bodies) == 308
    assert result.copied_bytes == sum(map(len, estate.bodies.values()))
    assert estate.copied() == estate.bodies
    s3, lake, prefix = estate.admin, estate.lake, estate.target.prefix
    for key in ("tagged/report.json", BIG):
        source = s3.head_object(Bucket=estate.legacy, Key=estate.source.prefix + key)
        copy = s3.head_object(Bucket=lake, Key=prefix + key, ChecksumMode="ENABLED")
        assert copy["ContentType"] == source["ContentType"]
        assert copy["Metadata"] == source["Metadata"] != {}
        assert copy.get("CacheControl") == source.get("CacheControl")
        assert (
            s3.get_object_tagging(Bucket=lake, Key=prefix + key)["TagSet"]
            == (
                s3.get_object_tagging(Bucket=estate.legacy, Key=estate.source.prefix + key)[
                    "TagSet"
                ]
            )
        )
    for key, body in estate.bodies.items():
        copy = s3.head_object(Bucket=lake, Key=prefix + key, ChecksumMode="ENABLED")
        assert (copy["ServerSideEncryption"], copy["SSEKMSKeyId"]) == ("aws:kms", estate.key)
        assert copy["ChecksumSHA256"], key
        if key != BIG:  # a multipart object's checksum is over its parts' checksums
            assert (
                copy["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(body).digest()).decode()
            )
    operations = [op for op, _, _ in estate.calls.seen]
    assert operations.count("UploadPartCopy") == 3 and operations.count("CopyObject") == 307
    assert s3.list_multipart_uploads(Bucket=lake).get("Uploads", []) == []


def test_the_source_bucket_is_only_ever_read(estate: Estate) -> None:
    estate.copy()
    estate.put("new.csv", b"new")
    estate.copy()

    reads = {("ListObjectsV2", "GET"), ("HeadObject", "HEAD"), ("GetObjectTagging", "GET")}
    assert set(estate.calls.on(estate.legacy)) <= reads
    assert ("HeadObject", "HEAD") in estate.calls.on(estate.legacy)  # the multipart copy's


def test_a_rerun_copies_nothing_and_only_lists(estate: Estate) -> None:
    estate.copy()
    estate.calls.clear()

    again = estate.copy()

    assert (again.copied_objects, again.skipped_objects, again.failed_objects) == (0, 308, 0)
    assert again.ok
    assert {op for op, _, _ in estate.calls.seen} == {"ListObjectsV2"}
    assert len(estate.calls.seen) == 2  # one page each side


def test_new_and_changed_objects_are_the_only_ones_copied(estate: Estate) -> None:
    estate.copy()
    for key in ("day-8/new-1.csv", "day-8/new-2.csv", "zzz.csv"):
        estate.put(key, b"fresh " + key.encode())
    estate.put("day-1/part-0001.csv", b"same key, other bytes")
    estate.calls.clear()

    delta = estate.copy()

    assert (delta.copied_objects, delta.skipped_objects) == (4, 308 - 1)
    copies = sorted(b for op, b, _ in estate.calls.seen if op == "CopyObject")
    assert copies == [estate.lake] * 4
    assert estate.copied() == estate.bodies


def test_a_target_object_rewritten_behind_the_journal_is_left_for_the_proof(
    estate: Estate,
) -> None:
    estate.copy()
    estate.s3.put_object(
        Bucket=estate.lake, Key=estate.target.prefix + "plus+sign.csv", Body=b"xxxx"
    )
    estate.s3.delete_object(Bucket=estate.lake, Key=estate.target.prefix + "empty.bin")

    again = estate.copy()

    # Not healed in silence (the parity proof names it); what is gone is copied again.
    assert again.copied_objects == 1
    assert estate.copied()["plus+sign.csv"] == b"xxxx"
    assert estate.copied()["empty.bin"] == b""


def test_a_stopped_run_resumes_with_the_rest_despite_a_torn_journal(estate: Estate) -> None:
    stop = threading.Event()
    seen: list[Progress] = []

    def on_progress(progress: Progress) -> None:
        seen.append(progress)
        if progress.objects_done >= 40:
            stop.set()

    first = estate.copy(progress=on_progress, stop=stop)

    assert first.stopped and not first.ok
    assert 40 <= first.copied_objects < 308
    assert seen[-1].phase == "done" and seen[-1].objects_total == 308
    journal = journal_path(estate.journal_dir, estate.source, estate.target)
    lines = journal.read_bytes().splitlines()
    assert len(lines) == first.copied_objects + 1  # a header, one line per copied object
    with journal.open("ab") as handle:  # a kill in the middle of a write
        handle.write(b'{"k": "day-0/part-0000.csv", "s": 7, "e"')

    rest = estate.copy()

    assert rest.ok
    assert rest.copied_objects == 308 - first.copied_objects
    assert rest.skipped_objects == first.copied_objects
    assert estate.copied() == estate.bodies
    assert estate.copy().copied_objects == 0


def test_a_run_killed_mid_copy_resumes_and_aborts_the_upload_it_left(estate: Estate) -> None:
    def crash(progress: Progress) -> None:
        if progress.objects_done >= 25:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        estate.copy(progress=crash)
    done = (
        len(
            journal_path(estate.journal_dir, estate.source, estate.target).read_bytes().splitlines()
        )
        - 1
    )
    assert done >= 25
    # What a kill during a multipart copy leaves: an open upload with a part in it.
    left = estate.admin.create_multipart_upload(Bucket=estate.lake, Key=estate.target.prefix + BIG)
    estate.admin.upload_part_copy(
        Bucket=estate.lake, Key=estate.target.prefix + BIG, UploadId=left["UploadId"], PartNumber=1,
        CopySource={"Bucket": estate.legacy, "Key": estate.source.prefix + BIG},
        CopySourceRange=f"bytes=0-{5 * MIB - 1}",
    )  # fmt: skip

    rest = estate.copy()

    assert rest.ok and rest.aborted_uploads == 1
    assert rest.copied_objects == 308 - done
    assert estate.admin.list_multipart_uploads(Bucket=estate.lake).get("Uploads", []) == []
    assert estate.copied() == estate.bodies


class Faults:
    """Answers chosen requests of a client with an error instead of the emulator's answer.

    botocore asks every before-send handler and takes the first answer, so a handler
    beside the emulator's would not stop the emulator from acting on the request: this
    one takes the emulator's place on the client, and asks it only for the others."""

    def __init__(self, client: Any) -> None:
        self.rules: list[tuple[str, Callable[[int, Any], AWSResponse | None]]] = []
        self.counts: dict[str, itertools.count[int]] = {}
        self.injected: list[tuple[str, int]] = []
        self._lock = threading.Lock()
        client.meta.events.unregister("before-send", _answer_from_moto)
        client.meta.events.register("before-send", self._send)

    def add(self, operation: str, answer: Callable[[int, Any], AWSResponse | None]) -> None:
        """``answer(n, request)``: the error for the n-th request of ``operation``, or None."""
        self.rules.append((operation, answer))

    def _send(self, request: Any, event_name: str, **kwargs: Any) -> AWSResponse:
        operation = event_name.rpartition(".")[2]
        with self._lock:
            n = next(self.counts.setdefault(operation, itertools.count()))
        for name, answer in self.rules:
            response = answer(n, request) if name == operation else None
            if response is not None:
                with self._lock:
                    self.injected.append((operation, n))
                return response
        return _answer_from_moto(request, event_name, **kwargs)

    def of(self, operation: str) -> int:
        return sum(1 for name, _ in self.injected if name == operation)


def test_throttling_is_retried_by_botocore(estate: Estate) -> None:
    faults = Faults(estate.s3)
    faults.add("CopyObject", lambda n, _: _error(503, "SlowDown") if n % 10 == 0 else None)
    options = CopyOptions(**{**_fields(OPTIONS), "object_attempts": 1})

    result = estate.copy(options)

    assert result.ok and result.copied_objects == 308
    assert faults.of("CopyObject") > 25
    assert estate.copied() == estate.bodies


def test_throttling_beyond_botocore_is_retried_per_object(emu: Emulator, tmp_path: Path) -> None:
    estate = Estate(emu, tmp_path)
    estate.s3 = estate.calls.watch(s3_client(emu.session(), workers=8, max_attempts=1))
    faults = Faults(estate.s3)
    tries: dict[str, int] = {}

    def twice(n: int, request: Any) -> AWSResponse | None:
        # The first two tries of every copy into day-3/ are throttled.
        if "/day-3/" in request.url:
            tries[request.url] = tries.get(request.url, 0) + 1
            if tries[request.url] <= 2:
                return _error(503, "SlowDown")
        return None

    faults.add("CopyObject", twice)
    faults.add("UploadPartCopy", lambda n, _: _error(500, "InternalError") if n == 0 else None)

    result = estate.copy()

    assert result.ok and result.copied_objects == 308, result.failures
    assert faults.of("CopyObject") == 2 * 43 and faults.of("UploadPartCopy") == 1
    assert estate.copied() == estate.bodies


def test_an_object_that_keeps_failing_is_reported_and_the_rest_copied(estate: Estate) -> None:
    faults = Faults(estate.s3)
    faults.add(
        "CopyObject",
        lambda n, request: _error(403, "AccessDenied") if "plus%2Bsign" in request.url else None,
    )

    result = estate.copy()

    assert not result.ok
    assert (result.copied_objects, result.failed_objects) == (307, 1)
    assert [(f.key, f.error) for f in result.failures] == [
        ("plus+sign.csv", "AccessDenied: injected")
    ]
    assert "plus+sign.csv" not in estate.copied()
    faults.rules.clear()
    assert estate.copy().copied_objects == 1
    assert estate.copied() == estate.bodies


def test_an_object_rewritten_after_the_listing_is_copied_as_it_is_now(estate: Estate) -> None:
    # Rewritten between the listing and its copy: the emulator, as S3, refuses the copy
    # whose CopySourceIfMatch (the ETag listed) no longer holds.
    faults, rewrites = Faults(estate.s3), []

    def rewritten(n: int, request: Any) -> AWSResponse | None:
        if "plus%2Bsign" in request.url and not rewrites:
            rewrites.append(estate.put("plus+sign.csv", b"rewritten"))
        return None  # the emulator answers: 412, the ETag listed no longer holds

    faults.add("CopyObject", rewritten)

    result = estate.copy()

    assert result.ok and len(rewrites) == 1
    assert ("HeadObject", "HEAD") in estate.calls.on(estate.legacy)
    assert estate.copied()["plus+sign.csv"] == b"rewritten"
    assert estate.copy().copied_objects == 0


def test_globs_select_by_the_key_relative_to_the_prefix(estate: Estate) -> None:
    options = CopyOptions(
        **{
            **_fields(OPTIONS),
            "include": ("day-1/**", "**/*.json", "*.bin"),
            "exclude": ("**/part-00[0-4]?.csv",),
        }
    )

    result = estate.copy(options)

    # day-1/ holds only part-NNNN.csv; the only .json is tagged/report.json; big/model.bin
    # is not at the top, where *.bin looks.
    wanted = {key for key in estate.bodies if key.startswith("day-1/") and int(key[-8:-4]) >= 50}
    wanted |= {"tagged/report.json", "empty.bin"}
    assert set(estate.copied()) == wanted
    assert result.copied_objects == len(wanted)
    assert result.excluded_objects == 308 - len(wanted)


def test_a_lost_journal_adopts_what_the_target_already_has(estate: Estate) -> None:
    estate.copy()
    journal_path(estate.journal_dir, estate.source, estate.target).unlink()

    adopted = estate.copy()
    strict = estate.copy(
        CopyOptions(**{**_fields(OPTIONS), "adopt_existing": False, "kms_key_id": estate.key})
    )

    assert (adopted.copied_objects, adopted.skipped_objects) == (0, 308)
    assert (strict.copied_objects, strict.skipped_objects) == (0, 308)  # the journal knows them now


def test_without_adoption_an_unknown_target_is_copied_again(estate: Estate) -> None:
    estate.copy()
    journal_path(estate.journal_dir, estate.source, estate.target).unlink()

    strict = estate.copy(
        CopyOptions(**{**_fields(OPTIONS), "adopt_existing": False, "kms_key_id": estate.key})
    )

    # moto keeps a CopyObject copy's ETag the source's even under SSE-KMS (S3 would not),
    # and equal ETags are adopted; the multipart copy's ETag differs: it is copied again.
    assert (strict.copied_objects, strict.skipped_objects) == (1, 307) and strict.ok
    assert [op for op, _, _ in estate.calls.seen].count("UploadPartCopy") == 6


def test_a_target_key_over_1024_bytes_is_reported_not_sent(estate: Estate) -> None:
    estate.put("long/" + "x" * 1009, b"1,022 bytes at the source, 1,025 in the target")

    result = estate.copy()

    assert result.failed_objects == 1 and result.copied_objects == 308
    assert result.failures[0].error.startswith("KeyTooLong:")


def test_a_bucket_that_cannot_be_listed_stops_the_copy_with_its_name(estate: Estate) -> None:
    missing = Location(f"{estate.lake}-missing", "raw")

    with pytest.raises(
        DataCopyError, match=rf"^s3://{missing.bucket}/raw/: cannot list: NoSuchBucket"
    ):
        copy_prefix(estate.s3, estate.s3, estate.source, missing, estate.journal_dir, OPTIONS)
    assert not estate.journal_dir.exists()
