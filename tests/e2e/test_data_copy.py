"""The data layer copies the legacy data into the lake and proves it: a fresh apply
copies every current object byte for byte; new exports are copied, and only they; a run
killed half way through the copy is resumed by `recover`; a lake object rewritten behind
the migration's back fails the proof by name, and the rollback points readers back at
legacy with every byte kept."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import yaml

from _projects import shipped_estate

LEGACY = "phasegate-legacy-sandbox"
RAW = "phasegate-sandbox-lake-raw"
PREFIX = "legacy/"


def _state(project: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(
        (project / "state" / "sandbox" / "data_layer.yaml").read_text()
    )
    return loaded


def _objects(s3: Any, bucket: str, prefix: str = "") -> dict[str, bytes]:
    """Each object's body under ``prefix``, by key relative to it."""
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            key = item["Key"]
            found[key[len(prefix) :]] = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return found


def _described(s3: Any, bucket: str, prefix: str = "") -> dict[str, tuple[Any, ...]]:
    """Each object under ``prefix`` as a reader sees it: body, content type, user
    metadata and tags, by key relative to the prefix."""
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            key = item["Key"]
            got = s3.get_object(Bucket=bucket, Key=key)
            tags = s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
            found[key[len(prefix) :]] = (
                got["Body"].read(),
                got["ContentType"],
                got["Metadata"],
                sorted((t["Key"], t["Value"]) for t in tags),
            )
    return found


def _legacy_counts(cli: Any, project: Path) -> dict[str, Any]:
    """The legacy bucket's objects, versions and delete markers, as the sandbox counts them."""
    status = cli.run(project, "sandbox", "status", "--output", "json")
    counts: dict[str, Any] = json.loads(status.stdout)["legacy"]
    return counts


def _apply_data_layer(cli: Any, project: Path, **kwargs: Any) -> Any:
    return cli.run(project, "apply", "--yes", "--phase", "data_layer", **kwargs)


def test_a_fresh_apply_copies_every_legacy_object_and_proves_it(
    cli: Any, fresh_project: Path, aws: Any
) -> None:
    shipped_estate(fresh_project)  # all 5,000 objects; the other tests use a small estate
    assert cli.run(fresh_project, "apply", "--yes", "--phase", "pilot").returncode == 0
    before = _legacy_counts(cli, fresh_project)
    done = _apply_data_layer(cli, fresh_project)
    assert done.returncode == 0, done.stderr
    assert _legacy_counts(cli, fresh_project) == before, "the legacy side is only read"

    state = _state(fresh_project)
    with cli.serve(fresh_project) as served:
        s3 = aws("s3", served.url)
        legacy = _described(s3, LEGACY)
        lake = _described(s3, RAW, PREFIX)
        heads = [s3.head_object(Bucket=RAW, Key=PREFIX + key) for key in sorted(lake)[::500]]
    key_arn = state["outputs"]["lake_key_arn"]
    assert {(h["ServerSideEncryption"], h["SSEKMSKeyId"]) for h in heads} == {("aws:kms", key_arn)}
    assert len(legacy) == state["data_copy"]["listed_objects"] == 5000
    assert sum(bool(meta) for _, _, meta, _ in legacy.values()) > 100, "metadata to compare"
    assert sum(bool(tags) for *_, tags in legacy.values()) > 100, "tags to compare"
    assert {len(key.encode()) for key in legacy} >= {1000}, "the 1,000-byte key is there"
    assert set(lake) == set(legacy)
    assert [key for key in legacy if lake[key] != legacy[key]] == []
    assert state["data_copy"]["copied_objects"] == len(legacy)
    [proof] = [c for c in state["checks"] if c["kind"] == "s3_parity"]
    assert proof["result"] == "pass"
    assert proof["detail"]["source"]["manifest"] == proof["detail"]["target"]["manifest"]
    # The target's checksums came with the copy's answers: none was asked for again.
    assert "target_s3" not in proof["detail"]["checksums"]
    assert proof["detail"]["checksums"]["target_cached"] > 4500
    assert state["outputs"]["data_source"] == {"bucket": RAW, "prefix": PREFIX, "on": "lake"}


def test_new_exports_are_copied_and_only_they(cli: Any, fresh_project: Path, aws: Any) -> None:
    assert cli.run(fresh_project, "apply", "--yes", "--phase", "pilot").returncode == 0
    assert _apply_data_layer(cli, fresh_project).returncode == 0
    with cli.serve(fresh_project) as served:
        s3 = aws("s3", served.url)
        for n in range(3):
            s3.put_object(Bucket=LEGACY, Key=f"exports/2026-12-0{n + 1}/new.csv", Body=b"n,1\n")

    planned = cli.run(fresh_project, "plan", "--phase", "data_layer")
    assert "3 object(s), 12 byte(s) to copy into s3://" in planned.stdout, planned.stdout
    again = _apply_data_layer(cli, fresh_project)
    assert again.returncode == 0, again.stderr
    copy = _state(fresh_project)["data_copy"]
    assert copy["copied_objects"] == 3 and copy["skipped_objects"] == copy["listed_objects"] - 3

    nothing = _apply_data_layer(cli, fresh_project)
    assert nothing.returncode == 0 and "0 phase(s) applied, 1 unchanged" in nothing.stdout


def test_a_copy_killed_half_way_is_resumed_by_recover(
    cli: Any, fresh_project: Path, aws: Any
) -> None:
    # Enough objects that the kill comes after two batches were kept (512 each).
    yaml_file = fresh_project / "migration.yaml"
    yaml_file.write_text(yaml_file.read_text().replace("{objects: 300,", "{objects: 1500,", 1))
    assert cli.run(fresh_project, "apply", "--yes", "--phase", "pilot").returncode == 0
    killed = _apply_data_layer(cli, fresh_project, env={"PHASEGATE_FAULTS": "copy-object:1200"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert _state(fresh_project)["status"] == "verifying"

    recovered = cli.run(fresh_project, "recover")
    assert recovered.returncode == 0, recovered.stderr
    state = _state(fresh_project)
    assert state["status"] == "verified"
    copy = state["data_copy"]
    assert 0 < copy["copied_objects"] < copy["listed_objects"]  # the rest, not all again
    with cli.serve(fresh_project) as served:
        s3 = aws("s3", served.url)
        assert _objects(s3, RAW, PREFIX) == _objects(s3, LEGACY)
        uploads = s3.list_multipart_uploads(Bucket=RAW).get("Uploads", [])
    assert uploads == []


def test_a_rewritten_lake_object_fails_the_proof_and_readers_go_back_to_legacy(
    cli: Any, fresh_project: Path, aws: Any
) -> None:
    assert cli.run(fresh_project, "apply", "--yes", "--phase", "pilot").returncode == 0
    assert _apply_data_layer(cli, fresh_project).returncode == 0
    with cli.serve(fresh_project) as served:
        s3 = aws("s3", served.url)
        key = sorted(_objects(s3, RAW, PREFIX))[5]
        body = s3.get_object(Bucket=RAW, Key=PREFIX + key)["Body"].read()
        s3.put_object(Bucket=RAW, Key=PREFIX + key, Body=bytes(reversed(body)))
        s3.put_object(Bucket=LEGACY, Key="exports/2026-12-01/new.csv", Body=b"n,1\n")
        before = _objects(s3, RAW, PREFIX)

    failed = _apply_data_layer(cli, fresh_project)
    assert failed.returncode == 3, failed.stderr
    line = failed.stderr.strip().splitlines()[-1]
    assert f"{key}: checksum differs" in line and "readers on legacy" in line
    state = _state(fresh_project)
    assert state["status"] == "rolled_back"
    assert state["outputs"]["data_source"] == {"bucket": LEGACY, "prefix": "", "on": "legacy"}
    with cli.serve(fresh_project) as served:
        after = _objects(aws("s3", served.url), RAW, PREFIX)
    assert set(before) <= set(after), "a rollback keeps every object of the lake"


def test_a_plain_run_says_when_the_copy_starts_and_ends_with_its_counts(
    cli: Any, fresh_project: Path
) -> None:
    migration = fresh_project / "migration.yaml"
    spec = yaml.safe_load(migration.read_text())
    [sandbox] = [e for e in spec["environments"] if e["name"] == "sandbox"]
    sandbox["legacy_estate"] = {
        "objects": 300, "large": 1, "large_mib": 2, "multipart": 2, "overwrites": 3, "deleted": 4,
    }  # fmt: skip
    migration.write_text(yaml.safe_dump(spec, sort_keys=False))
    assert cli.run(fresh_project, "apply", "--yes", "--phase", "pilot").returncode == 0

    done = _apply_data_layer(cli, fresh_project)
    assert done.returncode == 0, done.stderr
    copy = _state(fresh_project)["data_copy"]
    assert copy["listed_objects"] == copy["copied_objects"] == 300
    head = f"sandbox-data_layer: copy into s3://{RAW}/{PREFIX}: "
    lines = [line for line in done.stderr.splitlines() if line.startswith(head)]
    mib = copy["copied_bytes"] / 1024 / 1024
    assert lines[0] == f"{head}300 objects, {mib:.1f} MiB to copy of 300 listed", lines
    assert lines[-1].startswith(
        f"{head}done: 300/300 objects, {mib:.1f} MiB copied, 0 failed, 300 listed, in "
    ), lines
    # Never a line per object: the start, the end, one per 10 s at most in between.
    assert len(lines) <= 2 + copy["seconds"] // 10, lines
    summary = next(line for line in done.stderr.splitlines() if " applied: " in line)
    assert (
        summary.startswith("sandbox-data_layer applied: ") and "copied 300/300 objects" in summary
    )
