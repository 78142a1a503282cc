"""S3 buckets (pulumi-aws v7 ``aws.s3.Bucket``), their inline settings included
(:mod:`~phasegate.engines.sandbox.handlers.s3_inline`)."""

from __future__ import annotations

import re
from typing import Any

from phasegate.engines.sandbox.handlers.base import (
    UNIQUE_SUFFIX,
    CloudContext,
    Handler,
    HandlerError,
    prefixed_name,
)
from phasegate.engines.sandbox.handlers.s3_inline import INLINE, check_inline, put_inline

__all__ = ["HANDLERS"]

_BUCKET_NAME = re.compile(
    r"^(?!xn--)(?!.*\.\.)(?!\d+\.\d+\.\d+\.\d+$)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
)


class Bucket(Handler):
    type = "aws:s3/bucket:Bucket"
    emulates = frozenset({"bucket", "bucketPrefix", "forceDestroy", "tags"}) | INLINE
    replace_on = frozenset({"bucket", "bucketPrefix"})
    computed = ("id", "arn", "bucket", "bucketDomainName", "bucketRegionalDomainName", "region")
    name_key = "bucket"

    def validate(self, inputs: dict[str, Any]) -> None:
        name, prefix = inputs.get("bucket"), inputs.get("bucketPrefix")
        if name and prefix:
            raise HandlerError("bucket and bucketPrefix conflict: give one")
        if isinstance(prefix, str):
            if len(prefix) > 63 - UNIQUE_SUFFIX:
                raise HandlerError(
                    f"bucketPrefix '{prefix}' is longer than {63 - UNIQUE_SUFFIX} characters "
                    f"(the provider adds {UNIQUE_SUFFIX} to make the name)"
                )
            name = prefix + "0" * UNIQUE_SUFFIX
        if isinstance(name, str) and not _BUCKET_NAME.match(name):
            raise HandlerError(
                f"bucket name '{name}' is not valid: 3-63 characters of a-z, 0-9, '.' and '-', "
                "starting and ending with a letter or digit"
            )
        check_inline(inputs)

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        s3 = ctx.client("s3")
        if inputs.get("bucketPrefix"):
            bucket = prefixed_name(str(inputs["bucketPrefix"]))
        else:
            bucket = self.physical_name(name.lower().replace("_", "-"), inputs)
        args: dict[str, Any] = {"Bucket": bucket}
        if ctx.region != "us-east-1":
            args["CreateBucketConfiguration"] = {"LocationConstraint": ctx.region}
        try:
            s3.create_bucket(**args)
        except Exception as exc:
            raise HandlerError(f"cannot create bucket '{bucket}': {exc}") from None
        if inputs.get("tags"):
            s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": self.tag_list(inputs["tags"])})
        put_inline(s3, bucket, inputs, None)
        return bucket, {
            **inputs,
            "id": bucket,
            "bucket": bucket,
            "arn": f"arn:aws:s3:::{bucket}",
            "bucketDomainName": f"{bucket}.s3.amazonaws.com",
            "bucketRegionalDomainName": f"{bucket}.s3.{ctx.region}.amazonaws.com",
            "region": ctx.region,
        }

    def update(self, ctx: CloudContext, id_: str, old: dict, new: dict, outputs: dict) -> dict:
        s3 = ctx.client("s3")
        if new.get("tags"):
            s3.put_bucket_tagging(Bucket=id_, Tagging={"TagSet": self.tag_list(new["tags"])})
        else:
            s3.delete_bucket_tagging(Bucket=id_)
        put_inline(s3, id_, new, old)
        return {**outputs, **new}

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        s3 = ctx.client("s3")
        if outputs.get("forceDestroy"):
            for page in s3.get_paginator("list_object_versions").paginate(Bucket=id_):
                for item in page.get("Versions", []) + page.get("DeleteMarkers", []):
                    s3.delete_object(Bucket=id_, Key=item["Key"], VersionId=item["VersionId"])
        try:
            s3.delete_bucket(Bucket=id_)
        except Exception as exc:
            raise HandlerError(f"cannot delete bucket '{id_}': {exc}") from None

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        names = {b["Name"] for b in ctx.client("s3").list_buckets().get("Buckets", [])}
        return id_ in names


HANDLERS: list[Handler] = [Bucket()]
