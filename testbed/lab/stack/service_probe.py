"""A replicated web service on the stack's swarm, and a probe that counts how often it answers.

The machines reach no registry, so every engine loads a one-file image (busybox-static from the host, by id)
and the service (``web``, two replicas, at most one per node, each published on its node's ``PORT``: host
mode, as behind an external load balancer, which needs no IPVS in the machines' kernel) runs busybox's httpd.
The probe is a client on the host (the host runs no Docker Engine of its own): every ``period`` it asks one
worker's address and, when that fails, the other's, as a load balancer would, and logs whether it was
answered. Used by the rolling-reboot e2e and ``bench/reboots.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import tarfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from testbed.lab.stack.machines import MachineNodes

BUSYBOX = Path("/bin/busybox")
IMAGE = "lab-busybox"
PORT = 8080
SERVE = (f"/bin/busybox mkdir -p /www && echo ok > /www/index.html && "
         f"exec /bin/busybox httpd -f -p {PORT} -h /www")


@dataclass
class Probe:
    """Asks the service once every ``period``; ``log`` holds (``time.monotonic()``, answered) per request."""

    addresses: Sequence[str]
    period: float = 0.2
    log: list[tuple[float, bool]] = field(default_factory=list)

    @property
    def answered(self) -> int:
        return sum(ok for _, ok in self.log)

    def between(self, start: float, end: float) -> tuple[int, int]:
        """(answered, tried) between two moments."""
        window = [ok for at, ok in self.log if start <= at <= end]
        return sum(window), len(window)

    async def run(self) -> None:
        turn = 0
        while True:
            first, second = self.addresses[turn % 2], self.addresses[(turn + 1) % 2]
            ok = await answers(first) or await answers(second)
            self.log.append((time.monotonic(), ok))
            turn += 1
            await asyncio.sleep(self.period)


async def answers(address: str) -> bool:
    """The service answered a request on ``address`` within a second."""
    try:
        async with asyncio.timeout(1.0):
            reader, writer = await asyncio.open_connection(address, PORT)
            writer.write(b"GET /index.html HTTP/1.0\r\n\r\n")
            body = await reader.read()
            writer.close()
    except (OSError, TimeoutError):
        return False
    status = body.split(b"\r\n", 1)[0].split()
    return status[1:2] == [b"200"] and body.rstrip().endswith(b"ok")


def _image() -> tuple[bytes, str]:
    """A ``docker load`` archive of a one-file image (busybox-static) and its id. Built here, byte for byte
    the same on every run, so every engine loads the very same image id: a service naming the image by id
    makes no engine try a pull (a tag would be pulled at every task start, and with no registry each pull
    only ends when the network times out, a gap of many seconds whenever a task is placed anew)."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        info = tar.gettarinfo(str(BUSYBOX), arcname="bin/busybox")
        info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
        with BUSYBOX.open("rb") as binary:
            tar.addfile(info, binary)
    layer_bytes = layer.getvalue()
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(layer_bytes).hexdigest()}"]},
    }, sort_keys=True).encode()
    image_id = hashlib.sha256(config).hexdigest()
    manifest = json.dumps([{"Config": f"{image_id}.json", "RepoTags": [f"{IMAGE}:latest"],
                            "Layers": ["layer/layer.tar"]}]).encode()
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for name, data in ((f"{image_id}.json", config), ("layer/layer.tar", layer_bytes),
                           ("manifest.json", manifest)):
            entry = tarfile.TarInfo(name)
            entry.size = len(data)
            tar.addfile(entry, io.BytesIO(data))
    return archive.getvalue(), f"sha256:{image_id}"


async def start_service(nodes: MachineNodes, control: str, workers: Sequence[str], *,
                        within: float = 300.0) -> Probe:
    """The service created from ``control`` (a manager) and answering on every worker; its probe, not yet
    running. TimeoutError when it does not answer ``within`` seconds."""
    archive, image = await asyncio.to_thread(_image)
    for name in (control, *workers):
        await nodes.machine(name).exec(["docker", "load"], stdin=archive)
    publish = f"mode=host,published={PORT},target={PORT}"
    await nodes.docker(control, "service", "create", "--detach", "--no-resolve-image", "--name", "web",
                       "--replicas", "2", "--replicas-max-per-node", "1", "--publish", publish,
                       image, "/bin/busybox", "sh", "-c", SERVE)
    addresses = []
    for name in workers:
        record = nodes.machine(name).record
        if record is None:
            raise RuntimeError(f"machine {name} has no record")
        addresses.append(record.address)
    deadline = time.monotonic() + within
    while not all([await answers(a) for a in addresses]):
        if time.monotonic() > deadline:
            tasks = await nodes.docker(control, "service", "ps", "web")
            raise TimeoutError(f"the service did not answer within {within:.0f}s:\n{tasks}")
        await asyncio.sleep(1)
    return Probe(addresses)
