"""What every resource handler is: the base class, the cloud it acts on, its errors."""

from __future__ import annotations

import json
import secrets
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from phasegate.errors import aws_error_code as error_code

if TYPE_CHECKING:
    import boto3

__all__ = [
    "CloudContext",
    "Handler",
    "HandlerError",
    "check_json_input",
    "error_code",
    "int_or_none",
]


def int_or_none(value: Any) -> int | None:
    """An input that is an integer (not a bool, not unknown), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class HandlerError(Exception):
    """A resource operation failed, or its inputs are invalid, with a reason for the user."""


def check_json_input(inputs: dict[str, Any], key: str) -> None:
    """HandlerError unless ``inputs[key]``, when a non-empty string, is a JSON document."""
    value = inputs.get(key)
    if isinstance(value, str) and value:
        try:
            json.loads(value)
        except ValueError as exc:
            raise HandlerError(f"{key} is not valid JSON: {exc}") from None


@dataclass
class CloudContext:
    """The emulated cloud as handlers see it: boto3 clients and the sandbox's own store."""

    session: boto3.Session
    region: str
    account_id: str
    store: dict[str, Any] = field(default_factory=dict)
    make_client: Callable[[str, str], Any] | None = None
    """Where clients come from (the emulator's, shared by the process); else the session."""
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

    def validate(self, inputs: dict[str, Any]) -> None:
        """Raise HandlerError for inputs real AWS would reject. Default: nothing to check."""
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
