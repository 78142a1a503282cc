"""Secret values in the emulated cloud's snapshot: sealed there as in the checkpoint.

A Secrets Manager secret's values and an SSM parameter's value sit in moto's objects as
plain text, and the snapshot that keeps the cloud between runs is a pickle sealed against
tampering, not encrypted. So :mod:`snapshot`'s pickler hands those objects to
:func:`reductions` when it is given the environment's :class:`~phasegate.engines.sandbox.
sealing.Sealer`: each of their fields that spells a secret of the run travels sealed (the
checkpoint's own AES-GCM, under the key beside it), and is opened again on load, within
:func:`opening`. A value that is no secret (an ``insecureValue``) travels as it is.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from phasegate.engines.sandbox.sealing import Sealer

__all__ = ["opening", "reductions"]

_OPENER: ContextVar[Sealer | None] = ContextVar("phasegate_cloud_opener", default=None)


def _fields() -> dict[type, tuple[str, ...]]:
    """The moto classes that hold secret values, and the fields that hold them."""
    from moto.secretsmanager.models import FakeSecret
    from moto.ssm.models import Parameter

    return {
        FakeSecret: ("secret_string", "secret_binary", "versions"),
        Parameter: ("value",),
    }


def reductions(sealer: Sealer) -> dict[type, Callable[[Any], Any]]:
    """Pickle reductions, by exact type, that seal the secret fields of moto's objects."""
    return {cls: functools.partial(_reduce, sealer, fields) for cls, fields in _fields().items()}


@contextlib.contextmanager
def opening(sealer: Sealer | None) -> Iterator[None]:
    """Within: sealed fields of the dump being loaded are opened with ``sealer``."""
    token = _OPENER.set(sealer)
    try:
        yield
    finally:
        _OPENER.reset(token)


def _reduce(sealer: Sealer, fields: tuple[str, ...], obj: Any) -> Any:
    state = dict(vars(obj))
    sealed = {f: sealer.seal(state[f]) for f in fields if f in state}
    if all(sealed[f] == state[f] for f in sealed):
        return NotImplemented  # nothing secret: pickled as it is
    state.update(sealed)
    return (_rebuild, (type(obj), state, tuple(sealed)))


def _rebuild(cls: type[Any], state: dict[str, Any], fields: tuple[str, ...]) -> Any:
    opener = _OPENER.get()
    if opener is None:
        raise ValueError("it holds sealed secret values, and no key was given to open them")
    obj = cast(Any, cls).__new__(cls)  # as pickle makes it: moto tracks its models in __new__
    vars(obj).update(state)
    for name in fields:
        setattr(obj, name, opener.open(state[name]))
    return obj
