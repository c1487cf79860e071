"""Stand-ins for the machines and services of a real site, for tests and the demo: network-namespace nodes
with their own dockerd, a Mosquitto broker, systemd-nspawn machines, the real Kubernetes control plane
(``agent.lab.kube``). Never imported by the agent itself."""
