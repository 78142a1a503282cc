"""What the sandbox emulates, written out from its handlers for the README: every
resource type with the inputs its handler carries to the emulated cloud (any other input
a program sets is refused in the plan by name), and the data sources it answers.

``python -m phasegate.engines.sandbox.catalog README.md`` rewrites the README's part
between the two markers; a test fails while the README says something else.
"""

from __future__ import annotations

import sys
from pathlib import Path

from phasegate.engines.sandbox.functions import ANSWERED
from phasegate.engines.sandbox.handlers import REGISTRY, handler_for
from phasegate.engines.sandbox.handlers.base import PLACED
from phasegate.engines.sandbox.lookups import READ

__all__ = ["BEGIN", "END", "markdown", "rewrite"]

BEGIN = "<!-- sandbox-catalog: begin (written by python -m phasegate.engines.sandbox.catalog) -->"
END = "<!-- sandbox-catalog: end -->"


def _names(names: frozenset[str]) -> str:
    return ", ".join(f"`{n}`" for n in sorted(names)) or "none"


def markdown() -> str:
    """The catalog as Markdown: a table of resource types, then the data sources."""
    handler_for("aws:s3/bucket:Bucket")  # fills the registry
    lines = [
        f"Every type also takes {_names(PLACED)} (where it is made: one emulator, every "
        "region). Types not listed, and inputs not listed for their type, are refused in "
        "the plan by name.",
        "",
        "| Type | Inputs emulated | A change replaces it |",
        "| --- | --- | --- |",
    ]
    for token, handler in sorted(REGISTRY.items()):
        emulated = "every input" if handler.emulates_every_input else _names(handler.emulates)
        # What it names but refuses is not a change a program can make.
        replacing = frozenset(r for r in handler.replace_on if handler.carries(r))
        replaces = _names(replacing) if replacing else ""
        lines.append(f"| `{token}` | {emulated} | {replaces} |")
    lines.append(
        "| `kubernetes:*` (any object) | every input (kept as the manifest the cluster "
        "would get) | |"
    )
    lines += ["", "Data sources answered, on a plan before any apply as after:", ""]
    lines += [f"- `{token}`" for token in sorted(ANSWERED)]
    lines += [
        "",
        "Lookups of the emulated cloud, on a plan before any apply as after (a lookup "
        "of one thing that finds none, or several, fails the plan, as with the provider):",
        "",
    ]
    lines += [f"- `{token}`" for token in sorted(READ)]
    return "\n".join(lines) + "\n"


def rewrite(text: str) -> str:
    """``text`` (the README) with its catalog part written afresh."""
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[:start] + "\n" + markdown() + text[end:]


if __name__ == "__main__":
    readme = Path(sys.argv[1])
    readme.write_text(rewrite(readme.read_text()))
