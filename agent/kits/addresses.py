"""Listening addresses as operators write them: ``host:port``, an IPv6 host in brackets.

A kit of its own because the settings that take an address (the agent's config, lcm-scheduler's flags)
validate it without importing the server that will listen on it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass


class AddressError(ValueError):
    """An address that is not ``host:port``; the message says what is wrong with it."""


@dataclass(frozen=True)
class Address:
    """Where to listen: an IP address (v4, or v6 in brackets) and a port (0: any free one)."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Address:
        """``127.0.0.1:9737``, ``[::1]:9737``, ``0.0.0.0:9737``; raises ``AddressError``."""
        host, sep, port = text.rpartition(":")
        if not sep or not host:
            raise AddressError(f"metrics address {text!r} must be host:port, e.g. 127.0.0.1:9737")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise AddressError(f"metrics address {text!r}: {host!r} is not an IP address") from None
        if not port.isdigit() or not 0 <= int(port) <= 65535:
            raise AddressError(f"metrics address {text!r}: the port must be a number from 0 to 65535")
        return cls(host, int(port))

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
