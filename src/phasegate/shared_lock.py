"""The environment lock shared across machines: one DynamoDB item per environment.

The local lock (:class:`phasegate.state.EnvironmentLock`) is a kernel flock, so two CI
runners on two machines never see each other. When an environment names a lock table
(``lock: dynamodb:`` in ``migration.yaml``), a run also holds the item
``LockID = "<project>/<environment>"`` there for as long as it runs.

Why DynamoDB and not an S3 conditional put: taking the lock, whether it is free or its
holder's lease has ended, is one atomic conditional write
(``attribute_not_exists(LockID) OR expires < :now``). With S3, ``If-None-Match: *`` only
creates; taking over an expired lock needs a read and then an ``If-Match`` put on the
ETag read, two requests and a third outcome to handle. DynamoDB's conditional writes are
long standing, and emulators (moto, LocalStack) implement them faithfully, so the sandbox
rehearses the very requests a real table gets.

The hold is a lease: the item says until when (``expires``, epoch seconds), and a
heartbeat renews it every third of the lease while the run goes on. A run killed
outright (SIGKILL, a lost runner) cannot release it; the next run is refused, naming the
dead holder and when its lease ends, and the first run after that takes the lock over
with a warning. Each hold has its own random token: renewal and release are conditional
on it, so a run never renews or deletes a lock another run has taken since.

Clocks: the lease compares the epoch seconds of different machines, so their clocks must
agree to well within the lease (NTP does; a lease of minutes leaves ample room).
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from phasegate.errors import InputError, LockHeld, PhasegateError, aws_error_code
from phasegate.machine import RunContext
from phasegate.spec import EnvironmentSpec, SharedLock

__all__ = ["DynamoDBLock"]

_TAKE = "attribute_not_exists(LockID) OR expires < :now"
_MINE = "#token = :me"


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class DynamoDBLock:
    """One run's hold on an environment's item in the lock table."""

    def __init__(
        self,
        *,
        key: str,
        environment: str,
        lease_seconds: int,
        table: str,
        region: str,
        endpoint_url: str | None,
        context: RunContext,
        client: Any,
        on_notice: Callable[[str], None] = lambda _: None,
        on_lost: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.key = key
        self.environment = environment
        self.lease_seconds = lease_seconds
        self.table = table
        self.region = region
        self.endpoint_url = endpoint_url
        self.context = context
        self.on_notice = on_notice
        self.on_lost = on_lost
        """Called once a renewal finds the lock taken: the run must stop, as it no
        longer keeps others out."""
        self.clock = clock
        self.lost: str | None = None
        """Set when a renewal found the lock taken by another run (who took it)."""
        self._client = client
        self._token = ""
        self._expires = 0
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    @classmethod
    def for_environment(
        cls,
        project: str,
        env: EnvironmentSpec,
        lock: SharedLock,
        context: RunContext,
        *,
        on_notice: Callable[[str], None] = lambda _: None,
        on_lost: Callable[[], None] = lambda: None,
        client: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> DynamoDBLock:
        """The lock of ``env`` as ``migration.yaml`` configures it; the client defaults to
        one on the table's region, endpoint and profile (each the environment's unless the
        lock names its own)."""
        where = lock.dynamodb
        region = where.region or env.region
        endpoint = where.endpoint_url or env.aws.endpoint_url
        if client is None:
            client = _client(env.name, region, endpoint, where.profile or env.aws.profile)
        return cls(
            key=f"{project}/{env.name}",
            environment=env.name,
            lease_seconds=lock.lease_seconds,
            table=where.table,
            region=region,
            endpoint_url=endpoint,
            context=context,
            client=client,
            on_notice=on_notice,
            on_lost=on_lost,
            clock=clock,
        )

    @contextmanager
    def held(self) -> Iterator[DynamoDBLock]:
        self.acquire()
        try:
            yield self
        finally:
            self.release()

    # -- acquire ---------------------------------------------------------------------

    def acquire(self) -> None:
        """Take the lock if it is free or its holder's lease has ended; LockHeld if not."""
        for _ in range(3):  # the holder may release between our put and our read
            token = secrets.token_hex(16)
            now = int(self.clock())
            item = self._item(token, now)
            try:
                answer = self._client.put_item(
                    TableName=self.table,
                    Item=item,
                    ConditionExpression=_TAKE,
                    ExpressionAttributeValues={":now": {"N": str(now)}},
                    ReturnValues="ALL_OLD",
                )
            except Exception as exc:
                if aws_error_code(exc) != "ConditionalCheckFailedException":
                    raise self._failure(exc, "take") from None
                holder = self._read()
                if holder is None or _expiry(holder) < now:
                    continue  # released, or its lease ended, since our write: try again
                raise self._held_by(holder) from None
            self._token, self._expires = token, now + self.lease_seconds
            previous = _plain(answer.get("Attributes") or {})
            if previous:
                self.on_notice(
                    f"took over the lock of environment '{self.environment}' held by "
                    f"{_who(previous)}, whose lease ended at {_when(_expiry(previous))}"
                )
            self._start_heartbeat()
            return
        raise PhasegateError(
            f"the lock of environment '{self.environment}' in table {self.table} changed "
            "hands three times while this run tried to take it",
            hint="run the command again",
        )

    def _item(self, token: str, now: int) -> dict[str, dict[str, str]]:
        context = self.context
        item = {
            "LockID": {"S": self.key},
            "token": {"S": token},
            "actor": {"S": context.actor},
            "host": {"S": socket.gethostname()},
            "pid": {"N": str(os.getpid())},
            "command": {"S": context.command},
            "started": {"S": _when(now)},
            "expires": {"N": str(now + self.lease_seconds)},
        }
        if context.ci_url:
            item["ci_url"] = {"S": context.ci_url}
        return item

    def _read(self) -> dict[str, Any] | None:
        try:
            answer = self._client.get_item(
                TableName=self.table, Key={"LockID": {"S": self.key}}, ConsistentRead=True
            )
        except Exception as exc:
            raise self._failure(exc, "read") from None
        item = answer.get("Item")
        return _plain(item) if item else None

    def _held_by(self, holder: dict[str, Any]) -> LockHeld:
        until = _when(_expiry(holder))
        return LockHeld(
            f"environment '{self.environment}' is locked by {_who(holder)} "
            f"(`{holder.get('command', 'migrate')}`, since {holder.get('started', '?')}, "
            f"lease until {until})",
            hint=f"wait for it to finish; if that run is dead, its lease ends at {until}, "
            "after which the next run takes over",
        )

    # -- heartbeat -------------------------------------------------------------------

    def _start_heartbeat(self) -> None:
        self._stop.clear()
        self._heartbeat = threading.Thread(
            target=self._renew_until_stopped, name=f"lock-{self.environment}", daemon=True
        )
        self._heartbeat.start()

    def _renew_until_stopped(self) -> None:
        failing = False
        while not self._stop.wait(self.lease_seconds / 3):
            try:
                self.renew()
            except LockLost:
                return
            except Exception as exc:  # a network hiccup: say so once, keep trying
                if not failing:
                    self.on_notice(
                        f"could not renew the lock of environment '{self.environment}' "
                        f"({_reason(exc)}); trying again, its lease ends at "
                        f"{_when(self._expires)}"
                    )
                failing = True
            else:
                failing = False

    def renew(self) -> None:
        """Push the lease end out by a whole lease, if the lock is still this run's;
        LockLost (and :attr:`lost` set, a notice given) if another run has taken it."""
        now = int(self.clock())
        expires = now + self.lease_seconds
        try:
            self._client.update_item(
                TableName=self.table,
                Key={"LockID": {"S": self.key}},
                UpdateExpression="SET #expires = :expires",
                ConditionExpression=_MINE,
                ExpressionAttributeNames={"#token": "token", "#expires": "expires"},
                ExpressionAttributeValues={
                    ":me": {"S": self._token},
                    ":expires": {"N": str(expires)},
                },
            )
        except Exception as exc:
            if aws_error_code(exc) != "ConditionalCheckFailedException":
                raise
            holder = self._read()
            self.lost = _who(holder) if holder else "nobody (the lock was deleted)"
            self.on_notice(
                f"lost the lock of environment '{self.environment}': it is now held by "
                f"{self.lost}; this run stops after the operation under way, as on Ctrl-C "
                "(`migrate recover` finishes what it leaves)"
            )
            self.on_lost()
            raise LockLost(self.lost) from None
        self._expires = expires

    # -- release ---------------------------------------------------------------------

    def release(self) -> None:
        """Stop renewing and delete the item if it is still this run's; another run's
        lock is left as it is. A failure is a notice: the lease ends it anyway."""
        if not self._token:
            return
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=30)
            self._heartbeat = None
        token, self._token = self._token, ""
        try:
            self._client.delete_item(
                TableName=self.table,
                Key={"LockID": {"S": self.key}},
                ConditionExpression=_MINE,
                ExpressionAttributeNames={"#token": "token"},
                ExpressionAttributeValues={":me": {"S": token}},
            )
        except Exception as exc:
            if aws_error_code(exc) == "ConditionalCheckFailedException":
                return  # another run took it over: its lock, not ours to delete
            self.on_notice(
                f"could not release the lock of environment '{self.environment}' "
                f"({_reason(exc)}); it frees itself when its lease ends at "
                f"{_when(self._expires)}"
            )

    # -- errors ----------------------------------------------------------------------

    def _failure(self, exc: Exception, doing: str) -> PhasegateError:
        where = f"{self.region} (endpoint {self.endpoint_url or 'AWS'})"
        code = aws_error_code(exc)
        if code == "ResourceNotFoundException":
            return PhasegateError(
                f"lock table {self.table} not found in {where}: create it with partition "
                "key LockID (string)"
            )
        if code == "ValidationException":
            return PhasegateError(
                f"lock table {self.table} in {where}: {_reason(exc)}",
                hint="its partition key must be LockID (string), with no sort key",
            )
        return PhasegateError(
            f"cannot {doing} the lock of environment '{self.environment}' in table "
            f"{self.table} in {where}: {_reason(exc)}"
        )


class LockLost(PhasegateError):
    """A renewal found the lock taken by another run."""


def _client(environment: str, region: str, endpoint: str | None, profile: str | None) -> Any:
    import boto3
    import botocore.config
    import botocore.exceptions

    field = f"environments.{environment}.lock.dynamodb"
    try:
        session = boto3.Session(profile_name=profile, region_name=region)
        return session.client(
            "dynamodb",
            endpoint_url=endpoint,
            config=botocore.config.Config(
                connect_timeout=5, read_timeout=10, retries={"max_attempts": 3}
            ),
        )
    except botocore.exceptions.ProfileNotFound:
        raise InputError(
            f"AWS profile '{profile}' not found", file="migration.yaml", field=f"{field}.profile"
        ) from None
    except ValueError as exc:  # botocore: "Invalid endpoint: ..."
        raise InputError(str(exc), file="migration.yaml", field=f"{field}.endpoint_url") from None


def _reason(exc: BaseException) -> str:
    code = aws_error_code(exc)
    if code:
        message = str(getattr(exc, "response", {}).get("Error", {}).get("Message", ""))
        return f"{code}: {message}" if message else code
    return str(exc) or type(exc).__name__


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item's attributes as plain values (strings and numbers are all it has)."""
    return {name: next(iter(value.values())) for name, value in item.items()}


def _expiry(holder: dict[str, Any]) -> float:
    try:
        return float(holder.get("expires", 0))
    except (TypeError, ValueError):
        return 0.0


def _who(holder: dict[str, Any]) -> str:
    who = f"{holder.get('actor', '?')} (pid {holder.get('pid', '?')} on {holder.get('host', '?')})"
    if holder.get("ci_url"):
        who += f" {holder['ci_url']}"
    return who
