"""How to reach a node's engine and its service manager, apart from the Docker SDK that talks to it.

The reconciler's command line takes these as options: a light module, so that parsing them (and
``lcm-agent --help``) does not import the SDK.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_CONFIG = "/etc/docker/daemon.json"


@dataclass(frozen=True)
class EngineAccess:
    """How to reach this node's engine and its service manager: the agent's ``docker.host`` and the
    ``playbook_vars`` the release's playbooks use for the same purpose (``docs/swarm.md``)."""

    host: str = "unix:///var/run/docker.sock"
    config_path: str = DEFAULT_CONFIG
    service_manager: str = "systemd"
    """``systemd`` (``systemctl ACTION docker_unit``) or ``command`` (``docker_service ACTION``)."""
    docker_service: str = ""
    docker_unit: str = "docker"

    @classmethod
    def from_vars(cls, host: str, playbook_vars: Mapping[str, str]) -> EngineAccess:
        return cls(host=host, config_path=playbook_vars.get("lcm_docker_config", DEFAULT_CONFIG),
                   service_manager=playbook_vars.get("lcm_service_manager", "systemd"),
                   docker_service=playbook_vars.get("lcm_docker_service", ""),
                   docker_unit=playbook_vars.get("lcm_docker_unit", "docker"))
