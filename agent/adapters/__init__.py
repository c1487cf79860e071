"""I/O adapters: the only places that talk to Kubernetes, Ansible, Docker, MQTT or the host.

Each adapter takes and returns values from ``agent.api``; none of them decides what should happen.
"""
