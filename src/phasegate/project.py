"""A phasegate project on disk: its migration, programs, stack configs, state and work dirs."""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from phasegate.engines import build_engine
from phasegate.engines.base import Engine, ProgramSource, StackTarget
from phasegate.errors import InputError
from phasegate.redaction import SecretValues
from phasegate.spec import MIGRATION_FILE, EnvironmentSpec, Migration, PhaseSpec, load_migration
from phasegate.yamlfile import (
    line_of,
    read_yaml,
    refuse_booleans_as_numbers,
    validation_to_error,
)

__all__ = ["CONFIG_NAMESPACE", "Project", "find_root"]

CONFIG_NAMESPACE = "phasegate"
"""Stack config keys the phase programs read: ``phasegate:<key>``."""

POLICY_KEY = "phasegate:policy"
ESTIMATE_KEYS = (
    "phasegate:max_monthly_cost_usd",
    "phasegate:max_monthly_kg_co2e",
    "phasegate:nat_gb_per_month",
)
"""Stack config phasegate reads itself (the estimates and their cap), not the programs."""

_SETTINGS: dict[str, type] = {
    "secretsprovider": str,
    "encryptionsalt": str,
    "encryptedkey": str,
    "environment": list,
}
"""A stack file's settings besides ``config:`` (Pulumi's own keys: the passphrase
provider's salt, a cloud KMS / Vault / service provider's data key, ESC environments),
each with the type it must have. They travel with the stack's config to the engine."""
"""Per-stack enforcement overrides of policy rules; read by the policy pack, not programs."""


def _load_models(path: Path) -> Mapping[str, type[BaseModel]]:
    """Import ``phases/config.py`` by path and take its ``MODELS``.

    Modules it pulls in from ``phases/`` (the GPU catalog, say) are dropped from
    ``sys.modules`` afterwards, so a program snapshot run later imports its own copies.
    """
    if not path.is_file():
        return {}
    before = set(sys.modules)
    sys.path.insert(0, str(path.parent))
    try:
        spec = importlib.util.spec_from_file_location("_phasegate_phase_config", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except Exception as exc:
        raise InputError(f"cannot load the phase config models: {exc}", file=path) from None
    finally:
        sys.path.remove(str(path.parent))
        prefix = str(path.parent) + os.sep
        for name in set(sys.modules) - before:
            if (getattr(sys.modules[name], "__file__", None) or "").startswith(prefix):
                del sys.modules[name]
    models = getattr(module, "MODELS", None)
    if not isinstance(models, dict) or not all(
        isinstance(m, type) and issubclass(m, BaseModel) for m in models.values()
    ):
        raise InputError("MODELS must map phase names to pydantic models", file=path)
    return models


def find_root(start: Path) -> Path:
    """The nearest directory at or above ``start`` that holds ``migration.yaml``."""
    start = start.resolve()
    for directory in (start, *start.parents):
        if (directory / MIGRATION_FILE).is_file():
            return directory
    raise InputError(
        f"no {MIGRATION_FILE} here or in any parent directory",
        file=start,
        hint="run migrate from a phasegate project, or pass --project-dir",
    )


@dataclass
class Project:
    root: Path
    migration: Migration
    name: str
    secrets: SecretValues = field(default_factory=SecretValues)
    """The run's secret values: its engines add what they learn, all output consults it."""
    _engines: dict[str, Engine] = field(default_factory=dict)
    _models: Mapping[str, type[BaseModel]] | None = None

    @classmethod
    def load(cls, root: Path, secrets: SecretValues | None = None) -> Project:
        migration = load_migration(root)
        name = "phasegate"
        pulumi_yaml = root / "Pulumi.yaml"
        if pulumi_yaml.exists():
            data, _ = read_yaml(pulumi_yaml)
            if not isinstance(data, dict) or not isinstance(data.get("name"), str):
                raise InputError("'name' must be the project name", file=pulumi_yaml, field="name")
            name = data["name"]
        return cls(
            root=root,
            migration=migration,
            name=name,
            secrets=secrets if secrets is not None else SecretValues(),
        )

    @property
    def phases_dir(self) -> Path:
        return self.root / "phases"

    @property
    def stacks_dir(self) -> Path:
        return self.root / "stacks"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def work_dir(self) -> Path:
        return self.root / ".phasegate"

    def stack_config_path(self, env: str, phase: str) -> Path:
        return self.stacks_dir / f"Pulumi.{env}-{phase}.yaml"

    def stack_config(self, env: str, phase: str) -> dict[str, Any]:
        """The ``config:`` mapping of the stack's Pulumi config file."""
        return self._stack_file(env, phase)[0]

    def _stack_file(self, env: str, phase: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The stack file's ``config:`` mapping and its other settings."""
        path = self.stack_config_path(env, phase)
        data, node = read_yaml(path)
        # Nothing is not "all defaults": a stack that has no settings of its own says so.
        no_settings = "a stack with no settings of its own has `config: {}`"
        if data is None:
            raise InputError(
                "missing: the file is empty", file=path, field="config", hint=no_settings
            )
        if not isinstance(data, dict) or set(data) - {"config", *_SETTINGS}:
            raise InputError(
                "expected a mapping with a 'config' key",
                file=path,
                hint=f"allowed top-level keys: config, {', '.join(_SETTINGS)}",
            )
        config = data.get("config")
        if config is None:
            line = line_of(node, ("config",)) if "config" in data else None
            raise InputError(
                "is empty" if "config" in data else "missing",
                file=f"{path}:{line}" if line else path,
                field="config",
                hint=no_settings,
            )
        if not isinstance(config, dict):
            raise InputError("must be a mapping of key: value", file=path, field="config")
        for key in config:
            if not isinstance(key, str) or not key:
                raise InputError(f"key {key!r} must be a string", file=path, field="config")
        settings = {k: v for k, v in data.items() if k != "config" and v is not None}
        for key, value in settings.items():
            wanted = _SETTINGS[key]
            if not isinstance(value, wanted) or (
                isinstance(value, list) and not all(isinstance(v, str) and v for v in value)
            ):
                what = "a list of environment names" if wanted is list else "a string"
                raise InputError(f"must be {what}", file=path, field=key)
        return config, settings

    def set_secret(
        self,
        env: str | None,
        phase: str,
        key: str,
        value: str,
        environ: Mapping[str, str] | None = None,
    ) -> tuple[Path, str]:
        """Encrypt ``value`` into the stack file as ``key: {secure: ...}``, in the Pulumi
        CLI's passphrase format (a bare key gets the project's namespace, as Pulumi does);
        returns the file and the full key."""
        from phasegate.passphrase import crypter_from_state, new_state, read_passphrase
        from phasegate.stackfile import set_secure_value

        name = self.migration.environment(env).name
        self.migration.phase(phase)
        path = self.stack_config_path(name, phase)
        full = key if ":" in key else f"{self.name}:{key}"
        settings = self._stack_file(name, phase)[1] if path.exists() else {}
        provider = settings.get("secretsprovider") or "passphrase"
        if provider != "passphrase":
            raise InputError(
                f"the '{provider}' secrets provider is not one phasegate can encrypt for",
                file=path,
                field="secretsprovider",
                hint="set it with `pulumi config set --secret`, or use the passphrase provider",
            )
        passphrase = read_passphrase(environ)
        if passphrase is None:
            raise InputError(
                "set PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE) to the "
                "stack's passphrase",
                file=path,
                field=f"config.{full}",
            )
        state = settings.get("encryptionsalt")
        if state:
            try:
                crypter = crypter_from_state(passphrase, state)
            except ValueError as exc:
                raise InputError(
                    f"{exc}: the passphrase does not unlock this stack's secrets",
                    file=path,
                    field="encryptionsalt",
                ) from None
            set_secure_value(path, full, crypter.encrypt(value), None)
        else:
            state, crypter = new_state(passphrase)
            set_secure_value(path, full, crypter.encrypt(value), state)
        return path, full

    def config_models(self) -> Mapping[str, type[BaseModel]]:
        """The typed stack config of each phase: ``MODELS`` in ``phases/config.py``."""
        if self._models is None:
            self._models = _load_models(self.phases_dir / "config.py")
        return self._models

    def validate_config(self, env: str, phase: PhaseSpec) -> dict[str, Any]:
        """Check the stack config against the phase's model; one located line if wrong.

        Returns the stack config with the model's defaults filled in (namespaced keys),
        which is what the program will run with and what policies judge.
        """
        config = self.stack_config(env, phase.name)
        model = self.config_models().get(phase.name)
        if model is None:
            return config
        path = self.stack_config_path(env, phase.name)
        own = (
            f"{CONFIG_NAMESPACE}:phase",
            f"{CONFIG_NAMESPACE}:program",
            f"{CONFIG_NAMESPACE}:step",
            f"{CONFIG_NAMESPACE}:data_source",
            POLICY_KEY,
            *ESTIMATE_KEYS,
        )
        values = {
            key.split(":", 1)[1]: value
            for key, value in config.items()
            if key.startswith(f"{CONFIG_NAMESPACE}:") and key not in own
        }
        try:
            region = self.migration.environment(env).region
            validated = model.model_validate(values, context={"region": region})
            refuse_booleans_as_numbers(model, values)
        except ValidationError as exc:
            _, node = read_yaml(path)
            raise validation_to_error(
                exc,
                model,
                path,
                node,
                yaml_path=lambda loc: (
                    ("config", f"{CONFIG_NAMESPACE}:{loc[0]}", *loc[1:]) if loc else ("config",)
                ),
            ) from None
        defaults = {
            f"{CONFIG_NAMESPACE}:{k}": v for k, v in validated.model_dump(mode="json").items()
        }
        return {**defaults, **config}

    def program(self, phase: PhaseSpec) -> ProgramSource:
        """The phase's program: a module of ``phases/`` with a ``program()`` (run by
        ``phases/__main__.py``), or a folder ``phases/<program>/`` with a ``__main__.py``
        of its own, an ordinary Pulumi program run as it is."""
        folder = self.phases_dir / phase.program
        if (folder / "__main__.py").is_file():
            return ProgramSource.from_directory(folder, phase.program, set())
        if not (self.phases_dir / f"{phase.program}.py").is_file():
            raise InputError(
                f"phase {phase.name}: neither 'phases/{phase.program}.py' nor "
                f"'phases/{phase.program}/__main__.py' exists",
                file=self.root / MIGRATION_FILE,
                field=f"phases.{phase.name}.program",
            )
        others = {p.program for p in self.migration.phases if p.program != phase.program}
        return ProgramSource.from_directory(self.phases_dir, phase.program, others)

    def target(self, env: EnvironmentSpec, phase: PhaseSpec) -> StackTarget:
        config, settings = self._stack_file(env.name, phase.name)
        return StackTarget(
            project=self.name,
            environment=env.name,
            phase=phase.name,
            region=env.region,
            program=self.program(phase),
            config=config,
            protected=frozenset(phase.protected),
            endpoint_url=env.aws.endpoint_url,
            profile=env.aws.profile,
            backend=env.backend,
            stack_settings=settings,
            config_file=str(self.stack_config_path(env.name, phase.name)),
        )

    def engine(self, env: EnvironmentSpec, stop: threading.Event | None = None) -> Engine:
        """The environment's engine; one instance per kind for the whole run, stopping
        cleanly once ``stop`` is set."""
        if env.engine not in self._engines:
            environments = self.migration.environments
            self._engines[env.engine] = build_engine(
                env.engine,
                root=self.root,
                work_dir=self.work_dir,
                regions={e.name: e.region for e in environments},
                backends={e.name: e.backend for e in environments},
                estates={
                    e.name: e.legacy_estate.model_dump()
                    for e in environments
                    if e.legacy_estate is not None
                },
                secrets=self.secrets,
                stop=stop,
            )
        return self._engines[env.engine]

    def close(self) -> None:
        for engine in self._engines.values():
            engine.close()
