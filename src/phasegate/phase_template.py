"""What ``migrate new-phase NAME`` writes: a starter program, its stack configs, its entry.

The starter is a phase that passes every mandatory rule of the shipped policy pack
(``policies/rules.py``) and is verified by its checks on the sandbox as it stands: one
S3 bucket, SSE-KMS encrypted with S3 Bucket Keys, every public access blocked, versioned,
TLS only, every taggable resource carrying the required tags. The program needs nothing
from ``phases/`` but ``__main__.py``, so it runs in a project made with ``init --empty``
as in the shipped one.
"""

from __future__ import annotations

import re
from string import Template

__all__ = ["bucket_name", "migration_entry", "program", "stack_config"]

_PROGRAM = Template('''\
"""$name: a phase of this migration; for now an encrypted, private, versioned S3 bucket.

Written by `migrate new-phase $name`: make it provision what the phase is for.
phases/__main__.py calls program() for every stack of the phase (<environment>-$name),
with the `phasegate:` keys of stacks/Pulumi.<environment>-$name.yaml as its config.

Every resource must pass the policy pack in policies/ (rules.py says what each rule
wants; a mandatory violation stops `migrate apply` before anything changes): a taggable
resource carries the tags of phase_tags(), a bucket is SSE-KMS encrypted and blocks all
public access, a data bucket (a name with -lake- in it) is versioned, a launch template
requires IMDSv2, a GPU node group is tainted nvidia.com/gpu, no ingress is open to the
internet but 443 on a load balancer. What the checks in migration.yaml look at, export.
To read an earlier phase's outputs, list it in depends_on and use
pulumi.StackReference(f"{pulumi.get_organization()}/{pulumi.get_project()}/<env>-<phase>").
"""

from __future__ import annotations

import json
import re

import pulumi
import pulumi_aws as aws

PHASE = "$name"
_ENCRYPTION_BY_DEFAULT = (
    aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs
)

# What AWS accepts as a bucket name. The sandbox's emulator takes names AWS refuses, so
# the program says no itself, and a rehearsal fails where a real apply would.
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$$")


def phase_tags(config: pulumi.Config) -> dict[str, str]:
    """The tags the policy pack requires on every taggable resource (rule required-tags)."""
    return {
        "phasegate:phase": PHASE,
        "phasegate:environment": pulumi.get_stack().split("-", 1)[0],
        "owner": config.require("owner"),
        "cost-center": config.require("cost_center"),
    }


def _bucket_name(config: pulumi.Config) -> str:
    name = config.require("bucket_name")
    if not _BUCKET_NAME.fullmatch(name) or ".." in name:
        raise ValueError(
            f"phasegate:bucket_name {name!r} is not a bucket name AWS accepts: use 3-63 "
            "characters of a-z, 0-9, '.' and '-', starting and ending with a letter or digit"
        )
    return name


def _tls_only(bucket_arn: str) -> str:
    """A bucket policy refusing every request that does not come over TLS."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [bucket_arn, f"{bucket_arn}/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }
            ],
        }
    )


def program() -> None:
    config = pulumi.Config("phasegate")
    tags = phase_tags(config)

    bucket = aws.s3.Bucket("bucket", bucket=_bucket_name(config), tags=tags)
    # Rule s3-bucket-public-access-blocked: all four settings on.
    blocked = aws.s3.BucketPublicAccessBlock(
        "bucket-public-access",
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
    )
    # Rule s3-bucket-kms-encryption: SSE-KMS, with the stack's key or S3's AWS managed one.
    aws.s3.BucketServerSideEncryptionConfiguration(
        "bucket-encryption",
        bucket=bucket.id,
        rules=[
            aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=_ENCRYPTION_BY_DEFAULT(
                    sse_algorithm="aws:kms", kms_master_key_id=config.get("kms_key_arn")
                ),
                bucket_key_enabled=True,
            )
        ],
    )
    aws.s3.BucketVersioning(
        "bucket-versioning",
        bucket=bucket.id,
        versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(
            status="Enabled"
        ),
    )
    # S3 refuses a policy change while the public access block is being written.
    aws.s3.BucketPolicy(
        "bucket-tls-only",
        bucket=bucket.id,
        policy=bucket.arn.apply(_tls_only),
        opts=pulumi.ResourceOptions(depends_on=[blocked]),
    )

    pulumi.export("bucket", bucket.bucket)
    pulumi.export("bucket_arn", bucket.arn)
''')

_STACK_CONFIG = Template("""\
# $name in $environment: what the stack provisions (written by `migrate new-phase $name`).
# phases/$name.py reads every phasegate: key here with pulumi.Config("phasegate").
config:
  # Who owns and who pays for every resource of this stack (AWS tags owner, cost-center);
  # the policy pack refuses a taggable resource without them.
  phasegate:owner: $owner
  phasegate:cost_center: $cost_center
  # The bucket's name: 3-63 characters of a-z, 0-9, '.' and '-', unique across all of AWS.
  phasegate:bucket_name: $bucket
  # Encrypt with a customer-managed KMS key (its ARN) instead of S3's AWS managed key:
  # phasegate:kms_key_arn: arn:aws:kms:$region:111122223333:key/...
  # Relax a policy rule for this stack only (advisory: reported; disabled: not run):
  # phasegate:policy: {required-tags: advisory}
""")


def program(name: str) -> str:
    """The starter program ``phases/<name>.py``."""
    return _PROGRAM.substitute(name=name)


def bucket_name(environment: str, name: str) -> str:
    """The starter bucket's name in an environment: ``phasegate-<env>-<name>``, with
    ``-`` for ``_`` and cut to the 63 characters S3 allows."""
    text = re.sub(r"[^a-z0-9]+", "-", f"phasegate-{environment}-{name}".lower())
    return text[:63].strip("-")


def stack_config(name: str, environment: str, region: str, owner: str, cost_center: str) -> str:
    """``stacks/Pulumi.<environment>-<name>.yaml``, every knob with a comment."""
    return _STACK_CONFIG.substitute(
        name=name,
        environment=environment,
        region=region,
        owner=owner,
        cost_center=cost_center,
        bucket=bucket_name(environment, name),
    )


def migration_entry(name: str, depends_on: list[str], indent: int) -> list[str]:
    """The phase's entry in ``migration.yaml``'s ``phases:`` list, as lines, its dash
    ``indent`` spaces in (as the entries before it)."""
    item, key, check = " " * indent, " " * (indent + 2), " " * (indent + 4)
    lines = [
        f"{item}- name: {name}  # from `migrate new-phase`: an encrypted, private bucket\n",
        f"{key}program: {name}\n",
    ]
    if depends_on:
        lines.append(f"{key}depends_on: [{', '.join(depends_on)}]\n")
    lines += [
        f"{key}rollback: last_known_good\n",
        f"{key}checks:\n",
        f"{check}# Run after every apply; a failing one rolls the phase back. "
        "${outputs.x} is what\n",
        f"{check}# phases/{name}.py exports, ${{config.x}} a key of its stack config.\n",
        f"{check}- name: bucket_private\n",
        f"{check}  kind: s3_bucket\n",
        f"{check}  params:\n",
        f'{check}    bucket: "${{outputs.bucket}}"\n',
        f"{check}    encryption: aws:kms\n",
        f"{check}    bucket_key: true\n",
        f"{check}    versioning: true\n",
        f"{check}    public_access_blocked: true\n",
        f"{check}- name: outputs_exported\n",
        f"{check}  kind: outputs\n",
        f"{check}  params:\n",
        f"{check}    present: [bucket_arn]\n",
        f'{check}    equals: {{bucket: "${{config.bucket_name}}"}}\n',
    ]
    return lines
