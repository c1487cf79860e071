"""The environment a runner's child process gets: a short allowlist of the daemon's, plus the item's own.

The daemon's environment may hold its own credentials (config overrides, the API token); a playbook or
script has no business seeing them, and ansible-runner would copy whatever it is given into the ``command``
artifact on disk. So children start from an allowlist, never from ``os.environ`` as a whole.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

SECRET_PREFIX = "LCM_SECRET_"  # noqa: S105 (a variable-name prefix, not a secret)
PARAM_PREFIX = "LCM_PARAM_"

_INHERITED = frozenset(
    {"PATH", "LANG", "LANGUAGE", "TZ", "HOME", "USER", "LOGNAME", "TERM"}
    | {"http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"}
)
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class NameCollisionError(ValueError):
    """Two names of an item map to the same variable; the item is refused rather than one value lost."""


def inherited(source: Mapping[str, str] | None = None) -> dict[str, str]:
    """The allowlisted part of ``source`` (the daemon's environment by default), with a usable PATH."""
    env = os.environ if source is None else source
    kept = {k: v for k, v in env.items() if k in _INHERITED or k.startswith("LC_")}
    kept.setdefault("PATH", _DEFAULT_PATH)
    return kept


def variable_name(prefix: str, name: str) -> str:
    """``prefix`` + ``name`` upper-cased with anything but ``[A-Z0-9_]`` turned into ``_``."""
    return prefix + re.sub(r"[^A-Z0-9_]", "_", name.upper())


def named_variables(prefix: str, values: Mapping[str, str]) -> dict[str, str]:
    """Map each name to ``variable_name(prefix, name)``; refuse names that collide."""
    out: dict[str, str] = {}
    origin: dict[str, str] = {}
    for name, value in values.items():
        var = variable_name(prefix, name)
        if var in out:
            raise NameCollisionError(f"names {origin[var]!r} and {name!r} both map to variable {var}")
        out[var] = value
        origin[var] = name
    return out
