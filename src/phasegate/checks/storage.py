"""The ``s3_bucket`` check: a bucket exists and is set up as declared."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from phasegate.checks.base import (
    CheckContext,
    CheckKind,
    Params,
    Probe,
    aws_client,
    error_code,
)

__all__ = ["S3Bucket", "S3BucketParams", "Transition"]

_KMS = ("aws:kms", "aws:kms:dsse")


class Transition(Params):
    """One lifecycle transition: objects move to ``storage_class`` ``days`` after creation."""

    days: int = Field(ge=0, description="days after an object is written")
    storage_class: Literal[
        "STANDARD_IA", "INTELLIGENT_TIERING", "ONEZONE_IA", "GLACIER_IR", "GLACIER", "DEEP_ARCHIVE"
    ] = Field(description="the storage class objects move to")

    def __str__(self) -> str:
        return f"{self.days}d {self.storage_class}"


class S3BucketParams(Params):
    """A bucket that must exist; every other parameter, when given, must hold as declared."""

    bucket: str = Field(min_length=3, max_length=63, description="the bucket name")
    encryption: Literal["AES256", "aws:kms", "aws:kms:dsse"] | None = Field(
        None, description="the default encryption algorithm (SSEAlgorithm)"
    )
    kms_key: str | None = Field(
        None, description="the default KMS key: key ARN, key id or alias; needs aws:kms"
    )
    bucket_key: bool | None = Field(None, description="S3 Bucket Key on (true) or off (false)")
    versioning: bool | None = Field(None, description="true: versioning Enabled; false: not")
    public_access_blocked: bool | None = Field(
        None, description="true: all four public-access-block flags on; false: not all on"
    )
    transitions: list[Transition] | None = Field(
        None, description="exactly these lifecycle transitions, over the enabled rules"
    )
    noncurrent_expiry_days: int | None = Field(
        None, ge=1, description="enabled rules expire noncurrent versions after these days"
    )

    @model_validator(mode="after")
    def _key_needs_kms(self) -> S3BucketParams:
        if (self.kms_key or self.bucket_key is not None) and self.encryption not in _KMS:
            raise ValueError("kms_key and bucket_key need encryption: aws:kms (or aws:kms:dsse)")
        return self


def _key_ref(key: str) -> str:
    """A KMS key as ``key/<id>`` or ``alias/<name>``, whether given as ARN, id or alias."""
    if key.startswith("arn:"):
        key = key.split(":", 5)[-1]
    return key if key.startswith(("key/", "alias/")) else f"key/{key}"


def _absent(s3: Any, call: str, missing_code: str, **kwargs: Any) -> dict[str, Any] | None:
    """``s3.<call>(**kwargs)``, or None when S3 answers that the configuration is not set."""
    try:
        answer: dict[str, Any] = getattr(s3, call)(**kwargs)
    except Exception as exc:
        if error_code(exc) == missing_code:
            return None
        raise
    return answer


class S3Bucket(CheckKind):
    name = "s3_bucket"
    params = S3BucketParams

    def probe(self, params: S3BucketParams, ctx: CheckContext) -> Probe:
        s3 = aws_client(ctx, "s3")
        try:
            s3.head_bucket(Bucket=params.bucket)
        except Exception as exc:
            if error_code(exc) in ("404", "NoSuchBucket"):
                return Probe(False, f"bucket {params.bucket} does not exist")
            raise
        problems: list[str] = []
        held = ["exists"]
        for part in (self._encryption, self._versioning, self._access, self._lifecycle):
            found = part(s3, params)
            problems += found[0]
            held += found[1]
        if problems:
            return Probe(False, f"bucket {params.bucket}: {'; '.join(problems)}")
        return Probe(True, f"bucket {params.bucket}: {', '.join(held)}")

    @staticmethod
    def _encryption(s3: Any, p: S3BucketParams) -> tuple[list[str], list[str]]:
        if p.encryption is None:
            return [], []
        answer = _absent(
            s3,
            "get_bucket_encryption",
            "ServerSideEncryptionConfigurationNotFoundError",
            Bucket=p.bucket,
        )
        rules = (answer or {}).get("ServerSideEncryptionConfiguration", {}).get("Rules", [])
        if not rules:
            return [f"no default encryption, expected {p.encryption}"], []
        rule = rules[0]
        default = rule.get("ApplyServerSideEncryptionByDefault", {})
        algorithm, key = default.get("SSEAlgorithm"), default.get("KMSMasterKeyID")
        problems = []
        if algorithm != p.encryption:
            problems.append(f"default encryption is {algorithm}, expected {p.encryption}")
        if p.kms_key and (not key or _key_ref(key) != _key_ref(p.kms_key)):
            problems.append(
                f"default KMS key is {key or 'the AWS managed key'}, expected {p.kms_key}"
            )
        bucket_key = bool(rule.get("BucketKeyEnabled", False))
        if p.bucket_key is not None and bucket_key != p.bucket_key:
            problems.append(
                f"bucket key is {'on' if bucket_key else 'off'}, expected "
                f"{'on' if p.bucket_key else 'off'}"
            )
        return problems, [f"{algorithm}" + (f" with {key}" if key else "")]

    @staticmethod
    def _versioning(s3: Any, p: S3BucketParams) -> tuple[list[str], list[str]]:
        if p.versioning is None:
            return [], []
        status = s3.get_bucket_versioning(Bucket=p.bucket).get("Status", "never enabled")
        if (status == "Enabled") != p.versioning:
            expected = "Enabled" if p.versioning else "not Enabled"
            return [f"versioning is {status}, expected {expected}"], []
        return [], [f"versioning {status}"]

    @staticmethod
    def _access(s3: Any, p: S3BucketParams) -> tuple[list[str], list[str]]:
        if p.public_access_blocked is None:
            return [], []
        answer = _absent(
            s3, "get_public_access_block", "NoSuchPublicAccessBlockConfiguration", Bucket=p.bucket
        )
        flags = (answer or {}).get("PublicAccessBlockConfiguration", {})
        names = (
            "BlockPublicAcls",
            "IgnorePublicAcls",
            "BlockPublicPolicy",
            "RestrictPublicBuckets",
        )
        off = [name for name in names if not flags.get(name, False)]
        if p.public_access_blocked and off:
            return [f"public access not blocked: {', '.join(off)} off"], []
        if not p.public_access_blocked and not off:
            return ["public access is blocked (all four flags on), expected not"], []
        return [], ["public access blocked" if p.public_access_blocked else "public access open"]

    @staticmethod
    def _lifecycle(s3: Any, p: S3BucketParams) -> tuple[list[str], list[str]]:
        if p.transitions is None and p.noncurrent_expiry_days is None:
            return [], []
        answer = _absent(
            s3,
            "get_bucket_lifecycle_configuration",
            "NoSuchLifecycleConfiguration",
            Bucket=p.bucket,
        )
        rules = [r for r in (answer or {}).get("Rules", []) if r.get("Status") == "Enabled"]
        problems, held = [], []
        if p.transitions is not None:
            found = sorted(
                {
                    (t.get("Days", -1), t.get("StorageClass", "?"))
                    for rule in rules
                    for t in rule.get("Transitions", [])
                }
            )
            wanted = sorted({(t.days, t.storage_class) for t in p.transitions})
            text = ", ".join(f"{d}d {c}" if d >= 0 else f"dated {c}" for d, c in found) or "none"
            if found != wanted:
                expected = ", ".join(f"{d}d {c}" for d, c in wanted) or "none"
                problems.append(f"lifecycle transitions are {text}, expected {expected}")
            else:
                held.append(f"transitions {text}")
        if p.noncurrent_expiry_days is not None:
            days = sorted(
                {
                    int(r["NoncurrentVersionExpiration"]["NoncurrentDays"])
                    for r in rules
                    if r.get("NoncurrentVersionExpiration", {}).get("NoncurrentDays") is not None
                }
            )
            if days != [p.noncurrent_expiry_days]:
                found_text = (
                    f"after {', '.join(str(d) for d in days)} days"
                    if days
                    else "never (no enabled rule expires them)"
                )
                problems.append(
                    f"noncurrent versions expire {found_text}, expected after "
                    f"{p.noncurrent_expiry_days} days"
                )
            else:
                held.append(f"noncurrent versions expire after {days[0]} days")
        return problems, held
