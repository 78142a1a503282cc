"""A bucket's lifecycle rules (pulumi-aws v7 ``aws.s3.BucketLifecycleConfiguration``).

The emulator stores any rules it is given, storage classes it has never heard of
included. S3 checks a good deal more, and so does this handler: the storage classes,
the minimum days before a transition to an infrequent-access class, the order of
transitions down the storage-class waterfall, expirations after transitions.
"""

from __future__ import annotations

import itertools
from typing import Any

from phasegate.engines.sandbox.handlers.base import Handler, HandlerError, int_or_none
from phasegate.engines.sandbox.handlers.s3_config import BucketConfig

__all__ = ["HANDLERS"]

_WATERFALL = (
    "STANDARD_IA",
    "INTELLIGENT_TIERING",
    "ONEZONE_IA",
    "GLACIER_IR",
    "GLACIER",
    "DEEP_ARCHIVE",
)
"""The classes a lifecycle rule can move objects to, in the only order S3 moves them."""
_INFREQUENT = ("STANDARD_IA", "ONEZONE_IA")
_MIN_IA_DAYS = 30
"""S3's minimum age for a move to an infrequent-access class, and stay there before the next."""
_ACTIONS = (
    "abortIncompleteMultipartUpload",
    "expiration",
    "noncurrentVersionExpiration",
    "noncurrentVersionTransitions",
    "transitions",
)
_FILTER_KEYS = ("prefix", "tag", "objectSizeGreaterThan", "objectSizeLessThan", "and")
_MINIMUM_SIZES = ("all_storage_classes_128K", "varies_by_storage_class")
_RULE_KEYS = (
    "abortIncompleteMultipartUpload.daysAfterInitiation",
    "expiration.date",
    "expiration.days",
    "expiration.expiredObjectDeleteMarker",
    "filter.and.prefix",
    "filter.and.tags",
    "filter.prefix",
    "filter.tag.key",
    "filter.tag.value",
    "id",
    "noncurrentVersionExpiration.noncurrentDays",
    "noncurrentVersionTransitions.newerNoncurrentVersions",
    "noncurrentVersionTransitions.noncurrentDays",
    "noncurrentVersionTransitions.storageClass",
    "prefix",
    "status",
    "transitions.date",
    "transitions.days",
    "transitions.storageClass",
)
"""The keys of a rule that reach the lifecycle configuration S3 (the emulator) keeps."""


def _check_moves(moves: list[dict[str, Any]], days_key: str, what: str) -> int:
    """Check transitions (``days``) or noncurrent ones (``noncurrentDays``); the last day."""
    dated: list[tuple[int, str]] = []
    seen: set[str] = set()
    for i, move in enumerate(moves):
        cls = move.get("storageClass")
        if cls is not None and cls not in _WATERFALL:
            raise HandlerError(
                f"{what}[{i}].storageClass '{cls}' is not one of {', '.join(_WATERFALL)}"
            )
        if cls is not None:
            if cls in seen:
                raise HandlerError(f"{what} moves objects to {cls} twice")
            seen.add(cls)
        if move.get("days") is not None and move.get("date") is not None:
            raise HandlerError(f"{what}[{i}] has both days and date: give one")
        days = int_or_none(move.get(days_key))
        if days is None or cls is None:
            continue
        if days < 0:
            raise HandlerError(f"{what}[{i}].{days_key} {days} is negative")
        if cls in _INFREQUENT and days < _MIN_IA_DAYS:
            raise HandlerError(
                f"{what}[{i}]: S3 moves objects to {cls} after at least {_MIN_IA_DAYS} days, "
                f"not {days}"
            )
        dated.append((days, cls))
    dated.sort()
    for (days, cls), (later, next_cls) in itertools.pairwise(dated):
        if later == days or _WATERFALL.index(next_cls) <= _WATERFALL.index(cls):
            raise HandlerError(
                f"{what}: a move to {next_cls} on day {later} cannot follow one to {cls} on day "
                f"{days}; S3 moves objects down {' > '.join(_WATERFALL)}, a day or more apart"
            )
        if cls in _INFREQUENT and later - days < _MIN_IA_DAYS:
            raise HandlerError(
                f"{what}: objects stay in {cls} at least {_MIN_IA_DAYS} days before moving to "
                f"{next_cls} (day {days} to day {later})"
            )
    return dated[-1][0] if dated else -1


def _check_filter(rule: dict[str, Any], what: str) -> None:
    given = rule.get("filter")
    if given is not None and rule.get("prefix") is not None:
        raise HandlerError(f"{what} has both prefix and filter: put the prefix in the filter")
    if not isinstance(given, dict):
        return
    predicates = [k for k in _FILTER_KEYS if given.get(k) not in (None, "")]
    if len(predicates) > 1:
        raise HandlerError(
            f"{what}.filter has {', '.join(predicates)}: combine predicates under 'and'"
        )
    both = given.get("and")
    sizes: dict[str, Any] = both if isinstance(both, dict) else given
    low, high = (
        int_or_none(sizes.get("objectSizeGreaterThan")),
        int_or_none(sizes.get("objectSizeLessThan")),
    )
    if low is not None and high is not None and low >= high:
        raise HandlerError(f"{what}.filter: objectSizeGreaterThan must be below objectSizeLessThan")
    tagged = given.get("tag") or (given.get("and") or {}).get("tags")
    if tagged and rule.get("abortIncompleteMultipartUpload"):
        raise HandlerError(f"{what}: abortIncompleteMultipartUpload cannot be used with tags")


def _check_rule(rule: dict[str, Any], what: str) -> None:
    rule_id = rule.get("id")
    if isinstance(rule_id, str) and not 1 <= len(rule_id) <= 255:
        raise HandlerError(f"{what}.id must be 1-255 characters")
    status = rule.get("status")
    if status is not None and status not in ("Enabled", "Disabled"):
        raise HandlerError(f"{what}.status '{status}' is not Enabled or Disabled")
    if not any(rule.get(k) for k in _ACTIONS):
        raise HandlerError(f"{what} has no action: give transitions, expiration, ...")
    _check_filter(rule, what)
    last_move = _check_moves(rule.get("transitions") or [], "days", f"{what}.transitions")
    expiration = rule.get("expiration") or {}
    days = int_or_none(expiration.get("days"))
    given = [k for k in ("days", "date", "expiredObjectDeleteMarker") if expiration.get(k)]
    if len(given) > 1:
        raise HandlerError(f"{what}.expiration has {' and '.join(given)}: give one")
    if days is not None and days < 1:
        raise HandlerError(f"{what}.expiration.days must be at least 1")
    if days is not None and days <= last_move:
        raise HandlerError(
            f"{what}: objects expire on day {days}, not after their last transition on day "
            f"{last_move}"
        )
    last_noncurrent = _check_moves(
        rule.get("noncurrentVersionTransitions") or [],
        "noncurrentDays",
        f"{what}.noncurrentVersionTransitions",
    )
    noncurrent = rule.get("noncurrentVersionExpiration") or {}
    noncurrent_days = int_or_none(noncurrent.get("noncurrentDays"))
    if noncurrent_days is not None and noncurrent_days < 1:
        raise HandlerError(f"{what}.noncurrentVersionExpiration.noncurrentDays must be >= 1")
    if noncurrent_days is not None and noncurrent_days <= last_noncurrent:
        raise HandlerError(
            f"{what}: noncurrent versions expire on day {noncurrent_days}, not after their last "
            f"transition on day {last_noncurrent}"
        )
    newer = int_or_none(noncurrent.get("newerNoncurrentVersions"))
    if newer is not None and not 1 <= newer <= 100:
        raise HandlerError(f"{what}.noncurrentVersionExpiration.newerNoncurrentVersions: 1-100")
    abort = int_or_none(
        (rule.get("abortIncompleteMultipartUpload") or {}).get("daysAfterInitiation")
    )
    if abort is not None and abort < 1:
        raise HandlerError(f"{what}.abortIncompleteMultipartUpload.daysAfterInitiation: >= 1")


def _api_filter(given: dict[str, Any]) -> dict[str, Any]:
    if given.get("and"):
        both = given["and"]
        out: dict[str, Any] = {}
        if both.get("prefix") is not None:
            out["Prefix"] = both["prefix"]
        if both.get("tags"):
            out["Tags"] = Handler.tag_list(both["tags"])
        for key in ("objectSizeGreaterThan", "objectSizeLessThan"):
            if both.get(key) is not None:
                out[key[:1].upper() + key[1:]] = int(both[key])
        return {"And": out}
    if given.get("tag"):
        return {"Tag": {"Key": given["tag"]["key"], "Value": str(given["tag"]["value"])}}
    for key in ("objectSizeGreaterThan", "objectSizeLessThan"):
        if given.get(key) is not None:
            return {key[:1].upper() + key[1:]: int(given[key])}
    return {"Prefix": given.get("prefix") or ""}


def _api_moves(moves: list[dict[str, Any]], days_key: str) -> list[dict[str, Any]]:
    out = []
    for move in moves:
        entry: dict[str, Any] = {"StorageClass": move["storageClass"]}
        if move.get("date"):
            entry["Date"] = move["date"]
        else:
            entry[days_key[:1].upper() + days_key[1:]] = int(move.get(days_key) or 0)
        if move.get("newerNoncurrentVersions") is not None:
            entry["NewerNoncurrentVersions"] = int(move["newerNoncurrentVersions"])
        out.append(entry)
    return out


def _api_rule(rule: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"ID": rule["id"], "Status": rule["status"]}
    if rule.get("prefix") is not None:
        out["Prefix"] = rule["prefix"]
    else:
        out["Filter"] = _api_filter(rule.get("filter") or {})
    if rule.get("transitions"):
        out["Transitions"] = _api_moves(rule["transitions"], "days")
    if rule.get("noncurrentVersionTransitions"):
        out["NoncurrentVersionTransitions"] = _api_moves(
            rule["noncurrentVersionTransitions"], "noncurrentDays"
        )
    expiration = rule.get("expiration") or {}
    if expiration.get("date"):
        out["Expiration"] = {"Date": expiration["date"]}
    elif expiration.get("days"):
        out["Expiration"] = {"Days": int(expiration["days"])}
    elif expiration.get("expiredObjectDeleteMarker") is not None:
        out["Expiration"] = {
            "ExpiredObjectDeleteMarker": bool(expiration["expiredObjectDeleteMarker"])
        }
    noncurrent = rule.get("noncurrentVersionExpiration")
    if noncurrent:
        out["NoncurrentVersionExpiration"] = {"NoncurrentDays": int(noncurrent["noncurrentDays"])}
        if noncurrent.get("newerNoncurrentVersions") is not None:
            out["NoncurrentVersionExpiration"]["NewerNoncurrentVersions"] = int(
                noncurrent["newerNoncurrentVersions"]
            )
    abort = rule.get("abortIncompleteMultipartUpload")
    if abort and abort.get("daysAfterInitiation") is not None:
        out["AbortIncompleteMultipartUpload"] = {
            "DaysAfterInitiation": int(abort["daysAfterInitiation"])
        }
    return out


class BucketLifecycleConfiguration(BucketConfig):
    type = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
    # Object size filters, noncurrentVersionExpiration.newerNoncurrentVersions and
    # transitionDefaultMinimumObjectSize are left out: the emulator drops them (it answers
    # every bucket's minimum size with S3's default).
    emulates = frozenset({"bucket", "expectedBucketOwner", *(f"rules.{key}" for key in _RULE_KEYS)})
    what = "lifecycle rules"
    absent = ("NoSuchLifecycleConfiguration",)

    def validate(self, inputs: dict[str, Any]) -> None:
        size = inputs.get("transitionDefaultMinimumObjectSize")
        if size is not None and size not in _MINIMUM_SIZES:
            raise HandlerError(
                f"transitionDefaultMinimumObjectSize '{size}' is not {' or '.join(_MINIMUM_SIZES)}"
            )
        rules = inputs.get("rules")
        if not isinstance(rules, list):
            return
        if not 1 <= len(rules) <= 1000:
            raise HandlerError(f"rules must hold 1-1000 rules, not {len(rules)}")
        ids = [str(r["id"]) for r in rules if isinstance(r, dict) and r.get("id")]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise HandlerError(f"rule ids must be unique: {', '.join(repeated)} repeats")
        for i, rule in enumerate(rules):
            if isinstance(rule, dict):
                _check_rule(rule, f"rules[{i}]")

    def put(self, s3: Any, args: dict[str, Any], new: dict[str, Any], old: dict | None) -> None:
        request: dict[str, Any] = {
            **args,
            "LifecycleConfiguration": {"Rules": [_api_rule(r) for r in new["rules"]]},
        }
        if new.get("transitionDefaultMinimumObjectSize"):
            request["TransitionDefaultMinimumObjectSize"] = new[
                "transitionDefaultMinimumObjectSize"
            ]
        s3.put_bucket_lifecycle_configuration(**request)

    def remove(self, s3: Any, args: dict[str, Any], outputs: dict[str, Any]) -> None:
        s3.delete_bucket_lifecycle(**args)

    def present(self, s3: Any, args: dict[str, Any], outputs: dict[str, Any]) -> bool:
        s3.get_bucket_lifecycle_configuration(**args)
        return True


HANDLERS: list[Handler] = [BucketLifecycleConfiguration()]
