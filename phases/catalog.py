"""The GPU instance types phasegate knows, with their real AWS figures.

Standard library only: the policy pack loads this file by path, outside the venv
the programs run in.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CATALOG", "FAMILIES", "GpuInstanceType", "gpus"]


@dataclass(frozen=True)
class GpuInstanceType:
    """One EC2 GPU instance size as AWS publishes it."""

    name: str
    family: str
    gpu_model: str
    gpus: int
    gpu_memory_gib: int  # per GPU
    vcpus: int
    memory_gib: int
    efa: bool


def _family(
    family: str,
    gpu_model: str,
    gpu_memory_gib: int,
    sizes: tuple[tuple[str, int, int, int, bool], ...],
) -> dict[str, GpuInstanceType]:
    """Sizes of one family as (size, gpus, vcpus, memory_gib, efa)."""
    return {
        f"{family}.{size}": GpuInstanceType(
            name=f"{family}.{size}",
            family=family,
            gpu_model=gpu_model,
            gpus=count,
            gpu_memory_gib=gpu_memory_gib,
            vcpus=vcpus,
            memory_gib=memory,
            efa=efa,
        )
        for size, count, vcpus, memory, efa in sizes
    }


CATALOG: dict[str, GpuInstanceType] = {
    # NVIDIA A10G, 24 GiB per GPU. EFA on the 8xlarge and larger.
    **_family(
        "g5",
        "A10G",
        24,
        (
            ("xlarge", 1, 4, 16, False),
            ("2xlarge", 1, 8, 32, False),
            ("4xlarge", 1, 16, 64, False),
            ("8xlarge", 1, 32, 128, True),
            ("12xlarge", 4, 48, 192, True),
            ("16xlarge", 1, 64, 256, True),
            ("24xlarge", 4, 96, 384, True),
            ("48xlarge", 8, 192, 768, True),
        ),
    ),
    # NVIDIA L4, 24 GiB per GPU.
    **_family(
        "g6",
        "L4",
        24,
        (
            ("xlarge", 1, 4, 16, False),
            ("2xlarge", 1, 8, 32, False),
            ("4xlarge", 1, 16, 64, False),
            ("8xlarge", 1, 32, 128, True),
            ("12xlarge", 4, 48, 192, True),
            ("16xlarge", 1, 64, 256, True),
            ("24xlarge", 4, 96, 384, True),
            ("48xlarge", 8, 192, 768, True),
        ),
    ),
    # NVIDIA L40S, 48 GiB per GPU.
    **_family(
        "g6e",
        "L40S",
        48,
        (
            ("xlarge", 1, 4, 32, False),
            ("2xlarge", 1, 8, 64, False),
            ("4xlarge", 1, 16, 128, False),
            ("8xlarge", 1, 32, 256, True),
            ("12xlarge", 4, 48, 384, True),
            ("16xlarge", 1, 64, 512, True),
            ("24xlarge", 4, 96, 768, True),
            ("48xlarge", 8, 192, 1536, True),
        ),
    ),
    # NVIDIA A100 40 GiB / 80 GiB, 400 Gbps EFA.
    **_family("p4d", "A100", 40, (("24xlarge", 8, 96, 1152, True),)),
    **_family("p4de", "A100", 80, (("24xlarge", 8, 96, 1152, True),)),
    # NVIDIA H100 80 GiB / H200 141 GiB, 3200 Gbps EFA.
    **_family("p5", "H100", 80, (("48xlarge", 8, 192, 2048, True),)),
    **_family("p5e", "H200", 141, (("48xlarge", 8, 192, 2048, True),)),
}

FAMILIES: tuple[str, ...] = tuple(dict.fromkeys(t.family for t in CATALOG.values()))


def gpus(instance_type: str) -> int:
    """GPUs in one instance of this type; KeyError naming the allowed families if unknown."""
    try:
        return CATALOG[instance_type].gpus
    except KeyError:
        raise KeyError(
            f"unknown GPU instance type {instance_type!r}; allowed families: {', '.join(FAMILIES)}"
        ) from None
