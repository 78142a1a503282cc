"""Provider functions the sandbox answers itself, before any apply as after."""

from __future__ import annotations

import json

import pytest

from phasegate.engines.sandbox.functions import answer


def test_availability_zones_are_the_regions_own_and_honour_exclusions() -> None:
    found = answer(
        "aws:index/getAvailabilityZones:getAvailabilityZones",
        {"excludeNames": ["us-west-2d"]},
        "us-west-2",
    )
    assert found is not None
    assert found["names"] == ["us-west-2a", "us-west-2b", "us-west-2c"]
    assert len(found["zoneIds"]) == 3 and all(z.startswith("usw2-az") for z in found["zoneIds"])


def test_what_a_function_cannot_honour_is_refused_by_argument() -> None:
    with pytest.raises(ValueError, match="does not answer filters"):
        answer(
            "aws:index/getAvailabilityZones:getAvailabilityZones",
            {"filters": [{"name": "opt-in-status", "values": ["opted-in"]}]},
            "us-east-1",
        )


def test_a_policy_document_renders_as_the_provider_renders_it() -> None:
    args = {
        "statements": [
            {
                "sid": "Assume",
                "actions": ["sts:AssumeRole"],
                "principals": [{"type": "Service", "identifiers": ["eks.amazonaws.com"]}],
                "conditions": [
                    {"test": "StringEquals", "variable": "aws:SourceAccount", "values": ["1"]}
                ],
            },
            {"effect": "Deny", "actions": ["s3:GetObject", "s3:PutObject"], "resources": ["*"]},
        ]
    }
    found = answer("aws:iam/getPolicyDocument:getPolicyDocument", args, "us-east-1")
    assert found is not None
    assert json.loads(found["json"]) == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Assume",
                "Effect": "Allow",
                "Action": "sts:AssumeRole",
                "Principal": {"Service": "eks.amazonaws.com"},
                "Condition": {"StringEquals": {"aws:SourceAccount": "1"}},
            },
            {"Effect": "Deny", "Action": ["s3:PutObject", "s3:GetObject"], "Resource": "*"},
        ],
    }
    again = answer("aws:iam/getPolicyDocument:getPolicyDocument", args, "us-east-1")
    assert again == found  # the same document, the same id: a plan shows no change


def test_identity_partition_and_region() -> None:
    identity = answer("aws:index/getCallerIdentity:getCallerIdentity", {}, "eu-west-1")
    partition = answer("aws:index/getPartition:getPartition", {}, "eu-west-1")
    region = answer("aws:index/getRegion:getRegion", {}, "eu-west-1")
    assert identity is not None and identity["accountId"] == "123456789012"
    assert partition is not None and partition["dnsSuffix"] == "amazonaws.com"
    assert region is not None and region["name"] == "eu-west-1"
    assert answer("aws:ec2/getAmi:getAmi", {}, "eu-west-1") is None
