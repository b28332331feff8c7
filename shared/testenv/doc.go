// Package testenv gives tests the real services the system depends on:
// a fresh PostgreSQL database with every migration applied, a Redis
// connection with a key space of its own, and a Kafka bootstrap address.
// Import it only from _test.go files.
//
// # Where services come from
//
// Each service is looked up once per test process, in this order, and the
// first source that answers is used for every test of the process:
//
//  1. An environment variable naming an existing server:
//     TEST_DATABASE_URL (a superuser URL, e.g.
//     postgres://postgres@db:5432/postgres?sslmode=disable),
//     TEST_REDIS_URL (redis://host:6379/0) and TEST_KAFKA_BROKERS
//     (host:9092[,host:9093]).
//  2. A Docker engine, if one answers a ping within a second
//     (DOCKER_HOST or the default socket): containers postgres:16,
//     redis:7 and apache/kafka:3.9 (single-node KRaft), removed when the
//     process ends (see Main); containers of test processes that died
//     without cleanup are removed by a later test process.
//  3. The local machine: PostgreSQL on 127.0.0.1:5432 (user postgres, trust
//     authentication) and Redis on 127.0.0.1:6379; when nothing answers
//     there, throwaway servers started from the system binaries (initdb and
//     postgres from /usr/lib/postgresql/*/bin or PATH, redis-server) in a
//     temporary directory on free ports. Kafka is an in-process franz-go
//     kfake cluster, a new one for every Kafka call.
//
// A service that no source provides fails the test with every reason
// gathered on the way; nothing is skipped.
//
// # Isolation
//
// Tests of many packages run at once against the same servers, so every
// call hands out something private: Postgres creates a database
// (t_<random>) by copying a migrated template database and drops it at
// cleanup; Redis hands out a unique key prefix and deletes the keys under
// it at cleanup; KafkaEnv.Topic creates uniquely named topics (consumer
// group names are the test's to make unique, e.g. with the topic's name).
//
// The template database (tmpl_<hash of the migration files>) is built once
// per server and schema version, under a PostgreSQL advisory lock so that
// concurrent test processes build it only once. Copying it is much faster
// than running the migrations for every test.
//
// KeptPostgres is the exception, for benchmarks whose data takes minutes
// to load: its database (keep_<name>_<hash>) outlives the process, and a
// later call finds it loaded; nothing drops it.
//
// # Faults
//
// Outages are injected between the code under test and a server, never by
// stopping a shared server: ProxyURL (or NewProxy) puts a Proxy in front
// of a PostgreSQL or Redis URL, which the test cuts (connections reset),
// stalls (connections held open, nothing forwarded either way), delays or
// restores while connections are open. KafkaBehindProxy does the same for a
// kfake broker, which advertises the proxy's address so that clients
// routed by metadata go through it too.
//
// # Process cleanup
//
// Throwaway servers and containers are shared by all tests of a process.
// Packages that call testenv should run their tests through Main:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
// which stops them when the tests end. Without it, or when the process is
// killed, throwaway servers still die with the test process (they are
// started with a parent-death signal), and a later test process removes
// what was left behind: the servers' temporary directories, containers,
// and t_* databases whose creator is gone (each database carries its
// creator's pid and creation time in its comment).
//
// # Roles
//
// The migrations create the roles order_ingestor and order_reader with LOGIN
// and no password. PG.URLAs connects as one of them without a password, which
// works on the local, throwaway and Docker servers (all use trust
// authentication); a server given by TEST_DATABASE_URL must trust them too.
package testenv
