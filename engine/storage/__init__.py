"""Storage: the embedded Redis server and cluster, key names, the feature store and the audit log."""
