"""Timestamps of AWS answers: parsed quickly, meaning what botocore's parser says."""

from __future__ import annotations

from datetime import datetime

import boto3
import botocore.session
import pytest
from botocore.utils import parse_timestamp as botocore_parse
from moto import mock_aws

from phasegate import aws_sessions
from phasegate.aws_sessions import parse_timestamp, quick_timestamps


@pytest.mark.parametrize(
    "value",
    [
        "2026-12-07T21:50:00.000Z",  # ListObjectsV2, CopyObjectResult
        "2026-12-07T21:50:00.123456Z",
        "2026-12-07T21:50:00+02:00",
        "Mon, 07 Dec 2026 21:50:00 GMT",  # an HTTP header (HeadObject's Last-Modified)
        "1733612345",
        1733612345,
        1733612345.5,
        "2026-12-07T21:50:00",  # no offset: botocore's reading, whatever it is
    ],
)
def test_a_timestamp_means_what_botocore_says_it_means(value: object) -> None:
    ours, theirs = parse_timestamp(value), botocore_parse(value)
    assert ours == theirs
    assert ours.isoformat() == theirs.isoformat()


def test_a_session_made_quick_parses_its_clients_answers_with_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[object] = []

    def parse(value: object) -> datetime:
        seen.append(value)
        return parse_timestamp(value)

    monkeypatch.setattr(aws_sessions, "parse_timestamp", parse)
    with mock_aws():
        session = boto3.Session(
            aws_access_key_id="k",
            aws_secret_access_key="s",
            region_name="us-east-1",
            botocore_session=quick_timestamps(botocore.session.Session()),
        )
        s3 = session.client("s3")
        s3.create_bucket(Bucket="quick-timestamps")
        s3.put_object(Bucket="quick-timestamps", Key="a", Body=b"x")
        [item] = s3.list_objects_v2(Bucket="quick-timestamps")["Contents"]
    assert seen and isinstance(seen[-1], str)
    assert item["LastModified"] == parse_timestamp(seen[-1])
    assert item["LastModified"].tzinfo is not None
