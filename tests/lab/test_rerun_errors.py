"""A lab server that cannot listen says why in words an operator can act on: the broker started in a
directory another run left (with that run's port and address) listens where it is told to now, and a port
someone holds, or an address that is not this host's, is named with the cause instead of a log dump."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.lab.stack import ports
from testbed.lab.stack.mosquitto import Broker, BrokerError, available

USERS = {"node-1": "node-1-Secret-pw"}


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port this test process listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_the_holder_of_a_listening_port_is_named(held_port: int) -> None:
    [holder] = ports.holders(held_port)
    assert holder.startswith(f"pid {os.getpid()} (")
    argv0 = Path("/proc/self/cmdline").read_bytes().split(b"\0")[0].decode()
    assert argv0 in holder  # named by its command line (pytest's, or an xdist worker's)
    said = ports.why_not_listening("127.0.0.1", held_port)
    assert f"port {held_port} is held by pid {os.getpid()}" in said


def test_an_address_that_is_not_this_hosts_is_said_to_be_so() -> None:
    assert "192.0.2.1 is not an address of this host" in ports.why_not_listening("192.0.2.1", 0)


needs_broker = pytest.mark.skipif(bool(available()), reason=available() or "mosquitto is installed")


@needs_broker
def test_a_broker_in_a_directory_another_run_left_listens_where_it_is_told(tmp_path: Path) -> None:
    old = Broker(tmp_path / "mqtt", USERS)
    old.start()
    old.stop()
    new = Broker(tmp_path / "mqtt", USERS)  # the next run: another free port
    assert new.port != old.port
    new.start()
    try:
        assert new.running
        new.stop()
        new.start()  # a restart (a broker outage) keeps this run's port
        assert new.running
        assert f"listener {new.port} 127.0.0.1" in new.conf.read_text()
    finally:
        new.stop()


@needs_broker
def test_a_broker_on_a_held_port_names_its_holder_not_an_old_log(tmp_path: Path, held_port: int) -> None:
    earlier = Broker(tmp_path / "mqtt", USERS)
    earlier.start()
    earlier.stop()
    with pytest.raises(BrokerError) as raised:
        Broker(tmp_path / "mqtt", USERS, port=held_port).start()
    said = str(raised.value)
    assert f"mosquitto did not start on 127.0.0.1:{held_port}" in said
    assert f"port {held_port} is held by pid {os.getpid()}" in said
    assert f"on port {earlier.port}" not in said  # nothing of the earlier start's log


@needs_broker
def test_a_broker_on_an_address_that_is_gone_says_so(tmp_path: Path) -> None:
    with pytest.raises(BrokerError) as raised:
        Broker(tmp_path / "mqtt", USERS, host="192.0.2.1").start()
    said = str(raised.value)
    assert "Cannot assign requested address" in said
    assert "192.0.2.1 is not an address of this host" in said
