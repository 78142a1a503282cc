"""Runs the project's policy pack over the resources a plan declares (sandbox engine).

The pack is the project's ``policies/`` directory: ``rules.py`` holds the rules as plain
functions and ``__main__.py`` wraps them as a CrossGuard pack for the Pulumi engine. Here
only ``rules.py`` is loaded, by file path, so evaluating needs neither ``pulumi_policy``
nor a gRPC server, and a user's edits to the rules apply on the next run.

Stack config can change how a rule is enforced::

    config:
      phasegate:policy:
        required-tags: advisory     # mandatory | advisory | disabled
      phasegate:max_gpus: 64        # the cap gpu-count-cap enforces; none: no cap

Besides the pack's rules, phasegate runs rules of its own on what only it computes (the
cost, energy and carbon estimate: ``cost-carbon-cap``, :mod:`phasegate.estimates.cap`).
``phasegate:policy`` sets their enforcement the same way; they are not passed to
CrossGuard, which does not know them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from phasegate.engines.base import Violation
from phasegate.errors import InputError
from phasegate.project import POLICY_KEY

__all__ = [
    "CORE_RULES",
    "ENFORCEMENTS",
    "PolicyResult",
    "Violation",
    "core_rule_level",
    "crossguard_config",
    "evaluate",
]

ENFORCEMENTS = ("mandatory", "advisory", "disabled")
"""What ``phasegate:policy`` may set a rule to."""

MAX_GPUS_KEY = "phasegate:max_gpus"

CORE_RULES: dict[str, str] = {"cost-carbon-cap": "mandatory"}
"""Rules phasegate runs itself (not the pack), with their default enforcement."""


@dataclass(frozen=True)
class PolicyResult:
    """Every violation the pack found, in rule order then resource order."""

    violations: list[Violation]

    @property
    def mandatory(self) -> list[Violation]:
        """Violations that block an apply."""
        return [v for v in self.violations if v.enforcement == "mandatory"]

    @property
    def advisory(self) -> list[Violation]:
        """Violations that are reported and do not block."""
        return [v for v in self.violations if v.enforcement == "advisory"]


def evaluate(
    resources: Sequence[Any],
    *,
    stack: str,
    config: Mapping[str, Any],
    pack_dir: Path,
) -> PolicyResult:
    """Run the pack in ``pack_dir`` over ``resources`` of ``stack`` ("<env>-<phase>").

    Each resource has ``.type``, ``.name`` and ``.inputs`` (wire property names, unknown
    values as ``UNKNOWN``). ``config`` is the stack's ``config:`` mapping. A missing
    ``pack_dir`` means no rules. Raises :class:`InputError` for a bad ``phasegate:policy``
    or ``phasegate:max_gpus``, or a pack that cannot be loaded or run.
    """
    rules = _load_rules(pack_dir)
    if rules is None:
        return PolicyResult(violations=[])
    rules_file = pack_dir / "rules.py"
    names = [str(rule.name) for rule in rules.RULES] + list(CORE_RULES)
    levels = _enforcement_overrides(config, stack, names)
    context = rules.Context(
        stack=stack, environment=stack.split("-", 1)[0], max_gpus=_max_gpus(config, stack)
    )
    declared = [rules.Resource(r.type, r.name, dict(r.inputs)) for r in resources]

    violations: list[Violation] = []
    for rule in rules.RULES:
        level = levels.get(rule.name, rule.enforcement)
        if level == "disabled":
            continue
        if level not in ("mandatory", "advisory"):
            raise InputError(
                f"rule {rule.name!r} has enforcement {level!r}; allowed: mandatory, advisory",
                file=rules_file,
            )
        try:
            findings = list(rule.check(declared, context))
        except Exception as exc:
            raise InputError(f"rule {rule.name!r} failed: {exc}", file=rules_file) from exc
        violations.extend(
            Violation(rule.name, level, f.resource_type, f.resource_name, f.message)
            for f in findings
        )
    return PolicyResult(violations=violations)


def crossguard_config(config: Mapping[str, Any], stack: str) -> dict[str, Any]:
    """The same stack config as a CrossGuard ``--policy-pack-config`` document, so the
    pulumi engine enforces exactly what the sandbox does."""
    out: dict[str, Any] = {}
    raw = config.get(POLICY_KEY)
    for name, level in raw.items() if isinstance(raw, Mapping) else ():
        if name in CORE_RULES:  # phasegate's own: CrossGuard does not know it
            continue
        out[str(name)] = {"enforcementLevel": str(level)}
    cap = _max_gpus(config, stack)
    if cap is not None:
        out.setdefault("gpu-count-cap", {})["maxGpus"] = cap
    return out


def core_rule_level(config: Mapping[str, Any], stack: str, rule: str) -> str:
    """The enforcement of one of phasegate's own rules on ``stack``: its default, or what
    ``phasegate:policy`` sets (checked as the pack's rules' levels are)."""
    overrides = _enforcement_overrides(config, stack, None)
    return overrides.get(rule, CORE_RULES[rule])


def _stack_file(stack: str) -> str:
    return f"Pulumi.{stack}.yaml"


def _enforcement_overrides(
    config: Mapping[str, Any], stack: str, rule_names: Sequence[str] | None
) -> dict[str, str]:
    """The levels ``phasegate:policy`` sets; ``rule_names`` None: names are not checked
    (only the pack knows its own), levels are."""
    raw = config.get(POLICY_KEY)
    if raw is None:
        return {}
    allowed = ", ".join(ENFORCEMENTS)
    if not isinstance(raw, Mapping):
        raise InputError(
            f"must map rule names to one of {allowed}, got {type(raw).__name__}",
            file=_stack_file(stack),
            field=POLICY_KEY,
        )
    out: dict[str, str] = {}
    for name, level in raw.items():
        if rule_names is not None and name not in rule_names:
            raise InputError(
                f"no rule named {name!r}; rules: {', '.join(rule_names)}",
                file=_stack_file(stack),
                field=POLICY_KEY,
            )
        if level not in ENFORCEMENTS:
            raise InputError(
                f"{name}: {level!r} is not an enforcement level; allowed: {allowed}",
                file=_stack_file(stack),
                field=POLICY_KEY,
            )
        out[str(name)] = str(level)
    return out


def _max_gpus(config: Mapping[str, Any], stack: str) -> int | None:
    raw = config.get(MAX_GPUS_KEY)
    if raw is None:
        return None
    # `pulumi config set` stores plain values as strings.
    value = raw.strip() if isinstance(raw, str) else raw
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InputError(
            f"must be a whole number of GPUs, 0 or more, got {raw!r}",
            file=_stack_file(stack),
            field=MAX_GPUS_KEY,
        )
    return value


# --- loading the pack's rules.py by path ------------------------------------------------

_LOADED: dict[Path, tuple[tuple[int, int], ModuleType]] = {}
_LOAD_LOCK = threading.Lock()


def _load_rules(pack_dir: Path) -> ModuleType | None:
    """The pack's ``rules.py``, loaded once per path and again when the file changes."""
    if not pack_dir.is_dir():
        return None
    path = (pack_dir / "rules.py").resolve()
    if not path.is_file():
        raise InputError(
            "the policy pack has no rules.py",
            file=pack_dir,
            hint="rules.py holds the rules that __main__.py and phasegate run",
        )
    stat = path.stat()
    stamp = (stat.st_mtime_ns, stat.st_size)
    with _LOAD_LOCK:
        cached = _LOADED.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        module = _import_by_path(path)
        _LOADED[path] = (stamp, module)
        return module


def _import_by_path(path: Path) -> ModuleType:
    # A private module name per path: never `rules`, which a user's code may also be.
    name = "_phasegate_policy_rules_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise InputError("cannot be loaded as a Python module", file=path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve annotations through sys.modules
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise InputError(f"cannot load the policy pack: {exc}", file=path) from exc
    for attr in ("RULES", "Resource", "Context"):
        if not hasattr(module, attr):
            sys.modules.pop(name, None)
            raise InputError(f"the policy pack defines no {attr}", file=path)
    return module
