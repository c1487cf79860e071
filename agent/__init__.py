"""lcm-agent, the node package: lifecycle management of Docker Engine + Swarm nodes from
lcm.mirantis.com/v1alpha1 objects. It is what a machine installs, and all it needs.

Layers, top to bottom (enforced by import-linter, see ``.importlinter``): ``agent.cli`` (the ``lcm-agent``
command) → ``agent.daemon`` (the agent's long-running lifecycles) → ``agent.decisions`` (pure functions of
spec and status) → ``agent.adapters`` (Kubernetes, Ansible, Docker, MQTT, host I/O) → ``agent.api`` (the
API's types). The regional side (``regional``) and the testbed (``testbed``) build on it and are never
imported by it.
"""

__version__ = "0.1.0"
