"""A KMS key with rotation, a key policy and an alias; the alias renamed (replaced) and
the key's description and rotation changed in place."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

MAIN = """
import json
import pulumi
import pulumi_aws as aws

stage = pulumi.Config("corpus").get_int("stage") or 1
me = aws.get_caller_identity()
policy = {
    "Version": "2012-10-17",
    "Statement": [{
        "Sid": "root",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{me.account_id}:root"},
        "Action": "kms:*",
        "Resource": "*",
    }],
}
key = aws.kms.Key(
    "data",
    description="data at rest" if stage == 1 else "data at rest, rotated yearly",
    deletion_window_in_days=10,
    enable_key_rotation=stage == 2,
    policy=json.dumps(policy),
    tags={"purpose": "corpus"},
)
alias = aws.kms.Alias("data", name="alias/corpus-data" if stage == 1 else "alias/corpus-lake",
                      target_key_id=key.key_id)
pulumi.export("key_id", key.key_id)
pulumi.export("alias", alias.name)
"""


def check(aws: Callable[..., Any], outputs: dict[str, Any], stage: int) -> None:
    kms = aws("kms")
    key = kms.describe_key(KeyId=outputs["key_id"])["KeyMetadata"]
    wanted = "data at rest" if stage == 1 else "data at rest, rotated yearly"
    assert (key["Description"], key["KeyState"]) == (wanted, "Enabled")
    rotation = kms.get_key_rotation_status(KeyId=outputs["key_id"])["KeyRotationEnabled"]
    assert rotation is (stage == 2)
    policy = json.loads(kms.get_key_policy(KeyId=outputs["key_id"], PolicyName="default")["Policy"])
    assert [s["Sid"] for s in policy["Statement"]] == ["root"]
    tags = {
        t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=outputs["key_id"])["Tags"]
    }
    assert tags == {"purpose": "corpus"}
    aliases = {
        a["AliasName"]: a.get("TargetKeyId")
        for a in kms.list_aliases()["Aliases"]
        if a["AliasName"].startswith("alias/corpus-")
    }
    assert aliases == {outputs["alias"]: outputs["key_id"]}
    assert outputs["alias"] == ("alias/corpus-data" if stage == 1 else "alias/corpus-lake")


def gone(aws: Callable[..., Any], outputs: dict[str, Any]) -> None:
    kms = aws("kms")
    key = kms.describe_key(KeyId=outputs["key_id"])["KeyMetadata"]
    assert key["KeyState"] == "PendingDeletion"
    assert not [
        a for a in kms.list_aliases()["Aliases"] if a["AliasName"].startswith("alias/corpus-")
    ]
