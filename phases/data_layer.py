"""data_layer: the lake that replaces nightly batch exports from the legacy bucket.

Five buckets, one customer-managed KMS key. Logical names (`lake-raw`, ..., `lake-key`,
each bucket's guards `lake-raw-versioning`, ...) are stable: migration.yaml protects
them by name (`lake-*`), so no rollback deletes the data or loosens its guards.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from common import environment, keep, load_config, phase_tags
from storage import Lifecycle, private_bucket

LAKE_BUCKETS = ("raw", "curated", "features", "models", "checkpoints")


def program() -> None:
    cfg = load_config("data_layer")
    env = environment().replace("_", "-")
    tags = phase_tags("data_layer", cfg)

    key = aws.kms.Key(
        "lake-key",
        description=f"phasegate {env}: encryption of the lake buckets",
        enable_key_rotation=True,
        deletion_window_in_days=cfg.key_deletion_window_days,
        tags=tags,
        opts=keep("lake-key"),
    )
    alias = aws.kms.Alias(
        "lake-key-alias",
        name=f"alias/phasegate-{env}-lake",
        target_key_id=key.key_id,
        opts=keep("lake-key-alias"),
    )

    lifecycle = Lifecycle(
        transitions=(
            ("STANDARD_IA", cfg.ia_after_days),
            ("GLACIER_IR", cfg.glacier_ir_after_days),
            (cfg.archive_storage_class, cfg.archive_after_days),
        ),
        noncurrent_expiry_days=cfg.noncurrent_expiry_days,
    )
    buckets = {
        name: private_bucket(
            f"lake-{name}",
            bucket=f"phasegate-{env}-lake-{name}",
            tags={**tags, "phasegate:lake": name},
            kms_key_arn=key.arn,
            versioned=True,
            lifecycle=lifecycle,
        )
        for name in LAKE_BUCKETS
    }

    for name, bucket in buckets.items():
        pulumi.export(f"{name}_bucket", bucket.bucket)
    # Where readers of the legacy exports go: phasegate points them at the lake's copy
    # once the parity proof holds, and back at legacy when the phase rolls back.
    lake = pulumi.Config("phasegate").get("data_source") == "lake"
    pulumi.export(
        "data_source",
        {
            "bucket": buckets["raw"].bucket if lake else cfg.legacy_bucket,
            "prefix": "legacy/" if lake else "",
            "on": "lake" if lake else "legacy",
        },
    )
    pulumi.export("lake_buckets", {name: b.bucket for name, b in buckets.items()})
    pulumi.export("lake_key_arn", key.arn)
    pulumi.export("lake_key_alias", alias.name)
    pulumi.export("legacy_bucket", cfg.legacy_bucket)
