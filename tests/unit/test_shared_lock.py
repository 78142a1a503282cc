"""The environment lock shared across machines, against the emulated DynamoDB: one run
holds it, another is refused naming the holder, a dead holder's lock is taken over once
its lease ends, the heartbeat keeps a live one, and a missing table is one clear line."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from phasegate.engines.sandbox.emulator import Emulator
from phasegate.engines.sandbox.server import serve
from phasegate.errors import ExitCode, InputError, LockHeld, PhasegateError
from phasegate.machine import RunContext
from phasegate.shared_lock import DynamoDBLock
from phasegate.spec import EnvironmentSpec, SharedLock, load_migration

TABLE = "phasegate-locks"
START = 1_800_000_000  # 2027-01-15T08:00:00Z


class Clock:
    """Epoch seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = float(START)

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def dynamodb(emu: Emulator) -> Iterator[Any]:
    """A client of the emulated DynamoDB with an empty lock table."""
    client = emu.client("dynamodb")
    client.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    yield client
    client.delete_table(TableName=TABLE)


def _lock(
    client: Any,
    clock: Clock,
    actor: str = "alice",
    *,
    lease: int = 60,
    notices: list[str] | None = None,
    table: str = TABLE,
    stop: threading.Event | None = None,
) -> DynamoDBLock:
    return DynamoDBLock(
        key="shop/prod",
        environment="prod",
        lease_seconds=lease,
        table=table,
        region="us-east-1",
        endpoint_url=None,
        context=RunContext(
            command="migrate apply", actor=actor, ci_url=f"https://ci.example/{actor}"
        ),
        client=client,
        on_notice=(notices if notices is not None else []).append,
        on_lost=(stop or threading.Event()).set,
        clock=clock,
    )


def _item(client: Any) -> dict[str, Any] | None:
    found = client.get_item(TableName=TABLE, Key={"LockID": {"S": "shop/prod"}}).get("Item")
    return {k: next(iter(v.values())) for k, v in found.items()} if found else None


def test_a_held_lock_refuses_another_run_naming_its_holder(dynamodb: Any) -> None:
    clock = Clock()
    first = _lock(dynamodb, clock, "alice")
    first.acquire()
    try:
        item = _item(dynamodb)
        assert item is not None
        assert item["actor"] == "alice" and item["command"] == "migrate apply"
        assert item["host"] == socket.gethostname() and item["pid"] == str(os.getpid())
        assert item["expires"] == str(START + 60)
        assert item["ci_url"] == "https://ci.example/alice"
        assert item["started"] == "2027-01-15T08:00:00Z"

        clock.now += 59  # within the lease
        with pytest.raises(LockHeld) as caught:
            _lock(dynamodb, clock, "bob").acquire()
        held = caught.value
        assert held.exit_code == ExitCode.BLOCKED
        message = str(held)
        assert "\n" not in message
        assert message.startswith("environment 'prod' is locked by alice (pid ")
        assert f"pid {os.getpid()} on {socket.gethostname()}" in message
        assert "`migrate apply`, since 2027-01-15T08:00:00Z" in message
        assert "lease until 2027-01-15T08:01:00Z" in message
        assert held.hint == (
            "wait for it to finish; if that run is dead, its lease ends at "
            "2027-01-15T08:01:00Z, after which the next run takes over"
        )
        assert _item(dynamodb) == item, "a refused run changes nothing"
    finally:
        first.release()
    assert _item(dynamodb) is None


def test_a_released_lock_is_free_for_the_next_run_without_a_warning(dynamodb: Any) -> None:
    clock, notices = Clock(), []
    with _lock(dynamodb, clock, "alice").held():
        pass
    with _lock(dynamodb, clock, "bob", notices=notices).held():
        assert _item(dynamodb)["actor"] == "bob"  # type: ignore[index]
    assert notices == []
    assert _item(dynamodb) is None


def test_an_expired_lease_is_taken_over_with_a_warning_and_kept_from_its_old_holder(
    dynamodb: Any,
) -> None:
    clock, notices = Clock(), []
    dead = _lock(dynamodb, clock, "alice")
    dead.acquire()
    dead._stop.set()  # its heartbeat dies with it, as a killed run's would

    clock.now += 60  # the lease ends at START + 60: not yet over
    with pytest.raises(LockHeld):
        _lock(dynamodb, clock, "bob").acquire()

    clock.now += 1
    second = _lock(dynamodb, clock, "bob", notices=notices)
    second.acquire()
    try:
        assert notices == [
            "took over the lock of environment 'prod' held by alice "
            f"(pid {os.getpid()} on {socket.gethostname()}) https://ci.example/alice, "
            "whose lease ended at 2027-01-15T08:01:00Z"
        ]
        # The old holder, should it wake up, neither renews nor deletes the new lock.
        lost: list[str] = []
        dead.on_notice = lost.append
        with pytest.raises(PhasegateError):
            dead.renew()
        assert dead.lost is not None and dead.lost.startswith("bob (pid ")
        assert lost and "lost the lock of environment 'prod'" in lost[0]
        dead.release()
        assert _item(dynamodb)["actor"] == "bob"  # type: ignore[index]
    finally:
        second.release()
    assert _item(dynamodb) is None


def test_renewal_keeps_a_long_run_s_lock_past_its_first_lease(dynamodb: Any) -> None:
    clock = Clock()
    first = _lock(dynamodb, clock, "alice")
    first.acquire()
    first._stop.set()  # renewals by hand below, at the clock's times
    try:
        clock.now += 50
        first.renew()
        assert _item(dynamodb)["expires"] == str(START + 50 + 60)  # type: ignore[index]
        clock.now += 50  # past the first lease, within the renewed one
        with pytest.raises(LockHeld, match="lease until 2027-01-15T08:01:50Z"):
            _lock(dynamodb, clock, "bob").acquire()
    finally:
        first.release()


def test_the_heartbeat_renews_every_third_of_the_lease_and_stops_on_release(
    dynamodb: Any,
) -> None:
    clock = Clock()
    lock = _lock(dynamodb, clock, "alice", lease=1)
    lock.acquire()
    heartbeat = lock._heartbeat
    assert heartbeat is not None and heartbeat.daemon
    clock.now += 100
    deadline = time.monotonic() + 10
    while _item(dynamodb)["expires"] != str(START + 101):  # type: ignore[index]
        assert time.monotonic() < deadline, "the heartbeat never renewed the lease"
        time.sleep(0.05)
    lock.release()
    assert not heartbeat.is_alive()
    assert _item(dynamodb) is None


def test_the_heartbeat_notices_a_lock_taken_by_another_run_and_stops_the_run(
    dynamodb: Any,
) -> None:
    clock, notices, stop = Clock(), [], threading.Event()
    lock = _lock(dynamodb, clock, "alice", lease=1, notices=notices, stop=stop)
    lock.acquire()
    heartbeat = lock._heartbeat
    assert heartbeat is not None
    dynamodb.update_item(  # another run took it over (its clock ran ahead, say)
        TableName=TABLE,
        Key={"LockID": {"S": "shop/prod"}},
        UpdateExpression="SET #t = :t, actor = :a",
        ExpressionAttributeNames={"#t": "token"},
        ExpressionAttributeValues={":t": {"S": "someone-else"}, ":a": {"S": "carol"}},
    )
    heartbeat.join(timeout=10)
    assert not heartbeat.is_alive()
    assert lock.lost is not None and lock.lost.startswith("carol (pid ")
    assert len(notices) == 1 and "it is now held by carol" in notices[0]
    assert "this run stops after the operation under way" in notices[0]
    assert stop.is_set(), "the run is asked to stop, as on Ctrl-C"
    lock.release()
    assert _item(dynamodb)["actor"] == "carol", "another run's lock is left as it is"  # type: ignore[index]


def test_a_missing_table_is_one_line_naming_it_and_how_to_create_it(dynamodb: Any) -> None:
    with pytest.raises(PhasegateError) as caught:
        _lock(dynamodb, Clock(), table="no-such-table").acquire()
    assert not isinstance(caught.value, LockHeld)
    assert caught.value.exit_code == ExitCode.ERROR
    assert str(caught.value) == (
        "lock table no-such-table not found in us-east-1 (endpoint AWS): create it with "
        "partition key LockID (string)"
    )


def _environment(tmp_path: Path, lock: str) -> EnvironmentSpec:
    (tmp_path / "migration.yaml").write_text(
        "environments:\n  - name: prod\n    region: eu-west-1\n"
        "    aws: {endpoint_url: 'http://127.0.0.1:1'}\n"
        f"    lock: {lock}\nphases: []\n",
        encoding="utf-8",
    )
    return load_migration(tmp_path).environments[0]


def test_the_lock_defaults_to_the_environment_s_region_and_endpoint(tmp_path: Path) -> None:
    env = _environment(tmp_path, "{dynamodb: {table: locks}}")
    assert env.lock == SharedLock.model_validate({"dynamodb": {"table": "locks"}})
    assert env.lock is not None and env.lock.lease_seconds == 120
    lock = DynamoDBLock.for_environment("shop", env, env.lock, RunContext("x", "y"))
    assert (lock.key, lock.region, lock.endpoint_url) == (
        "shop/prod",
        "eu-west-1",
        "http://127.0.0.1:1",
    )


@pytest.mark.parametrize(
    ("lock", "field"),
    [
        ("{dynamodb: {table: locks}, lease_seconds: 5}", "lease_seconds"),
        ("{dynamodb: {table: locks, colour: red}}", "colour"),
        ("{dynamodb: {}}", "table"),
    ],
)
def test_a_wrong_lock_entry_names_its_field(tmp_path: Path, lock: str, field: str) -> None:
    with pytest.raises(InputError, match=field):
        _environment(tmp_path, lock)


def test_a_sandbox_lock_without_an_endpoint_is_refused(tmp_path: Path) -> None:
    (tmp_path / "migration.yaml").write_text(
        "environments:\n  - name: rehearsal\n    engine: sandbox\n"
        "    lock: {dynamodb: {table: locks}}\nphases: []\n",
        encoding="utf-8",
    )
    with pytest.raises(InputError) as caught:
        load_migration(tmp_path)
    message = str(caught.value)
    assert "migration.yaml" in message and "lock.dynamodb.endpoint_url" in message
    assert "\n" not in message


def test_an_unreachable_endpoint_is_one_line_naming_table_and_endpoint(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = _environment(
        tmp_path, f"{{dynamodb: {{table: locks, endpoint_url: 'http://127.0.0.1:{port}'}}}}"
    )
    assert env.lock is not None
    lock = DynamoDBLock.for_environment("shop", env, env.lock, RunContext("x", "y"))
    with pytest.raises(PhasegateError) as caught:
        lock.acquire()
    message = str(caught.value)
    assert message.startswith(
        f"cannot take the lock of environment 'prod' in table locks in eu-west-1 "
        f"(endpoint http://127.0.0.1:{port}): "
    ), message
    assert "\n" not in message


def test_a_served_sandbox_holds_the_lock_for_clients_of_its_endpoint(
    emu: Emulator, dynamodb: Any, tmp_path: Path
) -> None:
    """What two machines do: each its own client, through `sandbox serve`'s endpoint."""
    stop, urls = threading.Event(), []
    server = threading.Thread(
        target=serve, args=(emu, "127.0.0.1", 0), kwargs={"ready": urls.append, "stop": stop}
    )
    server.start()
    try:
        deadline = time.monotonic() + 30
        while not urls:
            assert time.monotonic() < deadline and server.is_alive()
            time.sleep(0.05)
        env = _environment(
            tmp_path,
            f"{{dynamodb: {{table: {TABLE}, region: us-east-1, endpoint_url: '{urls[0]}'}}}}",
        )
        assert env.lock is not None

        def lock(actor: str) -> DynamoDBLock:
            return DynamoDBLock.for_environment("shop", env, env.lock, RunContext("apply", actor))  # type: ignore[arg-type]

        first = lock("alice")
        with first.held(), pytest.raises(LockHeld, match="locked by alice"):
            lock("bob").acquire()
        with lock("bob").held():
            pass
    finally:
        stop.set()
        server.join(timeout=30)
    assert not server.is_alive()
