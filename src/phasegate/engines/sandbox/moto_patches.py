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


def _rename_iam_identities_as_iam_does() -> None:
    """moto keeps a user's tags by its ARN, so a user renamed or moved (UpdateUser) lost
    them; and it changed a group's path only along with its name. IAM keeps the tags of
    the user it renames, and takes a new path alone."""
    from moto.iam.models import IAMBackend

    if getattr(IAMBackend.update_user, "_phasegate_rename", False):
        return
    original_user = IAMBackend.update_user
    original_group = IAMBackend.update_group

    def update_user(
        self: Any, user_name: str, new_path: str | None = None, new_user_name: str | None = None
    ) -> None:
        user = self.get_user(user_name)
        before = user.arn
        tags = self.tagger.list_tags_for_resource(before)["Tags"]
        original_user(self, user_name, new_path, new_user_name)
        if user.arn != before:
            self.tagger.delete_all_tags_for_resource(before)
            self.tagger.tag_resource(user.arn, tags)

    def update_group(
        self: Any, group_name: str, new_group_name: str | None, new_path: str | None
    ) -> None:
        if new_group_name and new_group_name != group_name:
            original_group(self, group_name, new_group_name, new_path)
        elif new_path:
            self.get_group(group_name).path = new_path

    update_user._phasegate_rename = True  # type: ignore[attr-defined]
    IAMBackend.update_user = update_user  # type: ignore[method-assign]
    IAMBackend.update_group = update_group  # type: ignore[method-assign]


def _follow_the_current_label() -> None:
    """moto answers a read of a secret with no version or label asked for from the
    version it last put, even after AWSCURRENT moved to another version: Secrets Manager
    answers from the version labelled AWSCURRENT."""
    from moto.secretsmanager.models import SecretsManagerBackend

    if getattr(SecretsManagerBackend.update_secret_version_stage, "_phasegate_current", False):
        return
    original = SecretsManagerBackend.update_secret_version_stage

    def update_secret_version_stage(
        self: Any,
        secret_id: str,
        version_stage: str,
        remove_from_version_id: str,
        move_to_version_id: str,
    ) -> tuple[str, str]:
        result = original(
            self, secret_id, version_stage, remove_from_version_id, move_to_version_id
        )
        if version_stage == "AWSCURRENT" and move_to_version_id:
            self.secrets[secret_id].default_version_id = move_to_version_id
        return result

    update_secret_version_stage._phasegate_current = True  # type: ignore[attr-defined]
    SecretsManagerBackend.update_secret_version_stage = update_secret_version_stage  # type: ignore[method-assign]


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


def _note_bucket_changes() -> None:
    """Tell the snapshot which buckets a request may have changed (see ``bodies``): every
    S3 request, in-process or served, is logged by the backend with its bucket first."""
    from moto.s3.models import S3Backend

    from phasegate.engines.sandbox.bodies import bucket_changed

    original = S3Backend.log_incoming_request
    if getattr(original, "_phasegate_changes", False):
        return

    def log_incoming_request(self: Any, request: Any, bucket_name: str) -> None:
        if str(getattr(request, "method", "")).upper() not in ("GET", "HEAD", "OPTIONS"):
            bucket_changed(bucket_name or None)
        original(self, request, bucket_name)

    log_incoming_request._phasegate_changes = True  # type: ignore[attr-defined]
    S3Backend.log_incoming_request = log_incoming_request  # type: ignore[method-assign]


def _copy_bodies_by_reference() -> None:
    """A copied object shares its source's body (the legacy estate's recipe, or a blob
    already stored) instead of holding bytes of its own: copying the estate into the lake
    then adds no blob, as a server-side copy in S3 moves no bytes through the client.
    The bytes are the same either way; only where the snapshot keeps them differs."""
    from moto.s3.models import S3Backend

    from phasegate.engines.sandbox.bodies import LazyBody

    original = S3Backend.copy_object
    if getattr(original, "_phasegate_shared", False):
        return

    def copy_object(self: Any, src_key: Any, dest_bucket_name: str, dest_key_name: str,
                    *args: Any, **kwargs: Any) -> None:  # fmt: skip
        source = src_key._value_buffer
        original(self, src_key, dest_bucket_name, dest_key_name, *args, **kwargs)
        if not isinstance(source, LazyBody) or source.changed:
            return
        copied = self.get_object(dest_bucket_name, dest_key_name)
        if copied is not None and copied.size == source.size:
            with copied.lock:
                old, copied._value_buffer = copied._value_buffer, source.same_body()
            old.close()

    copy_object._phasegate_shared = True  # type: ignore[attr-defined]
    S3Backend.copy_object = copy_object  # type: ignore[method-assign]


def _honour_copy_source_if_match() -> None:
    """``x-amz-copy-source-if-match`` on CopyObject and UploadPartCopy: the copy is made
    only while the source still has that ETag, else 412 PreconditionFailed, as S3 does.
    moto reads the header on neither; the data copy relies on it to copy the version it
    listed, never a newer one half way through."""
    from urllib.parse import parse_qs, unquote, urlparse

    from moto.s3.exceptions import PreconditionFailed
    from moto.s3.responses import S3Response

    if getattr(S3Response.copy_object, "_phasegate_if_match", False):
        return

    def guarded(original: Any) -> Any:
        def answer(self: Any) -> Any:
            wanted = self.headers.get("x-amz-copy-source-if-match")
            source = self.headers.get("x-amz-copy-source")
            if wanted and source:
                if isinstance(source, bytes):
                    source = source.decode("utf-8")
                parsed = urlparse(source)
                bucket, _, key = unquote(parsed.path).lstrip("/").partition("/")
                version = parse_qs(parsed.query).get("versionId", [None])[0]
                found = self.backend.get_object(bucket, key, version_id=version)
                if found is not None and wanted.strip('"') != found.etag.strip('"'):
                    raise PreconditionFailed(failed_condition="x-amz-copy-source-If-Match")
            return original(self)

        answer._phasegate_if_match = True  # type: ignore[attr-defined]
        return answer

    S3Response.copy_object = guarded(S3Response.copy_object)  # type: ignore[method-assign]
    S3Response.upload_part_copy = guarded(S3Response.upload_part_copy)  # type: ignore[method-assign]


_STORAGE_TYPES = {
    "STANDARD": "StandardStorage",
    "STANDARD_IA": "StandardIAStorage",
    "ONEZONE_IA": "OneZoneIAStorage",
    "REDUCED_REDUNDANCY": "ReducedRedundancyStorage",
    "GLACIER_IR": "GlacierInstantRetrievalStorage",
    "GLACIER": "GlacierStorage",
    "DEEP_ARCHIVE": "DeepArchiveStorage",
    "INTELLIGENT_TIERING": "IntelligentTieringFAStorage",
}
"""S3 storage classes and the ``StorageType`` CloudWatch reports their bytes under."""


def _report_bucket_sizes_as_s3_does() -> None:
    """moto's daily ``BucketSizeBytes`` is the Python size of its key objects (a few dozen
    bytes each, whatever the object holds). S3 reports the bytes of the current objects,
    one datapoint per storage class: what a plan's storage estimate reads."""
    from moto.cloudwatch.models import MetricDatum
    from moto.core.utils import utcnow
    from moto.s3.models import FakeKey, S3Backend, s3_backends
    from moto.utilities.utils import get_partition

    if getattr(S3Backend.get_cloudwatch_metrics, "_phasegate_sizes", False):
        return
    original = S3Backend.get_cloudwatch_metrics.__func__  # type: ignore[attr-defined]

    def get_cloudwatch_metrics(cls: Any, account_id: str, region: str) -> list[Any]:
        metrics = [m for m in original(cls, account_id, region) if m.name != "BucketSizeBytes"]
        day = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)  # daily, as S3
        for name, bucket in s3_backends[account_id][get_partition(region)].buckets.items():
            sizes: dict[str, int] = {}
            for key in bucket.keys.values():
                if isinstance(key, FakeKey):
                    kind = _STORAGE_TYPES.get(key.storage_class or "STANDARD", "StandardStorage")
                    sizes[kind] = sizes.get(kind, 0) + key.size
            for kind, size in sizes.items():
                metrics.append(
                    MetricDatum(
                        namespace="AWS/S3",
                        name="BucketSizeBytes",
                        value=size,
                        dimensions=[
                            {"Name": "StorageType", "Value": kind},
                            {"Name": "BucketName", "Value": name},
                        ],
                        timestamp=day,
                        unit="Bytes",
                    )
                )
        return metrics

    get_cloudwatch_metrics._phasegate_sizes = True  # type: ignore[attr-defined]
    S3Backend.get_cloudwatch_metrics = classmethod(get_cloudwatch_metrics)  # type: ignore[assignment,method-assign]


def _answer_offerings_as_ec2() -> None:
    """DescribeInstanceTypeOfferings from moto's bundled per-zone data, with the types
    ``migrate sandbox offerings`` set replaced, paged and filtered as EC2 does (see
    ``zone_offerings``): moto answers one page whatever is asked, and an unknown filter
    with nothing."""
    from moto.core.responses import ActionResult
    from moto.ec2.models.instance_types import InstanceTypeOfferingBackend
    from moto.ec2.responses.instances import InstanceResponse

    from phasegate.engines.sandbox.zone_offerings import answer_as_ec2

    if getattr(InstanceResponse.describe_instance_type_offerings, "_phasegate_zones", False):
        return

    def describe_instance_type_offerings(self: Any) -> ActionResult:
        max_results = self._get_param("MaxResults")
        found, token = answer_as_ec2(
            self.ec2_backend,
            self._get_param("LocationType"),
            self._filters_from_querystring(),
            int(max_results) if max_results is not None else None,
            self._get_param("NextToken"),
        )
        result: dict[str, Any] = {"InstanceTypeOfferings": found}
        if token is not None:
            result["NextToken"] = token
        return ActionResult(result)

    def backend_offerings(
        self: Any, location_type: str | None = None, filters: Any = None
    ) -> list[Any]:
        return answer_as_ec2(self, location_type, dict(filters or {}))[0]

    describe_instance_type_offerings._phasegate_zones = True  # type: ignore[attr-defined]
    InstanceResponse.describe_instance_type_offerings = describe_instance_type_offerings  # type: ignore[method-assign]
    InstanceTypeOfferingBackend.describe_instance_type_offerings = backend_offerings  # type: ignore[method-assign]
