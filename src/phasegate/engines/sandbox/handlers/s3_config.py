"""A bucket's configurations, each its own resource in pulumi-aws v7 and keyed by ``bucket``:
versioning, default encryption, the public access block and the bucket policy.

Deleting one puts the bucket back as S3 leaves it without that configuration; for
versioning that is *suspended*, since S3 cannot un-version a bucket.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

from phasegate.engines.sandbox.handlers.base import (
    CloudContext,
    Handler,
    HandlerError,
    error_code,
    json_document,
    json_text,
)

__all__ = ["HANDLERS", "BucketConfig"]


class BucketConfig(Handler):
    """One configuration of one bucket: put on create and on update, removed on delete."""

    replace_on = frozenset({"bucket", "expectedBucketOwner"})
    computed = ("id",)
    delete_before_replace = True  # the replacement configures the very same bucket
    what: ClassVar[str]
    """The configuration in the user's words, for messages."""
    absent: ClassVar[tuple[str, ...]] = ()
    """Error codes S3 answers a read with when the bucket lacks this configuration."""

    @abstractmethod
    def put(self, s3: Any, args: dict[str, Any], new: dict[str, Any], old: dict | None) -> None:
        """Apply ``new`` (``old`` is None on create); ``args`` names the bucket."""

    @abstractmethod
    def remove(self, s3: Any, args: dict[str, Any], outputs: dict[str, Any]) -> None:
        """Take the configuration off the bucket."""

    @abstractmethod
    def present(self, s3: Any, args: dict[str, Any], outputs: dict[str, Any]) -> bool:
        """Whether the bucket has the configuration (a read that may raise ``absent``)."""

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        self._put(ctx, inputs, None)
        # The provider's id: the bucket, and its expected owner when one is given.
        id_ = ",".join(filter(None, [inputs["bucket"], inputs.get("expectedBucketOwner")]))
        return id_, {**inputs, "id": id_}

    def update(self, ctx: CloudContext, id_: str, old: dict, new: dict, outputs: dict) -> dict:
        self._put(ctx, new, old)
        return self.updated(new, outputs)

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        try:
            self.remove(ctx.client("s3"), self._args(outputs), outputs)
        except Exception as exc:
            if error_code(exc) != "NoSuchBucket":
                raise

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        try:
            return self.present(ctx.client("s3"), self._args(outputs), outputs)
        except Exception as exc:
            if error_code(exc) in ("NoSuchBucket", *self.absent):
                return False
            raise

    def _put(self, ctx: CloudContext, new: dict[str, Any], old: dict | None) -> None:
        owner = new.get("expectedBucketOwner")
        if owner and owner != ctx.account_id:
            # S3 answers 403 to a request whose expected owner is not the bucket's.
            raise HandlerError(
                f"access denied: bucket {new['bucket']} belongs to account {ctx.account_id}, "
                f"not to the expectedBucketOwner {owner}"
            )
        try:
            self.put(ctx.client("s3"), self._args(new), new, old)
        except HandlerError:
            raise
        except Exception as exc:
            if error_code(exc) == "NoSuchBucket":
                raise HandlerError(f"bucket {new['bucket']} does not exist") from None
            raise HandlerError(f"cannot set the {self.what} of {new['bucket']}: {exc}") from None

    @staticmethod
    def _args(inputs: dict[str, Any]) -> dict[str, Any]:
        args = {"Bucket": inputs["bucket"]}
        if inputs.get("expectedBucketOwner"):
            args["ExpectedBucketOwner"] = inputs["expectedBucketOwner"]
        return args


class BucketVersioning(BucketConfig):
    type = "aws:s3/bucketVersioning:BucketVersioning"
    # mfaDelete is left out: the emulator keeps no MFA delete setting.
    emulates = frozenset({"bucket", "expectedBucketOwner", "versioningConfiguration.status"})
    what = "versioning"

    def validate(self, inputs: dict[str, Any]) -> None:
        config = inputs.get("versioningConfiguration")
        if not isinstance(config, dict):
            return
        status = config.get("status")
        if status is not None and status not in ("Enabled", "Suspended", "Disabled"):
            raise HandlerError(
                f"versioningConfiguration.status '{status}' is not Enabled, Suspended or Disabled"
            )
        mfa_delete = config.get("mfaDelete")
        if mfa_delete is not None and mfa_delete not in ("Enabled", "Disabled"):
            raise HandlerError(
                f"versioningConfiguration.mfaDelete '{mfa_delete}' is not Enabled or Disabled"
            )

    def put(self, s3: Any, args: dict[str, Any], new: dict[str, Any], old: dict | None) -> None:
        config = new["versioningConfiguration"]
        status = config["status"]
        if status == "Disabled":
            # Disabled only describes a bucket never versioned: nothing to put.
            before = ((old or {}).get("versioningConfiguration") or {}).get("status", "Disabled")
            if before != "Disabled":
                raise HandlerError(
                    "versioning cannot go back to Disabled once it has been enabled; use Suspended"
                )
            return
        request: dict[str, Any] = {"Status": status}
        if config.get("mfaDelete"):
            if not new.get("mfa"):
                raise HandlerError("changing mfaDelete needs mfa (device serial and code)")
            request["MFADelete"] = config["mfaDelete"]
            args = {**args, "MFA": new["mfa"]}
        s3.put_bucket_versioning(**args, VersioningConfiguration=request)

    def remove(self, s3: Any, args: dict[str, Any], outputs: dict[str, Any]) -> None:
        if s3.get_bucket_versioning(**args).get("Status") == "Enabled":
            s3.put_bucket_versioning(**args, VersioningConfiguration={"Status": "Suspended"})

    def present(self, s3: Any, args: dict[str, Any], outputs: dict[str, Any]) -> bool:
        status = s3.get_bucket_versioning(**args).get("Status")
        wanted = (outputs.get("versioningConfiguration") or {}).get("status")
        return wanted == "Disabled" or status is not None


_SSE_ALGORITHMS = ("AES256", "aws:kms", "aws:kms:dsse")


class BucketServerSideEncryptionConfiguration(BucketConfig):
    type = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    # blockedEncryptionTypes is left out: the emulator drops it from the rule.
    emulates = frozenset(
        {
            "bucket",
            "expectedBucketOwner",
            "rules.applyServerSideEncryptionByDefault.kmsMasterKeyId",
            "rules.applyServerSideEncryptionByDefault.sseAlgorithm",
            "rules.bucketKeyEnabled",
        }
    )
    what = "default encryption"
    absent = ("ServerSideEncryptionConfigurationNotFoundError",)

    def validate(self, inputs: dict[str, Any]) -> None:
        rules = inputs.get("rules")
        if not isinstance(rules, list):
            return
        if len(rules) != 1:
            raise HandlerError(f"rules must hold exactly one rule (S3 takes one), not {len(rules)}")
        rule = rules[0] if isinstance(rules[0], dict) else {}
        default = rule.get("applyServerSideEncryptionByDefault") or {}
        algorithm = default.get("sseAlgorithm")
        if algorithm is not None and algorithm not in _SSE_ALGORITHMS:
            raise HandlerError(
                f"sseAlgorithm '{algorithm}' is not one of {', '.join(_SSE_ALGORITHMS)}"
            )
        if default.get("kmsMasterKeyId") and algorithm == "AES256":
            raise HandlerError("kmsMasterKeyId applies to aws:kms and aws:kms:dsse, not AES256")
        for blocked in rule.get("blockedEncryptionTypes") or []:
            if blocked not in ("SSE-C", "NONE"):
                raise HandlerError(f"blockedEncryptionTypes '{blocked}' is not SSE-C or NONE")

    def put(self, s3: Any, args: dict[str, Any], new: dict[str, Any], old: dict | None) -> None:
        rules = []
        for rule in new["rules"]:
            out: dict[str, Any] = {}
            default = rule.get("applyServerSideEncryptionByDefault")
            if default:
                out["ApplyServerSideEncryptionByDefault"] = {
                    "SSEAlgorithm": default["sseAlgorithm"]
                }
                if default.get("kmsMasterKeyId"):
                    out["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"] = default[
                        "kmsMasterKeyId"
                    ]
            if rule.get("bucketKeyEnabled") is not None:
                out["BucketKeyEnabled"] = bool(rule["bucketKeyEnabled"])
            if rule.get("blockedEncryptionTypes"):
                out["BlockedEncryptionTypes"] = {
                    "EncryptionType": list(rule["blockedEncryptionTypes"])
                }
            rules.append(out)
        s3.put_bucket_encryption(**args, ServerSideEncryptionConfiguration={"Rules": rules})

    def remove(self, s3: Any, args: dict[str, Any], outputs: dict[str, Any]) -> None:
        s3.delete_bucket_encryption(**args)

    def present(self, s3: Any, args: dict[str, Any], outputs: dict[str, Any]) -> bool:
        s3.get_bucket_encryption(**args)
        return True


_BLOCKS = {
    "blockPublicAcls": "BlockPublicAcls",
    "blockPublicPolicy": "BlockPublicPolicy",
    "ignorePublicAcls": "IgnorePublicAcls",
    "restrictPublicBuckets": "RestrictPublicBuckets",
}


class BucketPublicAccessBlock(BucketConfig):
    type = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
    emulates = frozenset(
        {
            "blockPublicAcls",
            "blockPublicPolicy",
            "bucket",
            "ignorePublicAcls",
            "restrictPublicBuckets",
            "skipDestroy",
        }
    )
    replace_on = frozenset({"bucket"})
    what = "public access block"
    absent = ("NoSuchPublicAccessBlockConfiguration",)

    def validate(self, inputs: dict[str, Any]) -> None:
        for key in _BLOCKS:
            if key in inputs and not isinstance(inputs[key], bool):
                raise HandlerError(f"{key} must be true or false, not {inputs[key]!r}")

    def put(self, s3: Any, args: dict[str, Any], new: dict[str, Any], old: dict | None) -> None:
        config = {api: bool(new.get(key, False)) for key, api in _BLOCKS.items()}
        s3.put_public_access_block(**args, PublicAccessBlockConfiguration=config)

    def remove(self, s3: Any, args: dict[str, Any], outputs: dict[str, Any]) -> None:
        if not outputs.get("skipDestroy"):
            s3.delete_public_access_block(**args)

    def present(self, s3: Any, args: dict[str, Any], outputs: dict[str, Any]) -> bool:
        s3.get_public_access_block(**args)
        return True


_POLICY_LIMIT = 20 * 1024
_POLICY_VERSIONS = ("2012-10-17", "2008-10-17")


def _statements(policy: Any) -> list[dict[str, Any]]:
    """The statements of a bucket policy, checked the way S3 checks them."""
    text = json_text(policy)
    if len(text.encode()) > _POLICY_LIMIT:
        raise HandlerError("policy is larger than S3's 20 KB limit for a bucket policy")
    document = json_document(text, "policy")
    if not isinstance(document, dict):
        raise HandlerError("policy must be a JSON object")
    version = document.get("Version")
    if version is not None and version not in _POLICY_VERSIONS:
        raise HandlerError(f"policy Version '{version}' is not {' or '.join(_POLICY_VERSIONS)}")
    statements = document.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        raise HandlerError("policy needs at least one Statement")
    for i, statement in enumerate(statements):
        if not isinstance(statement, dict):
            raise HandlerError(f"policy Statement[{i}] is not an object")
        if statement.get("Effect") not in ("Allow", "Deny"):
            raise HandlerError(f"policy Statement[{i}] needs Effect Allow or Deny")
        for one, other in (
            ("Principal", "NotPrincipal"),
            ("Action", "NotAction"),
            ("Resource", "NotResource"),
        ):
            if one not in statement and other not in statement:
                raise HandlerError(f"policy Statement[{i}] needs {one} (a bucket policy names who)")
    return statements


def _is_public(statement: dict[str, Any]) -> bool:
    """An Allow to everyone with no condition, which BlockPublicPolicy refuses."""
    principal = statement.get("Principal")
    everyone = principal == "*" or (
        isinstance(principal, dict) and principal.get("AWS") in ("*", ["*"])
    )
    return statement.get("Effect") == "Allow" and everyone and not statement.get("Condition")


class BucketPolicy(BucketConfig):
    type = "aws:s3/bucketPolicy:BucketPolicy"
    emulates = frozenset({"bucket", "policy"})
    replace_on = frozenset({"bucket"})
    what = "policy"
    absent = ("NoSuchBucketPolicy",)

    def validate(self, inputs: dict[str, Any]) -> None:
        if inputs.get("policy") is None:
            return
        bucket = inputs.get("bucket")
        for i, statement in enumerate(_statements(inputs["policy"])):
            resources = statement.get("Resource", statement.get("NotResource"))
            for resource in [resources] if isinstance(resources, str) else resources or []:
                if (
                    isinstance(bucket, str)
                    and isinstance(resource, str)
                    and resource.startswith("arn:aws:s3:::")
                    and resource.split(":::", 1)[1].split("/", 1)[0] != bucket
                ):
                    raise HandlerError(
                        f"policy Statement[{i}] Resource {resource} is not bucket {bucket}: "
                        "a bucket policy covers its own bucket only"
                    )

    def put(self, s3: Any, args: dict[str, Any], new: dict[str, Any], old: dict | None) -> None:
        if any(_is_public(s) for s in _statements(new["policy"])) and self._blocks_public(s3, args):
            raise HandlerError(
                f"the public access block of {new['bucket']} has BlockPublicPolicy: S3 refuses "
                "a policy that allows everyone"
            )
        s3.put_bucket_policy(Bucket=args["Bucket"], Policy=json_text(new["policy"]))

    def remove(self, s3: Any, args: dict[str, Any], outputs: dict[str, Any]) -> None:
        s3.delete_bucket_policy(Bucket=args["Bucket"])

    def present(self, s3: Any, args: dict[str, Any], outputs: dict[str, Any]) -> bool:
        s3.get_bucket_policy(Bucket=args["Bucket"])
        return True

    @staticmethod
    def _blocks_public(s3: Any, args: dict[str, Any]) -> bool:
        try:
            config = s3.get_public_access_block(Bucket=args["Bucket"])
        except Exception as exc:
            if error_code(exc) == "NoSuchPublicAccessBlockConfiguration":
                return False
            raise
        return bool(config["PublicAccessBlockConfiguration"].get("BlockPublicPolicy"))


HANDLERS: list[Handler] = [
    BucketVersioning(),
    BucketServerSideEncryptionConfiguration(),
    BucketPublicAccessBlock(),
    BucketPolicy(),
]
