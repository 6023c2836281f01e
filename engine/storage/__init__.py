"""Storage: the Redis client, the embedded Redis server and cluster, key names, the feature store and the audit log."""
