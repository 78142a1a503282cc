"""The nested keys of the instance, EFS, DynamoDB, ECR and EventBridge handlers, declared
key by key after they were written, each reach the emulated cloud as boto3 shows it; the
keys they drop are refused in the plan by their path (see ``test_sandbox_nested``)."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from test_sandbox_nested import put_nested, refused, update_nested

from _handlers import handler_of
from phasegate.engines.sandbox.emulator import load_ami_catalogue
from phasegate.engines.sandbox.handlers import CloudContext, HandlerError

REGION = "us-east-1"
ACCOUNT = "123456789012"
INSTANCE = "aws:ec2/instance:Instance"
FILE_SYSTEM = "aws:efs/fileSystem:FileSystem"
TABLE = "aws:dynamodb/table:Table"
REPOSITORY = "aws:ecr/repository:Repository"
TARGET = "aws:cloudwatch/eventTarget:EventTarget"


@pytest.fixture
def key_arn(ctx: CloudContext) -> str:
    arn: str = ctx.client("kms").create_key()["KeyMetadata"]["Arn"]
    return arn


# --- an instance's metadata options and root volume --------------------------------------


def test_every_metadata_option_and_root_volume_key_reaches_the_instance(
    ctx: CloudContext, key_arn: str
) -> None:
    ec2 = ctx.client("ec2")
    load_ami_catalogue(ACCOUNT, REGION)
    image = ec2.describe_images(
        Owners=["amazon"],
        Filters=[
            {"Name": "name", "Values": ["al2023-ami-2023*"]},
            {"Name": "architecture", "Values": ["x86_64"]},
        ],
    )["Images"][0]["ImageId"]
    vpc = ec2.create_vpc(CidrBlock="10.50.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.50.1.0/24")["Subnet"]["SubnetId"]
    options = {
        "httpTokens": "required",
        "httpPutResponseHopLimit": 3,
        "httpEndpoint": "enabled",
        "httpProtocolIpv6": "enabled",
        "instanceMetadataTags": "enabled",
    }
    root = {
        "volumeSize": 30,
        "volumeType": "gp2",
        "encrypted": True,
        "kmsKeyId": key_arn,
        "deleteOnTermination": False,
    }
    inputs = {
        "ami": image,
        "instanceType": "t3.micro",
        "subnetId": subnet,
        "metadataOptions": options,
        "rootBlockDevice": root,
    }
    id_, outputs = put_nested(ctx, INSTANCE, inputs)
    found = ec2.describe_instances(InstanceIds=[id_])["Reservations"][0]["Instances"][0]
    metadata = found["MetadataOptions"]
    assert (metadata["HttpTokens"], metadata["HttpPutResponseHopLimit"]) == ("required", 3)
    assert (metadata["HttpEndpoint"], metadata["HttpProtocolIpv6"]) == ("enabled", "enabled")
    assert metadata["InstanceMetadataTags"] == "enabled"
    (mapping,) = found["BlockDeviceMappings"]
    assert mapping["Ebs"]["DeleteOnTermination"] is False
    volume = ec2.describe_volumes(VolumeIds=[mapping["Ebs"]["VolumeId"]])["Volumes"][0]
    assert (volume["Size"], volume["VolumeType"]) == (30, "gp2")
    assert (volume["Encrypted"], volume["KmsKeyId"]) == (True, key_arn)

    new = {
        **inputs,
        "metadataOptions": {**options, "httpProtocolIpv6": "disabled", "httpTokens": "optional"},
        "rootBlockDevice": {**root, "volumeSize": 40},
    }
    update_nested(ctx, INSTANCE, id_, inputs, new, outputs)
    found = ec2.describe_instances(InstanceIds=[id_])["Reservations"][0]["Instances"][0]
    metadata = found["MetadataOptions"]
    assert (metadata["HttpTokens"], metadata["HttpProtocolIpv6"]) == ("optional", "disabled")
    volume = ec2.describe_volumes(VolumeIds=[mapping["Ebs"]["VolumeId"]])["Volumes"][0]
    assert volume["Size"] == 40


# --- a file system's lifecycle policies ---------------------------------------------------


def test_every_lifecycle_policy_reaches_the_file_system_and_an_update_changes_them(
    ctx: CloudContext,
) -> None:
    efs = ctx.client("efs")
    policies = [
        {"transitionToIa": "AFTER_30_DAYS"},
        {"transitionToArchive": "AFTER_90_DAYS"},
        {"transitionToPrimaryStorageClass": "AFTER_1_ACCESS"},
    ]
    inputs = {"throughputMode": "elastic", "lifecyclePolicies": policies}
    fs_id, outputs = put_nested(ctx, FILE_SYSTEM, inputs)
    assert efs.describe_lifecycle_configuration(FileSystemId=fs_id)["LifecyclePolicies"] == [
        {"TransitionToIA": "AFTER_30_DAYS"},
        {"TransitionToArchive": "AFTER_90_DAYS"},
        {"TransitionToPrimaryStorageClass": "AFTER_1_ACCESS"},
    ]
    new = {**inputs, "lifecyclePolicies": [{"transitionToIa": "AFTER_7_DAYS"}]}
    update_nested(ctx, FILE_SYSTEM, fs_id, inputs, new, outputs)
    assert efs.describe_lifecycle_configuration(FileSystemId=fs_id)["LifecyclePolicies"] == [
        {"TransitionToIA": "AFTER_7_DAYS"}
    ]


# --- a table's attributes, indexes, recovery, encryption and expiry ------------------------


def test_every_nested_key_of_a_table_reaches_dynamodb(ctx: CloudContext, key_arn: str) -> None:
    ddb = ctx.client("dynamodb")
    index = {
        "name": "by-email",
        "hashKey": "email",
        "rangeKey": "sk",
        "projectionType": "INCLUDE",
        "nonKeyAttributes": ["display"],
        "readCapacity": 3,
        "writeCapacity": 2,
    }
    inputs = {
        "name": f"nested-{secrets.token_hex(3)}",
        "hashKey": "pk",
        "readCapacity": 5,
        "writeCapacity": 4,
        "attributes": [
            {"name": "pk", "type": "S"},
            {"name": "sk", "type": "N"},
            {"name": "email", "type": "S"},
        ],
        "globalSecondaryIndexes": [index],
        "ttl": {"enabled": True, "attributeName": "expires"},
        "pointInTimeRecovery": {"enabled": True, "recoveryPeriodInDays": 10},
        "serverSideEncryption": {"enabled": True, "kmsKeyArn": key_arn},
    }
    table_name, outputs = put_nested(ctx, TABLE, inputs)
    table = ddb.describe_table(TableName=table_name)["Table"]
    assert {(a["AttributeName"], a["AttributeType"]) for a in table["AttributeDefinitions"]} == {
        ("pk", "S"),
        ("sk", "N"),
        ("email", "S"),
    }
    (shown,) = table["GlobalSecondaryIndexes"]
    assert shown["IndexName"] == "by-email"
    assert shown["KeySchema"] == [
        {"AttributeName": "email", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert shown["Projection"] == {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["display"]}
    throughput = shown["ProvisionedThroughput"]
    assert (throughput["ReadCapacityUnits"], throughput["WriteCapacityUnits"]) == (3, 2)
    assert ddb.describe_time_to_live(TableName=table_name)["TimeToLiveDescription"] == {
        "TimeToLiveStatus": "ENABLED",
        "AttributeName": "expires",
    }
    recovery = ddb.describe_continuous_backups(TableName=table_name)[
        "ContinuousBackupsDescription"
    ]["PointInTimeRecoveryDescription"]
    assert (recovery["PointInTimeRecoveryStatus"], recovery["RecoveryPeriodInDays"]) == (
        "ENABLED",
        10,
    )
    assert table["SSEDescription"]["KMSMasterKeyArn"] == key_arn

    new = {
        **inputs,
        "ttl": {"enabled": False, "attributeName": "expires"},
        "pointInTimeRecovery": {"enabled": True, "recoveryPeriodInDays": 20},
    }
    update_nested(ctx, TABLE, table_name, inputs, new, outputs)
    ttl = ddb.describe_time_to_live(TableName=table_name)["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] == "DISABLED"
    recovery = ddb.describe_continuous_backups(TableName=table_name)[
        "ContinuousBackupsDescription"
    ]["PointInTimeRecoveryDescription"]
    assert recovery["RecoveryPeriodInDays"] == 20


# --- a repository's scanning and encryption, a target's retries -------------------------


def test_a_repositorys_scanning_and_encryption_reach_ecr(ctx: CloudContext, key_arn: str) -> None:
    inputs = {
        "name": f"nested-{secrets.token_hex(3)}",
        "imageScanningConfiguration": {"scanOnPush": True},
        "encryptionConfigurations": [{"encryptionType": "KMS", "kmsKey": key_arn}],
    }
    name, outputs = put_nested(ctx, REPOSITORY, inputs)
    ecr = ctx.client("ecr")
    (found,) = ecr.describe_repositories(repositoryNames=[name])["repositories"]
    assert found["imageScanningConfiguration"] == {"scanOnPush": True}
    assert found["encryptionConfiguration"] == {"encryptionType": "KMS", "kmsKey": key_arn}
    new = {**inputs, "imageScanningConfiguration": {"scanOnPush": False}}
    update_nested(ctx, REPOSITORY, name, inputs, new, outputs)
    (found,) = ecr.describe_repositories(repositoryNames=[name])["repositories"]
    assert found["imageScanningConfiguration"] == {"scanOnPush": False}


def test_a_targets_retries_dead_letters_and_message_group_reach_eventbridge(
    ctx: CloudContext,
) -> None:
    events, sqs = ctx.client("events"), ctx.client("sqs")
    rule = f"nested-{secrets.token_hex(3)}"
    events.put_rule(Name=rule, ScheduleExpression="rate(5 minutes)")
    queues = {
        kind: sqs.get_queue_attributes(
            QueueUrl=sqs.create_queue(QueueName=f"{rule}-{kind}", Attributes=attributes)[
                "QueueUrl"
            ],
            AttributeNames=["QueueArn"],
        )["Attributes"]["QueueArn"]
        for kind, attributes in (
            ("dead.fifo", {"FifoQueue": "true"}),
            ("ordered.fifo", {"FifoQueue": "true", "ContentBasedDeduplication": "true"}),
        )
    }
    inputs = {
        "rule": rule,
        "targetId": "ordered",
        "arn": queues["ordered.fifo"],
        "sqsTarget": {"messageGroupId": "exports"},
        "retryPolicy": {"maximumEventAgeInSeconds": 600, "maximumRetryAttempts": 3},
        "deadLetterConfig": {"arn": queues["dead.fifo"]},
    }
    id_, outputs = put_nested(ctx, TARGET, inputs)
    (target,) = events.list_targets_by_rule(Rule=rule)["Targets"]
    assert target["SqsParameters"] == {"MessageGroupId": "exports"}
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 600, "MaximumRetryAttempts": 3}
    assert target["DeadLetterConfig"] == {"Arn": queues["dead.fifo"]}
    new = {**inputs, "retryPolicy": {"maximumEventAgeInSeconds": 60, "maximumRetryAttempts": 0}}
    update_nested(ctx, TARGET, id_, inputs, new, outputs)
    (target,) = events.list_targets_by_rule(Rule=rule)["Targets"]
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 60, "MaximumRetryAttempts": 0}


# --- refused by their path ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "inputs", "path"),
    [
        (INSTANCE, {"rootBlockDevice": {"volumeSize": 30, "iops": 3000}}, "rootBlockDevice.iops"),
        (
            INSTANCE,
            {"rootBlockDevice": {"throughput": 250, "tags": {"a": "b"}}},
            "rootBlockDevice.tags, rootBlockDevice.throughput",
        ),
        (
            TABLE,
            {
                "hashKey": "pk",
                "globalSecondaryIndexes": [
                    {"name": "g", "hashKey": "pk", "onDemandThroughput": {"maxReadRequestUnits": 5}}
                ],
            },
            "globalSecondaryIndexes.onDemandThroughput",
        ),
        (
            TABLE,
            {
                "hashKey": "pk",
                "globalSecondaryIndexes": [
                    {"name": "g", "keySchemas": [{"attributeName": "pk", "keyType": "HASH"}]}
                ],
            },
            "globalSecondaryIndexes.keySchemas",
        ),
    ],
)
def test_a_nested_key_these_handlers_drop_is_refused_by_its_path(
    token: str, inputs: dict[str, Any], path: str
) -> None:
    assert refused(token, inputs) == path


def test_a_root_volume_key_refused_by_path_is_still_refused_by_the_handler_itself() -> None:
    with pytest.raises(HandlerError, match=r"does not emulate rootBlockDevice\.iops"):
        handler_of(INSTANCE).validate({"rootBlockDevice": {"iops": 3000}})
