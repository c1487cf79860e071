"""The one spelling of a sha256 digest the agent accepts: on its command line, in a runner's params and in
user-data. Lower case only, because every digest it compares against is hashlib's ``hexdigest()``; a digest
in capitals would be refused later as a mismatch, after a download, instead of at once as malformed."""

from __future__ import annotations

import re

_SHA256 = re.compile(r"[0-9a-f]{64}")


def is_sha256(value: str) -> bool:
    """True for 64 lower-case hexadecimal digits."""
    return _SHA256.fullmatch(value) is not None
