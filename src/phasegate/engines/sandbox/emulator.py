"""The embedded AWS emulator: moto in this process, its whole state as bytes.

moto keeps every service's state in module-level ``BackendDict`` objects and has no
persistence of its own. :meth:`Emulator.dump` pickles the backends of :data:`SERVICES`
as one object graph (their models point at each other: an ELBv2 load balancer holds
EC2 subnets) and :meth:`Emulator.load` puts them back, in this or another process.
A few moto objects do not pickle faithfully on their own; a pickler that knows them
stands in (never a global patch of moto):

* KMS keys hold ``cryptography`` private keys (every key, even a symmetric one): they
  travel as PKCS#8 DER.
* An S3 bucket's ``_VersionedKeyStore`` pickles only the newest version of each key
  (its ``items()`` hides older ones): it travels as its raw ``{key: [versions]}``.
* IAM's AWS-managed policies (about 1,600 per account) carry their documents from
  moto's bundled data: a version whose document is still that text travels without it.

moto's state is process-wide, so there is one emulated cloud per process; dump and
load between requests, not while serve() is answering one. A dump is a pickle: load
only dumps this program wrote.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import importlib
import io
import ipaddress
import json
import os
import pickle
import sys
import threading
import zlib
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, get_args

if TYPE_CHECKING:
    import boto3
    from botocore.awsrequest import AWSPreparedRequest, AWSResponse
    from moto.core.base_backend import BackendDict
    from moto.core.models import MockAWS

__all__ = ["SERVICES", "Emulator", "serve"]

SERVICES: tuple[str, ...] = (
    "ec2",
    "s3",
    "eks",
    "iam",
    "kms",
    "route53",
    "cloudwatch",
    "sts",
    "elbv2",
)

_FORMAT = 1
_PROTOCOL = 5
_FAKE_KEY = "sandbox"
_ENV_DEFAULTS = {
    # The default AMI catalogue costs start-up time and nothing we emulate needs it.
    "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
    # Phases attach AWS-managed policies (AmazonEKSClusterPolicy, ...) by ARN.
    "MOTO_IAM_LOAD_MANAGED_POLICIES": "true",
}


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


class Emulator:
    """moto in this process: start/stop, a boto3 session on it, dump/load its state."""

    def __init__(self, region: str, account_id: str = "123456789012") -> None:
        if not region:
            raise ValueError("the emulator needs a region")
        if len(account_id) != 12 or not account_id.isdigit():
            raise ValueError(f"account id {account_id!r} is not 12 digits")
        self.region = region
        self.account_id = account_id
        self._mock: MockAWS | None = None
        self._saved_account: str | None = None
        self._lock = threading.RLock()
        self._session: boto3.Session | None = None
        self._clients: dict[tuple[str, str], Any] = {}

    @property
    def running(self) -> bool:
        """Whether boto3 calls in this process are being answered by moto."""
        return self._mock is not None

    def start(self) -> None:
        """Answer boto3 calls from moto, keeping whatever state moto already holds."""
        with self._lock:
            if self._mock is not None:
                return
            for name, value in _ENV_DEFAULTS.items():
                os.environ.setdefault(name, value)
            # moto otherwise derives the account from the access key, probing IAM in
            # every partition (six IAM backends of managed policies); the variable also
            # gives requests through serve(), which carry no moto header, our account.
            self._saved_account = os.environ.get("MOTO_ACCOUNT_ID")
            os.environ["MOTO_ACCOUNT_ID"] = self.account_id
            _reach_buckets_over_tls()
            # MockAWS, not mock_aws(): the latter turns into a client of a remote
            # moto server when TEST_SERVER_MODE is set, and the state must be ours.
            from moto.core.models import MockAWS

            mock = MockAWS()
            try:
                mock.start(reset=False)
            except BaseException:
                self._restore_account()
                raise
            self._mock = mock

    def stop(self) -> None:
        """Stop answering boto3 calls; the state stays in memory for a later start()."""
        with self._lock:
            if self._mock is None:
                return
            mock, self._mock = self._mock, None
            try:
                mock.stop(remove_data=False)
            finally:
                self._restore_account()

    def _restore_account(self) -> None:
        if self._saved_account is None:
            os.environ.pop("MOTO_ACCOUNT_ID", None)
        else:
            os.environ["MOTO_ACCOUNT_ID"] = self._saved_account

    def session(self) -> boto3.Session:
        """A boto3 session whose clients can only reach this emulator.

        Static fake credentials, no shared config or credentials file, no environment
        settings (profiles, endpoint URLs, FIPS): a request moto does not answer, or one
        made while the emulator is stopped, raises instead of going out. One session
        serves every caller: its loader parses each service model once per process,
        not once per client (tens of MB for EC2 alone).
        """
        with self._lock:
            if self._session is None:
                self._session = self._isolated_session()
            return self._session

    def client(self, service: str, region: str | None = None) -> Any:
        """A client of :meth:`session`, one per service and region for the process."""
        key = (service, region or self.region)
        with self._lock:
            if key not in self._clients:
                self._clients[key] = self.session().client(service, region_name=key[1])
            return self._clients[key]

    def _isolated_session(self) -> boto3.Session:
        import boto3
        import botocore.session
        from botocore.configprovider import BOTOCORE_DEFAUT_SESSION_VARIABLES
        from moto.core.models import botocore_stubber

        isolated: dict[str, tuple[Any, Any, Any, Any]] = {
            name: (None, None, spec[2], spec[3])
            for name, spec in BOTOCORE_DEFAUT_SESSION_VARIABLES.items()
        }
        isolated["profile"] = (None, None, None, None)
        isolated["config_file"] = (None, None, os.devnull, None)
        isolated["credentials_file"] = (None, None, os.devnull, None)
        isolated["ignore_configured_endpoint_urls"] = (None, None, True, None)
        core = botocore.session.Session(session_vars=isolated)
        # Our handler asks moto itself, so moto's own copy must not answer twice.
        core.unregister("before-send", botocore_stubber)
        core.register("before-send", _answer_from_moto)
        return boto3.Session(
            aws_access_key_id=_FAKE_KEY,
            aws_secret_access_key=_FAKE_KEY,
            region_name=self.region,
            botocore_session=core,
        )

    def dump(self) -> bytes:
        """The state of every service in :data:`SERVICES`, as bytes for :meth:`load`."""
        import moto
        from moto.backends import get_backend
        from moto.core.base_backend import backend_lock

        own = _backend_dict_fields()
        dumped: dict[str, BackendDict[Any]] = {
            name: get_backend(name)  # type: ignore[call-overload]
            for name in SERVICES
        }
        services: dict[str, dict[str, Any]] = {}
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
            state = _dumps(services, dumped.values())
        # IAM's managed policies make most of it and shrink ~5x at the fastest level.
        state = zlib.compress(state, 1)
        envelope = {
            "format": _FORMAT,
            "moto": moto.__version__,
            "services": tuple(services),
            "sha256": hashlib.sha256(state).hexdigest(),
            "state": state,
        }
        return pickle.dumps(envelope, protocol=_PROTOCOL)

    def load(self, blob: bytes) -> None:
        """Replace the whole emulated cloud with a dump; empty bytes give an empty cloud.

        A dump that is not one (damaged, another format or moto version) raises
        ValueError before anything is replaced. Should a sound-looking dump still fail
        to decode, the cloud is left empty and ValueError raised.
        """
        if not blob:
            self.reset()
            return
        names, state = _read_envelope(blob)
        from moto.backends import get_backend
        from moto.core.base_backend import backend_lock

        targets: dict[str, BackendDict[Any]] = {}
        for name in names:
            try:
                targets[name] = get_backend(name)  # type: ignore[call-overload]
            except Exception as exc:
                raise ValueError(f"emulator dump holds unknown service {name!r}") from exc
        with backend_lock:
            # Reset before decoding: references to services outside the dump resolve
            # to their live backends, which must be the fresh ones.
            _reset_all()
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

    def reset(self) -> None:
        """Empty the emulated cloud (every moto service, as a fresh account)."""
        from moto.core.base_backend import backend_lock

        with backend_lock:
            _reset_all()


def serve(
    emulator: Emulator,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    ready: Callable[[str], None] | None = None,
    stop: threading.Event,
) -> None:
    """Serve the emulator's state as an AWS endpoint on loopback until ``stop`` is set.

    Port 0 picks a free port; ``ready`` gets the endpoint URL once the server listens.
    Starts the emulator if it is not running (and stops it again on the way out).
    """
    address = _loopback(host)
    from moto.server import ThreadedMotoServer

    class _Server(ThreadedMotoServer):
        # ThreadedMotoServer.start() waits forever if binding fails in its thread.
        error: BaseException | None = None

        def _server_entry(self) -> None:
            try:
                super()._server_entry()
            except BaseException as exc:
                self.error = exc
                self._server_ready_event.set()

    started_here = not emulator.running
    emulator.start()
    server = _Server(ip_address=address, port=port, verbose=False)
    try:
        server.start()
        if server.error is not None:
            # werkzeug reports a port in use by calling sys.exit(1).
            why = "port in use" if isinstance(server.error, SystemExit) else server.error
            raise OSError(f"cannot serve the emulator on {address}:{port}: {why}")
        bound_host, bound_port = server.get_host_and_port()
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        if ready is not None:
            ready(f"http://{shown}:{bound_port}")
        stop.wait()
    finally:
        server.stop()
        if started_here:
            emulator.stop()


def eks_node_group(account_id: str, region: str, cluster: str, group: str) -> Any:
    """moto's own record of an EKS node group, for what its API cannot change (tags,
    the launch template version); KeyError if there is none."""
    from moto.backends import get_backend

    return get_backend("eks")[account_id][region].clusters[cluster].nodegroups[group]


def _loopback(host: str) -> str:
    """The address to bind for ``host``; ValueError unless it is a loopback address."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"the emulator serves on loopback only; {host!r} is not") from None
    if not address.is_loopback:
        raise ValueError(f"the emulator serves on loopback only; {host!r} is not")
    return str(address)


def _answer_from_moto(request: AWSPreparedRequest, event_name: str, **kwargs: Any) -> AWSResponse:
    """botocore before-send hook: moto's answer, or an error instead of the network."""
    from moto.core.models import botocore_stubber

    if botocore_stubber.enabled:
        response = botocore_stubber(event_name, request, **kwargs)
        if response is not None:
            return response
        raise RuntimeError(
            f"the emulator does not serve {request.method} {request.url}; "
            "a sandbox session never calls real AWS"
        )
    raise RuntimeError(f"the emulator is not running; refusing {request.method} {request.url}")


# --- pickling -------------------------------------------------------------------------


class _StatePickler(pickle.Pickler):
    """A pickler for moto state: stands in for the objects listed in the module doc.

    Backends of services outside the dump, and the module-level BackendDicts
    themselves, are pickled as where to find them, never copied.
    """

    def __init__(self, file: io.BytesIO, dumped: Iterable[Any]) -> None:
        super().__init__(file, protocol=_PROTOCOL)
        from cryptography import x509
        from cryptography.hazmat.primitives.asymmetric.types import (
            PrivateKeyTypes,
            PublicKeyTypes,
        )
        from moto.iam.models import PolicyVersion
        from moto.s3.utils import _VersionedKeyStore

        self._private: tuple[type, ...] = get_args(PrivateKeyTypes)
        self._public: tuple[type, ...] = get_args(PublicKeyTypes)
        self._certificate = x509.Certificate
        self._exact: dict[type, Callable[[Any], Any]] = {
            _VersionedKeyStore: _reduce_versioned_store,
            PolicyVersion: _reduce_policy_version,
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


def _dumps(obj: object, dumped: Iterable[Any]) -> bytes:
    buffer = io.BytesIO()
    _StatePickler(buffer, dumped).dump(obj)
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


def _read_envelope(blob: bytes) -> tuple[tuple[str, ...], bytes]:
    """The service names and state of a dump; ValueError if it is not one we can load."""
    try:
        envelope = _EnvelopeUnpickler(io.BytesIO(blob)).load()
    except Exception as exc:
        raise ValueError(f"not an emulator dump ({type(exc).__name__}: {exc})") from exc
    if not isinstance(envelope, dict) or "format" not in envelope:
        raise ValueError("not an emulator dump (no format marker)")
    if envelope["format"] != _FORMAT:
        raise ValueError(
            f"emulator dump format {envelope['format']!r} is not supported "
            f"(this phasegate reads format {_FORMAT}); reset the sandbox"
        )
    import moto

    if envelope.get("moto") != moto.__version__:
        raise ValueError(
            f"emulator dump was written by moto {envelope.get('moto')}, this is moto "
            f"{moto.__version__}; its objects do not carry over, reset the sandbox"
        )
    names, state = envelope.get("services"), envelope.get("state")
    if (
        not isinstance(names, tuple)
        or not all(isinstance(name, str) for name in names)
        or not isinstance(state, bytes)
        or hashlib.sha256(state).hexdigest() != envelope.get("sha256")
    ):
        raise ValueError("emulator dump is damaged (its checksum does not match)")
    try:
        return names, zlib.decompress(state)
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


# S3 ------------------------------------------------------------------------------------


def _reduce_versioned_store(store: Any) -> tuple[Any, ...]:
    # dict.items() reads the raw lists; the store's own items() yields the newest only.
    return (_rebuild_versioned_store, (type(store), dict(dict.items(store)), vars(store)))


def _rebuild_versioned_store(cls: type, raw: dict[str, list[Any]], attrs: dict[str, Any]) -> Any:
    store = cls()
    dict.update(store, raw)
    vars(store).update(attrs)
    return store


# IAM -----------------------------------------------------------------------------------


@functools.cache
def _aws_policy_documents() -> dict[str, str]:
    """Document of every AWS-managed policy, by ``policy{path}{name}``, as moto makes it."""
    from moto.iam.aws_managed_policies import aws_managed_policies_data

    data = json.loads(aws_managed_policies_data)
    return {
        f"policy{spec.get('Path') or '/'}{name}": json.dumps(spec.get("Document"))
        for name, spec in data.items()
    }


def _reduce_policy_version(version: Any) -> Any:
    parts = str(version.policy_arn).split(":", 5)
    if len(parts) == 6 and parts[2] == "iam" and parts[4] == "aws":
        document = _aws_policy_documents().get(parts[5])
        if document is not None and version.document == document:
            state = {k: v for k, v in vars(version).items() if k != "document"}
            return (_rebuild_policy_version, (type(version), parts[5], state))
    return NotImplemented


def _rebuild_policy_version(cls: type[Any], policy: str, state: dict[str, Any]) -> Any:
    version: Any = object.__new__(cls)
    vars(version).update(state)
    version.document = _aws_policy_documents()[policy]
    return version


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
