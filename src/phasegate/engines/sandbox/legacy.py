"""The legacy estate the sandbox starts with: what a migration moves away from.

A legacy VPC, a DNS zone with the legacy application's record, and a legacy data bucket
worth migrating (:class:`EstateSettings`, from the environment's ``legacy_estate``):
thousands of nightly exports in nested prefixes (``exports/YYYY/MM/DD/part-NNN.csv``)
beside a few other trees, objects uploaded in parts (ETag ``…-N``) and a few large ones,
keys that trip careless tools (spaces, ``+``, ``%``, ``?``, ``é``, ``日本``, ``//``, a
trailing ``/``, one of exactly 1,000 bytes, a zero-byte marker), S3 additional checksums
(SHA256, CRC32C, CRC32) on some and none on others, content types, user metadata and
tags. Versioning is on: some keys were overwritten (older versions kept) and some deleted
(a delete marker is their current version). Only current versions migrate.

Objects are made on moto's S3 backend directly (thousands of requests through boto3
would take seconds), as S3 keeps them after the requests a legacy uploader would have
made: the same ETags, checksums, metadata, tags, ACLs and versions (tests compare them
with objects made through boto3). Their bodies are deterministic, the same bytes in every
sandbox, and cheap to make (rows or a seeded block, repeated): so the snapshot keeps a
recipe per body (``recipes``), never the bytes, and makes them when read.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from phasegate.engines.sandbox.recipes import RECIPES as _RECIPES
from phasegate.engines.sandbox.recipes import estate_body
from phasegate.engines.sandbox.recipes import run as _run

if TYPE_CHECKING:
    import boto3

__all__ = [
    "AWKWARD_KEYS",
    "LEGACY_ZONE",
    "EstateSettings",
    "create_estate",
    "estate_body",
    "legacy_bucket_name",
]

LEGACY_ZONE = "corp.example.com"
LEGACY_APP_HOST = f"legacy.{LEGACY_ZONE}"
_PART = 8 << 20
"""Part size of the large objects' uploads."""
_MIN_PART = 5 << 20
"""S3's smallest part but the last."""


@dataclass(frozen=True)
class EstateSettings:
    """What the legacy bucket holds (``legacy_estate`` of a sandbox environment)."""

    objects: int = 5000
    """current objects, all told (the large, the multipart and the awkward ones included)"""
    large: int = 3
    large_mib: int = 24
    multipart: int = 20
    """objects uploaded in parts, besides the large ones (each 5 MiB and a bit)"""
    overwrites: int = 50
    deleted: int = 25


def legacy_bucket_name(environment: str) -> str:
    return f"phasegate-legacy-{environment.replace('_', '-')}"


def _awkward_keys() -> list[str]:
    deep = "archive/deep/" + "nested-é/" * 60
    filler = 1000 - len(deep.encode()) - len(".csv")
    return [
        "exports/2026/01/01/part 000 (copy).csv",
        "exports/2026/01/01/a+b=c.csv",
        "exports/2026/01/01/100%-done.csv",
        "exports/2026/01/01/what?now#1.csv",
        "exports/café/menu-é.csv",
        "exports/日本/東京/データ.csv",
        "exports//double-slash.csv",
        "archive/2025/",
        "markers/_SUCCESS",
        deep + "k" * filler + ".csv",
    ]


AWKWARD_KEYS: tuple[str, ...] = tuple(_awkward_keys())
_EMPTY = {"archive/2025/", "markers/_SUCCESS"}


# -- the estate ------------------------------------------------------------------------


def create_estate(
    session: boto3.Session,
    environment: str,
    region: str,
    settings: EstateSettings | None = None,
) -> dict[str, Any]:
    """Create the estate in the emulated cloud; returns its inventory (names, ids, counts)."""
    settings = settings or EstateSettings()
    ec2 = session.client("ec2", region_name=region)
    vpc = ec2.create_vpc(
        CidrBlock="172.16.0.0/16",
        TagSpecifications=[{"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": "legacy"}]}],
    )["Vpc"]["VpcId"]

    s3 = session.client("s3", region_name=region)
    bucket = legacy_bucket_name(environment)
    args: dict[str, Any] = {"Bucket": bucket}
    if region != "us-east-1":
        args["CreateBucketConfiguration"] = {"LocationConstraint": region}
    s3.create_bucket(**args)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    account = session.client("sts", region_name=region).get_caller_identity()["Account"]
    counts = _fill(account, bucket, region, settings)

    r53 = session.client("route53", region_name=region)
    zone = r53.create_hosted_zone(Name=LEGACY_ZONE, CallerReference=f"legacy-{environment}")
    zone_id = zone["HostedZone"]["Id"].rsplit("/", 1)[-1]
    r53.change_resource_record_sets(
        HostedZoneId=zone_id,
        ChangeBatch={
            "Changes": [
                {
                    "Action": "CREATE",
                    "ResourceRecordSet": {
                        "Name": LEGACY_APP_HOST + ".",
                        "Type": "A",
                        "TTL": 60,
                        "ResourceRecords": [{"Value": "172.16.10.10"}],
                    },
                }
            ]
        },
    )
    return {
        "vpc_id": vpc,
        "bucket": bucket,
        **counts,
        "zones": {LEGACY_ZONE: zone_id},
        "app_host": LEGACY_APP_HOST,
    }


def _fill(account: str, bucket_name: str, region: str, settings: EstateSettings) -> dict[str, int]:
    """Put the objects in the bucket on moto's backend; their counts."""
    from moto.s3.models import s3_backends
    from moto.utilities.utils import get_partition

    backend = s3_backends[account][get_partition(region)]
    writer = _Writer(backend, bucket_name)
    awkward = AWKWARD_KEYS[: max(0, settings.objects - settings.large - settings.multipart)]
    for n, name in enumerate(awkward):
        if name in _EMPTY:
            writer.put(name, (_RECIPES, "empty"), b"", content_type="application/x-directory")
        else:
            writer.small(name, 10_000 + n, checksum="SHA256" if n % 2 else None)
    for i in range(settings.large):
        # Parts of whole blocks: an object's full parts are alike, hashed once.
        size = settings.large_mib << 20
        writer.parts(
            f"warehouse/snapshots/2026-10/snapshot-{i:02d}.parquet",
            [(1000 + i, min(_PART, size - at)) for at in range(0, size, _PART)],
            checksum=("SHA256", "CRC32C")[i % 2],
            content_type="application/vnd.apache.parquet",
            metadata={"source": "warehouse", "snapshot": str(i)},
        )
    for i in range(settings.multipart):
        # A common first part (an intro, say) and a tail of its own.
        writer.parts(
            f"media/raw/2026/10/{i % 28 + 1:02d}/clip-{i:03d}.mp4",
            [(0, _MIN_PART), (i + 1, (i + 1) * 4099)],
            checksum=("CRC32C", None, "SHA256")[i % 3],
            content_type="video/mp4",
            tags={"team": "media"} if i % 2 else None,
        )
    remaining = settings.objects - len(awkward) - settings.large - settings.multipart
    names = [_tree_key(n) for n in range(remaining)]
    for n, name in enumerate(names[: settings.overwrites]):
        writer.small(name, 1_000_000 + n, checksum=None)  # the version overwritten
    for n, name in enumerate(names):
        writer.small(
            name,
            n,
            checksum=_checksum_of(n),
            metadata={"source": "nightly-export", "batch": str(n // 20)} if n % 5 == 0 else None,
            tags={"retention": "7y", "classification": "internal"} if n % 9 == 0 else None,
        )
    for i in range(settings.deleted):
        name = f"exports/retired/2025/12/{i % 28 + 1:02d}/part-{i:03d}.csv"
        writer.small(name, 2_000_000 + i, checksum=None)
        backend.delete_object(bucket_name, name)
        del writer.current[name]
    return {
        "objects": len(writer.current),
        "bytes": writer.current_bytes,
        "versions": writer.versions,
        "delete_markers": settings.deleted,
    }


def _checksum_of(n: int) -> str | None:
    """The checksum the uploader of object ``n`` sent: a few SHA256 and CRC32C (set on
    purpose), some CRC32 (today's SDKs' default), most none (older SDKs)."""
    for algorithm, every in (("SHA256", 7), ("CRC32C", 11), ("CRC32", 13)):
        if n % every == 0:
            return algorithm
    return None


def _tree_key(n: int) -> str:
    """Most objects are nightly exports, 20 parts a day from 2026-01-01; a tenth each
    are monthly reports and customer extracts."""
    tree = n % 10
    if tree == 8:
        region = ("eu", "us", "ap")[n % 3]
        return f"reports/monthly/2026-{n // 10 % 12 + 1:02d}/region={region}/summary-{n:05d}.csv"
    if tree == 9:
        return f"customers/segment={n % 7}/extract-{n:05d}.csv"
    index = n - n // 10 * 2  # the exports' own count
    day, part = divmod(index, 20)
    year, day_of_year = divmod(day, 336)
    month, day_of_month = divmod(day_of_year, 28)
    return f"exports/{2026 + year}/{month + 1:02d}/{day_of_month + 1:02d}/part-{part:03d}.csv"


class _Writer:
    """Puts objects as S3 keeps them after a PutObject or a multipart upload."""

    def __init__(self, backend: Any, bucket_name: str) -> None:
        self.backend = backend
        self.bucket_name = bucket_name
        self.bucket = backend.get_bucket(bucket_name)
        self.current: dict[str, int] = {}
        self.versions = 0
        self._parts: dict[tuple[tuple[int, int], str], tuple[bytes, bytes]] = {}

    @property
    def current_bytes(self) -> int:
        return sum(self.current.values())

    def small(
        self,
        name: str,
        n: int,
        *,
        checksum: str | None,
        metadata: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        count = 20 + n % 60
        recipe = (_RECIPES, "rows", n, count)
        self.put(
            name,
            recipe,
            estate_body(recipe),
            checksum=checksum,
            content_type="text/csv",
            metadata=metadata,
            tags=tags,
        )

    def put(
        self,
        name: str,
        recipe: tuple[Any, ...],
        body: bytes,
        *,
        checksum: str | None = None,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        """As moto's PutObject handler does, with the body left to its recipe."""
        value = _checksum(body, checksum) if checksum else None
        key = self.backend.put_object(
            self.bucket_name,
            name,
            b"",
            storage="STANDARD",
            etag=hashlib.md5(body, usedforsecurity=False).hexdigest(),
            checksum_value=value,
        )
        self._body(key, recipe, len(body))
        key.set_metadata(_headers(content_type, metadata))
        key.set_acl(self.bucket.acl)
        key.website_redirect_location = None
        if checksum:
            key.checksum_algorithm = checksum
        if tags:  # moto keeps an empty entry for an object tagged with nothing: no need
            self.backend.put_object_tagging(key, tags)

    def parts(
        self,
        name: str,
        runs: list[tuple[int, int]],
        *,
        checksum: str | None,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        """As moto's CreateMultipartUpload, UploadPart and CompleteMultipartUpload do."""
        from moto.s3.models import FakeMultipart, MultipartChecksumBuilder
        from moto.s3.utils import CaseInsensitiveDict

        recipe = (_RECIPES, "runs", tuple(runs))
        headers = CaseInsensitiveDict(_headers(content_type, metadata))
        if checksum:
            headers["x-amz-checksum-algorithm"] = checksum
        upload = FakeMultipart(
            name,
            headers,
            account_id=self.backend.account_id,
            region_name=self.backend.region_name,
            storage="STANDARD",
            tags=tags or {},
        )
        builder = MultipartChecksumBuilder(checksum, None)
        md5s = bytearray()
        for run in runs:
            composite = builder.checksum_type == "COMPOSITE"
            md5, part_checksum = self._part(run, builder.checksum_algorithm if composite else "")
            md5s.extend(md5)
            if composite:  # as the builder's addPart does
                builder.checksum.extend(part_checksum)
                builder.part_count += 1
            else:
                builder.addPart(_run(*run))
        upload.partlist = list(range(1, len(runs) + 1))
        upload.completed_part_sizes = [size for _, size in runs]
        etag = f"{hashlib.md5(bytes(md5s), usedforsecurity=False).hexdigest()}-{len(runs)}"
        key = self.backend.put_object(
            self.bucket_name, name, b"", storage="STANDARD", etag=etag, multipart=upload
        )
        self._body(key, recipe, sum(size for _, size in runs))
        key.set_metadata(upload.metadata)
        details = builder.build()
        if details:
            key.checksum_algorithm = upload.metadata.get("x-amz-checksum-algorithm")
            key.checksum_type, key.checksum_value, key.checksum_parts = details
        if upload.tags:
            self.backend.put_object_tagging(key, upload.tags)
        key.set_acl(upload.acl)

    def _part(self, run: tuple[int, int], algorithm: str) -> tuple[bytes, bytes]:
        """A part's MD5 and checksum (raw), once per distinct part."""
        from moto.s3.utils import compute_checksum

        if (run, algorithm) not in self._parts:
            data = _run(*run)
            self._parts[run, algorithm] = (
                hashlib.md5(data, usedforsecurity=False).digest(),
                compute_checksum(data, algorithm, encode_base64=False) if algorithm else b"",
            )
        return self._parts[run, algorithm]

    def _body(self, key: Any, recipe: tuple[Any, ...], size: int) -> None:
        from phasegate.engines.sandbox.bodies import LazyBody

        key._value_buffer.close()
        key._value_buffer = LazyBody(size, recipe=recipe)
        key.contentsize = size
        self.current[key.name] = size
        self.versions += 1


def _headers(content_type: str | None, metadata: dict[str, str] | None) -> dict[str, str]:
    headers = {"Content-Type": content_type} if content_type else {}
    headers.update({f"x-amz-meta-{k}": v for k, v in (metadata or {}).items()})
    return headers


def _checksum(body: bytes, algorithm: str) -> str:
    """The checksum an uploader sends with the object (and S3 keeps), base64."""
    if algorithm == "SHA256":
        raw = hashlib.sha256(body).digest()
    elif algorithm == "CRC32C":
        import crc32c

        raw = crc32c.crc32c(body).to_bytes(4, "big")
    else:
        raw = binascii.crc32(body).to_bytes(4, "big")
    return base64.b64encode(raw).decode()
