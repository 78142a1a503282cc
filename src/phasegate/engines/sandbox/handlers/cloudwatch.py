"""CloudWatch metric alarms: the promotion gates watch them.

``PutMetricAlarm`` both creates and updates an alarm. The emulator stores any comparison
operator, statistic or period it is given; CloudWatch refuses the ones checked here.
"""

from __future__ import annotations

from typing import Any

from phasegate.engines.sandbox.handlers.base import (
    CloudContext,
    Handler,
    HandlerError,
    int_or_none,
    retag,
)

__all__ = ["HANDLERS"]

_OPERATORS = (
    "GreaterThanOrEqualToThreshold",
    "GreaterThanThreshold",
    "LessThanThreshold",
    "LessThanOrEqualToThreshold",
    "LessThanLowerOrGreaterThanUpperThreshold",
    "LessThanLowerThreshold",
    "GreaterThanUpperThreshold",
)
_BAND_OPERATORS = _OPERATORS[4:]
"""Operators that compare with an anomaly-detection band (thresholdMetricId), not a number."""
_STATISTICS = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")
_MISSING_DATA = ("missing", "ignore", "breaching", "notBreaching")
_ACTION_LISTS = ("alarmActions", "okActions", "insufficientDataActions")
_SINGLE_METRIC = ("metricName", "namespace", "statistic", "extendedStatistic", "dimensions")
_DAY, _WEEK = 86_400, 604_800


def _check_period(period: int, what: str) -> None:
    if period not in (10, 20, 30) and (period <= 0 or period % 60):
        raise HandlerError(f"{what} {period} must be 10, 20, 30 or a multiple of 60 seconds")


def _dimensions(values: dict[str, Any] | None) -> list[dict[str, str]]:
    return [{"Name": k, "Value": str(v)} for k, v in sorted((values or {}).items())]


def _query(query: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"Id": query["id"]}
    for key, api in (("expression", "Expression"), ("label", "Label"), ("accountId", "AccountId")):
        if query.get(key):
            out[api] = query[key]
    if query.get("returnData") is not None:
        out["ReturnData"] = bool(query["returnData"])
    if query.get("period") is not None:
        out["Period"] = int(query["period"])
    metric = query.get("metric")
    if metric:
        described: dict[str, Any] = {"MetricName": metric["metricName"]}
        if metric.get("namespace"):
            described["Namespace"] = metric["namespace"]
        if metric.get("dimensions"):
            described["Dimensions"] = _dimensions(metric["dimensions"])
        stat: dict[str, Any] = {
            "Metric": described,
            "Period": int(metric["period"]),
            "Stat": metric["stat"],
        }
        if metric.get("unit"):
            stat["Unit"] = metric["unit"]
        out["MetricStat"] = stat
    return out


class MetricAlarm(Handler):
    type = "aws:cloudwatch/metricAlarm:MetricAlarm"
    emulates = frozenset(
        {
            "actionsEnabled",
            "alarmActions",
            "alarmDescription",
            "comparisonOperator",
            "datapointsToAlarm",
            "dimensions",
            "evaluateLowSampleCountPercentiles",
            "evaluationPeriods",
            "extendedStatistic",
            "insufficientDataActions",
            "metricName",
            # accountId is left out: the emulator keeps no query's account.
            "metricQueries.expression",
            "metricQueries.id",
            "metricQueries.label",
            "metricQueries.metric.dimensions",
            "metricQueries.metric.metricName",
            "metricQueries.metric.namespace",
            "metricQueries.metric.period",
            "metricQueries.metric.stat",
            "metricQueries.metric.unit",
            "metricQueries.period",
            "metricQueries.returnData",
            "name",
            "namespace",
            "okActions",
            "period",
            "statistic",
            "tags",
            "threshold",
            "thresholdMetricId",
            "treatMissingData",
            "unit",
        }
    )
    replace_on = frozenset({"name"})
    computed = ("id", "arn", "name")
    name_key = "name"

    def validate(self, inputs: dict[str, Any]) -> None:
        operator = inputs.get("comparisonOperator")
        if operator is not None and operator not in _OPERATORS:
            raise HandlerError(
                f"comparisonOperator '{operator}' is not one of {', '.join(_OPERATORS)}"
            )
        if operator in _BAND_OPERATORS and inputs.get("threshold") is not None:
            raise HandlerError(f"{operator} compares with thresholdMetricId, not a threshold")
        if operator in _OPERATORS[:4] and inputs.get("thresholdMetricId"):
            raise HandlerError(f"{operator} compares with a threshold, not thresholdMetricId")
        statistic = inputs.get("statistic")
        if statistic is not None and statistic not in _STATISTICS:
            raise HandlerError(f"statistic '{statistic}' is not one of {', '.join(_STATISTICS)}")
        if statistic is not None and inputs.get("extendedStatistic"):
            raise HandlerError("give statistic or extendedStatistic, not both")
        if inputs.get("metricQueries"):
            clash = [k for k in (*_SINGLE_METRIC, "period") if inputs.get(k)]
            if clash:
                raise HandlerError(f"metricQueries cannot be combined with {', '.join(clash)}")
        missing = inputs.get("treatMissingData")
        if missing is not None and missing not in _MISSING_DATA:
            raise HandlerError(
                f"treatMissingData '{missing}' is not one of {', '.join(_MISSING_DATA)}"
            )
        self._check_periods(inputs)
        for key in _ACTION_LISTS:
            actions = inputs.get(key) or []
            if len(actions) > 5:
                raise HandlerError(f"{key} holds {len(actions)} actions; CloudWatch allows 5")
            for action in actions:
                if isinstance(action, str) and not action.startswith("arn:"):
                    raise HandlerError(f"{key}: '{action}' is not an ARN")
        if len(inputs.get("dimensions") or {}) > 30:
            raise HandlerError("an alarm's metric can have at most 30 dimensions")
        name = inputs.get("name")
        if isinstance(name, str) and not 1 <= len(name) <= 255:
            raise HandlerError("name must be 1-255 characters")

    @staticmethod
    def _check_periods(inputs: dict[str, Any]) -> None:
        period = int_or_none(inputs.get("period"))
        if period is not None:
            _check_period(period, "period")
        for i, query in enumerate(inputs.get("metricQueries") or []):
            stat_period = int_or_none(((query or {}).get("metric") or {}).get("period"))
            if stat_period is not None:
                _check_period(stat_period, f"metricQueries[{i}].metric.period")
        evaluations = int_or_none(inputs.get("evaluationPeriods"))
        if evaluations is not None and evaluations < 1:
            raise HandlerError("evaluationPeriods must be at least 1")
        datapoints = int_or_none(inputs.get("datapointsToAlarm"))
        if (
            datapoints is not None
            and evaluations is not None
            and not 1 <= datapoints <= evaluations
        ):
            raise HandlerError(
                f"datapointsToAlarm {datapoints} must be within 1-{evaluations} (evaluationPeriods)"
            )
        if period is not None and evaluations is not None:
            limit = _DAY if period < 3600 else _WEEK
            if period * evaluations > limit:
                raise HandlerError(
                    f"period x evaluationPeriods is {period * evaluations}s; CloudWatch allows "
                    f"{limit}s for {'periods under an hour' if limit == _DAY else 'hourly periods'}"
                )

    def create(self, ctx: CloudContext, name: str, inputs: dict[str, Any]) -> tuple[str, dict]:
        alarm_name = self.physical_name(name, inputs, max_len=255)
        request = self._request(alarm_name, inputs)
        if inputs.get("tags"):
            request["Tags"] = self.tag_list(inputs["tags"])
        self._put(ctx, request)
        return alarm_name, {
            **inputs,
            "id": alarm_name,
            "name": alarm_name,
            "arn": f"arn:aws:cloudwatch:{ctx.region}:{ctx.account_id}:alarm:{alarm_name}",
        }

    def update(self, ctx: CloudContext, id_: str, old: dict, new: dict, outputs: dict) -> dict:
        self._put(ctx, self._request(id_, new))
        cloudwatch, arn = ctx.client("cloudwatch"), outputs["arn"]
        retag(
            old.get("tags"),
            new.get("tags"),
            lambda tags: cloudwatch.tag_resource(ResourceARN=arn, Tags=tags),
            lambda keys: cloudwatch.untag_resource(ResourceARN=arn, TagKeys=keys),
        )
        return self.updated(new, outputs)

    def delete(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> None:
        ctx.client("cloudwatch").delete_alarms(AlarmNames=[id_])

    def exists(self, ctx: CloudContext, id_: str, outputs: dict[str, Any]) -> bool:
        found = ctx.client("cloudwatch").describe_alarms(AlarmNames=[id_])
        return bool(found["MetricAlarms"])

    @staticmethod
    def _put(ctx: CloudContext, request: dict[str, Any]) -> None:
        try:
            ctx.client("cloudwatch").put_metric_alarm(**request)
        except Exception as exc:
            raise HandlerError(f"cannot put alarm {request['AlarmName']}: {exc}") from None

    @staticmethod
    def _request(alarm_name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        """PutMetricAlarm arguments; the inputs CloudWatch needs are checked here, known."""
        operator = inputs.get("comparisonOperator")
        if not operator:
            raise HandlerError("comparisonOperator is required")
        if not inputs.get("evaluationPeriods"):
            raise HandlerError("evaluationPeriods is required")
        request: dict[str, Any] = {
            "AlarmName": alarm_name,
            "ComparisonOperator": operator,
            "EvaluationPeriods": int(inputs["evaluationPeriods"]),
            "ActionsEnabled": bool(inputs.get("actionsEnabled", True)),
            "TreatMissingData": inputs.get("treatMissingData", "missing"),
        }
        if operator in _BAND_OPERATORS:
            if not inputs.get("thresholdMetricId"):
                raise HandlerError(f"{operator} needs thresholdMetricId")
            request["ThresholdMetricId"] = inputs["thresholdMetricId"]
        elif inputs.get("threshold") is None:
            raise HandlerError(f"{operator} needs a threshold")
        else:
            request["Threshold"] = float(inputs["threshold"])
        if inputs.get("metricQueries"):
            request["Metrics"] = [_query(q) for q in inputs["metricQueries"]]
        else:
            absent = [k for k in ("metricName", "namespace", "period") if not inputs.get(k)]
            if absent:
                raise HandlerError(f"an alarm on one metric needs {', '.join(absent)}")
            if not inputs.get("statistic") and not inputs.get("extendedStatistic"):
                raise HandlerError("an alarm on one metric needs statistic or extendedStatistic")
            request.update(
                MetricName=inputs["metricName"],
                Namespace=inputs["namespace"],
                Period=int(inputs["period"]),
                Dimensions=_dimensions(inputs.get("dimensions")),
            )
            if inputs.get("statistic"):
                request["Statistic"] = inputs["statistic"]
            else:
                request["ExtendedStatistic"] = inputs["extendedStatistic"]
        for key, api in (
            ("alarmDescription", "AlarmDescription"),
            ("datapointsToAlarm", "DatapointsToAlarm"),
            ("unit", "Unit"),
            ("evaluateLowSampleCountPercentiles", "EvaluateLowSampleCountPercentile"),
        ):
            if inputs.get(key) is not None:
                request[api] = inputs[key]
        request.update(
            AlarmActions=list(inputs.get("alarmActions") or []),
            OKActions=list(inputs.get("okActions") or []),
            InsufficientDataActions=list(inputs.get("insufficientDataActions") or []),
        )
        return request


HANDLERS: list[Handler] = [MetricAlarm()]
