"""The stack config of each phase as typed models, validated before anything is declared.

Field names are the stack config keys without the ``phasegate:`` namespace. The models
check what real AWS rejects and the sandbox emulator accepts (overlapping CIDRs, min >
max scaling, unknown GPU types, Route53 weights over 255, bad bucket names), so a
rehearsal fails where a real apply would, with a message that says what is allowed.
"""

# No `from __future__ import annotations`: the orchestrator loads this file by path
# without registering it in sys.modules, where pydantic could not resolve string
# annotations; real annotation objects need no lookup.
import re
from collections.abc import Sequence
from ipaddress import IPv4Network
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from catalog import CATALOG, FAMILIES

__all__ = [
    "MODELS",
    "ComputeConfig",
    "CutoverConfig",
    "DataLayerConfig",
    "GpuQuotas",
    "NodePool",
    "PhaseConfig",
    "PilotConfig",
    "Weights",
    "check_bucket_name",
]

# --- value checks shared by the models ------------------------------------------------

_TAG_VALUE = re.compile(r"^[\w\s.:/=+\-@]{1,256}$")
_ZONE = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d[a-z]$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IP_LIKE = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
)
_BUCKET_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_BUCKET_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def check_bucket_name(name: str) -> str:
    """An S3 bucket name as AWS accepts it, or ValueError saying what is allowed."""
    allowed = "3-63 characters of a-z, 0-9, '.' and '-', starting and ending with a letter or digit"
    if not _BUCKET.fullmatch(name):
        raise ValueError(f"bucket name {name!r} is not valid: use {allowed}")
    if ".." in name:
        raise ValueError(f"bucket name {name!r} is not valid: no two adjacent periods ('..')")
    if _IP_LIKE.fullmatch(name):
        raise ValueError(f"bucket name {name!r} is not valid: it must not look like an IP address")
    if name.startswith(_BUCKET_RESERVED_PREFIXES) or name.endswith(_BUCKET_RESERVED_SUFFIXES):
        raise ValueError(
            f"bucket name {name!r} is not valid: AWS reserves the prefixes "
            f"{', '.join(_BUCKET_RESERVED_PREFIXES)} and the suffixes "
            f"{', '.join(_BUCKET_RESERVED_SUFFIXES)}"
        )
    return name


def _cidr(value: str) -> str:
    try:
        network = IPv4Network(value, strict=True)
    except ValueError as exc:
        raise ValueError(
            f"{value!r} is not an IPv4 CIDR block like 10.20.0.0/16 with no host bits set ({exc})"
        ) from None
    if not 16 <= network.prefixlen <= 28:
        raise ValueError(f"{value} has prefix /{network.prefixlen}; AWS allows /16 to /28")
    return str(network)


def _tag_value(value: str) -> str:
    if not _TAG_VALUE.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid AWS tag value: 1-256 letters, digits, spaces and _.:/=+-@"
        )
    return value


def _hostname(value: str) -> str:
    name = value.rstrip(".").lower()
    if not _HOSTNAME.fullmatch(name):
        raise ValueError(f"{value!r} is not a DNS name: dot-separated labels of a-z, 0-9 and '-'")
    return name


Cidr = Annotated[str, AfterValidator(_cidr)]
TagValue = Annotated[str, AfterValidator(_tag_value)]
BucketName = Annotated[str, AfterValidator(check_bucket_name)]
DnsName = Annotated[str, AfterValidator(_hostname)]


def _overlaps(named: Sequence[tuple[str, str]]) -> list[str]:
    """Messages for every pair of (label, CIDR) that overlap."""
    problems = []
    for i, (label_a, a) in enumerate(named):
        for label_b, b in named[i + 1 :]:
            if IPv4Network(a).overlaps(IPv4Network(b)):
                problems.append(f"{label_a} {a} overlaps {label_b} {b}")
    return problems


# --- the models -----------------------------------------------------------------------


class PhaseConfig(BaseModel):
    """What every phase's stack config has: the tags that say who owns and pays."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    owner: TagValue = Field("platform", description="team that owns the resources (tag `owner`)")
    cost_center: TagValue = Field(
        "ml-platform", description="cost center billed for the resources (tag `cost-center`)"
    )


class NodePool(BaseModel):
    """One EKS managed GPU node group: instance types, capacity type and node counts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    instance_types: list[str] = Field(
        min_length=1,
        max_length=20,
        description="GPU instance types from the catalog; `instance_type: x` is shorthand",
    )
    capacity_type: Literal["SPOT", "ON_DEMAND"] = Field(
        "SPOT", description="SPOT (cheap, may be reclaimed) or ON_DEMAND"
    )
    desired_size: int = Field(1, ge=0, description="nodes wanted now")
    min_size: int = Field(0, ge=0, description="fewest nodes the group scales down to")
    max_size: int = Field(1, ge=1, le=450, description="most nodes the group scales up to")
    disk_size_gib: int = Field(
        100, ge=20, le=16384, description="encrypted gp3 root volume size per node (GiB)"
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        """`instance_type: g5.xlarge` is shorthand for `instance_types: [g5.xlarge]`."""
        if isinstance(data, dict) and "instance_type" in data:
            if "instance_types" in data:
                raise ValueError("give instance_type or instance_types, not both")
            data = {**data, "instance_types": [data["instance_type"]]}
            del data["instance_type"]
        return data

    @field_validator("instance_types")
    @classmethod
    def _known_types(cls, types: list[str]) -> list[str]:
        unknown = [t for t in types if t not in CATALOG]
        if unknown:
            raise ValueError(
                f"{', '.join(map(repr, unknown))} not in the GPU catalog; allowed families: "
                f"{', '.join(FAMILIES)} (e.g. g5.xlarge, g6.xlarge, p4d.24xlarge, p5.48xlarge)"
            )
        if len(set(types)) != len(types):
            raise ValueError("instance types must not repeat")
        return types

    @model_validator(mode="after")
    def _sizes_in_order(self) -> Self:
        if self.min_size > self.desired_size:
            raise ValueError(
                f"min_size ({self.min_size}) must be <= desired_size ({self.desired_size})"
            )
        if self.desired_size > self.max_size:
            raise ValueError(
                f"desired_size ({self.desired_size}) must be <= max_size ({self.max_size})"
            )
        return self

    @property
    def efa(self) -> bool:
        """Whether every instance type in the pool supports EFA."""
        return all(CATALOG[t].efa for t in self.instance_types)

    @property
    def max_gpus(self) -> int:
        """GPUs in the pool at max_size on its largest instance type."""
        return self.max_size * max(CATALOG[t].gpus for t in self.instance_types)


class PilotConfig(PhaseConfig):
    """pilot: the network, the EKS control plane and one small GPU node group."""

    vpc_cidr: Cidr = Field("10.20.0.0/16", description="the VPC's address range")
    legacy_vpc_cidr: Cidr = Field(
        "172.16.0.0/16", description="the legacy VPC's range, which vpc_cidr must not overlap"
    )
    availability_zones: list[str] = Field(
        ["us-east-1a", "us-east-1b"], description="2 or 3 zones of one region"
    )
    public_subnet_cidrs: list[Cidr] = Field(
        ["10.20.192.0/20", "10.20.208.0/20"],
        description="one public subnet per zone (NAT gateways, internet-facing load balancers)",
    )
    private_subnet_cidrs: list[Cidr] = Field(
        ["10.20.0.0/19", "10.20.32.0/19"],
        description="one private subnet per zone (nodes, internal load balancers)",
    )
    nat_per_az: bool = Field(
        False, description="one NAT gateway per zone (survives a zone outage) instead of one"
    )
    kubernetes_version: str = Field(
        "1.31", pattern=r"^1\.\d{2}$", description="EKS Kubernetes version, e.g. 1.31"
    )
    public_endpoint: bool = Field(
        False, description="whether the EKS API server is reachable from the internet"
    )
    pilot_pool: NodePool = Field(
        default_factory=lambda: NodePool(
            instance_types=["g5.xlarge"],
            capacity_type="SPOT",
            desired_size=1,
            min_size=0,
            max_size=1,
        ),
        description="the pilot GPU node group `gpu-pilot`",
    )
    max_gpus: int = Field(
        8, ge=0, description="most GPUs this stack may run (enforced by the policy pack)"
    )

    @field_validator("availability_zones")
    @classmethod
    def _two_or_three_zones(cls, zones: list[str], info: ValidationInfo) -> list[str]:
        if not 2 <= len(zones) <= 3:
            raise ValueError(f"list 2 or 3 availability zones (got {len(zones)})")
        bad = [z for z in zones if not _ZONE.fullmatch(z)]
        if bad:
            raise ValueError(f"{', '.join(bad)}: zones look like us-east-1a")
        if len(set(zones)) != len(zones):
            raise ValueError("availability zones must not repeat")
        if len({z[:-1] for z in zones}) != 1:
            raise ValueError(f"zones {', '.join(zones)} must all be in one region")
        # The environment's region, when the orchestrator validates (not inside a program).
        region = (info.context or {}).get("region")
        if region and zones[0][:-1] != region:
            raise ValueError(
                f"zones {', '.join(zones)} are not in the environment's region {region} "
                f"(e.g. {region}a, {region}b)"
            )
        return zones

    @model_validator(mode="after")
    def _network_fits(self) -> Self:
        zones = len(self.availability_zones)
        for key in ("public_subnet_cidrs", "private_subnet_cidrs"):
            got = len(getattr(self, key))
            if got != zones:
                raise ValueError(
                    f"{key} needs one CIDR per availability zone ({zones} zones, got {got})"
                )
        vpc = IPv4Network(self.vpc_cidr)
        subnets = [
            (f"{key}[{i}]", cidr)
            for key in ("public_subnet_cidrs", "private_subnet_cidrs")
            for i, cidr in enumerate(getattr(self, key))
        ]
        outside = [
            f"{label} {cidr}" for label, cidr in subnets if not IPv4Network(cidr).subnet_of(vpc)
        ]
        if outside:
            raise ValueError(f"{', '.join(outside)} must be inside vpc_cidr {self.vpc_cidr}")
        # Subnets are inside the VPC, so the VPC clear of legacy keeps them clear too.
        problems = _overlaps(subnets) + _overlaps(
            [("vpc_cidr", self.vpc_cidr), ("legacy_vpc_cidr", self.legacy_vpc_cidr)]
        )
        if problems:
            raise ValueError("CIDR blocks must not overlap: " + "; ".join(problems))
        return self


class DataLayerConfig(PhaseConfig):
    """data_layer: the lake buckets, their KMS key and their lifecycle."""

    legacy_bucket: BucketName = Field(
        description="the legacy bucket the nightly batch exports land in today"
    )
    ia_after_days: int = Field(
        30, ge=30, description="days before objects move to STANDARD_IA (AWS minimum 30)"
    )
    glacier_ir_after_days: int = Field(
        90, ge=1, description="days before objects move to GLACIER_IR (>= ia_after_days + 30)"
    )
    archive_after_days: int = Field(
        365, ge=1, description="days before objects move to archive_storage_class"
    )
    archive_storage_class: Literal["GLACIER", "DEEP_ARCHIVE"] = Field(
        "GLACIER", description="GLACIER (Flexible Retrieval) or DEEP_ARCHIVE"
    )
    noncurrent_expiry_days: int = Field(
        90, ge=1, description="days before a replaced object version is deleted"
    )
    key_deletion_window_days: int = Field(
        30, ge=7, le=30, description="days a scheduled KMS key deletion can still be cancelled"
    )

    @model_validator(mode="after")
    def _transitions_in_order(self) -> Self:
        # S3 rejects a lifecycle whose next transition is less than 30 days after
        # STANDARD_IA; an archive step must come after the GLACIER_IR step.
        if self.glacier_ir_after_days < self.ia_after_days + 30:
            raise ValueError(
                f"glacier_ir_after_days ({self.glacier_ir_after_days}) must be at least "
                f"ia_after_days + 30 ({self.ia_after_days + 30}): S3 keeps objects in "
                "STANDARD_IA for 30 days"
            )
        if self.archive_after_days <= self.glacier_ir_after_days:
            raise ValueError(
                f"archive_after_days ({self.archive_after_days}) must be greater than "
                f"glacier_ir_after_days ({self.glacier_ir_after_days})"
            )
        return self


class GpuQuotas(BaseModel):
    """GPUs each namespace may request (ResourceQuota `requests.nvidia.com/gpu`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    training: int = Field(8, ge=0, description="GPU requests allowed in namespace training")
    inference: int = Field(2, ge=0, description="GPU requests allowed in namespace inference")


class ComputeConfig(PhaseConfig):
    """compute: training and inference GPU pools, their launch templates and Kubernetes side."""

    training_pool: NodePool = Field(
        default_factory=lambda: NodePool(
            instance_types=["p4d.24xlarge"],
            capacity_type="ON_DEMAND",
            desired_size=0,
            min_size=0,
            max_size=1,
            disk_size_gib=500,
        ),
        description="the training node group `gpu-training` (cluster placement group, EFA)",
    )
    inference_pool: NodePool = Field(
        default_factory=lambda: NodePool(
            instance_types=["g6.xlarge", "g5.xlarge"],
            capacity_type="SPOT",
            desired_size=1,
            min_size=0,
            max_size=2,
        ),
        description="the inference node group `gpu-inference`",
    )
    gpu_quotas: GpuQuotas = Field(
        default_factory=GpuQuotas, description="GPU requests allowed per namespace"
    )
    max_gpus: int = Field(
        16, ge=0, description="most GPUs this stack may run (enforced by the policy pack)"
    )


class Weights(BaseModel):
    """Route53 weights of the two targets; each target's share is weight / total."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    legacy: int = Field(90, description="weight of the legacy target, 0-255")
    platform: int = Field(10, description="weight of the new platform, 0-255")

    @field_validator("legacy", "platform")
    @classmethod
    def _route53_range(cls, weight: int) -> int:
        if not 0 <= weight <= 255:
            raise ValueError(f"a Route53 weight must be between 0 and 255 (got {weight})")
        return weight

    @model_validator(mode="after")
    def _some_traffic(self) -> Self:
        if self.legacy + self.platform == 0:
            raise ValueError("weights legacy and platform are both 0: at least one must be 1-255")
        return self


class CutoverStep(Weights):
    """One step of the cutover: the weights to set, then how long to bake on them."""

    bake_seconds: float = Field(
        300, ge=0, le=86400, description="seconds the step's checks watch before the next"
    )


BASELINE = Weights(legacy=100, platform=0)
"""Where a cutover rollback puts traffic: all of it on legacy."""


class CutoverConfig(PhaseConfig):
    """cutover: weighted DNS from the legacy target to the platform, and its alarms."""

    zone: DnsName = Field(description="the hosted zone of the application, e.g. corp.example.com")
    app_host: str = Field(
        "app", pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", description="host name in zone"
    )
    legacy_target: DnsName = Field(description="where legacy traffic goes today (CNAME target)")
    steps: list[CutoverStep] = Field(
        default_factory=lambda: [CutoverStep(legacy=90, platform=10)],
        min_length=1,
        description="weights per step, applied one step per apply, each baked before the next",
    )
    ttl: int = Field(60, ge=0, le=86400, description="record TTL in seconds; short during cutover")
    alarm_threshold_percent: float = Field(
        5.0, gt=0, le=100, description="5xx share of requests (%) that puts an alarm in ALARM"
    )
    alarm_period_seconds: Literal[10, 30, 60, 300, 900, 3600] = Field(
        60, description="seconds per datapoint (CloudWatch allows 10, 30 or a multiple of 60)"
    )
    alarm_evaluation_periods: int = Field(
        3, ge=1, le=100, description="datapoints in ALARM before the alarm fires"
    )
    metric_namespace: str = Field(
        "Phasegate/App",
        pattern=r"^[A-Za-z0-9./#:_-]{1,255}$",
        description="CloudWatch namespace of the app's 5xx-rate metric",
    )


def step_weights(config: CutoverConfig, step: int) -> Weights:
    """The weights of ``step`` (-1: the baseline, all traffic on legacy)."""
    if step < 0:
        return BASELINE
    chosen = config.steps[min(step, len(config.steps) - 1)]
    return Weights(legacy=chosen.legacy, platform=chosen.platform)


MODELS: dict[str, type[BaseModel]] = {
    "pilot": PilotConfig,
    "data_layer": DataLayerConfig,
    "compute": ComputeConfig,
    "cutover": CutoverConfig,
}
