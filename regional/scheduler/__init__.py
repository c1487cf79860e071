"""The regional scheduler's lifecycle: turning ClusterReleases and LCMClusters into machines' state items."""
