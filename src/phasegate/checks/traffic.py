"""Checks on live traffic: ``cloudwatch_alarm`` (quiet for the whole bake) and ``http``
(an expected status within a latency budget)."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

from pydantic import Field, field_validator

from phasegate.checks.base import CheckContext, CheckError, CheckKind, Params, Probe, aws_client

__all__ = ["CloudwatchAlarm", "CloudwatchAlarmParams", "Http", "HttpParams"]

_DESCRIBE_LIMIT = 100
"""Most alarm names DescribeAlarms takes at once."""


class CloudwatchAlarmParams(Params):
    """Alarms none of which may be in ALARM at any look during the bake."""

    alarms: list[str] = Field(min_length=1, description="alarm names; one name is enough too")
    poll_seconds: float = Field(1.0, gt=0, description="seconds between looks during the bake")

    @field_validator("alarms", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class CloudwatchAlarm(CheckKind):
    """Watches the alarms for the step's bake time (``ctx.bake_seconds``), at least once.

    An alarm seen in ALARM fails the check at once and for good (``final``): the bake has
    failed, and a retry that baked again could only hide it. An alarm that does not exist
    fails the attempt (it may be retried: a new alarm can take a moment to show).
    """

    name = "cloudwatch_alarm"
    params = CloudwatchAlarmParams
    watches_bake = True
    not_rerun_after_rollback = (
        "not re-run after a rollback: it watches the traffic that was just moved away"
    )

    def probe(self, params: CloudwatchAlarmParams, ctx: CheckContext) -> Probe:
        cloudwatch = aws_client(ctx, "cloudwatch")
        names = list(dict.fromkeys(params.alarms))
        start = ctx.clock()
        looks = 0
        while True:
            states = self._states(cloudwatch, names)
            looks += 1
            missing = [n for n in names if n not in states]
            if missing:
                return Probe(False, f"no such alarm: {', '.join(missing)}")
            elapsed = ctx.clock() - start
            for name in names:
                state, reason = states[name]
                if state == "ALARM":
                    return Probe(
                        False,
                        f"{name} is in ALARM {elapsed:.1f}s into the {ctx.bake_seconds:g}s "
                        f"bake: {reason or 'no reason given'}",
                        final=True,
                    )
            left = ctx.bake_seconds - elapsed
            if left <= 0:
                quiet = [f"{n} {states[n][0]}" for n in names]
                return Probe(
                    True,
                    f"not in ALARM for the {ctx.bake_seconds:g}s bake ({looks} look(s)): "
                    f"{', '.join(quiet)}",
                )
            ctx.sleep(min(params.poll_seconds, left))

    @staticmethod
    def _states(cloudwatch: Any, names: list[str]) -> dict[str, tuple[str, str]]:
        states: dict[str, tuple[str, str]] = {}
        for i in range(0, len(names), _DESCRIBE_LIMIT):
            answer = cloudwatch.describe_alarms(
                AlarmNames=names[i : i + _DESCRIBE_LIMIT],
                AlarmTypes=["MetricAlarm", "CompositeAlarm"],
            )
            for alarm in [*answer.get("MetricAlarms", []), *answer.get("CompositeAlarms", [])]:
                states[alarm["AlarmName"]] = (alarm["StateValue"], alarm.get("StateReason", ""))
        return states


class HttpParams(Params):
    """A GET that must answer ``status`` within ``latency_ms``."""

    url: str = Field(pattern=r"^https?://", description="the URL to GET (http or https)")
    status: int = Field(200, ge=100, le=599, description="the status expected")
    latency_ms: float | None = Field(
        None, gt=0, description="latency budget in milliseconds, to the last byte of the answer"
    )
    timeout_seconds: float = Field(10.0, gt=0, description="give up waiting for an answer")
    headers: dict[str, str] = Field(default_factory=dict, description="request headers")
    follow_redirects: bool = Field(True, description="false: a redirect is the answer")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_MAX_BODY = 1 << 20
"""The answer is read to its end (latency counts it) up to this many bytes."""


class Http(CheckKind):
    """One GET per attempt; N passes in a row come from the check's ``required_passes``."""

    name = "http"
    params = HttpParams

    def probe(self, params: HttpParams, ctx: CheckContext) -> Probe:
        handlers = [] if params.follow_redirects else [_NoRedirects()]
        opener = urllib.request.build_opener(*handlers)
        request = urllib.request.Request(params.url, headers=params.headers, method="GET")
        start = ctx.clock()
        try:
            with opener.open(request, timeout=params.timeout_seconds) as answer:
                answer.read(_MAX_BODY)
                status = int(answer.status)
        except urllib.error.HTTPError as answer:
            answer.read(_MAX_BODY)
            answer.close()
            status = int(answer.code)
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise CheckError(self._late(params)) from None
            raise CheckError(f"GET {params.url}: cannot connect: {exc.reason}") from None
        except TimeoutError:
            raise CheckError(self._late(params)) from None
        ms = (ctx.clock() - start) * 1000
        said = f"GET {params.url} answered {status} in {ms:.0f} ms"
        if status != params.status:
            return Probe(False, f"{said}, expected {params.status}")
        if params.latency_ms is not None and ms > params.latency_ms:
            return Probe(False, f"{said}, over the {params.latency_ms:g} ms budget")
        budget = f" (budget {params.latency_ms:g} ms)" if params.latency_ms is not None else ""
        return Probe(True, said + budget)

    @staticmethod
    def _late(params: HttpParams) -> str:
        return f"GET {params.url}: no answer within {params.timeout_seconds:g}s"
