"""Which of the host's addresses is the machine's InternalIP.

The scheduler and Swarm both use InternalIP as the address other nodes reach this one on, so a wrong pick
(docker0's 172.17.0.1, a loopback, an fe80:: address that only works on one link) breaks joins in ways
that are hard to trace. The spec says where to look (``spec.interface``, ``spec.cidr``); without either,
the interface of the default route is the one a host would use to talk to the world.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Sequence

from agent.api.host_facts import NetworkInterface

Address = ipaddress.IPv4Interface | ipaddress.IPv6Interface
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def choose_internal_ip(
    interfaces: Sequence[NetworkInterface], interface_name: str | None, cidr: str | None,
    *, default_interface: str | None = None,
) -> str | None:
    """The InternalIP (a bare address), or None when the host has no usable one.

    In order of preference: the first usable address of ``interface_name`` (inside ``cidr`` when both are
    set); else the first usable address inside ``cidr`` on any interface; else the first usable address of
    ``default_interface``. Each step falls through to the next when it finds nothing, so a renamed NIC
    degrades to a best guess instead of a machine stuck in Uninitialized. IPv4 comes before IPv6 within an
    interface. Loopback, link-local, multicast and unspecified addresses are never chosen.

    Raises ValueError when ``cidr`` is not a network, so a typo in the spec is reported, not ignored.
    """
    network = _parse_network(cidr) if cidr else None
    if interface_name:
        found = _first(_usable(interfaces, name=interface_name), network)
        if found:
            return found
    if network is not None:
        found = _first(_usable(interfaces), network)
        if found:
            return found
    if default_interface:
        return _first(_usable(interfaces, name=default_interface), None)
    return None


def _parse_network(cidr: str) -> Network:
    try:
        return ipaddress.ip_network(cidr.strip(), strict=False)
    except ValueError as exc:
        raise ValueError(f"spec.cidr {cidr!r} is not an IPv4 or IPv6 network: {exc}") from None


def _usable(interfaces: Sequence[NetworkInterface], name: str | None = None) -> Iterator[Address]:
    for nic in interfaces:
        if name is not None and nic.name != name:
            continue
        parsed = [a for a in map(_parse_address, nic.addresses) if a is not None and _routable(a)]
        # IPv4 first: Swarm's advertise address and most operators' expectations are IPv4 when both exist.
        yield from sorted(parsed, key=lambda a: a.version)


def _parse_address(text: str) -> Address | None:
    """``address[%scope][/prefix]`` → an interface value; anything unparseable is skipped, not fatal."""
    address, slash, prefix = text.partition("/")
    try:
        return ipaddress.ip_interface(address.split("%", 1)[0] + slash + prefix)
    except ValueError:
        return None


def _routable(address: Address) -> bool:
    ip = address.ip
    return not (ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_unspecified)


def _first(candidates: Iterator[Address], network: Network | None) -> str | None:
    for address in candidates:
        if network is None or (address.version == network.version and address.ip in network):
            return str(address.ip)
    return None
