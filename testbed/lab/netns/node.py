"""One lab node as a value: its name, address, namespaces and the files of its dockerd, all derived from the
lab's state directory and naming prefix, and saved as ``node.json`` so the node's service script and
``lcmctl nodes`` find them again in another process.

A node's directory::

    <state>/<name>/node.json     this description
                   uts           the persistent UTS namespace (hostname = node name)
                   daemon.json   dockerd's --config-file (lcm_docker_config)
                   docker.sock   dockerd's API (lcm_docker_host)
                   dockerd-ctl   start|stop|restart|reload|status (lcm_docker_service)
                   python        this venv's python inside the node's namespaces
                   etc/          the node's /etc for playbooks (lcm_etc_dir)
                   data/ exec/ docker.pid dockerd.log
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testbed.lab.netns.namespaces import LabNetwork

NODE_FILE = "node.json"


@dataclass(frozen=True)
class LabNode:
    """A network-namespace node with its own dockerd; see the module docstring for its files."""

    name: str
    index: int
    address: str
    dir: Path
    netns_path: Path
    gateway: str

    @classmethod
    def plan(cls, net: LabNetwork, state_dir: Path, name: str, index: int) -> LabNode:
        return cls(name=name, index=index, address=str(net.address(index)), dir=state_dir / name,
                   netns_path=net.netns_path(name), gateway=str(net.gateway))

    @property
    def uts_path(self) -> Path:
        return self.dir / "uts"

    @property
    def config_path(self) -> Path:
        return self.dir / "daemon.json"

    @property
    def socket_path(self) -> Path:
        return self.dir / "docker.sock"

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def service_script(self) -> Path:
        return self.dir / "dockerd-ctl"

    @property
    def python(self) -> Path:
        """An interpreter that runs inside the node's namespaces: as ``ansible_python_interpreter`` it makes a
        playbook driven from the host act on the node (its sysctls, hostname, addresses)."""
        return self.dir / "python"

    @property
    def etc_dir(self) -> Path:
        return self.dir / "etc"

    @property
    def data_root(self) -> Path:
        return self.dir / "data"

    @property
    def exec_root(self) -> Path:
        return self.dir / "exec"

    @property
    def pid_file(self) -> Path:
        return self.dir / "docker.pid"

    @property
    def log_file(self) -> Path:
        return self.dir / "dockerd.log"

    def nsenter(self, *argv: str) -> list[str]:
        """``argv`` run inside the node's network and UTS namespaces (the host's filesystem and PIDs)."""
        return ["nsenter", f"--net={self.netns_path}", f"--uts={self.uts_path}", "--", *argv]

    def playbook_vars(self) -> dict[str, str]:
        """The node-local extra vars of docs/swarm.md that point the release's playbooks at this node."""
        return {
            "lcm_docker_host": self.docker_host,
            "lcm_docker_config": str(self.config_path),
            "lcm_service_manager": "command",
            "lcm_docker_service": str(self.service_script),
            "lcm_etc_dir": str(self.etc_dir),
        }

    def to_json(self) -> str:
        body = {"name": self.name, "index": self.index, "address": self.address, "dir": str(self.dir),
                "netns_path": str(self.netns_path), "gateway": self.gateway}
        return json.dumps(body, indent=2) + "\n"

    @classmethod
    def load(cls, node_dir: Path) -> LabNode:
        body: dict[str, Any] = json.loads((node_dir / NODE_FILE).read_text(encoding="utf-8"))
        return cls(name=body["name"], index=int(body["index"]), address=body["address"],
                   dir=Path(body["dir"]), netns_path=Path(body["netns_path"]), gateway=body["gateway"])

    def save(self) -> None:
        (self.dir / NODE_FILE).write_text(self.to_json(), encoding="utf-8")

    def write_scripts(self) -> None:
        """The service script (``lcm_docker_service``) and the in-namespace python wrapper."""
        python = sys.executable
        service = f'#!/bin/sh\nexec "{python}" -m testbed.lab.netns.dockerd "{self.dir}" "$@"\n'
        wrapper = "#!/bin/sh\nexec " + " ".join(f'"{a}"' for a in self.nsenter(python)) + ' "$@"\n'
        for path, text in ((self.service_script, service), (self.python, wrapper)):
            path.write_text(text, encoding="utf-8")
            path.chmod(0o755)
