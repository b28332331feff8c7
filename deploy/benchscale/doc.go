// Package benchscale measures how the system's costs grow with the number
// of stored orders: `make bench-scale` runs TestScale (build tag
// benchscale, so that `make test` never starts it), which loads orders in
// steps (SCALE_STEPS, default 0,1000000,3000000) and at each step measures,
// in one run:
//
//   - ingest: SCALE_SLICE (100,000) orders sent by the producer binary to
//     a 6-partition topic of an in-process kfake broker, then consumed by
//     the ingestor binary (default batch settings) into PostgreSQL:
//     orders/s from the first partition assignment to the last order
//     committed, and the ingestor process's CPU seconds per 1,000 orders;
//   - the bare reference: the same orders written with one COPY per table
//     in one transaction into a plain four-table schema (schema bare:
//     primary keys, foreign keys to orders, no other index or check) that
//     holds the same rows as the service's tables;
//   - each of the two measured writes follows a CHECKPOINT and a lead-in:
//     SCALE_LEAD_IN (100,000) other orders written to that schema by the
//     bulk loader below, unmeasured. Right after a checkpoint, the first
//     change to each page writes the whole page to the WAL; with millions
//     of orders stored, nearly every index page a write touches is a first
//     change, and the measured write would pay a burst that production
//     spreads over its 15-minute checkpoint interval. After the lead-in
//     the measured write sees the tables as an ingest in the middle of
//     that interval does. SCALE_LEAD_IN=0 measures right after the
//     checkpoint, the worst moment of the interval;
//   - uncached GET /order/{uid} p50 and p99: SCALE_GETS (10,000) distinct
//     stored orders sampled over the whole table, requested at a fixed
//     rate (SCALE_GET_RATE, 1,000/s, open loop: latency counts from the
//     moment a request was due) from a reader with no warm-up and an empty
//     Redis key space, so that every answer comes from PostgreSQL (an
//     answer other than 200, a reader shedding load, is counted in the
//     figures; more than 1% of them stops the run); just before, as many
//     other sampled orders are asked at the same rate of the reference
//     server refreader (one PostgreSQL query per GET, no cache, no
//     batching, no authentication), whose p99 is the tail this machine
//     gives the simplest server in the same minute;
//   - warm-up time of 1,000 and 100,000 orders (reader_warmup_duration_seconds)
//     and the reader's resident set with the 100,000 cached (VmRSS);
//   - PostgreSQL bytes per order: pg_total_relation_size of the four
//     tables (heap, TOAST and indexes) over the number of orders.
//
// The run starts its own PostgreSQL server from the system binaries
// (shared/localserver), durable, with every setting of
// deploy/postgres/postgresql.conf (what docker-compose.yml and deploy/k8s
// run): the figures are the deployed configuration's, and no other
// session's checkpoints or DROP DATABASE fall into them. The bare
// reference shares that server. SCALE_DATABASE_URL (a superuser URL of an
// external server's maintenance database) measures that server instead,
// with its own settings; the table's header names the server and its
// settings either way.
//
// Most orders of a step are written by a bulk loader that is not measured:
// the ingestor's own writer (ingestor/postgres.Writer, its COPY fast path,
// two batches of 2,000 in flight) fed from
// shared/ordergen in-process, without the producer, the broker and the
// JSON decoding, which would make 3,000,000 orders take most of the half
// hour. The rows are the ingestor's: the same generator, columns and
// content hash. Orders are dated along a timeline (about one per second,
// up to five minutes late), so that the most recent orders are the most
// recently stored, as in production.
//
// Results go to .artifacts/bench-scale/ (results.md, results.json, one PNG
// per figure, the services' logs), and the table replaces the section
// between the bench-scale markers of BENCHMARKS.md when SCALE_BENCHMARKS_MD
// names it.
//
// TestWarm (build tag benchscale) times the reader's warm-up alone, with
// the reader's, PostgreSQL's and redis-server's CPU (and the Redis fill
// that follows the warm-up), against a database of
// SCALE_WARM_STORED orders loaded once by the same loader and kept between
// runs, comparing reader binaries round by round (SCALE_WARM_READERS): a
// minute per comparison instead of a run; see its documentation.
//
// TestWriteCost and TestInsertCost (build tag benchscale) price the
// writes of the ingestor's writer against a copy of such a kept database,
// a copy per trial (CREATE DATABASE ... TEMPLATE): TestWriteCost times
// postgres.Writer itself, as bench-scale's measured write (a CHECKPOINT, a
// lead-in, then the measured orders), variant by variant (an index or
// constraint dropped, batches sorted by order_uid), with the CPU of the
// writer's backends, the WAL, each statement's figures and each index's
// buffer traffic; TestInsertCost prices each table's insert and each
// index's share of it on one backend, with the index dropped (or made
// non-unique) in a transaction that is rolled back. See their
// documentation.
//
// TestGets (build tag benchscale) runs the uncached GETs alone as TestWarm
// runs the warm-up, against a kept database of SCALE_GETS_STORED orders, comparing
// reader binaries (SCALE_GETS_READERS) and settings (SCALE_GETS_ENVS)
// round by round; see its documentation.
//
// BenchmarkIngestors (`make bench-ingestors`, no build tag: a benchmark,
// so that `make test` compiles it and never runs it) measures the total
// ingest rate of 1, 2, 3 and 6 ingestor processes sharing a 6-partition
// topic, against the ingestor's writer called directly, with the CPU that
// each party used; see its documentation.
package benchscale
