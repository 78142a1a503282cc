"""How many bytes a phase's data copy puts in the lake, for its storage estimate.

From the state file when the copy has run (the source's bytes it listed then, said with
its date). Before that, from the legacy estate itself: for a copy of a whole bucket, its
``BucketSizeBytes`` in CloudWatch (one call, however many objects the bucket holds; AWS
updates it daily); for a prefix or a selection of keys, one listing of it. Which one is
said. When none can be had (a reference only an apply resolves, no metric yet, a bucket
that cannot be listed) the bytes are unknown, with the reason: never a guess.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from phasegate.check_context import check_context
from phasegate.checks.base import CheckContext, UnresolvedReference, resolve_references
from phasegate.datacopy import DataCopyError, Location
from phasegate.datacopy.globs import KeyFilter
from phasegate.datacopy.plan import list_objects
from phasegate.errors import PhasegateError
from phasegate.estimates.estimator import StoredData
from phasegate.spec import CopyEnd

if TYPE_CHECKING:
    from phasegate.engines.base import StackOutputs, StackTarget
    from phasegate.environment import Environment
    from phasegate.spec import PhaseSpec
    from phasegate.state import PhaseState

__all__ = ["stored_data"]


def stored_data(
    environment: Environment,
    spec: PhaseSpec,
    state: PhaseState,
    target: StackTarget,
    outputs: StackOutputs,
) -> StoredData | None:
    """What the phase's copy stores (None: the phase has no copy)."""
    step = spec.copy_data
    if step is None:
        return None
    into = f"{step.target.bucket}/{step.target.prefix}".rstrip("/")
    done = state.data_copy
    if done is not None and done.failed_objects == 0:
        return StoredData(
            done.target,
            done.listed_bytes,
            f"listed in {done.source} by the last copy ({done.at}, on the state file)",
        )
    try:
        ctx = check_context(environment, spec, target, outputs)
        end = CopyEnd.model_validate(
            resolve_references(step.source.model_dump(), ctx, "copy.source")
        )
        source = Location(end.bucket, end.prefix)
        into = _target(step.target, ctx, into)
        keys = KeyFilter(step.include, step.exclude)
        if not source.prefix and keys.selects_all:
            return _bucket_size(environment, target, into, source.bucket)
        client = environment.engine.aws_client(target, "s3")
        total = sum(listed.size for key, listed in list_objects(client, source) if keys(key))
    except (UnresolvedReference, DataCopyError, PhasegateError, ValueError) as exc:
        return StoredData(into, None, f"the copy's source cannot be read now: {exc}")
    return StoredData(into, total, f"listed now in {source} (what the copy will copy)")


def _bucket_size(
    environment: Environment, target: StackTarget, into: str, bucket: str
) -> StoredData:
    """The bucket's bytes over every storage class, as CloudWatch last reported them."""
    from botocore.exceptions import BotoCoreError, ClientError

    now = datetime.now(UTC)
    client = environment.engine.aws_client(target, "cloudwatch")
    bucket_dimension = {"Name": "BucketName", "Value": bucket}
    latest: list[tuple[datetime, float]] = []
    try:
        # The storage classes the bucket holds (one StorageType dimension each), then the
        # last daily figure of each: a call or two, however many objects there are.
        listed = client.list_metrics(
            Namespace="AWS/S3", MetricName="BucketSizeBytes", Dimensions=[bucket_dimension]
        )
        for metric in listed.get("Metrics", []):
            found = client.get_metric_statistics(
                Namespace="AWS/S3",
                MetricName="BucketSizeBytes",
                Dimensions=metric["Dimensions"],
                StartTime=now - timedelta(days=3),
                EndTime=now,
                Period=86400,
                Statistics=["Average"],
            )
            points = sorted(found.get("Datapoints", []), key=lambda p: p["Timestamp"])
            if points:
                latest.append((points[-1]["Timestamp"], float(points[-1]["Average"])))
    except (BotoCoreError, ClientError) as exc:
        return StoredData(into, None, f"BucketSizeBytes of s3://{bucket} cannot be read: {exc}")
    if not latest:
        return StoredData(
            into,
            None,
            f"CloudWatch has no BucketSizeBytes of s3://{bucket} for the last 3 days",
        )
    total = int(sum(size for _, size in latest))
    day = max(at for at, _ in latest).date().isoformat()
    return StoredData(into, total, f"in s3://{bucket} by its CloudWatch BucketSizeBytes of {day}")


def _target(declared: CopyEnd, ctx: CheckContext, said: str) -> str:
    """Where the copy goes, as s3://bucket/prefix once the plan knows it, else as declared."""
    try:
        end = CopyEnd.model_validate(resolve_references(declared.model_dump(), ctx, "copy.target"))
        return str(Location(end.bucket, end.prefix))
    except (UnresolvedReference, PhasegateError, ValueError):
        return said
