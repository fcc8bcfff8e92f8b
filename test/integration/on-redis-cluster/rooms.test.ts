// The rooms suite, unchanged, on a 3-master Redis Cluster (REDIS_CLUSTER_NODES) that it starts.
process.env.SWITCHBOARD_TEST_REDIS = 'cluster'
await import('../rooms.test.js')
