"""The lab's package mirror: one plain HTTP server on the machines' bridge, serving a directory.

    <root>/pypi/simple/<project>/index.html   a PEP 503 index of the agent's wheel and its dependencies
    <root>/pypi/files/*.whl
    <root>/apt/Packages, *.deb                a flat apt repository: deb [trusted=yes] <url>/apt ./

It stands in for a release's mirror in an air-gapped site: the machines have no route beyond the bridge, so
whatever they install comes from here. The standard library's threaded server is enough (a few machines
fetch some tens of megabytes) and runs the same under the CLI and under pytest, whichever event loop is
around. Plain HTTP is acceptable only because the wheel the machines install is checked against the sha256
their user-data names; a production mirror serves HTTPS.
"""

from __future__ import annotations

import functools
import http.server
import logging
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("mirror: %s " + format, self.address_string(), *args)


class MirrorServer:
    """Serves ``root`` on ``host:port`` (0 picks a free port) from a daemon thread until ``stop``."""

    def __init__(self, root: Path, host: str, port: int = 0) -> None:
        self.root = root
        self._server = http.server.ThreadingHTTPServer(
            (host, port), functools.partial(_Handler, directory=str(root)))
        self._thread = threading.Thread(target=self._server.serve_forever, name="lcm-lab-mirror", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> MirrorServer:
        self._thread.start()
        log.info("package mirror serving %s on %s", self.root, self.url)
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
