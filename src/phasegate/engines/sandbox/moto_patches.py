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


def _keep_queue_policies() -> None:
    """moto drops an SQS queue's policy on every SetQueueAttributes that does not name
    it, so changing a queue's visibility timeout would take away the access its queue
    policy grants. SQS changes only the attributes a request names: so does the queue."""
    from moto.sqs.models import Queue

    if getattr(Queue._set_attributes, "_phasegate_keeps_policy", False):
        return
    original = Queue._set_attributes

    def _set_attributes(self: Any, attributes: dict[str, Any], now: float | None = None) -> None:
        kept = getattr(self, "policy", None)
        original(self, attributes, now)
        if "Policy" not in attributes:
            self.policy = kept

    _set_attributes._phasegate_keeps_policy = True  # type: ignore[attr-defined]
    Queue._set_attributes = _set_attributes  # type: ignore[method-assign]
