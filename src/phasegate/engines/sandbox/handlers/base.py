"""What every resource handler is: the base class, the cloud it acts on, its errors."""

from __future__ import annotations

import datetime
import json
import re
import secrets
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from phasegate.errors import aws_error_code as error_code

if TYPE_CHECKING:
    import boto3

__all__ = [
    "UNIQUE_SUFFIX",
    "CloudContext",
    "Gone",
    "Handler",
    "HandlerError",
    "ProviderDiff",
    "RunContext",
    "check_json_input",
    "check_name",
    "emulator_record",
    "error_code",
    "generated_name",
    "int_or_none",
    "json_document",
    "json_text",
    "nested_shape",
    "prefixed_name",
    "resource_exists",
    "retag",
]


def int_or_none(value: Any) -> int | None:
    """An input that is an integer (not a bool, not unknown), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _unset(value: Any) -> bool:
    """An input left at its default: absent from the program, None or empty."""
    return value is None or (isinstance(value, (str, list, dict)) and not value)


class HandlerError(Exception):
    """A resource operation failed, or its inputs are invalid, with a reason for the user."""


def json_document(text: str, key: str) -> Any:
    """``text``, the input ``key``, read as JSON; HandlerError where it is not JSON."""
    try:
        return json.loads(text)
    except ValueError as exc:
        raise HandlerError(f"{key} is not valid JSON: {exc}") from None


def check_json_input(inputs: dict[str, Any], key: str) -> None:
    """HandlerError unless ``inputs[key]``, when a non-empty string, is a JSON document."""
    value = inputs.get(key)
    if isinstance(value, str) and value:
        json_document(value, key)


def json_text(value: Any) -> str:
    """A policy or other JSON input as the API takes it: a string."""
    return value if isinstance(value, str) else json.dumps(value)


UNIQUE_SUFFIX = 26
"""Characters the provider adds to a name prefix (``namePrefix``, ``bucketPrefix``): a UTC
timestamp to the 1/10,000 s (18 digits) and 8 hex digits (the provider's counter; random
here)."""


def prefixed_name(prefix: str) -> str:
    """A name unique to this moment, as the provider makes one from a prefix."""
    now = datetime.datetime.now(datetime.UTC)
    return f"{prefix}{now:%Y%m%d%H%M%S}{now.microsecond // 100:04d}{secrets.token_hex(4)}"


def generated_name(handler: Handler, logical: str, inputs: dict[str, Any], max_len: int) -> str:
    """The physical name: ``name`` as given, else ``namePrefix`` and the provider's unique
    suffix, else the logical name and a random suffix (Pulumi's auto-naming)."""
    if inputs.get("name"):
        return str(inputs["name"])
    if inputs.get("namePrefix"):
        return prefixed_name(str(inputs["namePrefix"]))
    return handler.physical_name(logical, {}, max_len=max_len)


def check_name(inputs: dict[str, Any], pattern: re.Pattern[str], max_len: int, what: str) -> None:
    """HandlerError unless ``name``, or ``namePrefix`` with the provider's unique suffix,
    is a name of ``what`` AWS takes (``pattern``, at most ``max_len`` characters)."""
    name, prefix = inputs.get("name"), inputs.get("namePrefix")
    if isinstance(name, str) and (not pattern.match(name) or len(name) > max_len):
        raise HandlerError(f"name '{name}' is not a valid {what} name")
    if isinstance(prefix, str) and (
        not pattern.match(f"{prefix}x") or len(prefix) + UNIQUE_SUFFIX > max_len
    ):
        raise HandlerError(
            f"namePrefix '{prefix}' does not make a valid {what} name "
            f"({UNIQUE_SUFFIX} characters are added; {max_len} at most)"
        )


def retag(
    old: dict[str, Any] | None,
    new: dict[str, Any] | None,
    tag: Callable[[list[dict[str, str]]], Any],
    untag: Callable[[list[str]], Any],
) -> None:
    """Bring a resource's tags from ``old`` to ``new``: the keys dropped are untagged, then
    the keys added or changed are tagged (``tag`` is given them as AWS lists tags)."""
    old, new = old or {}, new or {}
    gone = sorted(k for k in old if k not in new)
    if gone:
        untag(gone)
    changed = {k: v for k, v in new.items() if old.get(k) != v}
    if changed:
        tag(Handler.tag_list(changed))


Gone = str | tuple[str, ...] | Callable[[Exception], bool]
"""How a describe or get says the resource is missing: its error code (one of them), or
a test of the error."""


def resource_exists(look: Callable[[], Any], gone: Gone) -> bool:
    """Whether ``look``, a describe or get of one resource, finds it: False where it fails
    as ``gone`` says a missing resource does."""
    try:
        look()
    except Exception as exc:
        if callable(gone):
            missing = gone(exc)
        else:
            missing = error_code(exc) in ((gone,) if isinstance(gone, str) else gone)
        if missing:
            return False
        raise
    return True


def emulator_record(
    find: Callable[[str, str, str], Any], ctx: CloudContext, name: str, what: str
) -> Any:
    """The emulator's own record of the ``what`` called ``name``, as ``find`` (one of the
    emulator's lookups) gives it, for a change its API cannot make; HandlerError where
    there is none."""
    try:
        return find(ctx.account_id, ctx.region, name)
    except KeyError:
        raise HandlerError(f"{what} {name} does not exist") from None


@dataclass(frozen=True)
class RunContext:
    """What the run's program brings besides its resources: where its modules are (a
    provider it defines, pickled by reference to them, is loaded from there) and the
    stack config it runs with, as the SDK holds it (full keys, string values)."""

    project: str = "project"
    program: Path | None = None
    config: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ProviderDiff:
    """What a resource's own provider says of the change from its old outputs to its new
    inputs, as a Pulumi provider's Diff does."""

    changes: bool | None
    """None: the provider cannot tell, and the old and new inputs are compared."""
    replaces: tuple[str, ...] = ()
    """Properties whose change forces a replacement."""
    delete_before_replace: bool = False


@dataclass
class CloudContext:
    """The emulated cloud as handlers see it: boto3 clients and the sandbox's own store."""

    session: boto3.Session
    region: str
    account_id: str
    store: dict[str, Any] = field(default_factory=dict)
    make_client: Callable[[str, str], Any] | None = None
    """Where clients come from (the emulator's, shared by the process); else the session."""
    run: RunContext = field(default_factory=RunContext)
    _clients: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        if service not in self._clients:
            if self.make_client is not None:
                self._clients[service] = self.make_client(service, self.region)
            else:
                self._clients[service] = self.session.client(service, region_name=self.region)
        return self._clients[service]

    def kept(self, kind: str) -> dict[str, Any]:
        """The sandbox's own records of a kind the emulator lacks."""
        bucket: dict[str, Any] = self.store.setdefault(kind, {})
        return bucket


PLACED = frozenset({"region"})
"""Inputs every handler honours because the deployment does: ``region`` is where it makes,
reads and deletes the resource (one emulator, every region)."""


Shape = Mapping[str, "Shape | None"]
"""Declared inputs as a tree: each key to its declared nested keys, or to None where
its value is carried whole."""


@cache
def nested_shape(declared: frozenset[str]) -> Shape:
    """``emulates`` as a tree: ``{"a.b", "a.c.d", "e"}`` is ``{a: {b, c: {d}}, e}``. A
    head with dotted entries is walked even where it is also declared bare."""
    tree: dict[str, Any] = {}
    for path in declared:
        node = tree
        *heads, last = path.split(".")
        for head in heads:
            child = node.get(head)
            if child is None:
                child = node[head] = {}
            node = child
        node.setdefault(last, None)
    return tree


def _walk(shape: Shape, value: Any, prefix: str, dropped: set[str]) -> None:
    """Add to ``dropped`` the dotted path of each key set in ``value`` (an object, or a
    list of them) that ``shape`` does not declare."""
    if isinstance(value, list):
        for item in value:
            _walk(shape, item, prefix, dropped)
        return
    if not isinstance(value, Mapping):
        return  # not known until apply: the apply's own check walks it
    for key, nested in value.items():
        if _unset(nested):
            continue
        path = f"{prefix}{key}"
        if key not in shape:
            dropped.add(path)
        elif (inner := shape[key]) is not None:
            _walk(inner, nested, f"{path}.", dropped)


class Handler(ABC):
    """How one resource type is realised in the emulated cloud.

    Outputs are the inputs plus what only the cloud can tell (``computed``), as with
    the Pulumi providers.
    """

    type: ClassVar[str]
    replace_on: ClassVar[frozenset[str]] = frozenset()
    """Input properties whose change forces a replacement; ``a.b`` names a nested one."""
    computed: ClassVar[tuple[str, ...]] = ()
    """Outputs unknown until the resource exists (shown as known after apply)."""
    changed_by_update: ClassVar[tuple[str, ...]] = ()
    """Outputs an in-place update changes (a new version number): unknown in its plan."""
    name_key: ClassVar[str | None] = None
    """Input that holds the physical name; auto-named from the logical name if absent."""
    delete_before_replace: ClassVar[bool] = False
    """True where the replacement would collide with the original (same identity)."""
    emulated: ClassVar[bool] = False
    """True where the sandbox keeps the resource itself because the emulator lacks it."""
    emulates: ClassVar[frozenset[str]] = frozenset()
    """Input properties (wire names) the handler realises in the emulated cloud. Any
    other input a program sets is refused in the plan: a rehearsal that dropped it
    would pass for something it never tried.

    A dotted path names a nested key: ``metadataOptions.httpTokens``; under a list it
    holds for each item (``ingress.fromPort``). A name with no dotted entries under it
    is carried whole (a document, tags, a list of ids); once a head has dotted entries,
    only those of its nested keys are let through, the head itself implied."""
    required: ClassVar[frozenset[str]] = frozenset()
    """Inputs the resource cannot be made without, as the provider's schema says. One
    whose value is unknown until apply (another resource's output) counts as given."""
    emulates_every_input: ClassVar[bool] = False
    """True where every input is kept or handed on whole (a manifest, a dynamic
    provider's inputs), so none can be dropped."""

    def unemulated(self, inputs: Mapping[str, Any]) -> list[str]:
        """The inputs set (not absent, None or empty) that the handler would drop, nested
        ones by their dotted path (``metadataOptions.instanceMetadataTags``; a list's
        items without an index: ``ingress.ipv6CidrBlocks``)."""
        if self.emulates_every_input:
            return []
        dropped: set[str] = set()
        _walk(nested_shape(self.emulates | PLACED), inputs, "", dropped)
        return sorted(dropped)

    def carries(self, path: str) -> bool:
        """Whether the input at ``path`` (``a`` or ``a.b``) is let through: declared, or
        under a head carried whole."""
        if self.emulates_every_input:
            return True
        shape: Shape | None = nested_shape(self.emulates | PLACED)
        for key in path.split("."):
            if shape is None:
                return True
            if key not in shape:
                return False
            shape = shape[key]
        return True

    def missing(self, inputs: Mapping[str, Any]) -> list[str]:
        """The required inputs the program does not give."""
        return sorted(k for k in self.required if inputs.get(k) is None)

    def validate(self, inputs: dict[str, Any]) -> None:
        """Raise HandlerError for inputs real AWS would reject (given only the inputs
        known at plan time). Default: nothing to check."""
        return None

    def check(
        self, run: RunContext, old: dict[str, Any] | None, new: dict[str, Any]
    ) -> dict[str, Any]:
        """The inputs to use for the declared ``new`` (``old``: the recorded ones, None for
        a create); raise HandlerError for what the provider rejects. Default: ``new``."""
        return new

    def diff(
        self, run: RunContext, id_: str, old_outputs: dict[str, Any], new: dict[str, Any]
    ) -> ProviderDiff | None:
        """The resource's own diff of its known inputs against its recorded outputs.
        Default None: the generic diff decides, from the inputs and ``replace_on``."""
        return None

    @abstractmethod
    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        """Create the resource; returns its physical id and outputs."""

    def update(
        self, ctx: CloudContext, id_: str, old: dict[str, Any], new: dict[str, Any], outputs: dict
    ) -> dict[str, Any]:
        raise HandlerError(f"{self.type} cannot be updated in place")

    @abstractmethod
    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        """Delete the resource."""

    @abstractmethod
    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        """Whether the resource is in the cloud (refresh and inventory)."""

    # -- helpers -------------------------------------------------------------------------

    def updated(self, new: dict[str, Any], outputs: dict[str, Any]) -> dict[str, Any]:
        """Outputs after an in-place update: the new inputs and the computed values kept.

        Inputs the update dropped do not linger, as they would in ``{**outputs, **new}``.
        """
        kept = {k: v for k, v in outputs.items() if k in self.computed and k not in new}
        return {**new, **kept}

    def physical_name(self, name: str, inputs: dict[str, Any], max_len: int = 63) -> str:
        given = inputs.get(self.name_key) if self.name_key else None
        if given:
            return str(given)
        return f"{name[: max_len - 8]}-{secrets.token_hex(4)[:7]}"

    @staticmethod
    def tag_list(tags: dict[str, str] | None) -> list[dict[str, str]]:
        return [{"Key": k, "Value": str(v)} for k, v in sorted((tags or {}).items())]
