"""The embedded AWS emulator: moto in this process, reached only through its own sessions.

:class:`Emulator` starts and stops moto, hands out boto3 sessions and clients that can
reach nothing else, and dumps and loads its whole state as bytes (how, in ``snapshot``).
``server`` exposes it as an AWS endpoint on loopback; ``moto_patches`` holds the
corrections to moto that :meth:`Emulator.start` applies.

moto's state is process-wide, so there is one emulated cloud per process; dump and
load between requests, not while serve() is answering one. A dump is a pickle: load
only dumps this program wrote.
"""

from __future__ import annotations

import functools
import os
import re
import threading
from typing import TYPE_CHECKING, Any

from phasegate.aws_sessions import quick_timestamps
from phasegate.engines.sandbox import snapshot
from phasegate.engines.sandbox.moto_patches import (
    _answer_offerings_as_ec2,
    _copy_bodies_by_reference,
    _follow_the_current_label,
    _honour_copy_source_if_match,
    _keep_queue_policies,
    _modify_user_data_as_sent,
    _note_bucket_changes,
    _reach_buckets_over_tls,
    _rename_iam_identities_as_iam_does,
    _report_bucket_sizes_as_s3_does,
)

# A dump names the functions that rebuild its objects by module and name: dumps written
# before the pickling moved to ``snapshot`` name this module, and must still load.
from phasegate.engines.sandbox.snapshot import (  # noqa: F401
    _live,
    _load_certificate,
    _load_private_key,
    _load_public_key,
    _rebuild_policy_version,
    _rebuild_versioned_store,
)

if TYPE_CHECKING:
    import boto3
    from botocore.awsrequest import AWSPreparedRequest, AWSResponse
    from moto.core.models import MockAWS

    from phasegate.engines.sandbox.bodies import BlobStore
    from phasegate.engines.sandbox.sealing import Sealer

__all__ = ["SERVICES", "Emulator", "bucket_versions", "efs_file_system", "load_ami_catalogue"]

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
    "dynamodb",
    "ecr",
    "ssm",
    "secretsmanager",
    "sns",
    "sqs",
    "logs",
    "events",
    "efs",
)

_FAKE_KEY = "sandbox"
_ENV_DEFAULTS = {
    # The default AMI catalogue costs start-up time and nothing we emulate needs it.
    "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
    # Phases attach AWS-managed policies (AmazonEKSClusterPolicy, ...) by ARN.
    "MOTO_IAM_LOAD_MANAGED_POLICIES": "true",
}


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
            _one_data_loader()
            _reach_buckets_over_tls()
            _rename_iam_identities_as_iam_does()
            _follow_the_current_label()
            _keep_queue_policies()
            _modify_user_data_as_sent()
            _note_bucket_changes()
            _copy_bodies_by_reference()
            _honour_copy_source_if_match()
            _answer_offerings_as_ec2()
            _report_bucket_sizes_as_s3_does()
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

    def client(self, service: str, region: str | None = None, config: Any = None) -> Any:
        """A client of :meth:`session`, one per service and region for the process; one
        of its own with a ``config`` (a botocore Config)."""
        key = (service, region or self.region)
        if config is not None:
            return self.session().client(service, region_name=key[1], config=config)
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
        core = quick_timestamps(botocore.session.Session(session_vars=isolated))
        # Our handler asks moto itself, so moto's own copy must not answer twice.
        core.unregister("before-send", botocore_stubber)
        core.register("before-send", _answer_from_moto)
        return boto3.Session(
            aws_access_key_id=_FAKE_KEY,
            aws_secret_access_key=_FAKE_KEY,
            region_name=self.region,
            botocore_session=core,
        )

    def dump(self, sealer: Sealer | None = None, blobs: BlobStore | None = None) -> bytes:
        """The state of every service in :data:`SERVICES`, as bytes for :meth:`load`; the
        run's secret values in it sealed with ``sealer``, if given (see ``cloud_secrets``);
        S3 object bodies kept in ``blobs``, if given (see ``bodies``)."""
        return snapshot.dump(SERVICES, sealer, blobs)

    def load(
        self, blob: bytes, sealer: Sealer | None = None, blobs: BlobStore | None = None
    ) -> None:
        """Replace the whole emulated cloud with a dump; empty bytes give an empty cloud.
        Sealed values in it are opened with ``sealer``.

        A dump that is not one (damaged, another format or moto version) raises
        ValueError before anything is replaced. Should a sound-looking dump still fail
        to decode, the cloud is left empty and ValueError raised.
        """
        if not blob:
            self.reset()
            return
        snapshot.load(blob, sealer, blobs)

    def reset(self) -> None:
        """Empty the emulated cloud (every moto service, as a fresh account)."""
        snapshot.reset()


def _one_data_loader() -> None:
    """Give every botocore session of this process one loader per data path.

    moto makes a session wherever it wants a region list (three while its EC2 module is
    imported, one per service backend), and each parses botocore's endpoint data again:
    0.1 s a time, most of a small run's start. A loader caches what it parsed, and a
    session already hands the same parsed data to all its clients; sharing the loader
    extends that across sessions. Before moto is imported, once per process."""
    import botocore.session

    if getattr(botocore.session.create_loader, "_phasegate_shared", False):
        return
    shared = functools.cache(botocore.session.create_loader)
    shared._phasegate_shared = True  # type: ignore[attr-defined]
    botocore.session.create_loader = shared


def eks_node_group(account_id: str, region: str, cluster: str, group: str) -> Any:
    """moto's own record of an EKS node group, for what its API cannot change (tags,
    the launch template version); KeyError if there is none."""
    from moto.backends import get_backend

    return get_backend("eks")[account_id][region].clusters[cluster].nodegroups[group]


def dynamodb_table(account_id: str, region: str, name: str) -> Any:
    """moto's own record of a DynamoDB table, for what its API cannot change (the
    encryption of a table, a stream enabled again); KeyError if there is none."""
    from moto.backends import get_backend

    return get_backend("dynamodb")[account_id][region].tables[name]


def log_group(account_id: str, region: str, name: str) -> Any:
    """moto's own record of a CloudWatch Logs log group, for the KMS key its API cannot
    associate or disassociate; KeyError if there is none."""
    from moto.backends import get_backend

    return get_backend("logs")[account_id][region].groups[name]


def efs_file_system(account_id: str, region: str, file_system_id: str) -> Any:
    """moto's own record of an EFS file system, for what its API cannot change (the
    throughput, which EFS's UpdateFileSystem sets); KeyError if there is none."""
    from moto.backends import get_backend

    return get_backend("efs")[account_id][region].file_systems_by_id[file_system_id]


def bucket_versions(account_id: str, region: str, bucket: str) -> dict[str, int] | None:
    """A bucket's current objects and their bytes, its object versions and delete
    markers, from moto's own records (a listing through the API parses every timestamp:
    seconds for thousands of objects); None if there is no such bucket."""
    from moto.backends import get_backend
    from moto.s3.models import FakeKey
    from moto.utilities.utils import get_partition

    found = get_backend("s3")[account_id][get_partition(region)].buckets.get(bucket)
    if found is None:
        return None
    objects = size = versions = markers = 0
    for history in dict.values(found.keys):
        for version in history:
            if isinstance(version, FakeKey):
                versions += 1
            else:
                markers += 1
        if history and isinstance(history[-1], FakeKey):
            objects, size = objects + 1, size + history[-1].size
    return {"objects": objects, "bytes": size, "versions": versions, "delete_markers": markers}


_AMI_CATALOGUES = ("ec2/resources/amis.json", "ec2/resources/latest_amis/{region}.json")
"""moto's public AMIs: a mix of owners (Amazon, Canonical, Microsoft, Red Hat, ...) and
the region's current Amazon Linux images. Its ECS-optimised ones (~1,300 a region) are
left out: each AMI costs a volume and a snapshot in the emulated cloud."""


def load_ami_catalogue(account_id: str, region: str) -> int:
    """Put the public AMIs into the region of the emulated cloud, once; the number there.

    The emulator starts without them (``MOTO_EC2_LOAD_DEFAULT_AMIS``: they cost start-up
    time every run); an AMI lookup or a launch loads them where it needs them, and the
    cloud keeps them from then on, as AWS would have had them all along.
    """
    from moto.backends import get_backend
    from moto.core.parse import default_timestamp_parser
    from moto.ec2.models.amis import Ami
    from moto.utilities.utils import load_resource

    backend = get_backend("ec2")[account_id][region]
    if any(ami.owner_alias == "amazon" for ami in backend.amis.values()):
        return sum(ami.owner_alias == "amazon" for ami in backend.amis.values())
    for path in _AMI_CATALOGUES:
        try:
            entries: list[dict[str, Any]] = load_resource(path.format(region=region))
        except FileNotFoundError:  # a region moto has no images for
            continue
        for entry in entries:
            ami = {**entry, "owner_alias": "amazon"}
            created = ami.get("creation_date") or _built_on(ami.get("name") or "")
            ami["creation_date"] = default_timestamp_parser(created)
            backend.amis[ami["ami_id"]] = Ami(backend, **ami)
    return sum(ami.owner_alias == "amazon" for ami in backend.amis.values())


_BUILD_DATES = (
    re.compile(r"(?<!\d)(20\d\d)(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])(?!\d)"),  # 20261102
    re.compile(r"(?<!\d)(20\d\d)[.-](0[1-9]|1[0-2])[.-](0[1-9]|[12]\d|3[01])(?!\d)"),
)


def _built_on(name: str) -> str:
    """When an image was made, from the build date its name carries (moto's catalogue
    has none, and "most recent" lookups need one): ``...-2.0.20261102.0-...``,
    ``...-2017.10.13``. A name without one dates from 2020."""
    for pattern in _BUILD_DATES:
        found = pattern.search(name)
        if found:
            return "-".join(found.groups()) + "T00:00:00.000Z"
    return "2020-01-01T00:00:00.000Z"


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
