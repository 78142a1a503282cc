"""Data services in the sandbox: S3 objects, DynamoDB tables, ECR repositories, SSM
parameters and Secrets Manager secrets against the emulated cloud.

For every input a handler emulates, a test sets a value other than the default and finds
it through boto3; for inputs updated in place, that an update changes it there; for inputs
that force a replacement, that the plan's diff says so. Then delete, ``exists`` and each
refusal of inputs AWS would refuse. Inputs are the provider's wire names.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import secrets
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from test_sandbox_inputs import schema_inputs, schema_paths

from _handlers import create, handler_of
from phasegate.engines.base import Op, ProgramSource, StackTarget
from phasegate.engines.sandbox import SandboxEngine, cloud_seal, snapshot
from phasegate.engines.sandbox.diff import _diff
from phasegate.engines.sandbox.emulator import SERVICES, Emulator
from phasegate.engines.sandbox.handlers import (
    CloudContext,
    HandlerError,
    RunContext,
)
from phasegate.engines.sandbox.runtime import Registration
from phasegate.engines.sandbox.sealing import Sealer
from phasegate.engines.sandbox.store import ResourceState
from phasegate.redaction import SecretValues

REGION = "us-east-1"
ACCOUNT = "123456789012"

OBJECT = "aws:s3/bucketObjectv2:BucketObjectv2"
TABLE = "aws:dynamodb/table:Table"
REPOSITORY = "aws:ecr/repository:Repository"
PARAMETER = "aws:ssm/parameter:Parameter"
SECRET = "aws:secretsmanager/secret:Secret"
VERSION = "aws:secretsmanager/secretVersion:SecretVersion"
DATA_TYPES = (OBJECT, TABLE, REPOSITORY, PARAMETER, SECRET, VERSION)


def _client(ctx: CloudContext, service: str) -> Any:
    return ctx.client(service)


def _unique(stem: str) -> str:
    return f"{stem}-{secrets.token_hex(4)}"


def _update(ctx: CloudContext, token: str, id_: str, old: dict, new: dict, outputs: dict) -> dict:
    handler = handler_of(token)
    handler.validate(new)
    assert _op(token, old, new, outputs) is Op.UPDATE
    return handler.update(ctx, id_, old, new, outputs)


def _op(token: str, old: dict[str, Any], new: dict[str, Any], outputs: dict | None = None) -> Op:
    """What the plan does to a resource recorded with ``old`` and declared with ``new``."""
    urn = f"urn:pulumi:test::phasegate::{token}::res"
    state = ResourceState(urn, token, "res", True, "id", old, outputs or old)
    declared = Registration(urn=urn, type=token, name="res", custom=True, inputs=new)
    return _diff(handler_of(token), state, declared, RunContext()).op


def _refused(token: str, inputs: dict[str, Any], reason: str) -> None:
    with pytest.raises(HandlerError, match=reason):
        handler_of(token).validate(inputs)


def _kms_key(ctx: CloudContext) -> str:
    arn: str = _client(ctx, "kms").create_key()["KeyMetadata"]["Arn"]
    return arn


@pytest.mark.parametrize("token", DATA_TYPES)
def test_the_data_types_are_registered_with_schema_properties(token: str) -> None:
    handler = handler_of(token)
    props = set(schema_inputs(token))
    assert handler.type == token
    assert handler.replace_on <= props
    assert handler.emulates <= set(schema_paths(token))  # nested keys by their path
    if handler.name_key:
        assert handler.name_key in props


def test_the_emulator_keeps_the_data_services() -> None:
    assert {"dynamodb", "ecr", "ssm", "secretsmanager", "s3"} <= set(SERVICES)


# --- ECR --------------------------------------------------------------------------------


def _repository(ecr: Any, name: str) -> dict[str, Any]:
    found: dict[str, Any] = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
    return found


def _ecr_tags(ecr: Any, arn: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in ecr.list_tags_for_resource(resourceArn=arn)["tags"]}


def test_repository_carries_its_settings_and_changes_them_in_place(ctx: CloudContext) -> None:
    ecr = _client(ctx, "ecr")
    key = _kms_key(ctx)
    inputs = {
        "name": _unique("team/app"),
        "imageTagMutability": "IMMUTABLE",
        "imageScanningConfiguration": {"scanOnPush": True},
        "encryptionConfigurations": [{"encryptionType": "KMS", "kmsKey": key}],
        "tags": {"team": "data"},
    }
    id_, outputs = create(ctx, REPOSITORY, inputs)
    found = _repository(ecr, id_)
    assert found["imageTagMutability"] == "IMMUTABLE"
    assert found["imageScanningConfiguration"] == {"scanOnPush": True}
    assert found["encryptionConfiguration"] == {"encryptionType": "KMS", "kmsKey": key}
    assert _ecr_tags(ecr, outputs["arn"]) == {"team": "data"}
    assert outputs["repositoryUrl"] == found["repositoryUri"]
    assert outputs["registryId"] == ACCOUNT and outputs["id"] == inputs["name"]

    new = {
        **inputs,
        "imageTagMutability": "MUTABLE",
        "imageScanningConfiguration": {"scanOnPush": False},
        "tags": {"owner": "platform"},
    }
    outputs = _update(ctx, REPOSITORY, id_, inputs, new, outputs)
    found = _repository(ecr, id_)
    assert found["imageTagMutability"] == "MUTABLE"
    assert found["imageScanningConfiguration"] == {"scanOnPush": False}
    assert _ecr_tags(ecr, outputs["arn"]) == {"owner": "platform"}
    handler_of(REPOSITORY).delete(ctx, id_, outputs)
    assert not handler_of(REPOSITORY).exists(ctx, id_, outputs)


@pytest.mark.parametrize(
    "change",
    [{"name": "other-name"}, {"encryptionConfigurations": [{"encryptionType": "KMS"}]}],
)
def test_repository_name_and_encryption_force_a_replacement(change: dict[str, Any]) -> None:
    old = {"name": "app", "encryptionConfigurations": [{"encryptionType": "AES256"}]}
    assert _op(REPOSITORY, old, {**old, **change}) is Op.REPLACE


def _push_image(ecr: Any, repository: str) -> None:
    manifest = '{"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json", "config": {"digest": "sha256:0000000000000000000000000000000000000000000000000000000000000000", "size": 1, "mediaType": "application/vnd.docker.container.image.v1+json"}, "layers": []}'  # noqa: E501
    ecr.put_image(repositoryName=repository, imageManifest=manifest, imageTag="v1")


def test_repository_with_images_goes_only_with_force_delete(ctx: CloudContext) -> None:
    ecr = _client(ctx, "ecr")
    handler = handler_of(REPOSITORY)
    id_, outputs = create(ctx, REPOSITORY, {"name": _unique("kept")})
    _push_image(ecr, id_)
    with pytest.raises(HandlerError, match="forceDelete"):
        handler.delete(ctx, id_, outputs)
    assert handler.exists(ctx, id_, outputs)

    id_, outputs = create(ctx, REPOSITORY, {"name": _unique("forced"), "forceDelete": True})
    _push_image(ecr, id_)
    handler.delete(ctx, id_, outputs)
    assert not handler.exists(ctx, id_, outputs)
    with pytest.raises(ClientError):
        ecr.describe_repositories(repositoryNames=[id_])


def test_repository_is_auto_named_from_the_logical_name(ctx: CloudContext) -> None:
    id_, outputs = create(ctx, REPOSITORY, {}, name="Web_App")
    assert id_.startswith("web-app-") and outputs["name"] == id_
    assert _repository(_client(ctx, "ecr"), id_)["imageTagMutability"] == "MUTABLE"


@pytest.mark.parametrize(
    ("inputs", "reason"),
    [
        ({"name": "App"}, "not valid"),
        ({"name": "a"}, "not valid"),
        ({"name": "team//app"}, "not valid"),
        ({"imageTagMutability": "SOMETIMES"}, "not MUTABLE or IMMUTABLE"),
        ({"imageTagMutability": "IMMUTABLE_WITH_EXCLUSION"}, "ExclusionFilters"),
        (
            {"encryptionConfigurations": [{"encryptionType": "KMS"}, {"encryptionType": "KMS"}]},
            "one configuration",
        ),
        ({"encryptionConfigurations": [{"encryptionType": "DES"}]}, "not AES256 or KMS"),
        (
            {"encryptionConfigurations": [{"encryptionType": "AES256", "kmsKey": "k"}]},
            "KMS only",
        ),
    ],
)
def test_repository_refuses_what_ecr_refuses(inputs: dict[str, Any], reason: str) -> None:
    _refused(REPOSITORY, inputs, reason)


# --- SSM --------------------------------------------------------------------------------


def _described(ssm: Any, name: str) -> dict[str, Any]:
    found = ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Values": [name]}])
    (parameter,) = found["Parameters"]
    return dict(parameter)


def _ssm_tags(ssm: Any, name: str) -> dict[str, str]:
    found = ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=name)["TagList"]
    return {t["Key"]: t["Value"] for t in found}


def test_parameter_carries_its_settings_and_changes_them_in_place(ctx: CloudContext) -> None:
    ssm = _client(ctx, "ssm")
    name = f"/{_unique('app')}/endpoint"
    inputs = {
        "name": name,
        "type": "String",
        "value": "db-1.internal",
        "description": "where the app finds its database",
        "tier": "Advanced",
        "allowedPattern": r"^[a-z0-9.-]+$",
        "tags": {"team": "data"},
    }
    id_, outputs = create(ctx, PARAMETER, inputs)
    assert id_ == name and outputs["version"] == 1
    assert outputs["arn"] == f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{name}"
    assert ssm.get_parameter(Name=name)["Parameter"]["Value"] == "db-1.internal"
    described = _described(ssm, name)
    assert described["Description"] == "where the app finds its database"
    assert described["Tier"] == "Advanced"
    assert described["AllowedPattern"] == r"^[a-z0-9.-]+$"
    assert described["DataType"] == "text"
    assert _ssm_tags(ssm, name) == {"team": "data"}

    new = {
        **inputs,
        "type": "StringList",
        "value": "db-1.internal,db-2.internal",
        "description": "the database replicas",
        "allowedPattern": r"^[a-z0-9.,-]+$",
        "tags": {"owner": "platform"},
    }
    outputs = _update(ctx, PARAMETER, id_, inputs, new, outputs)
    assert outputs["version"] == 2
    found = ssm.get_parameter(Name=name)["Parameter"]
    assert (found["Type"], found["Value"]) == ("StringList", "db-1.internal,db-2.internal")
    described = _described(ssm, name)
    assert described["Description"] == "the database replicas"
    assert described["AllowedPattern"] == r"^[a-z0-9.,-]+$"
    assert _ssm_tags(ssm, name) == {"owner": "platform"}

    assert handler_of(PARAMETER).exists(ctx, id_, outputs)
    handler_of(PARAMETER).delete(ctx, id_, outputs)
    assert not handler_of(PARAMETER).exists(ctx, id_, outputs)
    with pytest.raises(ClientError):
        ssm.get_parameter(Name=name)


def test_parameter_insecure_value_and_image_data_type(ctx: CloudContext) -> None:
    ssm = _client(ctx, "ssm")
    inputs = {
        "name": _unique("base-image"),
        "type": "String",
        "insecureValue": "ami-0123456789abcdef0",
        "dataType": "aws:ec2:image",
    }
    id_, outputs = create(ctx, PARAMETER, inputs)
    assert ssm.get_parameter(Name=id_)["Parameter"]["Value"] == "ami-0123456789abcdef0"
    assert _described(ssm, id_)["DataType"] == "aws:ec2:image"
    new = {**inputs, "insecureValue": "ami-0fedcba9876543210"}
    _update(ctx, PARAMETER, id_, inputs, new, outputs)
    assert ssm.get_parameter(Name=id_)["Parameter"]["Value"] == "ami-0fedcba9876543210"


def test_parameter_tier_moves_up_in_place_and_down_by_replacement(ctx: CloudContext) -> None:
    ssm = _client(ctx, "ssm")
    inputs = {"name": _unique("tiered"), "type": "String", "value": "v"}
    id_, outputs = create(ctx, PARAMETER, inputs)
    assert _described(ssm, id_)["Tier"] == "Standard"
    advanced = {**inputs, "tier": "Advanced"}
    outputs = _update(ctx, PARAMETER, id_, inputs, advanced, outputs)
    assert _described(ssm, id_)["Tier"] == "Advanced"
    assert _op(PARAMETER, advanced, inputs, outputs) is Op.REPLACE
    assert _op(PARAMETER, advanced, {**inputs, "tier": "Standard"}, outputs) is Op.REPLACE


@pytest.mark.parametrize("change", [{"name": "/other"}, {"dataType": "aws:ec2:image"}])
def test_parameter_name_and_data_type_force_a_replacement(change: dict[str, Any]) -> None:
    old = {"name": "/app", "type": "String", "value": "ami-0123456789abcdef0"}
    assert _op(PARAMETER, old, {**old, **change}) is Op.REPLACE


def test_parameter_overwrite_takes_over_one_that_exists(ctx: CloudContext) -> None:
    ssm = _client(ctx, "ssm")
    name = _unique("existing")
    ssm.put_parameter(Name=name, Type="String", Value="made elsewhere")
    inputs = {"name": name, "type": "String", "value": "ours"}
    with pytest.raises(HandlerError, match="set overwrite"):
        create(ctx, PARAMETER, inputs)
    assert ssm.get_parameter(Name=name)["Parameter"]["Value"] == "made elsewhere"
    create(ctx, PARAMETER, {**inputs, "overwrite": True, "tags": {"team": "data"}})
    assert ssm.get_parameter(Name=name)["Parameter"]["Value"] == "ours"
    assert _ssm_tags(ssm, name) == {"team": "data"}


def test_parameter_is_auto_named_from_the_logical_name(ctx: CloudContext) -> None:
    id_, _ = create(ctx, PARAMETER, {"type": "String", "value": "v"}, name="setting")
    assert id_.startswith("setting-")
    assert _client(ctx, "ssm").get_parameter(Name=id_)["Parameter"]["Value"] == "v"


def test_a_secure_string_parameter_is_encrypted_with_its_key(ctx: CloudContext) -> None:
    ssm = _client(ctx, "ssm")
    key = _kms_key(ctx)
    inputs = {"name": _unique("/db/password"), "type": "SecureString", "value": "hunter2-ok"}
    id_, outputs = create(ctx, PARAMETER, {**inputs, "keyId": key})
    found = ssm.get_parameter(Name=id_, WithDecryption=True)["Parameter"]
    assert (found["Type"], found["Value"]) == ("SecureString", "hunter2-ok")
    assert ssm.get_parameter(Name=id_)["Parameter"]["Value"] != "hunter2-ok"
    assert _described(ssm, id_)["KeyId"] == key
    other = _kms_key(ctx)
    _update(ctx, PARAMETER, id_, {**inputs, "keyId": key}, {**inputs, "keyId": other}, outputs)
    assert _described(ssm, id_)["KeyId"] == other


@pytest.mark.parametrize(
    ("inputs", "reason"),
    [
        ({"name": "app/endpoint"}, "must start with '/'"),
        ({"name": "/aws/endpoint"}, "reserved"),
        ({"name": "SSM-setting"}, "reserved"),
        ({"name": "/app/end point"}, "not valid"),
        ({"name": "/" + "/".join("abcdefghijklmnop")}, "levels deep"),
        ({"name": "x" * 1012}, "not valid"),
        ({"type": "Text"}, "not String, StringList or SecureString"),
        ({"value": ""}, "cannot be empty"),
        ({"value": "x" * 4097}, "Standard tier"),
        ({"value": "x" * 8193, "tier": "Advanced"}, "Advanced tier"),
        ({"tier": "Premium"}, "tier 'Premium'"),
        ({"value": "abc", "allowedPattern": r"^\d+$"}, "does not match allowedPattern"),
        ({"allowedPattern": "(unclosed"}, "not a regular expression"),
        ({"insecureValue": "v"}, "cannot both be set"),
        ({"type": "SecureString", "value": None, "insecureValue": "v"}, "SecureString"),
        ({"dataType": "aws:ssm:integration"}, "not text or aws:ec2:image"),
        ({"keyId": "alias/app"}, "SecureString parameters only"),
        ({"dataType": "aws:ec2:image", "value": "ubuntu"}, "AMI id"),
        ({"description": "d" * 1025}, "1024 characters"),
    ],
)
def test_parameter_refuses_what_ssm_refuses(inputs: dict[str, Any], reason: str) -> None:
    base = {"name": "/app/setting", "type": "String", "value": "v"}
    _refused(PARAMETER, {**base, **inputs}, reason)


# --- Secrets Manager --------------------------------------------------------------------


def _sm_tags(found: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in found.get("Tags", [])}


def test_secret_carries_its_settings_and_changes_them_in_place(ctx: CloudContext) -> None:
    client = _client(ctx, "secretsmanager")
    key, other_key = _kms_key(ctx), _kms_key(ctx)
    inputs = {
        "name": _unique("app/db"),
        "description": "the database's credentials",
        "kmsKeyId": key,
        "recoveryWindowInDays": 0,
        "tags": {"team": "data"},
    }
    id_, outputs = create(ctx, SECRET, inputs)
    assert id_ == outputs["arn"] == outputs["id"] and outputs["name"] == inputs["name"]
    found = client.describe_secret(SecretId=id_)
    assert found["Name"] == inputs["name"]
    assert found["Description"] == "the database's credentials"
    assert found["KmsKeyId"] == key
    assert _sm_tags(found) == {"team": "data"}

    new = {
        **inputs,
        "description": "rotated monthly",
        "kmsKeyId": other_key,
        "tags": {"owner": "platform"},
    }
    outputs = _update(ctx, SECRET, id_, inputs, new, outputs)
    found = client.describe_secret(SecretId=id_)
    assert (found["Description"], found["KmsKeyId"]) == ("rotated monthly", other_key)
    assert _sm_tags(found) == {"owner": "platform"}

    handler_of(SECRET).delete(ctx, id_, outputs)  # a window of 0: gone at once
    assert not handler_of(SECRET).exists(ctx, id_, outputs)
    with pytest.raises(ClientError):
        client.describe_secret(SecretId=id_)


@pytest.mark.parametrize(("window", "days"), [(None, 30), (7, 7)])
def test_secret_deletion_waits_for_its_recovery_window(
    ctx: CloudContext, window: int | None, days: int
) -> None:
    client = _client(ctx, "secretsmanager")
    inputs: dict[str, Any] = {"name": _unique("scheduled")}
    if window is not None:
        inputs["recoveryWindowInDays"] = window
    id_, outputs = create(ctx, SECRET, inputs)
    assert handler_of(SECRET).exists(ctx, id_, outputs)
    before = datetime.datetime.now(datetime.UTC)
    handler_of(SECRET).delete(ctx, id_, outputs)
    found = client.describe_secret(SecretId=id_)  # still there, scheduled for deletion
    scheduled = found["DeletedDate"] - before
    assert datetime.timedelta(days=days, seconds=-5) < scheduled
    assert scheduled < datetime.timedelta(days=days, seconds=5)
    assert not handler_of(SECRET).exists(ctx, id_, outputs)


def test_secret_recovery_window_changes_in_place(ctx: CloudContext) -> None:
    client = _client(ctx, "secretsmanager")
    inputs = {"name": _unique("window"), "recoveryWindowInDays": 0}
    id_, outputs = create(ctx, SECRET, inputs)
    outputs = _update(ctx, SECRET, id_, inputs, {**inputs, "recoveryWindowInDays": 7}, outputs)
    handler_of(SECRET).delete(ctx, id_, outputs)
    assert client.describe_secret(SecretId=id_)["DeletedDate"] is not None  # not at once


def test_secret_name_prefix_gets_the_providers_suffix(ctx: CloudContext) -> None:
    id_, outputs = create(ctx, SECRET, {"namePrefix": "app/db-"})
    assert outputs["name"].startswith("app/db-") and len(outputs["name"]) == len("app/db-") + 26
    found = _client(ctx, "secretsmanager").describe_secret(SecretId=id_)
    assert found["Name"] == outputs["name"]


def test_secret_is_auto_named_from_the_logical_name(ctx: CloudContext) -> None:
    _, outputs = create(ctx, SECRET, {}, name="credentials")
    assert outputs["name"].startswith("credentials-")


@pytest.mark.parametrize("change", [{"name": "other"}, {"namePrefix": "other-"}])
def test_secret_name_and_prefix_force_a_replacement(change: dict[str, Any]) -> None:
    assert _op(SECRET, {"name": "app"}, {"name": "app", **change}) is Op.REPLACE
    assert _op(SECRET, {"name": "app"}, {"name": "app", "description": "d"}) is Op.UPDATE


@pytest.mark.parametrize(
    ("inputs", "reason"),
    [
        ({"name": "app secret"}, "not valid"),
        ({"name": "x" * 513}, "not valid"),
        ({"namePrefix": "x" * 487}, "not valid"),
        ({"name": "a", "namePrefix": "b"}, "cannot both be set"),
        ({"recoveryWindowInDays": 5}, "neither 0 nor within 7-30"),
        ({"recoveryWindowInDays": 31}, "neither 0 nor within 7-30"),
        ({"description": "d" * 2049}, "2048 characters"),
    ],
)
def test_secret_refuses_what_secrets_manager_refuses(inputs: dict[str, Any], reason: str) -> None:
    _refused(SECRET, inputs, reason)


@pytest.fixture
def secret(ctx: CloudContext) -> str:
    arn: str = _client(ctx, "secretsmanager").create_secret(Name=_unique("versions"))["ARN"]
    return arn


def _version_stages(client: Any, secret: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = client.describe_secret(SecretId=secret)["VersionIdsToStages"]
    return found


def test_secret_version_holds_the_value_and_moves_its_labels(
    ctx: CloudContext, secret: str
) -> None:
    client = _client(ctx, "secretsmanager")
    handler = handler_of(VERSION)
    first_inputs = {"secretId": secret, "secretString": '{"password": "first-one"}'}
    first_id, first = create(ctx, VERSION, first_inputs)
    assert first_id == f"{secret}|{first['versionId']}" and first["arn"] == secret
    assert first["versionStages"] == ["AWSCURRENT"]
    got = client.get_secret_value(SecretId=secret)
    assert (got["SecretString"], got["VersionId"]) == (
        '{"password": "first-one"}',
        first["versionId"],
    )

    inputs = {"secretId": secret, "secretString": "second-one", "versionStages": ["blue"]}
    id_, outputs = create(ctx, VERSION, inputs)
    assert _version_stages(client, secret)[outputs["versionId"]] == ["blue"]
    got = client.get_secret_value(SecretId=secret, VersionStage="blue")
    assert got["SecretString"] == "second-one"

    new = {**inputs, "versionStages": ["AWSCURRENT", "green"]}
    outputs = _update(ctx, VERSION, id_, inputs, new, outputs)
    assert sorted(outputs["versionStages"]) == ["AWSCURRENT", "green"]
    assert sorted(_version_stages(client, secret)[outputs["versionId"]]) == ["AWSCURRENT", "green"]
    assert client.get_secret_value(SecretId=secret)["SecretString"] == "second-one"
    assert _version_stages(client, secret)[first["versionId"]] == ["AWSPREVIOUS"]

    handler.delete(ctx, id_, outputs)  # the current version keeps AWSCURRENT, as on AWS
    assert _version_stages(client, secret)[outputs["versionId"]] == ["AWSCURRENT"]


def test_secret_version_deleted_loses_its_labels(ctx: CloudContext, secret: str) -> None:
    handler = handler_of(VERSION)
    create(ctx, VERSION, {"secretId": secret, "secretString": "current-value"})
    inputs = {"secretId": secret, "secretString": "staged-value", "versionStages": ["next"]}
    id_, outputs = create(ctx, VERSION, inputs)
    assert handler.exists(ctx, id_, outputs)
    handler.delete(ctx, id_, outputs)
    assert not handler.exists(ctx, id_, outputs)
    assert not _version_stages(_client(ctx, "secretsmanager"), secret).get(outputs["versionId"])


def test_secret_version_binary_value(ctx: CloudContext, secret: str) -> None:
    raw = bytes(range(32))
    inputs = {"secretId": secret, "secretBinary": base64.b64encode(raw).decode()}
    create(ctx, VERSION, inputs)
    got = _client(ctx, "secretsmanager").get_secret_value(SecretId=secret)
    assert got["SecretBinary"] == raw


@pytest.mark.parametrize(
    "change", [{"secretId": "other"}, {"secretString": "other"}, {"secretBinary": "b3RoZXI="}]
)
def test_secret_version_value_and_secret_force_a_replacement(change: dict[str, Any]) -> None:
    old = {"secretId": "app", "secretString": "value"}
    assert _op(VERSION, old, {**old, **change}) is Op.REPLACE
    assert _op(VERSION, old, {**old, "versionStages": ["blue"]}) is Op.UPDATE


def test_secret_version_of_a_missing_secret_is_refused(ctx: CloudContext) -> None:
    with pytest.raises(HandlerError, match="cannot put a version"):
        create(ctx, VERSION, {"secretId": _unique("missing"), "secretString": "value"})


@pytest.mark.parametrize(
    ("inputs", "reason"),
    [
        ({"secretBinary": "eA=="}, "cannot both be set"),
        ({"secretString": "x" * 65537}, "larger than 65536 bytes"),
        ({"secretString": None, "secretBinary": "not base64!"}, "not base64"),
        ({"versionStages": [f"s{i}" for i in range(21)]}, "at most 20"),
        ({"versionStages": ["x" * 257]}, "not 1-256 characters"),
    ],
)
def test_secret_version_refuses_what_secrets_manager_refuses(
    inputs: dict[str, Any], reason: str
) -> None:
    _refused(VERSION, {"secretId": "app", "secretString": "value", **inputs}, reason)


# --- S3 objects -------------------------------------------------------------------------


@pytest.fixture
def bucket(ctx: CloudContext) -> str:
    name = _unique("objects")
    _client(ctx, "s3").create_bucket(Bucket=name)
    return name


def _object_tags(s3: Any, bucket: str, key: str) -> dict[str, str]:
    found = s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
    return {t["Key"]: t["Value"] for t in found}


def test_object_carries_its_content_headers_and_settings(ctx: CloudContext, bucket: str) -> None:
    s3 = _client(ctx, "s3")
    key = _kms_key(ctx)
    inputs = {
        "bucket": bucket,
        "key": "site/index.html",
        "content": "<h1>hello</h1>",
        "contentType": "text/html",
        "cacheControl": "max-age=60",
        "contentEncoding": "identity",
        "contentDisposition": "inline",
        "metadata": {"build": "42"},
        "tags": {"team": "web"},
        "serverSideEncryption": "aws:kms",
        "kmsKeyId": key,
        "storageClass": "STANDARD_IA",
    }
    id_, outputs = create(ctx, OBJECT, inputs)
    assert id_ == "site/index.html" and outputs["arn"] == f"arn:aws:s3:::{bucket}/site/index.html"
    got = s3.get_object(Bucket=bucket, Key="site/index.html")
    assert got["Body"].read() == b"<h1>hello</h1>"
    assert got["ContentType"] == "text/html"
    assert got["CacheControl"] == "max-age=60"
    assert got["ContentEncoding"] == "identity"
    assert got["ContentDisposition"] == "inline"
    assert got["Metadata"] == {"build": "42"}
    assert got["ServerSideEncryption"] == "aws:kms"
    assert got["SSEKMSKeyId"] == key
    assert got["StorageClass"] == "STANDARD_IA"
    assert outputs["etag"] == got["ETag"].strip('"')
    assert _object_tags(s3, bucket, "site/index.html") == {"team": "web"}


def test_object_update_puts_it_again(ctx: CloudContext, bucket: str) -> None:
    s3 = _client(ctx, "s3")
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    key = _kms_key(ctx)
    inputs = {
        "bucket": bucket,
        "key": "data.json",
        "content": "{}",
        "contentType": "application/json",
        "cacheControl": "no-cache",
        "contentEncoding": "identity",
        "contentDisposition": "inline",
        "metadata": {"build": "1"},
        "tags": {"stage": "one"},
        "serverSideEncryption": "AES256",
        "storageClass": "STANDARD_IA",
    }
    id_, outputs = create(ctx, OBJECT, inputs)
    new = {
        **inputs,
        "content": '{"a": 1}',
        "contentType": "text/plain",
        "cacheControl": "max-age=300",
        "contentEncoding": "gzip",
        "contentDisposition": "attachment",
        "metadata": {"build": "2"},
        "tags": {"stage": "two"},
        "serverSideEncryption": "aws:kms",
        "kmsKeyId": key,
        "storageClass": "ONEZONE_IA",
    }
    updated = _update(ctx, OBJECT, id_, inputs, new, outputs)
    assert updated["versionId"] != outputs["versionId"]
    got = s3.get_object(Bucket=bucket, Key="data.json")
    assert got["Body"].read() == b'{"a": 1}'
    assert (got["ContentType"], got["CacheControl"]) == ("text/plain", "max-age=300")
    assert (got["ContentEncoding"], got["ContentDisposition"]) == ("gzip", "attachment")
    assert got["Metadata"] == {"build": "2"}
    assert (got["ServerSideEncryption"], got["StorageClass"]) == ("aws:kms", "ONEZONE_IA")
    assert got["SSEKMSKeyId"] == key
    assert _object_tags(s3, bucket, "data.json") == {"stage": "two"}

    handler = handler_of(OBJECT)
    assert handler.exists(ctx, id_, updated)
    handler.delete(ctx, id_, updated)  # every version of the key, as the provider does
    assert not handler.exists(ctx, id_, updated)
    assert "Versions" not in s3.list_object_versions(Bucket=bucket, Prefix="data.json")


def test_object_content_base64_is_its_bytes(ctx: CloudContext, bucket: str) -> None:
    s3 = _client(ctx, "s3")
    raw = bytes(range(256))
    inputs = {"bucket": bucket, "key": "blob.bin", "contentBase64": base64.b64encode(raw).decode()}
    id_, outputs = create(ctx, OBJECT, inputs)
    assert s3.get_object(Bucket=bucket, Key="blob.bin")["Body"].read() == raw
    assert outputs["contentType"] == s3.head_object(Bucket=bucket, Key="blob.bin")["ContentType"]
    new = {**inputs, "contentBase64": base64.b64encode(b"other").decode()}
    _update(ctx, OBJECT, id_, inputs, new, outputs)
    assert s3.get_object(Bucket=bucket, Key="blob.bin")["Body"].read() == b"other"


@pytest.mark.parametrize("change", [{"bucket": "other-bucket"}, {"key": "other-key"}])
def test_object_bucket_and_key_force_a_replacement(change: dict[str, Any]) -> None:
    old = {"bucket": "site", "key": "index.html", "content": "x"}
    assert _op(OBJECT, old, {**old, **change}) is Op.REPLACE


def test_object_in_a_missing_bucket_is_refused(ctx: CloudContext) -> None:
    with pytest.raises(HandlerError, match="does not exist"):
        create(ctx, OBJECT, {"bucket": _unique("missing"), "key": "k", "content": "x"})


@pytest.mark.parametrize(
    ("inputs", "reason"),
    [
        ({"key": ""}, "key cannot be empty"),
        ({"key": "k" * 1025}, "1024 bytes"),
        ({"contentBase64": "eA=="}, "content and contentBase64 cannot both be set"),
        ({"content": None, "contentBase64": "not base64!"}, "not base64"),
        ({"serverSideEncryption": "AES128"}, "serverSideEncryption 'AES128'"),
        ({"serverSideEncryption": "AES256", "kmsKeyId": "k"}, "kmsKeyId needs"),
        ({"kmsKeyId": "k"}, "kmsKeyId needs"),
        ({"storageClass": "COLD"}, "storageClass 'COLD'"),
        ({"metadata": {"Build": "1"}}, "must be lowercase"),
        ({"metadata": {"big": "x" * 2048}}, "more than S3's 2048"),
        ({"tags": {f"t{i}": "v" for i in range(11)}}, "at most 10 tags"),
    ],
)
def test_object_refuses_what_s3_refuses(inputs: dict[str, Any], reason: str) -> None:
    _refused(OBJECT, {"bucket": "site", "key": "index.html", "content": "x", **inputs}, reason)


# --- DynamoDB ---------------------------------------------------------------------------


def _table_inputs(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "billingMode": "PROVISIONED",
        "hashKey": "pk",
        "rangeKey": "sk",
        "readCapacity": 3,
        "writeCapacity": 4,
        "attributes": [
            {"name": "pk", "type": "S"},
            {"name": "sk", "type": "N"},
            {"name": "email", "type": "S"},
        ],
        "globalSecondaryIndexes": [
            {
                "name": "by-email",
                "hashKey": "email",
                "projectionType": "INCLUDE",
                "nonKeyAttributes": ["display"],
                "readCapacity": 1,
                "writeCapacity": 2,
            }
        ],
        "ttl": {"enabled": True, "attributeName": "expires"},
        "pointInTimeRecovery": {"enabled": True, "recoveryPeriodInDays": 10},
        "streamEnabled": True,
        "streamViewType": "NEW_IMAGE",
        "tags": {"team": "data"},
        "deletionProtectionEnabled": True,
    }


def _described_table(ddb: Any, name: str) -> dict[str, Any]:
    found: dict[str, Any] = ddb.describe_table(TableName=name)["Table"]
    return found


def _ddb_tags(ddb: Any, arn: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in ddb.list_tags_of_resource(ResourceArn=arn)["Tags"]}


def _recovery(ddb: Any, name: str) -> dict[str, Any]:
    found = ddb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
    return dict(found["PointInTimeRecoveryDescription"])


def test_table_carries_every_setting(ctx: CloudContext) -> None:
    ddb = _client(ctx, "dynamodb")
    key = _kms_key(ctx)
    inputs = {
        **_table_inputs(_unique("orders")),
        "serverSideEncryption": {"enabled": True, "kmsKeyArn": key},
    }
    id_, outputs = create(ctx, TABLE, inputs)
    table = _described_table(ddb, id_)
    assert outputs["arn"] == table["TableArn"] and outputs["id"] == inputs["name"]
    assert table["BillingModeSummary"]["BillingMode"] == "PROVISIONED"
    assert table["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert {(a["AttributeName"], a["AttributeType"]) for a in table["AttributeDefinitions"]} == {
        ("pk", "S"),
        ("sk", "N"),
        ("email", "S"),
    }
    throughput = table["ProvisionedThroughput"]
    assert (throughput["ReadCapacityUnits"], throughput["WriteCapacityUnits"]) == (3, 4)
    (index,) = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "by-email"
    assert index["KeySchema"] == [{"AttributeName": "email", "KeyType": "HASH"}]
    assert index["Projection"] == {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["display"]}
    assert index["ProvisionedThroughput"]["WriteCapacityUnits"] == 2
    assert ddb.describe_time_to_live(TableName=id_)["TimeToLiveDescription"] == {
        "TimeToLiveStatus": "ENABLED",
        "AttributeName": "expires",
    }
    recovery = _recovery(ddb, id_)
    assert (recovery["PointInTimeRecoveryStatus"], recovery["RecoveryPeriodInDays"]) == (
        "ENABLED",
        10,
    )
    assert table["SSEDescription"]["KMSMasterKeyArn"] == key
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    assert outputs["streamArn"] == table["LatestStreamArn"]
    assert outputs["streamLabel"] == table["LatestStreamLabel"]
    assert _ddb_tags(ddb, outputs["arn"]) == {"team": "data"}
    assert table["DeletionProtectionEnabled"] is True

    handler = handler_of(TABLE)
    with pytest.raises(HandlerError, match="deletion protection"):
        handler.delete(ctx, id_, outputs)
    assert handler.exists(ctx, id_, outputs)


def test_table_changes_in_place(ctx: CloudContext) -> None:
    ddb = _client(ctx, "dynamodb")
    inputs = _table_inputs(_unique("events"))
    id_, outputs = create(ctx, TABLE, inputs)
    assert "SSEDescription" not in _described_table(ddb, id_)
    new = {
        **inputs,
        "billingMode": "PAY_PER_REQUEST",
        "readCapacity": None,
        "writeCapacity": None,
        "attributes": [
            {"name": "pk", "type": "S"},
            {"name": "sk", "type": "N"},
            {"name": "tenant", "type": "S"},
        ],
        "globalSecondaryIndexes": [
            {"name": "by-tenant", "hashKey": "tenant", "rangeKey": "sk", "projectionType": "ALL"}
        ],
        "ttl": {"enabled": True, "attributeName": "gone_at"},
        "pointInTimeRecovery": {"enabled": False},
        "serverSideEncryption": {"enabled": True},
        "streamViewType": "NEW_AND_OLD_IMAGES",
        "tags": {"owner": "platform"},
        "deletionProtectionEnabled": False,
    }
    updated = _update(ctx, TABLE, id_, inputs, new, outputs)
    table = _described_table(ddb, id_)
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    (index,) = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "by-tenant"
    assert index["KeySchema"] == [
        {"AttributeName": "tenant", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert index["Projection"] == {"ProjectionType": "ALL"}
    ttl = ddb.describe_time_to_live(TableName=id_)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "gone_at"
    assert _recovery(ddb, id_)["PointInTimeRecoveryStatus"] == "DISABLED"
    assert table["SSEDescription"]["Status"] == "ENABLED"
    assert table["SSEDescription"]["KMSMasterKeyArn"]  # the account's aws/dynamodb key
    assert table["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert updated["streamArn"] == table["LatestStreamArn"] != outputs["streamArn"]
    assert _ddb_tags(ddb, outputs["arn"]) == {"owner": "platform"}
    assert table["DeletionProtectionEnabled"] is False

    final = {
        **new,
        "streamEnabled": None,
        "streamViewType": None,
        "ttl": {"enabled": False},
        "serverSideEncryption": None,
    }
    updated = _update(ctx, TABLE, id_, new, final, updated)
    table = _described_table(ddb, id_)
    assert table.get("StreamSpecification", {}).get("StreamEnabled") in (None, False)
    assert updated["streamArn"] == ""
    assert "SSEDescription" not in table
    ttl = ddb.describe_time_to_live(TableName=id_)["TimeToLiveDescription"]
    assert ttl["TimeToLiveStatus"] == "DISABLED"

    handler = handler_of(TABLE)
    handler.delete(ctx, id_, updated)
    assert not handler.exists(ctx, id_, updated)
    with pytest.raises(ClientError):
        ddb.describe_table(TableName=id_)


def test_table_capacities_change_in_place(ctx: CloudContext) -> None:
    ddb = _client(ctx, "dynamodb")
    inputs = {**_table_inputs(_unique("capacity")), "deletionProtectionEnabled": False}
    id_, outputs = create(ctx, TABLE, inputs)
    index = {**inputs["globalSecondaryIndexes"][0], "readCapacity": 5, "writeCapacity": 6}
    new = {**inputs, "readCapacity": 7, "writeCapacity": 8, "globalSecondaryIndexes": [index]}
    _update(ctx, TABLE, id_, inputs, new, outputs)
    table = _described_table(ddb, id_)
    throughput = table["ProvisionedThroughput"]
    assert (throughput["ReadCapacityUnits"], throughput["WriteCapacityUnits"]) == (7, 8)
    found = table["GlobalSecondaryIndexes"][0]["ProvisionedThroughput"]
    assert (found["ReadCapacityUnits"], found["WriteCapacityUnits"]) == (5, 6)


@pytest.mark.parametrize("change", [{"name": "other"}, {"hashKey": "sk"}, {"rangeKey": None}])
def test_table_name_and_keys_force_a_replacement(change: dict[str, Any]) -> None:
    old = _table_inputs("orders")
    assert _op(TABLE, old, {**old, **change}) is Op.REPLACE
    assert _op(TABLE, old, {**old, "readCapacity": 9}) is Op.UPDATE


def test_table_is_auto_named_from_the_logical_name(ctx: CloudContext) -> None:
    inputs = {
        "billingMode": "PAY_PER_REQUEST",
        "hashKey": "id",
        "attributes": [{"name": "id", "type": "S"}],
    }
    id_, _ = create(ctx, TABLE, inputs, name="sessions")
    assert id_.startswith("sessions-")
    table = _described_table(_client(ctx, "dynamodb"), id_)
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"


def _index(**fields: Any) -> dict[str, Any]:
    return {
        "name": "by-email",
        "hashKey": "email",
        "projectionType": "ALL",
        "readCapacity": 1,
        "writeCapacity": 1,
        **fields,
    }


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"name": "ab"}, "not valid"),
        ({"name": "orders!"}, "not valid"),
        ({"billingMode": "ON_DEMAND"}, "not PROVISIONED or PAY_PER_REQUEST"),
        ({"readCapacity": None}, "readCapacity of the table must be 1 or more"),
        ({"writeCapacity": 0}, "writeCapacity of the table must be 1 or more"),
        (
            {"billingMode": "PAY_PER_REQUEST", "globalSecondaryIndexes": []},
            "cannot be set with PAY_PER_REQUEST",
        ),
        ({"attributes": [{"name": "pk", "type": "S"}]}, "email, sk are not declared"),
        (
            {"attributes": [*_table_inputs("t")["attributes"], {"name": "x", "type": "S"}]},
            "x are declared but no key uses them",
        ),
        (
            {"attributes": [*_table_inputs("t")["attributes"], {"name": "pk", "type": "S"}]},
            "declared twice",
        ),
        ({"attributes": [{"name": "pk", "type": "STRING"}]}, "not S, N or B"),
        ({"globalSecondaryIndexes": [_index(), _index()]}, "declared twice"),
        ({"globalSecondaryIndexes": [_index(hashKey=None)]}, "needs a hashKey"),
        ({"globalSecondaryIndexes": [_index(projectionType="SOME")]}, "projectionType"),
        (
            {"globalSecondaryIndexes": [_index(nonKeyAttributes=["a"])]},
            "nonKeyAttributes need projectionType INCLUDE",
        ),
        ({"globalSecondaryIndexes": [_index(readCapacity=None)]}, "readCapacity of index"),
        (
            {"globalSecondaryIndexes": [_index(keySchemas=[{"attributeName": "email"}])]},
            "does not emulate keySchemas",
        ),
        ({"globalSecondaryIndexes": [_index(name=f"i{n:02}") for n in range(21)]}, "at most 20"),
        ({"ttl": {"enabled": True}}, "needs an attributeName"),
        ({"pointInTimeRecovery": {"enabled": True, "recoveryPeriodInDays": 36}}, "outside 1-35"),
        ({"pointInTimeRecovery": {"enabled": False, "recoveryPeriodInDays": 7}}, "needs it"),
        ({"serverSideEncryption": {"enabled": False, "kmsKeyArn": "k"}}, "needs encryption"),
        ({"streamViewType": None}, "required with streamEnabled"),
        ({"streamViewType": "ALL_IMAGES"}, "required with streamEnabled"),
        ({"streamEnabled": False}, "streamEnabled is not"),
        ({"tags": {f"t{i}": "v" for i in range(51)}}, "at most 50 tags"),
    ],
)
def test_table_refuses_what_dynamodb_refuses(change: dict[str, Any], reason: str) -> None:
    _refused(TABLE, {**_table_inputs("orders"), **change}, reason)


@pytest.mark.parametrize(
    ("token", "inputs", "missing"),
    [
        (OBJECT, {"bucket": "site"}, ["key"]),
        (OBJECT, {"key": "index.html"}, ["bucket"]),
        (TABLE, {"billingMode": "PAY_PER_REQUEST"}, ["hashKey"]),
        (PARAMETER, {"value": "v"}, ["type"]),
    ],
)
def test_a_required_input_not_given_is_named(
    token: str, inputs: dict[str, Any], missing: list[str]
) -> None:
    """The plan refuses it (an input unknown until apply counts as given)."""
    assert handler_of(token).missing(inputs) == missing


@pytest.mark.parametrize(
    ("token", "inputs", "reason"),
    [
        (PARAMETER, {"type": "String"}, "needs value or insecureValue"),
        (VERSION, {"secretId": "app"}, "needs secretString or secretBinary"),
    ],
)
def test_one_of_two_inputs_is_checked_once_they_are_known(
    ctx: CloudContext, token: str, inputs: dict[str, Any], reason: str
) -> None:
    """A plan may not know them yet (another resource's output): the create checks."""
    handler_of(token).validate(inputs)
    with pytest.raises(HandlerError, match=reason):
        handler_of(token).create(ctx, "res", inputs)


# --- the emulated cloud between runs ----------------------------------------------------


def test_data_resources_survive_a_dump_and_load(
    emu: Emulator, ctx: CloudContext, bucket: str
) -> None:
    """The sandbox keeps its cloud between runs as a dump: each resource comes back whole,
    and a cloud loaded from a dump dumps again."""
    table_id, table = create(ctx, TABLE, _table_inputs(_unique("kept")))
    param_id, _ = create(
        ctx,
        PARAMETER,
        {"name": _unique("/kept"), "type": "String", "value": "v", "tags": {"team": "data"}},
    )
    secret_id, _ = create(ctx, SECRET, {"name": _unique("kept"), "tags": {"team": "data"}})
    repo_id, repo = create(ctx, REPOSITORY, {"name": _unique("kept"), "tags": {"team": "data"}})
    _push_image(_client(ctx, "ecr"), repo_id)
    create(ctx, OBJECT, {"bucket": bucket, "key": "kept.txt", "content": "kept"})

    blob = emu.dump()
    emu.reset()
    assert not handler_of(TABLE).exists(ctx, table_id, table)
    assert not handler_of(REPOSITORY).exists(ctx, repo_id, repo)
    emu.load(blob)
    emu.load(emu.dump())  # what was loaded dumps again, and loads

    ddb, ssm, ecr = _client(ctx, "dynamodb"), _client(ctx, "ssm"), _client(ctx, "ecr")
    found = _described_table(ddb, table_id)
    assert found["GlobalSecondaryIndexes"][0]["IndexName"] == "by-email"
    assert found["StreamSpecification"]["StreamViewType"] == "NEW_IMAGE"
    assert ddb.describe_time_to_live(TableName=table_id)["TimeToLiveDescription"] == {
        "TimeToLiveStatus": "ENABLED",
        "AttributeName": "expires",
    }
    assert _recovery(ddb, table_id)["RecoveryPeriodInDays"] == 10
    assert _ddb_tags(ddb, table["arn"]) == {"team": "data"}
    assert ssm.get_parameter(Name=param_id)["Parameter"]["Value"] == "v"
    assert _ssm_tags(ssm, param_id) == {"team": "data"}
    ssm.add_tags_to_resource(  # tags of a parameter new since the load
        ResourceType="Parameter", ResourceId=param_id, Tags=[{"Key": "k", "Value": "v"}]
    )
    found = _client(ctx, "secretsmanager").describe_secret(SecretId=secret_id)
    assert _sm_tags(found) == {"team": "data"}
    assert _ecr_tags(ecr, repo["arn"]) == {"team": "data"}
    assert ecr.list_images(repositoryName=repo_id)["imageIds"][0]["imageTag"] == "v1"
    ecr.put_registry_scanning_configuration(scanType="BASIC", rules=[])  # takes its lock
    body = _client(ctx, "s3").get_object(Bucket=bucket, Key="kept.txt")["Body"].read()
    assert body == b"kept"


# --- secrets stay sealed ----------------------------------------------------------------

PASSWORD = "pw-5f3a9c1e-sandbox"
TOKEN = "tok-0b7d2e44-sandbox"


def _state(blob: bytes) -> bytes:
    """The dump's pickled state, decompressed: what a reader of the snapshot would see."""
    return snapshot._read_envelope(blob)[1]


def test_a_dump_seals_the_runs_secret_values_and_a_load_opens_them(
    emu: Emulator, ctx: CloudContext, tmp_path: Path
) -> None:
    client, ssm = _client(ctx, "secretsmanager"), _client(ctx, "ssm")
    arn = client.create_secret(Name=_unique("sealed"), SecretString=PASSWORD)["ARN"]
    client.put_secret_value(SecretId=arn, SecretBinary=TOKEN.encode(), VersionStages=["next"])
    name = _unique("/sealed")
    ssm.put_parameter(Name=name, Type="SecureString", Value=TOKEN)
    ssm.put_parameter(Name=f"{name}-plain", Type="String", Value="plain-text-value")
    # As the runtime hears of them: a binary value is sent (and kept) as base64.
    binary = base64.b64encode(TOKEN.encode()).decode()
    sealer = Sealer(tmp_path / "secrets.key", SecretValues([PASSWORD, TOKEN, binary]))

    blob = emu.dump(sealer)
    state = _state(blob)
    for clear in (PASSWORD, TOKEN, binary):
        assert clear.encode() not in state
    assert b"plain-text-value" in state  # no secret of the run: as it is
    assert PASSWORD.encode() in _state(emu.dump())  # what a dump without a sealer holds

    with pytest.raises(ValueError, match="no key was given"):
        emu.load(blob)
    later = SecretValues()  # a later run: it learns the values are secret from the load
    emu.load(blob, Sealer(tmp_path / "secrets.key", later))
    assert client.get_secret_value(SecretId=arn)["SecretString"] == PASSWORD
    staged = client.get_secret_value(SecretId=arn, VersionStage="next")
    assert staged["SecretBinary"] == TOKEN.encode()
    assert ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"] == TOKEN
    assert later.reveals(PASSWORD) and later.reveals(binary)
    again = _state(emu.dump(Sealer(tmp_path / "secrets.key", later)))
    assert not any(clear.encode() in again for clear in (PASSWORD, TOKEN, binary))


SECRET_PROGRAM = """
import os

import pulumi
import pulumi_aws as aws

secret = aws.secretsmanager.Secret("db", recovery_window_in_days=0)
aws.secretsmanager.SecretVersion(
    "db", secret_id=secret.id, secret_string=os.environ["VAULT_PASSWORD"]
)
aws.ssm.Parameter(
    "token", name="/app/token", type="SecureString", value=os.environ["VAULT_TOKEN"]
)
pulumi.export("secret", secret.arn)
"""


def test_no_file_under_the_project_holds_a_secret_in_clear_after_apply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A secret version's value and a SecureString parameter's value, through a whole
    apply: the checkpoint, the cloud snapshot (opened and decompressed) and every other
    file the sandbox writes hold them sealed; a later run reads them back."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("VAULT_PASSWORD", PASSWORD)
    monkeypatch.setenv("VAULT_TOKEN", TOKEN)
    project = tmp_path / "project"
    stack = StackTarget(
        project="phasegate",
        environment="sandbox",
        phase="vault",
        region=REGION,
        program=ProgramSource(module="vault", files={"__main__.py": SECRET_PROGRAM.encode()}),
        config={},
    )
    engine = SandboxEngine(project / ".phasegate" / "sandbox")
    try:
        secret_arn = engine.up(stack).outputs.values["secret"]
    finally:
        engine.close()

    key = cloud_seal.user_key(cloud_seal.key_path())
    files = [p for p in project.rglob("*") if p.is_file()]
    assert any(p.name.startswith("cloud-") for p in files)
    for path in files:
        data = path.read_bytes()
        if path.name.startswith("cloud-"):
            data += _state(cloud_seal.unseal(key, data))
        for clear in (PASSWORD, TOKEN):
            assert clear.encode() not in data, path

    later = SandboxEngine(project / ".phasegate" / "sandbox")
    try:
        secrets_manager = later.aws_client(stack, "secretsmanager")
        assert secrets_manager.get_secret_value(SecretId=secret_arn)["SecretString"] == PASSWORD
        ssm = later.aws_client(stack, "ssm")
        found = ssm.get_parameter(Name="/app/token", WithDecryption=True)["Parameter"]
        assert found["Value"] == TOKEN
        later.destroy(stack)
    finally:
        later.close()


# --- S3 objects from files --------------------------------------------------------------

_SIG_KEY = "4dabf18193072939515e22adb298388d"
_ASSET = "c44067f5952c0a294b673a41bacd8c17"
_ARCHIVE = "0def7320c3a5731c473e5ecbe6d01bc7"


def _file_asset(path: str) -> dict[str, Any]:
    """A pulumi.FileAsset as the program sends it."""
    return {_SIG_KEY: _ASSET, "path": path}


@pytest.fixture
def program_ctx(emu: Emulator, tmp_path: Path) -> CloudContext:
    """The cloud, for a program whose folder is ``tmp_path``."""
    return CloudContext(
        session=emu.session(),
        region=REGION,
        account_id=ACCOUNT,
        make_client=emu.client,
        run=RunContext(program=tmp_path),
    )


@pytest.mark.parametrize("source", [_file_asset("site/index.html"), "site/index.html"])
def test_object_source_is_a_file_of_the_program(
    program_ctx: CloudContext, tmp_path: Path, bucket: str, source: Any
) -> None:
    s3 = _client(program_ctx, "s3")
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_bytes(b"<h1>one</h1>")
    handler = handler_of(OBJECT)
    declared = {"bucket": bucket, "key": "index.html", "source": source}

    inputs = handler.check(program_ctx.run, None, declared)
    assert inputs["source"] == {
        **_file_asset("site/index.html"),
        "hash": hashlib.sha256(b"<h1>one</h1>").hexdigest(),
    }
    id_, outputs = create(program_ctx, OBJECT, inputs)
    assert s3.get_object(Bucket=bucket, Key="index.html")["Body"].read() == b"<h1>one</h1>"
    assert handler.check(program_ctx.run, inputs, declared) == inputs  # the same file: same

    (tmp_path / "site" / "index.html").write_bytes(b"<h1>two</h1>")
    changed = handler.check(program_ctx.run, inputs, declared)
    _update(program_ctx, OBJECT, id_, inputs, changed, outputs)  # the file alone: an update
    assert s3.get_object(Bucket=bucket, Key="index.html")["Body"].read() == b"<h1>two</h1>"


def test_object_source_that_cannot_be_read_is_refused_in_the_plan(tmp_path: Path) -> None:
    declared = {"bucket": "site", "key": "k", "source": _file_asset("missing.txt")}
    with pytest.raises(HandlerError, match=r"missing\.txt cannot be read"):
        handler_of(OBJECT).check(RunContext(program=tmp_path), None, declared)


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ({_SIG_KEY: _ASSET, "uri": "https://example.com/x"}, "not a string or remote asset"),
        ({_SIG_KEY: _ASSET, "text": "inline"}, "not a string or remote asset"),
        ({_SIG_KEY: _ARCHIVE, "assets": {}}, "nor an archive"),
    ],
)
def test_object_source_other_than_a_file_is_refused(source: Any, reason: str) -> None:
    _refused(OBJECT, {"bucket": "site", "key": "k", "source": source}, reason)


def test_object_source_with_content_is_refused() -> None:
    declared = {"bucket": "site", "key": "k", "source": "a.txt", "content": "x"}
    _refused(OBJECT, declared, "content and source cannot both be set")
