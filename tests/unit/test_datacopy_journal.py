"""The copy library's parts that need no cloud: the journal, the globs, the decision to
copy or skip, and the options' checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from phasegate.datacopy import CopyOptions, DataCopyError, KeyFilter, Location, journal_path
from phasegate.datacopy.journal import Journal, Record
from phasegate.datacopy.plan import Decision, decide
from phasegate.errors import InputError
from phasegate.s3listing import S3Object

SOURCE, TARGET = Location("legacy", "exports"), Location("lake", "raw/")


def _journal(tmp_path: Path, batch: int = 512) -> Journal:
    return Journal(journal_path(tmp_path, SOURCE, TARGET), SOURCE, TARGET, batch)


def test_records_survive_a_close_and_the_last_line_of_a_key_wins(tmp_path: Path) -> None:
    journal = _journal(tmp_path)
    journal.add("a b+%é", Record(1, '"e1"', '"t1"'))
    journal.add("a b+%é", Record(2, '"e2"', '"t2"'))
    journal.add("z", Record(0, '"e"', '"t"'))
    journal.close()

    again = _journal(tmp_path)

    assert again.records == {"a b+%é": Record(2, '"e2"', '"t2"'), "z": Record(0, '"e"', '"t"')}
    assert again.dropped_tail == 0


@pytest.mark.parametrize(
    "tail", [b'{"k": "x", "s": 1, "e"', b"\x00\x00\x00\x00", b'{"k": "x"}\n', b"garbage\n\x00\x00"]
)
def test_a_torn_end_is_dropped_and_cut_off_before_the_next_write(
    tmp_path: Path, tail: bytes
) -> None:
    journal = _journal(tmp_path)
    journal.add("a", Record(1, '"e"', '"t"'))
    journal.close()
    path = journal.path
    whole = path.read_bytes()
    path.write_bytes(whole + tail)

    again = _journal(tmp_path)
    again.add("b", Record(2, '"e"', '"t"'))
    again.close()

    assert again.dropped_tail == len(tail)
    assert path.read_bytes().startswith(whole)
    assert set(_journal(tmp_path).records) == {"a", "b"}


def test_a_complete_line_without_its_newline_counts_as_torn(tmp_path: Path) -> None:
    journal = _journal(tmp_path)
    journal.add("a", Record(1, '"e"', '"t"'))
    journal.close()
    journal.path.write_bytes(journal.path.read_bytes() + b'{"k":"b","s":1,"e":"x","t":"y"}')

    assert set(_journal(tmp_path).records) == {"a"}


def test_damage_before_good_lines_is_refused_with_the_path(tmp_path: Path) -> None:
    journal = _journal(tmp_path)
    for key in "abc":
        journal.add(key, Record(1, '"e"', '"t"'))
    journal.close()
    lines = journal.path.read_bytes().splitlines(keepends=True)
    lines[2] = b"not json\n"
    journal.path.write_bytes(b"".join(lines))

    with pytest.raises(DataCopyError, match=r"journal-.*\.jsonl: line 3 is damaged") as caught:
        _journal(tmp_path)
    assert "delete the file" in str(caught.value)


def test_a_journal_of_another_copy_is_refused(tmp_path: Path) -> None:
    journal = _journal(tmp_path)
    journal.add("a", Record(1, '"e"', '"t"'))
    journal.close()

    with pytest.raises(DataCopyError, match="s3://legacy/exports/ -> s3://lake/raw/"):
        Journal(journal.path, SOURCE, Location("lake", "elsewhere"))


def test_the_journal_reaches_the_disk_in_batches(tmp_path: Path) -> None:
    journal = _journal(tmp_path, batch=3)
    journal.add("a", Record(1, '"e"', '"t"'))
    journal.add("b", Record(1, '"e"', '"t"'))
    assert not journal.path.exists()
    journal.add("c", Record(1, '"e"', '"t"'))
    assert len(journal.path.read_bytes().splitlines()) == 4  # the header and three
    journal.close()


def test_superseded_lines_are_compacted_away(tmp_path: Path) -> None:
    journal = _journal(tmp_path)
    for n in range(1100):
        journal.add("same", Record(n, '"e"', '"t"'))
    journal.close()

    assert len(journal.path.read_bytes().splitlines()) == 2
    assert _journal(tmp_path).records == {"same": Record(1099, '"e"', '"t"')}


def test_each_copy_has_its_own_journal(tmp_path: Path) -> None:
    one = journal_path(tmp_path, SOURCE, TARGET)
    assert journal_path(tmp_path, Location("legacy", "exports/"), TARGET) == one
    assert journal_path(tmp_path, SOURCE, Location("lake", "curated")) != one


@pytest.mark.parametrize(
    ("glob", "yes", "no"),
    [
        ("*.csv", ["a.csv", ".csv"], ["x/a.csv", "a.csvx"]),
        ("**/*.csv", ["a.csv", "x/y/a.csv"], ["x/a.txt"]),
        ("exports/**", ["exports/a", "exports/x/y"], ["exports", "exportsx/a"]),
        ("a/**/b", ["a/b", "a/x/y/b"], ["a/xb", "ab"]),
        ("part-0?.csv", ["part-01.csv"], ["part-1.csv", "part-0/.csv"]),
        ("[!a-c]*", ["d", "zz"], ["a", "c1", "/x"]),
        ("[ab]/x", ["a/x"], ["c/x", "//x"]),
        ("a b+%é/*", ["a b+%é/x"], ["a b %é/x"]),
        ("A*", ["Ab"], ["ab"]),
    ],
)
def test_globs(glob: str, yes: list[str], no: list[str]) -> None:
    keys = KeyFilter([glob])
    assert [k for k in yes + no if keys(k)] == yes


def test_excludes_win_over_includes() -> None:
    keys = KeyFilter(["**"], ["tmp/**", "**/*.part"])
    assert [k for k in ("a", "tmp/a", "x/b.part", "x/b") if keys(k)] == ["a", "x/b"]
    assert KeyFilter().selects_all


@pytest.mark.parametrize(
    ("glob", "message"),
    [("a**", "'\\*\\*' must be a whole path segment"), ("a[b", "without its"), ("", "empty")],
)
def test_a_bad_glob_names_its_field(glob: str, message: str) -> None:
    with pytest.raises(InputError, match=f"^exclude: .*{message}"):
        KeyFilter([], [glob])


NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
EARLIER = NOW - timedelta(days=1)


def Listed(size: int, etag: str, modified: datetime) -> S3Object:
    return S3Object("k", size, etag, modified)


@pytest.mark.parametrize(
    ("source", "target", "record", "adopt", "decision"),
    [
        # the journal vouches for the copy; a target rewritten since is the proof's to find
        (Listed(5, '"s"', NOW), Listed(5, '"t"', NOW), Record(5, '"s"', '"t"'), True, "skip"),
        (Listed(5, '"s"', NOW), Listed(5, '"t2"', NOW), Record(5, '"s"', '"t"'), True, "skip"),
        (Listed(5, '"s"', NOW), Listed(4, '"t2"', NOW), Record(5, '"s"', '"t"'), True, "skip"),
        # rewritten at the source, or gone from the target
        (Listed(5, '"s2"', NOW), Listed(5, '"t"', NOW), Record(5, '"s"', '"t"'), True, "copy"),
        (Listed(5, '"s"', NOW), None, Record(5, '"s"', '"t"'), True, "copy"),
        (Listed(6, '"s"', NOW), Listed(5, '"t"', NOW), Record(5, '"s"', '"t"'), True, "copy"),
        # no record: the target is adopted by its ETag, or by its age if allowed
        (Listed(5, '"s"', NOW), Listed(5, '"s"', EARLIER), None, False, "adopt"),
        (Listed(5, '"s"', EARLIER), Listed(5, '"t"', NOW), None, True, "adopt"),
        (Listed(5, '"s"', EARLIER), Listed(5, '"t"', NOW), None, False, "copy"),
        (Listed(5, '"s"', NOW), Listed(5, '"t"', EARLIER), None, True, "copy"),
        (Listed(5, '"s"', EARLIER), Listed(4, '"t"', NOW), None, True, "copy"),
    ],
)
def test_what_is_copied(
    source: S3Object, target: S3Object | None, record: Record | None, adopt: bool, decision: str
) -> None:
    assert decide(source, target, record, adopt) is Decision(decision)


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("workers", 0, "1 or more"),
        ("multipart_threshold", 6 * 1024**3, "0 to 5 GiB"),
        ("part_size", 1024, "5 MiB"),
        ("max_in_flight", 2, "at least workers"),
        ("kms_key_id", " ", "a KMS key id"),
        ("object_attempts", 0, "1 or more"),
    ],
)
def test_bad_options_name_the_field_and_what_is_allowed(
    field: str, value: object, allowed: str
) -> None:
    with pytest.raises(InputError, match=f"^{field}: .*{allowed}"):
        CopyOptions(**{field: value})  # type: ignore[arg-type]


def test_parts_grow_to_fit_ten_thousand() -> None:
    options = CopyOptions(part_size=5 * 1024**2)
    assert options.part_size_for(10 * 1024**2) == 5 * 1024**2
    assert options.part_size_for(100 * 1024**3) == -(-100 * 1024**3 // 10_000)


def test_a_location_reads_as_a_folder() -> None:
    assert str(Location("b", "a/b")) == "s3://b/a/b/"
    assert Location("b", "/x/").prefix == "x/" and Location("b").prefix == ""
    with pytest.raises(InputError, match="bucket"):
        Location("b/c")
