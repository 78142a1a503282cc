"""Corrections to moto, made on its own classes, where a rehearsal needs AWS's behaviour.

:meth:`Emulator.start <phasegate.engines.sandbox.emulator.Emulator.start>` applies them;
each is applied once per process, however often it is called.
"""

from __future__ import annotations

import json
from typing import Any

__all__: list[str] = []


def _over_tls(policy: str) -> str:
    """A bucket policy as S3 applies it to a request made over TLS: statements that only
    apply when ``aws:SecureTransport`` is false drop out (their other conditions kept)."""
    try:
        document = json.loads(policy)
    except ValueError:
        return policy
    statements = document.get("Statement")
    if not isinstance(statements, list):
        return policy
    kept = []
    for statement in statements:
        condition = statement.get("Condition") if isinstance(statement, dict) else None
        secure = (condition or {}).get("Bool", {}).get("aws:SecureTransport")
        if str(secure).lower() != "false":
            kept.append(statement)
    return json.dumps({**document, "Statement": kept})


def _reach_buckets_over_tls() -> None:
    """moto ignores policy conditions it cannot evaluate, so the usual TLS-only bucket
    policy ("deny when aws:SecureTransport is false") denies every request. The sandbox
    stands for HTTPS access, as every AWS SDK uses: judge policies accordingly."""
    from moto.s3.models import FakeBucket

    if getattr(FakeBucket.get_permission, "_phasegate_tls", False):
        return
    original = FakeBucket.get_permission

    def get_permission(self: Any, action: str, resource: str) -> Any:
        if self.policy is None:
            return original(self, action, resource)
        stored = self.policy
        try:
            self.policy = _over_tls(stored.decode()).encode()
            return original(self, action, resource)
        finally:
            self.policy = stored

    get_permission._phasegate_tls = True  # type: ignore[attr-defined]
    FakeBucket.get_permission = get_permission  # type: ignore[method-assign]


def _modify_user_data_as_sent() -> None:
    """ModifyInstanceAttribute's user data is a blob: the SDK base64-encodes the bytes it
    is given for the wire, and EC2 keeps those bytes. moto decodes the wire and then
    reads the bytes as base64 once more, refusing (or mangling) the user data the
    provider sends when it changes an instance's. Take the bytes as they are."""
    import base64

    from moto.core.types import Base64EncodedString
    from moto.ec2.responses import instances

    original = instances.parse_user_data
    if getattr(original, "_phasegate_blob", False):
        return

    def parse_user_data(value: Any) -> Any:
        if isinstance(value, bytes):
            return Base64EncodedString(base64.b64encode(value).decode("ascii"))
        return original(value)

    parse_user_data._phasegate_blob = True  # type: ignore[attr-defined]
    instances.parse_user_data = parse_user_data
