"""The lcm.mirantis.com/v1alpha1 API as typed values: models, names, and the project's CRD manifests.

Above the kits only: it imports nothing else of the project, so every other layer can share these types.
"""
