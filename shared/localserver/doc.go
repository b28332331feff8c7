// Package localserver starts throwaway PostgreSQL and Redis servers from the
// binaries installed on the machine, for the development stack and for
// tests on machines where no shared server answers. A throwaway server runs
// on loopback with trust authentication and durability off, keeps its files
// in one directory, and loses everything when stopped.
//
// Besides single servers it starts the multi-node shapes production uses:
// a Redis Cluster (StartRedisCluster: three or more masters, optionally
// with replicas that take over a lost master) and a PostgreSQL streaming
// replica of a throwaway primary (StartReplica), so that tests exercise the
// services against the real engines' clustering and replication.
package localserver
