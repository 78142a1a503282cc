"""``migration.yaml``: the environments in promotion order and the phases in order.

These models are the reference for the file; ``migrate schema`` prints them as JSON schema.
A check's entry, :class:`CheckSpec`, is declared in :mod:`phasegate.checks` beside the
registry of kinds it is validated against, and is exported from here as well.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from phasegate.checks import CheckSpec, Name
from phasegate.engines import EngineKind
from phasegate.errors import InputError
from phasegate.yamlfile import load_model

__all__ = [
    "MIGRATION_FILE",
    "CheckSpec",
    "EnvironmentSpec",
    "LegacyEstate",
    "Migration",
    "PhaseSpec",
    "SharedLock",
    "load_migration",
]

MIGRATION_FILE = "migration.yaml"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AwsTarget(_Model):
    """Where the environment's AWS API is: a profile, or an endpoint (LocalStack, moto)."""

    profile: str | None = Field(None, description="AWS shared-config profile to use")
    endpoint_url: str | None = Field(
        None, description="AWS endpoint override, e.g. http://127.0.0.1:5000 for moto server"
    )


class DynamoDBLockTable(_Model):
    """The DynamoDB table that holds the environment locks of every machine."""

    table: str = Field(
        min_length=3,
        max_length=255,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description='table name; its partition key is "LockID" (string)',
    )
    region: str | None = Field(
        None,
        pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$",
        description="AWS region of the table (default: the environment's region)",
    )
    endpoint_url: str | None = Field(
        None,
        description="DynamoDB endpoint override (default: the environment's aws.endpoint_url, "
        "else AWS)",
    )
    profile: str | None = Field(
        None, description="AWS shared-config profile (default: the environment's aws.profile)"
    )


class SharedLock(_Model):
    """A lock that holds across machines (CI runners), beside the local file lock."""

    dynamodb: DynamoDBLockTable = Field(
        description="where the lock lives: one item per environment, written conditionally"
    )
    lease_seconds: int = Field(
        120,
        ge=10,
        le=86400,
        description="how long a run's hold lasts unless renewed (every lease/3 while it "
        "runs); a dead run's lock is taken over once its lease ends",
    )


class LegacyEstate(_Model):
    """What the sandbox's legacy bucket holds when the sandbox is first opened (a sandbox
    that exists keeps what it has: `migrate sandbox reset` makes it again). Versioning is
    on; only current versions migrate."""

    objects: int = Field(
        5000,
        ge=0,
        le=1_000_000,
        description="current objects, all told: nightly exports in nested prefixes, other "
        "trees, awkward keys, and the large and multipart objects below",
    )
    large: int = Field(3, ge=0, le=100, description="large objects, uploaded in 8 MiB parts")
    large_mib: int = Field(24, ge=1, le=1024, description="size of each large object, MiB")
    multipart: int = Field(
        20, ge=0, le=10_000, description="objects uploaded in two parts (5 MiB and a bit)"
    )
    overwrites: int = Field(
        50, ge=0, description="keys overwritten once: their older version is kept"
    )
    deleted: int = Field(
        25, ge=0, le=100_000, description="keys deleted: a delete marker is their current version"
    )

    @model_validator(mode="after")
    def _fits(self) -> LegacyEstate:
        if self.large + self.multipart > self.objects:
            raise ValueError(
                f"objects ({self.objects}) must be at least large + multipart "
                f"({self.large + self.multipart})"
            )
        if self.overwrites > self.objects - self.large - self.multipart:
            raise ValueError(
                f"overwrites ({self.overwrites}) must be at most objects - large - multipart "
                f"({self.objects - self.large - self.multipart})"
            )
        return self


class EnvironmentSpec(_Model):
    """One account/region target."""

    name: Name = Field(description="environment name, e.g. sandbox, staging, prod")
    engine: EngineKind = Field(
        "sandbox",
        description="sandbox: embedded emulated cloud; pulumi: the Pulumi Automation API",
    )
    region: str = Field(
        "us-east-1", pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$", description="AWS region"
    )
    promote_from: Name | None = Field(
        None,
        description="environment whose verified phases this one promotes (same fingerprint)",
    )
    approval: Literal["none", "required"] = Field(
        "none", description="required: a recorded approval is a gate before apply"
    )
    aws: AwsTarget = Field(default_factory=lambda: AwsTarget(), description="AWS API target")
    backend: str | None = Field(
        None,
        description="pulumi engine: backend URL (default: file backend under .phasegate/pulumi)",
    )
    kubeconfig: str | None = Field(
        None, description="kubeconfig the kubernetes checks use (the sandbox has no cluster)"
    )
    lock: SharedLock | None = Field(
        None,
        description="a lock shared across machines (DynamoDB); absent: the local file lock only",
    )
    legacy_estate: LegacyEstate | None = Field(
        None,
        description="sandbox engine: what the legacy bucket holds (default: 5,000 objects, 3 "
        "large of 24 MiB, 20 multipart, 50 overwritten, 25 deleted)",
    )

    @model_validator(mode="after")
    def _estate_on_sandbox_only(self) -> EnvironmentSpec:
        if self.legacy_estate is not None and self.engine != "sandbox":
            raise ValueError(
                f"environment {self.name}: legacy_estate is a setting of the sandbox engine "
                f"(this environment's engine is {self.engine}, whose legacy estate is real)"
            )
        return self

    @model_validator(mode="after")
    def _sandbox_lock_has_an_endpoint(self) -> EnvironmentSpec:
        """The sandbox answers AWS calls in-process while it runs: a lock table in AWS
        itself would be looked for in the emulated cloud instead."""
        lock = self.lock
        if self.engine == "sandbox" and lock is not None:
            endpoint = lock.dynamodb.endpoint_url or self.aws.endpoint_url
            if not endpoint:
                raise ValueError(
                    f"environment {self.name}: lock.dynamodb.endpoint_url is needed on a "
                    "sandbox environment (a served sandbox, say): the sandbox emulates AWS "
                    "in-process, so a lock table in AWS itself would not be reached"
                )
        return self


class CopyEnd(_Model):
    """One side of a phase's data copy: a bucket and a key prefix in it."""

    bucket: str = Field(
        min_length=1, description="bucket name, or a ${config.x} / ${outputs.x} reference"
    )
    prefix: str = Field("", description="key prefix (empty: the whole bucket)")


class CopySpec(_Model):
    """Data a phase copies into what it made, after its resources are applied and before
    its checks: server side, incremental, resumable; the source is only read."""

    source: CopyEnd = Field(description="where the data is (the legacy side)")
    target: CopyEnd = Field(description="where it goes (a bucket the phase made)")
    kms_key: str | None = Field(
        None, description="KMS key every copy is encrypted with (a key id, ARN or reference)"
    )
    include: list[str] = Field(
        default_factory=list,
        description="globs on the key relative to the source prefix (** crosses /); "
        "empty: every key",
    )
    exclude: list[str] = Field(
        default_factory=list, description="globs of keys left out, whether included or not"
    )
    workers: int = Field(32, ge=1, le=256, description="objects copied at once")
    multipart_threshold_mib: int = Field(
        5120,
        ge=5,
        le=5120,
        description="objects larger than this (MiB) are copied in parts (UploadPartCopy)",
    )


class PhaseSpec(_Model):
    """One step of the migration."""

    name: Name = Field(description="phase name; the stack is <environment>-<phase>")
    program: str = Field(
        description="module in phases/ that holds the phase's Pulumi program",
        pattern=r"^[a-z_][a-z0-9_]*$",
    )
    depends_on: list[Name] = Field(
        default_factory=list, description="phases that must be verified first"
    )
    checks: list[CheckSpec] = Field(default_factory=list, description="post-apply checks")
    rollback: Literal["last_known_good"] = Field(
        "last_known_good",
        description="re-apply the last verified version; destroy what was created if none",
    )
    protected: list[str] = Field(
        default_factory=list,
        description="resource names or glob patterns (lake-*) never deleted, not even by a "
        "rollback; the programs mark them protect=True (phasegate:protected)",
    )
    copy_data: CopySpec | None = Field(
        None,
        alias="copy",
        description="data copied into what the phase made, after it applies and before "
        "its checks (the data layer: the legacy exports into the lake)",
    )

    @field_validator("depends_on", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _unique_checks(self) -> PhaseSpec:
        names = [c.name for c in self.checks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"check names repeat: {', '.join(dupes)}")
        return self


class Migration(_Model):
    """The whole migration: environments in promotion order, phases in order."""

    schema_version: Literal[1] = Field(1, description="version of this file's format")
    environments: list[EnvironmentSpec] = Field(
        min_length=1, description="in promotion order; the first is the default"
    )
    phases: list[PhaseSpec] = Field(
        description="in apply order; a project with none yet says so with `phases: []`"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Migration:
        envs = [e.name for e in self.environments]
        _no_repeats("environment", envs)
        for i, env in enumerate(self.environments):
            if env.promote_from is not None and env.promote_from not in envs[:i]:
                raise ValueError(
                    f"environment {env.name}: promote_from '{env.promote_from}' must name an "
                    f"earlier environment (one of: {', '.join(envs[:i]) or 'none'})"
                )
        phases = [p.name for p in self.phases]
        _no_repeats("phase", phases)
        for i, phase in enumerate(self.phases):
            for dep in phase.depends_on:
                if dep not in phases[:i]:
                    raise ValueError(
                        f"phase {phase.name}: depends_on '{dep}' must name an earlier phase "
                        f"(one of: {', '.join(phases[:i]) or 'none'})"
                    )
        return self

    def environment(self, name: str | None) -> EnvironmentSpec:
        """The named environment, or the first one; unknown names are an input error."""
        if name is None:
            return self.environments[0]
        for env in self.environments:
            if env.name == name:
                return env
        raise InputError(
            f"unknown environment '{name}'",
            field="--env",
            hint=f"allowed: {', '.join(e.name for e in self.environments)}",
        )

    def phase(self, name: str) -> PhaseSpec:
        for phase in self.phases:
            if phase.name == name:
                return phase
        raise InputError(
            f"unknown phase '{name}'",
            field="--phase",
            hint=f"allowed: {', '.join(p.name for p in self.phases)}"
            if self.phases
            else "the migration has no phases yet: add one with `migrate new-phase NAME`",
        )

    def upstream(self, phase: PhaseSpec) -> list[PhaseSpec]:
        """Every phase ``phase`` depends on, directly or not, in phase order."""
        wanted: set[str] = set(phase.depends_on)
        for candidate in reversed(self.phases):
            if candidate.name in wanted:
                wanted.update(candidate.depends_on)
        return [p for p in self.phases if p.name in wanted]


def _no_repeats(what: str, names: list[str]) -> None:
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"{what} names repeat: {', '.join(dupes)}")


def load_migration(root: Path, text: str | None = None) -> Migration:
    """Load ``migration.yaml`` at the project root (``text``: as if it held that)."""
    return load_model(root / MIGRATION_FILE, Migration, text=text)
