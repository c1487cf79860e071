"""lcm-agent: lifecycle management of Docker Engine + Swarm nodes from lcm.mirantis.com/v1alpha1 objects.

Layers, top to bottom (enforced by import-linter, see ``.importlinter``): ``agent.cli`` (entry points) →
``agent.daemon`` / ``agent.scheduler`` / ``testbed.sim`` (long-running lifecycles) → ``agent.decisions`` (pure
functions of spec and status) → ``agent.adapters`` (Kubernetes, Ansible, Docker, MQTT, host I/O) →
``agent.api`` (the API's types).
"""

__version__ = "0.1.0"
