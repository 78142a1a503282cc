"""What the Pulumi CLI's engine events mean to phasegate: a step as a resource change,
and the policy findings and error diagnostics a run's failure is told by."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from phasegate.engines.base import UNKNOWN, Op, ResourceChange, StackOutputs, Violation

__all__ = ["INTERNAL_TYPES", "EventWatch", "change_from_metadata", "planned_outputs"]

_OPS = {
    "create": Op.CREATE,
    "update": Op.UPDATE,
    # A replacement is three steps (create-replacement, replace, delete-replaced): it is
    # reported once, by its "replace" step.
    "replace": Op.REPLACE,
    "delete": Op.DELETE,
    "import": Op.IMPORT,
    # A replacement by an imported or a read resource: reported once, as one.
    "import-replacement": Op.REPLACE,
    "read-replacement": Op.REPLACE,
    "same": Op.SAME,
    "read": Op.SAME,
    "refresh": Op.SAME,
}
INTERNAL_TYPES = ("pulumi:pulumi:Stack", "pulumi:providers:")
"""Resources of a stack's state that are Pulumi's bookkeeping, not the program's."""


def change_from_metadata(metadata: Any) -> ResourceChange | None:
    """A step's metadata (from an engine event) as a ResourceChange; None for internals.

    Only the operations a plan reports are mapped; the second half of a replacement
    (``delete-replaced``) and bookkeeping steps are folded away.
    """
    op = _OPS.get(str(getattr(metadata.op, "value", metadata.op)))
    type_ = str(metadata.type)
    if op is None or type_.startswith(INTERNAL_TYPES):
        return None
    name = str(metadata.urn).rsplit("::", 1)[-1]
    state = getattr(metadata, "new", None) or getattr(metadata, "old", None)
    return ResourceChange(
        op=op,
        type=type_,
        name=name,
        urn=str(metadata.urn),
        changed=tuple(metadata.diffs or ()),
        protected=bool(getattr(state, "protect", False)),
    )


_UNKNOWN_WIRE = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
"""How the CLI's events show a value only an apply can tell."""
_SIG = "4dabf18193072939515e22adb298388d"


def planned_outputs(event: Any) -> StackOutputs | None:
    """The stack's outputs as a preview's event for the stack resource shows them (None
    for any other event): what only an apply can tell as ``UNKNOWN``, as the sandbox
    plans them. A secret's value is not in a preview's events: it is unknown there."""
    found = getattr(event, "res_outputs_event", None)
    metadata = getattr(found, "metadata", None)
    if metadata is None or str(metadata.type) != "pulumi:pulumi:Stack" or metadata.new is None:
        return None
    raw = dict(metadata.new.outputs or {})
    secret = frozenset(k for k, v in raw.items() if _is_secret(v))
    return StackOutputs(values={k: _plain(v) for k, v in raw.items()}, secret=secret)


def _is_secret(value: Any) -> bool:
    if isinstance(value, dict):
        return value.get(_SIG) is not None or any(_is_secret(v) for v in value.values())
    if isinstance(value, list):
        return any(_is_secret(v) for v in value)
    return False


def _plain(value: Any) -> Any:
    if value == _UNKNOWN_WIRE:
        return UNKNOWN
    if isinstance(value, dict):
        if value.get(_SIG) is not None:
            return UNKNOWN
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class EventWatch:
    """An engine event sink that also keeps what the run's errors need: CrossGuard's
    policy findings, each naming rule, resource and reason, and the error diagnostics,
    as the resource and the provider's own message."""

    def __init__(self, inner: Callable[[Any], None] = lambda _: None) -> None:
        self.inner = inner
        self.findings: list[Violation] = []
        self.errors: list[str] = []
        """Error diagnostics of resources first, then the stack's own."""
        self._resource_errors = 0

    @property
    def mandatory(self) -> list[str]:
        """The mandatory findings, one line each: rule, resource and reason."""
        return [
            f"{v.rule}: {v.resource_type} '{v.resource_name}': {v.message}"
            for v in self.findings
            if v.enforcement == "mandatory"
        ]

    def __call__(self, event: Any) -> None:
        found = getattr(event, "policy_event", None)
        if found is not None:
            self.findings.append(_finding(found))
        diagnostic = getattr(event, "diagnostic_event", None)
        if diagnostic is not None and str(diagnostic.severity).lower() == "error":
            self._error(str(diagnostic.urn or ""), str(diagnostic.message or ""))
        self.inner(event)

    def _error(self, urn: str, message: str) -> None:
        lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
        if not lines:
            return
        missing = _MISSING_PLUGIN.search(message)
        if missing is not None:  # said of the provider resource: about the machine, not it
            self.errors.insert(
                0,
                f"the Pulumi {missing['kind']} plugin '{missing['name']}' "
                f"{missing['version']} is not installed and could not be downloaded; "
                f"install it with `{missing['command']}`",
            )
            self._resource_errors += 1
            return
        # A provider's exception arrives as its traceback: its last line says what failed.
        said = _EXCEPTION_LINE.sub("", lines[-1])
        parts = urn.split("::")  # urn:pulumi:STACK::PROJECT::[PARENT$]TYPE::NAME
        if len(parts) >= 4 and not parts[-2].endswith("pulumi:pulumi:Stack"):
            type_ = parts[-2].rsplit("$", 1)[-1]
            self.errors.insert(self._resource_errors, f"{parts[-1]} ({type_}): {said}")
            self._resource_errors += 1
        else:
            self.errors.append(said)


def _finding(event: Any) -> Violation:
    """A CrossGuard policy event as a finding. Its message is the rule's description, then
    the reason the rule gave (if any), in the CLI's colour markup."""
    lines = [line.strip() for line in _COLOURS.sub("", str(event.message)).splitlines()]
    lines = [line for line in lines if line]
    reason = " ".join(lines[1:]) or (lines[0] if lines else "")
    urn = str(event.resource_urn or "")
    parts = urn.split("::")  # urn:pulumi:STACK::PROJECT::[PARENT$]TYPE::NAME
    type_, name = (parts[-2].rsplit("$", 1)[-1], parts[-1]) if len(parts) >= 4 else ("", "")
    if not type_ or type_ == "pulumi:pulumi:Stack":  # a finding of the whole stack
        type_, name = "stack", parts[0].rsplit(":", 1)[-1] if urn else "the stack"
    level = str(event.enforcement_level).lower()
    return Violation(
        rule=str(event.policy_name),
        enforcement="mandatory" if level == "mandatory" else "advisory",
        resource_type=type_,
        resource_name=name,
        message=reason,
    )


_MISSING_PLUGIN = re.compile(
    r"Could not automatically download and install (?P<kind>\w+) plugin "
    r"'pulumi-\w+-(?P<name>[\w-]+)' at version (?P<version>v\S+), install the plugin using "
    r"`(?P<command>[^`]+)`"
)
"""The CLI's words for a provider plugin it has not and could not download."""

_COLOURS = re.compile(r"<\{%[^%]*%\}>")
"""The Pulumi CLI's colour markup (``<{%reset%}>``), left in event messages."""

_EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_][\w.]*(?:Error|Exception)): ")
