"""A way in for your own infrastructure: a new project (``migrate init``), and a new phase
in a project (``migrate new-phase``).

``init`` copies the shipped example project. It lives once, at the root of phasegate's
repository (where it is the project the README runs), and is found in this order:

1. ``phasegate/_example/`` inside the installed package: building a wheel (``setup.py``)
   copies the example there, and an sdist carries it so that its wheel does too;
2. the source checkout the package is imported from (an editable install): the example
   at the checkout's root, two directories above ``src/phasegate/``;
3. otherwise ``init`` stops, saying so (``--from DIR`` names a project to copy instead).

Nothing here prints or exits: what goes wrong is an InputError, naming the file or the
argument; and either every file is written or none is (a failure removes what was
written, and ``migration.yaml`` gets its old bytes back).
"""

from __future__ import annotations

import contextlib
import importlib.util
import keyword
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from phasegate import faults, phase_template
from phasegate.atomic import write_atomic
from phasegate.errors import InputError, PhasegateError
from phasegate.spec import MIGRATION_FILE, Migration, load_migration
from phasegate.yamlfile import last_line, read_yaml

__all__ = ["PROJECT_PARTS", "Scaffolded", "example_dir", "init_project", "new_phase"]

PROJECT_PARTS = ("migration.yaml", "Pulumi.yaml", "phases", "stacks", "policies")
"""What a phasegate project is made of; ``init`` copies these from the example."""

EMPTY_PROJECT = ("Pulumi.yaml", "phases/__main__.py", "phases/catalog.py", "policies")
"""What ``init --empty`` takes from the example besides its environments: the program
that runs each phase's module, and the policy pack with the GPU catalog it reads."""

GITIGNORE = "# phasegate's local working data: the sandbox cloud, locks, the Pulumi backend\n"
GITIGNORE += ".phasegate/\n__pycache__/\n"

_ABOUT = {
    MIGRATION_FILE: "the environments and the phases, their checks",
    "Pulumi.yaml": "the Pulumi project",
    ".gitignore": "keeps .phasegate/ (local working data) out of git",
    "phases": "a Pulumi program per phase",
    "stacks": "a stack config per environment and phase",
    "policies": "the policy pack every plan must pass",
}

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_NAME_RULE = "a lower-case letter, then up to 31 lower-case letters, digits and _"
_ALLOWED_IN_EMPTY = {".git"}
"""What a directory may hold and still count as empty: ``git init`` first is common."""


@dataclass
class Scaffolded:
    """What a command wrote: paths relative to the project root, each with what it is."""

    root: Path
    written: list[tuple[str, str]] = field(default_factory=list)


# --- where the example comes from ----------------------------------------------------


def example_dir(package_dir: Path | None = None, checkout: Path | None = None) -> Path:
    """The shipped example project, in the order the module docstring gives."""
    here = Path(__file__).resolve().parent
    candidates = [
        package_dir if package_dir is not None else here / "_example",
        checkout if checkout is not None else here.parent.parent,
    ]
    for candidate in candidates:
        if all((candidate / part).exists() for part in PROJECT_PARTS):
            return candidate
    raise PhasegateError(
        "the shipped example project is not part of this installation of phasegate "
        f"(looked in {', '.join(str(c) for c in candidates)})",
        hint="reinstall phasegate from a wheel or a checkout, or pass --from DIR",
    )


def _files(directory: Path) -> Iterator[Path]:
    """Every file of a project part, but hidden files and bytecode."""
    for path in sorted(directory.rglob("*")):
        rel = path.relative_to(directory)
        hidden = any(p.startswith(".") or p == "__pycache__" for p in rel.parts)
        if path.is_file() and not hidden and path.suffix not in (".pyc", ".pyo"):
            yield path


def _project_files(source: Path, parts: Sequence[str]) -> dict[str, bytes]:
    """The files of ``parts`` of the project at ``source``, by path relative to it."""
    found: dict[str, bytes] = {}
    for part in parts:
        path = source / part
        if path.is_file():
            found[part] = path.read_bytes()
        elif path.is_dir():
            found.update({p.relative_to(source).as_posix(): p.read_bytes() for p in _files(path)})
        else:
            raise InputError(f"missing: {part}", file=source, hint="not a phasegate project")
    return found


# --- writing all or nothing ----------------------------------------------------------


@contextmanager
def _all_or_nothing(root: Path) -> Iterator[_Writer]:
    writer = _Writer(root)
    try:
        yield writer
    except BaseException:
        writer.undo()
        raise


class _Writer:
    """Writes files atomically and remembers how to take every write back."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._created: list[Path] = []
        self._replaced: list[tuple[Path, bytes]] = []
        self._dirs: list[Path] = []

    def mkdir(self, path: Path) -> None:
        missing = [p for p in (path, *path.parents) if not p.exists()]
        for directory in reversed(missing):
            directory.mkdir()
            self._dirs.append(directory)

    def create(self, rel: str, data: bytes) -> None:
        path = self.root / rel
        if path.exists() or path.is_symlink():
            raise InputError("exists already: nothing was written", file=path)
        self.mkdir(path.parent)
        faults.point("scaffold-write")
        write_atomic(path, data)
        self._created.append(path)

    def replace(self, rel: str, data: bytes) -> None:
        path = self.root / rel
        old = path.read_bytes()
        faults.point("scaffold-write")
        write_atomic(path, data)
        self._replaced.append((path, old))

    def undo(self) -> None:
        for path, old in reversed(self._replaced):
            write_atomic(path, old)
        for path in reversed(self._created):
            path.unlink(missing_ok=True)
        for directory in reversed(self._dirs):
            # Something else put there meanwhile is not ours to remove.
            with contextlib.suppress(OSError):
                directory.rmdir()


# --- migrate init --------------------------------------------------------------------


def _refuse_non_empty(dest: Path) -> None:
    if dest.exists() and not dest.is_dir():
        raise InputError("is a file, not a directory", file=dest, field="DIR")
    if dest.is_dir():
        held = sorted(p.name + ("/" if p.is_dir() else "") for p in dest.iterdir())
        held = [h for h in held if h.rstrip("/") not in _ALLOWED_IN_EMPTY]
        if held:
            shown = ", ".join(held[:5]) + (f" and {len(held) - 5} more" if len(held) > 5 else "")
            raise InputError(
                f"not empty (it holds {shown}): init writes a new project only into an "
                "empty or new directory",
                file=dest,
                field="DIR",
            )


def _empty_migration(example: Path) -> str:
    """The example's ``migration.yaml`` up to its phases (its environments, comments
    and all), and no phase yet."""
    path = example / MIGRATION_FILE
    text = path.read_text(encoding="utf-8")
    _, node = read_yaml(path, text=text)
    keys = [k for k, _ in node.value] if isinstance(node, yaml.MappingNode) else []
    phases = [k for k in keys if k.value == "phases"]
    if not phases or keys[-1] is not phases[0]:
        raise PhasegateError(f"{path}: the example's last top-level key is not 'phases'")
    head = text.splitlines(keepends=True)[: phases[0].start_mark.line]
    while head and not head[-1].strip():
        head.pop()
    return "".join(head) + (
        "\n"
        "# The phases, in apply order: none yet. `migrate new-phase NAME` adds one: its\n"
        "# program in phases/, a stack config per environment in stacks/, and its entry\n"
        "# here, checks included.\n"
        "phases: []\n"
    )


def init_project(dest: Path, *, empty: bool = False, source: Path | None = None) -> Scaffolded:
    """Write a new project into ``dest`` (empty or new): the example (``source``, or the
    shipped one), or with ``empty`` its environments and no phase."""
    dest = dest.resolve()
    _refuse_non_empty(dest)
    example = source.resolve() if source is not None else example_dir()
    if source is not None and not (example / MIGRATION_FILE).is_file():
        raise InputError(f"no {MIGRATION_FILE} there", file=example, field="--from")
    if empty:
        files = _project_files(example, EMPTY_PROJECT)
        files[MIGRATION_FILE] = _empty_migration(example).encode()
    else:
        files = _project_files(example, PROJECT_PARTS)
    files[".gitignore"] = GITIGNORE.encode()
    migration = load_migration(example, text=files[MIGRATION_FILE].decode())
    if empty and migration.phases:
        raise PhasegateError("the empty project's migration.yaml lists phases")
    with _all_or_nothing(dest) as writer:
        writer.mkdir(dest)
        for rel, data in sorted(files.items()):
            writer.create(rel, data)
        writer.mkdir(dest / "stacks")
    done = Scaffolded(dest)
    for part in (MIGRATION_FILE, "Pulumi.yaml", ".gitignore"):
        done.written.append((part, _ABOUT[part]))
    for part in ("phases", "stacks", "policies"):
        count = sum(1 for rel in files if rel.startswith(f"{part}/"))
        files_in = f"{count} file{'s' * (count != 1)}" if count else "none yet"
        done.written.append((f"{part}/", f"{_ABOUT[part]} ({files_in})"))
    return done


# --- migrate new-phase ---------------------------------------------------------------


def _check_name(name: str, root: Path, migration: Migration) -> None:
    migration_file = root / MIGRATION_FILE
    if not _NAME.fullmatch(name):
        raise InputError(
            f"'{name}' is not a phase name", field="NAME", hint=f"allowed: {_NAME_RULE}"
        )
    if keyword.iskeyword(name):
        raise InputError(
            f"'{name}' is a Python keyword; the phase's program is a module named after it",
            field="NAME",
            hint="pick another name",
        )
    taken = [p.name for p in migration.phases]
    if name in taken or name in {p.program for p in migration.phases}:
        raise InputError(
            f"a phase '{name}' exists already",
            file=migration_file,
            field="NAME",
            hint=f"pick a name not in: {', '.join(taken)}",
        )
    phases_dir = root / "phases"
    for existing in (phases_dir / f"{name}.py", phases_dir / name):
        if existing.exists():
            raise InputError(
                f"'{name}' is a module of phases/ already",
                file=existing,
                field="NAME",
                hint="pick another name",
            )
    if name in sys.stdlib_module_names or importlib.util.find_spec(name) is not None:
        raise InputError(
            f"'{name}' is a Python module already: phases/{name}.py would hide it from every "
            "phase program",
            field="NAME",
            hint="pick another name",
        )


def _tag_values(root: Path, environment: str, migration: Migration) -> tuple[str, str]:
    """Owner and cost center as the environment's other stacks have them (the shipped
    defaults where none has)."""
    for phase in migration.phases:
        path = root / "stacks" / f"Pulumi.{environment}-{phase.name}.yaml"
        try:
            data, _ = read_yaml(path)
        except InputError:
            continue
        config = data.get("config") if isinstance(data, dict) else None
        if isinstance(config, dict):
            owner, cost = config.get("phasegate:owner"), config.get("phasegate:cost_center")
            if isinstance(owner, str) and isinstance(cost, str) and owner and cost:
                return owner, cost
    return "platform", "ml-platform"


def _with_entry(path: Path, text: str, name: str, depends_on: list[str]) -> str:
    """``text`` of migration.yaml with the phase's entry added at the end of its phases
    list, every other line as it was (but ``phases: []``, which loses its ``[]``)."""
    _, root = read_yaml(path, text=text)
    phases = None
    if isinstance(root, yaml.MappingNode):
        phases = next((v for k, v in root.value if k.value == "phases"), None)
    if not isinstance(phases, yaml.SequenceNode):
        raise InputError("must be a list of phases", file=path, field="phases")
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    if phases.flow_style and phases.value:
        raise InputError(
            "is a flow list ([...]): new-phase adds only to a block list",
            file=f"{path}:{phases.start_mark.line + 1}",
            field="phases",
            hint="write each phase as a '- name: ...' item on lines of its own",
        )
    if phases.flow_style:  # `phases: []`: the entry goes under the key
        at = phases.start_mark.line
        line = lines[at]
        lines[at] = line[: phases.start_mark.column].rstrip() + line[phases.end_mark.column :]
        indent, after, gap = 2, at + 1, []
    else:  # after the last line of the last entry, a blank line apart as the others
        indent, after, gap = phases.start_mark.column, last_line(phases) + 1, ["\n"]
    entry = phase_template.migration_entry(name, depends_on, indent)
    return "".join([*lines[:after], *gap, *entry, *lines[after:]])


def new_phase(
    root: Path,
    name: str,
    *,
    depends_on: Sequence[str] = (),
    environments: Sequence[str] = (),
) -> Scaffolded:
    """Add phase ``name`` to the project at ``root``: its program, a stack config per
    environment (``environments``, default: all), and its entry in migration.yaml."""
    path = root / MIGRATION_FILE
    old_text = path.read_text(encoding="utf-8")
    migration = load_migration(root, text=old_text)
    _check_name(name, root, migration)
    known = [p.name for p in migration.phases]
    for dep in depends_on:
        if dep not in known:
            raise InputError(
                f"unknown phase '{dep}'",
                field="--depends-on",
                hint=f"allowed: {', '.join(known)}" if known else "the migration has no phases yet",
            )
    envs = [migration.environment(e) for e in environments] or list(migration.environments)

    # The file as it will be, read by the same strict loader as every command reads it,
    # must be the migration it was plus this phase: or nothing is written.
    new_text = _with_entry(path, old_text, name, list(dict.fromkeys(depends_on)))
    try:
        new: Migration | None = load_migration(root, text=new_text)
    except InputError:
        new = None
    if (
        new is None
        or new.environments != migration.environments
        or new.phases[:-1] != migration.phases
        or new.phases[-1].name != name
    ):
        raise InputError(
            "the phase's entry cannot be added without changing others: nothing was written",
            file=path,
            field="phases",
            hint="add the entry by hand",
        )

    files = {f"phases/{name}.py": phase_template.program(name)}
    for env in envs:
        owner, cost = _tag_values(root, env.name, migration)
        rel = f"stacks/Pulumi.{env.name}-{name}.yaml"
        files[rel] = phase_template.stack_config(name, env.name, env.region, owner, cost)
        read_yaml(root / rel, text=files[rel])
    compile(files[f"phases/{name}.py"], f"phases/{name}.py", "exec")
    for rel in files:
        if (root / rel).exists() or (root / rel).is_symlink():
            raise InputError(
                "exists already (left from an earlier phase of that name?)",
                file=root / rel,
                field="NAME",
                hint="move the file away, or pick another name",
            )

    done = Scaffolded(root)
    with _all_or_nothing(root) as writer:
        for rel, text in files.items():
            writer.create(rel, text.encode())
        writer.replace(MIGRATION_FILE, new_text.encode())
        # Read back from disk as every command will: the file, then the whole project.
        from phasegate.project import Project

        project = Project.load(root)
        added = project.migration.phase(name)
        project.program(added)
        for env in envs:
            project.validate_config(env.name, added)
    done.written.append((f"phases/{name}.py", "the program: an encrypted, private bucket"))
    for env in envs:
        done.written.append((f"stacks/Pulumi.{env.name}-{name}.yaml", f"its stack in {env.name}"))
    checks = ", ".join(c.name for c in added.checks)
    done.written.append((MIGRATION_FILE, f"its entry, with checks {checks}"))
    return done
