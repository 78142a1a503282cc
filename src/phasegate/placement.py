"""GPU-zone placement, checked before a plan: every GPU pool a stack config names must have
a chosen zone that offers all of its instance types.

The phase programs put a pool only into subnets whose zone offers every one of its
types (the training pool into the first such zone). A type offered in none of the
chosen zones would leave a pool nowhere to go: phasegate says so before any preview or
apply, in one line naming the stack config file, the key, the type and the zones, read
from the environment's own AWS API (the sandbox's emulated cloud included).

A pool is any ``phasegate:`` key whose value holds ``instance_type`` or
``instance_types``; the chosen zones are the stack's own ``availability_zones``, or
those of the nearest phase it depends on that has them (the pilot's, for compute).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phasegate.engines.base import StackTarget
from phasegate.errors import EngineError, InputError
from phasegate.offerings import zones_offering
from phasegate.project import CONFIG_NAMESPACE
from phasegate.spec import PhaseSpec
from phasegate.yamlfile import line_of, read_yaml

if TYPE_CHECKING:
    from phasegate.environment import Environment

__all__ = ["Pool", "check_placement", "pools"]

ZONES_KEY = f"{CONFIG_NAMESPACE}:availability_zones"


@dataclass(frozen=True)
class Pool:
    """One GPU pool of a stack config: its key as the file spells it and its types."""

    key: str
    """e.g. ``phasegate:inference_pool.instance_types``."""
    types: tuple[str, ...]


def pools(config: Mapping[str, Any]) -> list[Pool]:
    """The GPU pools a stack config names, in its order."""
    found = []
    prefix = f"{CONFIG_NAMESPACE}:"
    for key, value in config.items():
        if not key.startswith(prefix) or not isinstance(value, Mapping):
            continue
        for field in ("instance_types", "instance_type"):
            types = value.get(field)
            if isinstance(types, str):
                types = [types]
            if isinstance(types, list) and types and all(isinstance(t, str) for t in types):
                found.append(Pool(f"{key}.{field}", tuple(types)))
                break
    return found


@dataclass(frozen=True)
class _Zones:
    names: list[str]
    file: Path


def _chosen_zones(
    environment: Environment, phase: PhaseSpec, config: Mapping[str, Any]
) -> _Zones | None:
    """The zones the stack's pools go into, and the stack config file that chooses them."""
    project = environment.project
    env = environment.name
    zones = config.get(ZONES_KEY)
    if isinstance(zones, list) and zones:
        return _Zones([str(z) for z in zones], project.stack_config_path(env, phase.name))
    for upstream in reversed(project.migration.upstream(phase)):
        if not project.stack_config_path(env, upstream.name).is_file():
            continue
        found = project.validate_config(env, upstream).get(ZONES_KEY)
        if isinstance(found, list) and found:
            return _Zones([str(z) for z in found], project.stack_config_path(env, upstream.name))
    return None


def check_placement(
    environment: Environment, phase: PhaseSpec, target: StackTarget, config: Mapping[str, Any]
) -> None:
    """InputError, naming the stack config file, the key, the type and the zones, when a
    pool has no chosen zone that offers all of its types; nothing when the stack names no
    pool or no zones. EngineError when the environment's API cannot be read."""
    found = pools(config)
    zones = _chosen_zones(environment, phase, config) if found else None
    if not found or zones is None:
        return
    try:
        ec2 = environment.engine.aws_client(target, "ec2")
        offered = zones_offering(ec2, {t for pool in found for t in pool.types})
    except (EngineError, InputError):
        raise
    except Exception as exc:
        raise EngineError(
            f"cannot read which zones offer the instance types of its GPU pools: {exc}",
            stack=target.name,
        ) from None
    chosen = set(zones.names)
    for pool in found:
        problem = _unplaceable(pool, zones.names, chosen, offered)
        if problem is None:
            continue
        root = environment.project.root
        path = environment.project.stack_config_path(environment.name, phase.name)
        _, node = read_yaml(path)
        pool_key, _, field = pool.key.partition(".")
        line = line_of(node, ("config", pool_key, field))
        where = _shown(path, root) + (f":{line}" if line else "")
        raise InputError(
            f"{problem} (zones from {ZONES_KEY} in {_shown(zones.file, root)})",
            file=where,
            field=pool.key,
        )


def _unplaceable(
    pool: Pool, zones: list[str], chosen: set[str], offered: Mapping[str, set[str]]
) -> str | None:
    """Why no chosen zone can take the pool, or None when one can."""
    for instance_type in pool.types:
        if not offered.get(instance_type, set()) & chosen:
            return f"{instance_type} is offered in none of the chosen zones {', '.join(zones)}"
    if any(all(z in offered.get(t, set()) for t in pool.types) for z in zones):
        return None
    where = "; ".join(
        f"{t} in {', '.join(z for z in zones if z in offered.get(t, set()))}" for t in pool.types
    )
    return f"no chosen zone of {', '.join(zones)} offers all of its types ({where})"


def _shown(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
