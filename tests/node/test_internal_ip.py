"""The machine's InternalIP: the spec's interface, else an address in its CIDR, else the default route's."""

from __future__ import annotations

import pytest

from agent.api.host_facts import NetworkInterface
from agent.decisions.addressing import choose_internal_ip


def _nic(name: str, *addresses: str) -> NetworkInterface:
    return NetworkInterface(name, "02:00:00:00:00:01", addresses=addresses)


NICS = (
    _nic("lo", "127.0.0.1/8", "::1/128"),
    _nic("eth0", "2001:db8::10/64", "fe80::1%eth0/64", "192.0.2.10/24"),
    _nic("eth1", "not-an-address", "10.20.0.5/16", "fd00:1::5/64"),
    _nic("ll0", "169.254.1.1/16", "fe80::2/64", "224.0.0.1", "0.0.0.0/0"),
    _nic("v6only", "fe80::7%v6only/64", "2001:db8:2::7/64"),
    _nic("bare", "198.51.100.9"),
)


@pytest.mark.parametrize(
    ("interface", "cidr", "default", "expected"),
    [
        # The named interface wins; IPv4 before IPv6 on it; link-local never.
        ("eth1", None, "eth0", "10.20.0.5"),
        ("eth0", None, None, "192.0.2.10"),
        ("v6only", None, None, "2001:db8:2::7"),
        ("bare", None, None, "198.51.100.9"),  # an address without a prefix length
        # With both, the named interface's address inside the CIDR; else any interface's inside it.
        ("eth0", "2001:db8::/32", None, "2001:db8::10"),
        ("eth0", "10.20.0.0/16", None, "10.20.0.5"),
        # A named interface that is absent or has nothing usable falls through.
        ("eth9", None, "eth1", "10.20.0.5"),
        ("lo", None, "eth0", "192.0.2.10"),
        ("ll0", None, None, None),
        ("eth9", "10.20.0.0/16", "eth0", "10.20.0.5"),
        # The CIDR alone: the first usable address inside it, in interface order, either family.
        (None, "10.20.0.0/16", "eth0", "10.20.0.5"),
        (None, "10.20.0.1/16", None, "10.20.0.5"),  # host bits in the CIDR are tolerated
        (None, "fd00:1::/64", None, "fd00:1::5"),
        (None, "2001:db8::/32", None, "2001:db8::10"),
        (None, " 192.0.2.0/24 ", None, "192.0.2.10"),
        # A CIDR matching nothing usable falls back to the default route.
        (None, "127.0.0.0/8", None, None),
        (None, "169.254.0.0/16", "eth1", "10.20.0.5"),
        (None, "203.0.113.0/24", "v6only", "2001:db8:2::7"),
        # Neither set: the default route's interface, or nothing.
        (None, None, "eth0", "192.0.2.10"),
        (None, None, "lo", None),
        (None, None, None, None),
        ("", "", "eth1", "10.20.0.5"),  # empty spec fields mean unset
    ],
)
def test_internal_ip_choice(
    interface: str | None, cidr: str | None, default: str | None, expected: str | None,
) -> None:
    assert choose_internal_ip(NICS, interface, cidr, default_interface=default) == expected


@pytest.mark.parametrize("cidr", ["10.0.0.0/33", "eth0", "10.0.0", "fd00::/129"])
def test_a_cidr_that_is_not_a_network_is_reported_not_ignored(cidr: str) -> None:
    with pytest.raises(ValueError, match=r"spec\.cidr"):
        choose_internal_ip(NICS, None, cidr, default_interface="eth0")


def test_no_interfaces_means_no_address() -> None:
    assert choose_internal_ip((), "eth0", "10.0.0.0/8", default_interface="eth0") is None
