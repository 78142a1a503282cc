"""moto's whole state as bytes, behind the emulator's dump and load.

moto keeps every service's state in module-level ``BackendDict`` objects and has no
persistence of its own. :func:`dump` pickles the backends of the services it is given
as one object graph (their models point at each other: an ELBv2 load balancer holds
EC2 subnets) and :func:`load` puts them back, in this or another process. A few moto
objects do not pickle faithfully on their own; a pickler that knows them stands in
(never a global patch of moto):

* KMS keys hold ``cryptography`` private keys (every key, even a symmetric one): they
  travel as PKCS#8 DER.
* An S3 bucket's ``_VersionedKeyStore`` pickles only the newest version of each key
  (its ``items()`` hides older ones): it travels as its raw ``{key: [versions]}``.
* An SQS queue holds a ``threading.Condition`` that long-polling receivers wait on: it
  travels as nothing and comes back a fresh one (no receiver waits across a dump).
* IAM's AWS-managed policies (about 1,600 per account, from moto's bundled data)
  travel as names where they are still as moto made them: ``iam_policies``.
* A lock (ECR's backend holds one) travels as a new, free lock: it guards this process.
* Secret values (a Secrets Manager secret's, an SSM parameter's) travel sealed under the
  environment's sealer when the dump is given one: ``cloud_secrets``.
* S3 object bodies, given a blob store, travel beside the dump as blobs, and a large
  bucket's keys as a segment pickled again only when the bucket changed: ``s3_snapshot``.
* SSM's parameters sit in a ``defaultdict`` subclass whose constructor takes more than
  a default factory, and its tags in ``defaultdict`` objects made by a lambda: they travel as
  their contents and are made again on load.

A dump is a pickle: load only dumps this program wrote (the sandbox's store seals each
one it writes with the user's key, and checks the seal before loading one: ``cloud_seal``).
It names the functions that rebuild the objects above by module and name; dumps written
before this module existed name ``emulator``, and dumps written before ``iam_policies``
name this module for their policy versions: both keep those names importable.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import importlib
import io
import pickle
import sys
import threading
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, get_args

from phasegate.engines.sandbox import cloud_secrets, iam_policies
from phasegate.engines.sandbox.bodies import BlobError

# Dumps written before ``iam_policies`` name this module for it.
from phasegate.engines.sandbox.iam_policies import _rebuild_policy_version  # noqa: F401

# Dumps name the functions that rebuild their objects by module: S3's moved.
from phasegate.engines.sandbox.s3_snapshot import (  # noqa: F401
    _rebuild_versioned_store,
    _reduce_versioned_store,
)

if TYPE_CHECKING:
    from moto.core.base_backend import BackendDict

    from phasegate.engines.sandbox.bodies import BlobStore
    from phasegate.engines.sandbox.s3_snapshot import BodyPickling
    from phasegate.engines.sandbox.sealing import Sealer

__all__ = ["dump", "load", "reset"]

_FORMAT = 2
_READS = (1, 2)
"""Format 2 adds where the object bodies kept beside the dump are."""
_PROTOCOL = 5


def dump(
    names: Iterable[str], sealer: Sealer | None = None, blobs: BlobStore | None = None
) -> bytes:
    """The state of the moto services ``names``, as bytes for :func:`load`; the secret
    values in it sealed with ``sealer``, if given; S3 object bodies written to ``blobs``
    and referenced, if given (else they travel inside)."""
    import moto
    from moto.backends import get_backend
    from moto.core.base_backend import backend_lock

    own = _backend_dict_fields()
    dumped: dict[str, BackendDict[Any]] = {
        name: get_backend(name)  # type: ignore[call-overload]
        for name in names
    }
    services: dict[str, dict[str, Any]] = {}
    bodies = _body_pickling(blobs, dumped, sealer) if blobs is not None else None
    # The lock keeps moto from creating backends while we copy the dicts.
    with backend_lock:
        for name, backends in dumped.items():
            services[name] = {
                "accounts": dict(dict.items(backends)),
                # S3BackendDict keeps the bucket-name -> account map beside the dict.
                "extra": {k: v for k, v in vars(backends).items() if k not in own},
            }
        # One pickle for all services: only a shared graph keeps the EC2 subnet an
        # ELBv2 load balancer holds the very subnet EC2 has after a load.
        state = _dumps(services, dumped.values(), sealer, bodies)
        if bodies is not None:
            bodies.settle()
    # IAM's managed policies make most of it and shrink ~5x at the fastest level.
    state = zlib.compress(state, 1)
    envelope = {
        "format": _FORMAT,
        "moto": moto.__version__,
        "services": tuple(services),
        "sha256": hashlib.sha256(state).hexdigest(),
        "state": state,
        "bodies": bodies.blobs.where(bodies.referenced) if bodies is not None else {},
        "segments": tuple(sorted(bodies.segments)) if bodies is not None else (),
    }
    return pickle.dumps(envelope, protocol=_PROTOCOL)


def _body_pickling(
    blobs: BlobStore, dumped: dict[str, BackendDict[Any]], sealer: Sealer | None
) -> BodyPickling:
    from phasegate.engines.sandbox.s3_snapshot import BodyPickling

    buckets: dict[int, str] = {}
    s3 = dumped.get("s3")
    for account_backends in dict.values(s3) if s3 is not None else ():
        for backend in dict.values(account_backends):
            for bucket in backend.buckets.values():
                buckets[id(bucket.keys)] = bucket.name
    return BodyPickling(
        blobs, buckets, lambda obj, inner: _dumps(obj, dumped.values(), sealer, inner)
    )


def load(blob: bytes, sealer: Sealer | None = None, blobs: BlobStore | None = None) -> None:
    """Replace the whole of moto's state with a dump; its sealed values opened with
    ``sealer`` (a dump that holds some does not load without it), its object bodies
    from ``blobs`` (read when asked; every blob it names checked to be there first).

    A dump that is not one (damaged, another format or moto version) raises
    ValueError before anything is replaced. Should a sound-looking dump still fail
    to decode, moto is left empty and ValueError raised.
    """
    names, state, bodies = _read_envelope(blob)
    from moto.backends import get_backend
    from moto.core.base_backend import backend_lock

    from phasegate.engines.sandbox import s3_snapshot

    targets: dict[str, BackendDict[Any]] = {}
    for name in names:
        try:
            targets[name] = get_backend(name)  # type: ignore[call-overload]
        except Exception as exc:
            raise ValueError(f"emulator dump holds unknown service {name!r}") from exc
    if blobs is not None:
        blobs.adopt(bodies)  # BlobError, naming it, for a blob missing: nothing replaced
        blobs.forget_segments()
    elif bodies:
        raise ValueError("emulator dump keeps object bodies beside it; no blob store given")
    with backend_lock:
        # Reset before decoding: references to services outside the dump resolve
        # to their live backends, which must be the fresh ones.
        _reset_all()
        with cloud_secrets.opening(sealer), s3_snapshot.loading(blobs):
            services = _decode(state)
        for name, backends in targets.items():
            payload = services.get(name, {})
            accounts = payload.get("accounts", {})
            for account_id, account_backends in accounts.items():
                dict.__setitem__(backends, account_id, account_backends)
            for attr, value in payload.get("extra", {}).items():
                setattr(backends, attr, value)
            # moto resets only the BackendDicts it has seen hand out an account.
            if accounts and backends not in _registry():
                _registry().append(backends)


def reset() -> None:
    """Empty moto (every service, as a fresh account)."""
    from moto.core.base_backend import backend_lock

    with backend_lock:
        _reset_all()


# --- pickling -------------------------------------------------------------------------


class _StatePickler(pickle.Pickler):
    """A pickler for moto state: stands in for the objects listed in the module doc.

    Backends of services outside the dump, and the module-level BackendDicts
    themselves, are pickled as where to find them, never copied.
    """

    def __init__(
        self,
        file: io.BytesIO,
        dumped: Iterable[Any],
        sealer: Sealer | None,
        bodies: BodyPickling | None = None,
    ) -> None:
        super().__init__(file, protocol=_PROTOCOL)
        from cryptography import x509
        from cryptography.hazmat.primitives.asymmetric.types import (
            PrivateKeyTypes,
            PublicKeyTypes,
        )
        from moto.iam.models import IAMBackend, PolicyVersion
        from moto.s3.utils import _VersionedKeyStore
        from moto.ssm.models import ParameterDict, SimpleSystemManagerBackend

        self._private: tuple[type, ...] = get_args(PrivateKeyTypes)
        self._public: tuple[type, ...] = get_args(PublicKeyTypes)
        self._certificate = x509.Certificate
        self._exact: dict[type, Callable[[Any], Any]] = {
            _VersionedKeyStore: _reduce_versioned_store,
            IAMBackend: iam_policies.reduce_iam_backend,
            PolicyVersion: iam_policies.reduce_policy_version,
            ParameterDict: _reduce_parameter_dict,
            SimpleSystemManagerBackend: _reduce_ssm_backend,
            type(threading.RLock()): lambda _: (threading.RLock, ()),
            type(threading.Lock()): lambda _: (threading.Lock, ()),
            **(cloud_secrets.reductions(sealer) if sealer is not None else {}),
            threading.Condition: _reduce_condition,
            **(bodies.reductions() if bodies is not None else {}),
        }
        # id -> (object, its BackendDict, account, region); the object is kept to
        # check identity, as ids of dead objects get reused.
        self._live: dict[int, tuple[object, Any, str | None, str | None]] = {}
        dumped_ids = {id(backends) for backends in dumped}
        for backends in [*_registry(), *dumped]:
            self._live[id(backends)] = (backends, backends, None, None)
            if id(backends) in dumped_ids:
                continue
            for account_id, account_backends in dict.items(backends):
                self._live[id(account_backends)] = (account_backends, backends, account_id, None)
                for region, backend in dict.items(account_backends):
                    self._live[id(backend)] = (backend, backends, account_id, region)

    def reducer_override(self, obj: Any) -> Any:
        reduce = self._exact.get(type(obj))
        if reduce is not None:
            return reduce(obj)
        if type(obj).__module__.startswith("cryptography"):
            return _reduce_crypto(obj, self._private, self._public, self._certificate)
        live = self._live.get(id(obj))
        if live is not None and live[0] is obj:
            _, backends, account_id, region = live
            return (_live, (*_locate(backends), account_id, region))
        return NotImplemented


def _dumps(
    obj: object, dumped: Iterable[Any], sealer: Sealer | None, bodies: BodyPickling | None = None
) -> bytes:
    buffer = io.BytesIO()
    _StatePickler(buffer, dumped, sealer, bodies).dump(obj)
    return buffer.getvalue()


def _decode(state: bytes) -> dict[str, dict[str, Any]]:
    """The services of a dump's state; ValueError (and an empty cloud) if it fails."""
    # Thousands of small objects: collections part-way only rescan them.
    collecting = gc.isenabled()
    gc.disable()
    try:
        services = pickle.loads(state)
        if not isinstance(services, dict):
            raise TypeError(f"state is a {type(services).__name__}, not a dict")
        return services
    except BlobError:
        _discard_decoded()
        raise  # names the blob
    except Exception as exc:
        _discard_decoded()
        raise ValueError(
            f"emulator dump does not load ({type(exc).__name__}: {exc}); "
            "the emulated cloud is now empty"
        ) from exc
    finally:
        if collecting:
            gc.enable()


class _EnvelopeUnpickler(pickle.Unpickler):
    """The outer layer is plain data: refuse any class or function in it."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"unexpected object {module}.{name}")


def _read_envelope(
    blob: bytes,
) -> tuple[tuple[str, ...], bytes, dict[str, tuple[str, int, int]]]:
    """The service names, state and where its bodies are of a dump; ValueError if it is
    not one we can load."""
    try:
        envelope = _EnvelopeUnpickler(io.BytesIO(blob)).load()
    except Exception as exc:
        raise ValueError(f"not an emulator dump ({type(exc).__name__}: {exc})") from exc
    if not isinstance(envelope, dict) or "format" not in envelope:
        raise ValueError("not an emulator dump (no format marker)")
    if envelope["format"] not in _READS:
        raise ValueError(
            f"emulator dump format {envelope['format']!r} is not supported "
            f"(this phasegate reads formats {', '.join(map(str, _READS))}); reset the sandbox"
        )
    import moto

    if envelope.get("moto") != moto.__version__:
        raise ValueError(
            f"emulator dump was written by moto {envelope.get('moto')}, this is moto "
            f"{moto.__version__}; its objects do not carry over, reset the sandbox"
        )
    names, state = envelope.get("services"), envelope.get("state")
    bodies = envelope.get("bodies", {})
    if not isinstance(bodies, dict) or not all(
        isinstance(w, tuple) and len(w) == 3 for w in bodies.values()
    ):
        raise ValueError("emulator dump is damaged (its record of object bodies)")
    if (
        not isinstance(names, tuple)
        or not all(isinstance(name, str) for name in names)
        or not isinstance(state, bytes)
        or hashlib.sha256(state).hexdigest() != envelope.get("sha256")
    ):
        raise ValueError("emulator dump is damaged (its checksum does not match)")
    try:
        return names, zlib.decompress(state), bodies
    except zlib.error as exc:
        raise ValueError(f"emulator dump is damaged ({exc})") from exc


def _reset_all() -> None:
    """moto's BackendDict.reset() and reset_model_data(), without wasted re-inits."""
    from moto.core.base_backend import BaseBackend
    from moto.core.model_instances import reset_model_data

    for backends in _registry():
        for account_backends in dict.values(backends):
            for backend in dict.values(account_backends):
                # The base reset only re-runs __init__ on a backend dropped right after
                # (IAM's parses ~1,600 managed policies); overrides release resources
                # (S3 closes the temporary files of its objects).
                if type(backend).reset is not BaseBackend.reset:
                    backend.reset()
        dict.clear(backends)
    _registry().clear()
    # Forget the dropped models, or moto's tracking lists grow with every load.
    reset_model_data()


def _discard_decoded() -> None:
    """Undo a load that failed part-way: close the S3 objects it made, empty the cloud."""
    from moto.s3.models import FakeKey, FakeMultipart

    # Everything tracked since the reset that preceded decoding came from the dump.
    for cls in (FakeKey, FakeMultipart):
        for obj in list(cls.instances_tracked):  # type: ignore[union-attr]
            obj.dispose()
    _reset_all()


def _registry() -> list[Any]:
    """moto's list of the BackendDicts holding state (what its reset walks)."""
    from moto.core.base_backend import BackendDict

    return BackendDict._instances  # type: ignore[misc]


@functools.cache
def _backend_dict_fields() -> frozenset[str]:
    """The attributes every BackendDict has; anything beyond them is service state."""
    from moto.core.base_backend import BackendDict, BaseBackend

    return frozenset(vars(BackendDict(BaseBackend, "probe")))


def _locate(backends: object) -> tuple[str, str]:
    """The module and name under which moto keeps a BackendDict."""
    owner = getattr(getattr(backends, "backend", None), "__module__", "")
    for module_name in [owner, *sorted(m for m in sys.modules if m.startswith("moto."))]:
        module = sys.modules.get(module_name)
        if module is None:
            continue
        for attr, value in list(vars(module).items()):
            if value is backends:
                return module_name, attr
    raise pickle.PicklingError(f"cannot find where moto keeps {backends!r:.80}")


def _live(module: str, attr: str, account_id: str | None, region: str | None) -> Any:
    """A BackendDict, account or region backend as it is in this process now."""
    target = getattr(importlib.import_module(module), attr)
    if account_id is not None:
        target = target[account_id]
        if region is not None:
            target = target[region]
    return target


# SQS -----------------------------------------------------------------------------------


def _reduce_condition(condition: threading.Condition) -> tuple[Any, ...]:
    return (threading.Condition, ())


# SSM ------------------------------------------------------------------------------------


def _reduce_parameter_dict(parameters: Any) -> tuple[Any, ...]:
    # Raw lists of versions: the dict's own lookups load moto's /aws/service/ defaults.
    return (
        _rebuild_parameter_dict,
        (type(parameters), dict(dict.items(parameters)), vars(parameters)),
    )


def _rebuild_parameter_dict(cls: type, raw: dict[str, list[Any]], attrs: dict[str, Any]) -> Any:
    parameters = cls(attrs["account_id"], attrs["region_name"])
    dict.update(parameters, raw)
    vars(parameters).update(attrs)
    return parameters


def _tags_of_kind() -> defaultdict[str, dict[str, str]]:
    """What SSM's tags by resource type hold: tags by resource id (a named function,
    where moto has a lambda that pickle cannot name)."""
    return defaultdict(dict)


def _reduce_ssm_backend(backend: Any) -> Any:
    state = dict(vars(backend))
    tags = state.get("_resource_tags")
    if tags is not None:
        state["_resource_tags"] = defaultdict(
            _tags_of_kind, {kind: defaultdict(dict, by_id) for kind, by_id in tags.items()}
        )
    return (iam_policies._new_backend, (type(backend),), state)


# KMS (and any other cryptography key or certificate) -----------------------------------


def _reduce_crypto(
    obj: Any,
    private: tuple[type, ...],
    public: tuple[type, ...],
    certificate: type,
) -> Any:
    from cryptography.hazmat.primitives import serialization

    key: Any = obj  # isinstance() below would narrow obj to a bare object
    if isinstance(obj, private):
        der = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return (_load_private_key, (der,))
    if isinstance(obj, public):
        der = key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return (_load_public_key, (der,))
    if isinstance(obj, certificate):
        return (_load_certificate, (key.public_bytes(serialization.Encoding.DER),))
    return NotImplemented


def _load_private_key(der: bytes) -> Any:
    from cryptography.hazmat.primitives.serialization import load_der_private_key

    # The key was valid when dumped; re-checking an RSA key costs ~50 ms per KMS key.
    return load_der_private_key(der, password=None, unsafe_skip_rsa_key_validation=True)


def _load_public_key(der: bytes) -> Any:
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    return load_der_public_key(der)


def _load_certificate(der: bytes) -> Any:
    from cryptography.x509 import load_der_x509_certificate

    return load_der_x509_certificate(der)
