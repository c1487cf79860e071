"""The regional API simulator: a Kubernetes-protocol HTTPS server for the project's CRDs, Secrets and RBAC.

No kube-apiserver can be installed on the machines the project is tested on, so this is the one stand-in.
Clients reach it only over HTTP(S) through kubernetes_asyncio or kubectl, exactly as they would a real
cluster; nothing in the agent or scheduler knows it is talking to the simulator.
"""
