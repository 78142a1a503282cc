"""Every nested key of a bucket's settings, an alarm's metric queries and a record's
weighted routing reaches the emulated cloud, as boto3 shows it; the keys the emulator
drops are refused in the plan by their path (see ``test_sandbox_nested``)."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from test_sandbox_nested import put_nested, refused, update_nested

from phasegate.engines.sandbox.handlers import CloudContext

REGION = "us-east-1"
ACCOUNT = "123456789012"
BUCKET = "aws:s3/bucket:Bucket"
VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
ENCRYPTION = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
)
LIFECYCLE = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
RECORD = "aws:route53/record:Record"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"nested-{secrets.token_hex(4)}"
    s3.create_bucket(Bucket=name)
    return name


# --- versioning and default encryption ----------------------------------------------------


def test_versioning_status_reaches_the_bucket_and_an_update_changes_it(
    ctx: CloudContext, s3: Any, bucket: str
) -> None:
    inputs = {"bucket": bucket, "versioningConfiguration": {"status": "Enabled"}}
    id_, outputs = put_nested(ctx, VERSIONING, inputs)
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    new = {**inputs, "versioningConfiguration": {"status": "Suspended"}}
    update_nested(ctx, VERSIONING, id_, inputs, new, outputs)
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"


def test_every_key_of_an_encryption_rule_reaches_the_bucket_and_an_update_changes_it(
    ctx: CloudContext, s3: Any, bucket: str
) -> None:
    rule = {
        "applyServerSideEncryptionByDefault": {
            "sseAlgorithm": "aws:kms",
            "kmsMasterKeyId": KEY_ARN,
        },
        "bucketKeyEnabled": True,
    }
    inputs = {"bucket": bucket, "rules": [rule]}
    id_, outputs = put_nested(ctx, ENCRYPTION, inputs)
    shown = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
    assert shown["Rules"] == [
        {
            "ApplyServerSideEncryptionByDefault": {
                "SSEAlgorithm": "aws:kms",
                "KMSMasterKeyID": KEY_ARN,
            },
            "BucketKeyEnabled": True,
        }
    ]
    plain = {"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}
    update_nested(ctx, ENCRYPTION, id_, inputs, {**inputs, "rules": [plain]}, outputs)
    shown = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
    assert shown["Rules"][0]["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}


# --- lifecycle rules --------------------------------------------------------------------

_RULES: list[dict[str, Any]] = [
    {
        "id": "tiered",
        "status": "Enabled",
        "filter": {"and": {"prefix": "data/", "tags": {"tier": "cold"}}},
        "transitions": [{"days": 30, "storageClass": "STANDARD_IA"}],
        "noncurrentVersionTransitions": [
            {"noncurrentDays": 30, "storageClass": "STANDARD_IA", "newerNoncurrentVersions": 2}
        ],
        "noncurrentVersionExpiration": {"noncurrentDays": 90},
        "expiration": {"days": 365},
    },
    {
        "id": "dated",
        "status": "Enabled",
        "filter": {"tag": {"key": "archive", "value": "yes"}},
        "transitions": [{"date": "2030-01-01T00:00:00Z", "storageClass": "GLACIER"}],
        "expiration": {"date": "2031-01-01T00:00:00Z"},
    },
    {
        "id": "uploads",
        "status": "Disabled",
        "filter": {"prefix": "tmp/"},
        "abortIncompleteMultipartUpload": {"daysAfterInitiation": 7},
        "expiration": {"expiredObjectDeleteMarker": True},
    },
    {"id": "legacy", "status": "Enabled", "prefix": "old/", "expiration": {"days": 3}},
]
"""Rules that between them set every key a lifecycle rule carries."""


def _shown_rules(s3: Any, bucket: str) -> dict[str, dict[str, Any]]:
    rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    return {r["ID"]: r for r in rules}


def test_every_key_of_a_lifecycle_rule_reaches_the_bucket_and_an_update_changes_it(
    ctx: CloudContext, s3: Any, bucket: str
) -> None:
    inputs = {"bucket": bucket, "rules": _RULES}
    id_, outputs = put_nested(ctx, LIFECYCLE, inputs)
    shown = _shown_rules(s3, bucket)
    tiered = shown["tiered"]
    assert tiered["Status"] == "Enabled"
    assert tiered["Filter"] == {
        "And": {"Prefix": "data/", "Tags": [{"Key": "tier", "Value": "cold"}]}
    }
    assert tiered["Transitions"] == [{"Days": 30, "StorageClass": "STANDARD_IA"}]
    assert tiered["NoncurrentVersionTransitions"] == [
        {"NoncurrentDays": 30, "StorageClass": "STANDARD_IA", "NewerNoncurrentVersions": 2}
    ]
    assert tiered["NoncurrentVersionExpiration"] == {"NoncurrentDays": 90}
    assert tiered["Expiration"] == {"Days": 365}
    dated = shown["dated"]
    assert dated["Filter"] == {"Tag": {"Key": "archive", "Value": "yes"}}
    assert dated["Transitions"][0]["Date"].year == 2030
    assert dated["Expiration"]["Date"].year == 2031
    uploads = shown["uploads"]
    assert (uploads["Status"], uploads["Filter"]) == ("Disabled", {"Prefix": "tmp/"})
    assert uploads["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}
    assert uploads["Expiration"] == {"ExpiredObjectDeleteMarker": True}
    assert (shown["legacy"]["Prefix"], shown["legacy"]["Expiration"]) == ("old/", {"Days": 3})

    longer = [{**_RULES[0], "expiration": {"days": 400}}]
    update_nested(ctx, LIFECYCLE, id_, inputs, {**inputs, "rules": longer}, outputs)
    assert list(_shown_rules(s3, bucket)) == ["tiered"]
    assert _shown_rules(s3, bucket)["tiered"]["Expiration"] == {"Days": 400}


@pytest.mark.parametrize(
    ("token", "inputs", "path"),
    [
        (
            LIFECYCLE,
            {"rules": [{**_RULES[3], "filter": {"objectSizeGreaterThan": 1024}}]},
            "rules.filter.objectSizeGreaterThan",
        ),
        (
            LIFECYCLE,
            {"rules": [{**_RULES[3], "filter": {"and": {"objectSizeLessThan": 9}}}]},
            "rules.filter.and.objectSizeLessThan",
        ),
        (
            LIFECYCLE,
            {
                "rules": [
                    {
                        **_RULES[3],
                        "noncurrentVersionExpiration": {
                            "noncurrentDays": 9,
                            "newerNoncurrentVersions": 2,
                        },
                    }
                ]
            },
            "rules.noncurrentVersionExpiration.newerNoncurrentVersions",
        ),
        (
            ENCRYPTION,
            {"rules": [{"blockedEncryptionTypes": ["SSE-C"]}]},
            "rules.blockedEncryptionTypes",
        ),
        (
            VERSIONING,
            {"versioningConfiguration": {"status": "Enabled", "mfaDelete": "Enabled"}},
            "versioningConfiguration.mfaDelete",
        ),
        (
            BUCKET,
            {"versioning": {"enabled": True, "mfaDelete": True}},
            "versioning.mfaDelete",
        ),
        (
            BUCKET,
            {"serverSideEncryptionConfiguration": {"rule": {"blockedEncryptionTypes": ["NONE"]}}},
            "serverSideEncryptionConfiguration.rule.blockedEncryptionTypes",
        ),
        (
            ALARM,
            {"metricQueries": [{"id": "m1", "accountId": "111122223333"}]},
            "metricQueries.accountId",
        ),
        (
            LIFECYCLE,
            {"rules": [_RULES[3]], "transitionDefaultMinimumObjectSize": "varies_by_storage_class"},
            "transitionDefaultMinimumObjectSize",
        ),
    ],
)
def test_a_nested_key_the_emulator_drops_is_refused_by_its_path(
    token: str, inputs: dict[str, Any], path: str
) -> None:
    assert refused(token, {"bucket": "b", **inputs} if token != ALARM else inputs) == path


# --- a bucket's inline settings -------------------------------------------------------------


def test_every_key_of_a_buckets_inline_settings_reaches_it_and_an_update_changes_it(
    ctx: CloudContext, s3: Any
) -> None:
    inputs = {
        "bucketPrefix": "inline-",
        "versioning": {"enabled": True},
        "serverSideEncryptionConfiguration": {
            "rule": {
                "applyServerSideEncryptionByDefault": {
                    "sseAlgorithm": "aws:kms",
                    "kmsMasterKeyId": KEY_ARN,
                },
                "bucketKeyEnabled": True,
            }
        },
        "lifecycleRules": [
            {
                "id": "tiered",
                "enabled": True,
                "prefix": "data/",
                "tags": {"tier": "cold"},
                "transitions": [{"days": 30, "storageClass": "STANDARD_IA"}],
                "noncurrentVersionTransitions": [{"days": 30, "storageClass": "STANDARD_IA"}],
                "noncurrentVersionExpiration": {"days": 60},
                "expiration": {"days": 365},
            },
            {
                "id": "uploads",
                "enabled": False,
                "prefix": "tmp/",
                "abortIncompleteMultipartUploadDays": 7,
                "expiration": {"expiredObjectDeleteMarker": True},
            },
            {
                "id": "dated",
                "enabled": True,
                "transitions": [{"date": "2030-01-01T00:00:00Z", "storageClass": "GLACIER"}],
                "expiration": {"date": "2031-01-01T00:00:00Z"},
            },
        ],
    }
    name, outputs = put_nested(ctx, BUCKET, inputs)
    assert s3.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"
    rule = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"] == KEY_ARN
    assert rule["BucketKeyEnabled"] is True
    shown = _shown_rules(s3, name)
    tiered = shown["tiered"]
    assert tiered["Filter"] == {
        "And": {"Prefix": "data/", "Tags": [{"Key": "tier", "Value": "cold"}]}
    }
    assert tiered["NoncurrentVersionTransitions"] == [
        {"NoncurrentDays": 30, "StorageClass": "STANDARD_IA"}
    ]
    assert tiered["NoncurrentVersionExpiration"] == {"NoncurrentDays": 60}
    assert (tiered["Transitions"], tiered["Expiration"]) == (
        [{"Days": 30, "StorageClass": "STANDARD_IA"}],
        {"Days": 365},
    )
    uploads = shown["uploads"]
    assert (uploads["Status"], uploads["Filter"]) == ("Disabled", {"Prefix": "tmp/"})
    assert uploads["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}
    assert uploads["Expiration"] == {"ExpiredObjectDeleteMarker": True}
    assert shown["dated"]["Expiration"]["Date"].year == 2031
    assert shown["dated"]["Transitions"][0]["Date"].year == 2030

    new = {**inputs, "versioning": {"enabled": False}}
    update_nested(ctx, BUCKET, name, inputs, new, outputs)
    assert s3.get_bucket_versioning(Bucket=name)["Status"] == "Suspended"


# --- an alarm's metric queries and a record's weight --------------------------------------


def test_every_key_of_a_metric_query_reaches_the_alarm_and_an_update_changes_it(
    ctx: CloudContext,
) -> None:
    queries = [
        {
            "id": "cpu",
            "label": "CPU",
            "returnData": False,
            "metric": {
                "metricName": "CPUUtilization",
                "namespace": "AWS/EC2",
                "dimensions": {"AutoScalingGroupName": "gpu-nodes"},
                "period": 60,
                "stat": "Average",
                "unit": "Percent",
            },
        },
        {"id": "hot", "expression": "cpu * 2", "label": "Hot", "returnData": True, "period": 60},
    ]
    inputs = {
        "name": f"nested-{secrets.token_hex(3)}",
        "comparisonOperator": "GreaterThanThreshold",
        "evaluationPeriods": 2,
        "threshold": 90,
        "metricQueries": queries,
    }
    name, outputs = put_nested(ctx, ALARM, inputs)
    cloudwatch = ctx.client("cloudwatch")
    shown = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["Metrics"]
    assert shown == [
        {
            "Id": "cpu",
            "Label": "CPU",
            "ReturnData": False,
            "MetricStat": {
                "Metric": {
                    "MetricName": "CPUUtilization",
                    "Namespace": "AWS/EC2",
                    "Dimensions": [{"Name": "AutoScalingGroupName", "Value": "gpu-nodes"}],
                },
                "Period": 60,
                "Stat": "Average",
                "Unit": "Percent",
            },
        },
        {"Id": "hot", "Expression": "cpu * 2", "Label": "Hot", "ReturnData": True, "Period": 60},
    ]
    hotter = [queries[0], {**queries[1], "expression": "cpu * 3", "period": 120}]
    update_nested(ctx, ALARM, name, inputs, {**inputs, "metricQueries": hotter}, outputs)
    shown = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["Metrics"]
    assert (shown[1]["Expression"], shown[1]["Period"]) == ("cpu * 3", 120)


def test_a_records_weight_reaches_the_zone_and_an_update_changes_it(ctx: CloudContext) -> None:
    route53 = ctx.client("route53")
    zone = route53.create_hosted_zone(Name="nested.example.", CallerReference=secrets.token_hex(4))
    zone_id = zone["HostedZone"]["Id"].rsplit("/", 1)[-1]
    inputs = {
        "zoneId": zone_id,
        "name": "api.nested.example",
        "type": "CNAME",
        "ttl": 60,
        "records": ["green.nested.example"],
        "setIdentifier": "green",
        "weightedRoutingPolicies": [{"weight": 40}],
    }
    id_, outputs = put_nested(ctx, RECORD, inputs)

    def weight() -> int:
        sets = route53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
        (found,) = [s for s in sets if s.get("SetIdentifier") == "green"]
        return int(found["Weight"])

    assert weight() == 40
    update_nested(
        ctx, RECORD, id_, inputs, {**inputs, "weightedRoutingPolicies": [{"weight": 0}]}, outputs
    )
    assert weight() == 0
