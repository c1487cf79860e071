"""systemd hears readiness, status, stopping and watchdog pings over $NOTIFY_SOCKET; elsewhere nothing."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from agent.adapters import systemd


def _receiver(address: str | bytes) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(5)
    return sock


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, dict[str, str]]]:
    path = tmp_path / "notify.sock"
    with _receiver(str(path)) as sock:
        yield sock, {"NOTIFY_SOCKET": str(path)}


@pytest.mark.parametrize(
    ("send", "expected"),
    [
        (systemd.notify_ready, b"READY=1"),
        (systemd.notify_stopping, b"STOPPING=1"),
        (systemd.notify_watchdog, b"WATCHDOG=1"),
    ],
)
def test_each_notification_arrives_as_one_datagram(
    listener: tuple[socket.socket, dict[str, str]],
    send: Callable[[Mapping[str, str]], bool],
    expected: bytes,
) -> None:
    sock, env = listener
    assert send(env) is True
    assert sock.recv(4096) == expected


def test_status_is_one_line(listener: tuple[socket.socket, dict[str, str]]) -> None:
    sock, env = listener
    assert systemd.notify_status("running item docker\nattempt 2", env)
    assert sock.recv(4096) == b"STATUS=running item docker attempt 2"


def test_reloading_carries_the_monotonic_time(listener: tuple[socket.socket, dict[str, str]]) -> None:
    sock, env = listener
    assert systemd.notify_reloading(env)
    first, second = sock.recv(4096).split(b"\n")
    assert first == b"RELOADING=1"
    assert second.startswith(b"MONOTONIC_USEC=")
    assert int(second.split(b"=")[1]) > 0


def test_abstract_namespace_socket_is_supported() -> None:
    name = f"lcm-agent-test-{os.getpid()}"
    with _receiver(b"\0" + name.encode()) as sock:
        assert systemd.notify_ready({"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(4096) == b"READY=1"


def test_default_environment_is_the_process_environment(
    listener: tuple[socket.socket, dict[str, str]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    sock, env = listener
    monkeypatch.setenv("NOTIFY_SOCKET", env["NOTIFY_SOCKET"])
    assert systemd.notify_ready()
    assert sock.recv(4096) == b"READY=1"


@pytest.mark.parametrize("value", ["", "relative/path", "vsock:2:1234"])
def test_without_a_usable_socket_every_call_is_a_no_op(value: str) -> None:
    env = {"NOTIFY_SOCKET": value} if value else {}
    assert systemd.notify_ready(env) is False
    assert systemd.notify_status("x", env) is False


def test_a_vanished_socket_is_reported_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert systemd.notify_watchdog({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")}) is False
    assert "sd_notify" in caplog.text


@pytest.mark.parametrize(
    ("env", "interval"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 30.0),
        ({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": str(os.getpid())}, 0.5),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),  # meant for our parent
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "x"}, None),
    ],
)
def test_watchdog_interval_comes_from_systemd_and_only_for_this_process(
    env: dict[str, str], interval: float | None,
) -> None:
    assert systemd.watchdog_interval(env) == interval
