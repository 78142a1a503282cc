"""Carries the shipped example project into the package, so `migrate init` has it installed.

pyproject.toml holds the package's metadata; this file only adds one build step. The
example (migration.yaml, Pulumi.yaml, phases/, stacks/, policies/) lives once, at the
repository's root, where it is also the project the README runs. Building the package
copies it into ``phasegate/_example/`` of the build (so a wheel carries it), and an sdist
takes it along (so a wheel built from the sdist does too). An editable install builds
nothing: ``phasegate.scaffold`` finds the example at the root of its source checkout.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

ROOT = Path(__file__).resolve().parent
EXAMPLE = ("migration.yaml", "Pulumi.yaml", "phases", "stacks", "policies")
"""The parts of the example project; ``phasegate.scaffold.PROJECT_PARTS`` names the same."""
TARGET = "phasegate/_example"


def _example_files() -> list[Path]:
    files: list[Path] = []
    for part in EXAMPLE:
        path = ROOT / part
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files.extend(
                p
                for p in sorted(path.rglob("*"))
                if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
            )
        else:
            raise SystemExit(f"setup.py: the example project's {part} is missing from {ROOT}")
    return files


class _BuildWithExample(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # the example is read from the checkout itself
        target = Path(self.build_lib, TARGET)
        shutil.rmtree(target, ignore_errors=True)
        for source in _example_files():
            dest = target / source.relative_to(ROOT)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest)


class _SdistWithExample(sdist):
    def make_distribution(self) -> None:
        self.filelist.extend(str(p.relative_to(ROOT)) for p in _example_files())
        self.filelist.sort()
        self.filelist.remove_duplicates()
        super().make_distribution()


setup(cmdclass={"build_py": _BuildWithExample, "sdist": _SdistWithExample})
