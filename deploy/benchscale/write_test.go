//go:build benchscale

package benchscale

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	osexec "os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golang-migrate/migrate/v4"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"github.com/orderservice/orders/ingestor/postgres"
	"github.com/orderservice/orders/migrations"
	"github.com/orderservice/orders/shared/testenv"
)

// TestWriteCost measures the ingestor's writer alone (postgres.Writer, two
// batches of 2,000 in flight, as the bulk loader and the ingestor write)
// against a copy of a stored database, variant by variant, so that where
// the cost of a write goes at millions of stored orders is measured in a
// minute per variant instead of a bench-scale run:
//
//	SCALE_WRITE_SOURCE=keep_warm_3000000_<schema> SCALE_WRITE_VARIANTS=base,-orders_track_number_idx,sorted \
//	    go test -tags benchscale -run '^TestWriteCost$' -count=1 -v ./deploy/benchscale
//
// SCALE_WRITE_SOURCE names a database of testenv's server
// (TEST_DATABASE_URL) to copy for each trial (CREATE DATABASE ... TEMPLATE,
// STRATEGY FILE_COPY): TestWarm's kept database is one, loaded by
// bench-scale's loader. Unset, each trial gets an empty database of the
// newest schema. SCALE_WRITE_MIGRATE=1 migrates each copy to the newest
// migration first (a database kept from an older schema), and
// SCALE_WRITE_SQL, when set, is run on each copy then (a schema change to
// measure). Each trial, on its own copy: the variant's change, a CHECKPOINT, a lead-in of
// SCALE_LEAD_IN orders (default 100,000; see bench-scale's), then
// SCALE_SLICE (100,000) measured orders, the copy dropped after. The
// variants (SCALE_WRITE_VARIANTS, comma-separated, run in turn for
// SCALE_WRITE_ROUNDS rounds):
//
//   - base: the writer as it is;
//   - sorted: each batch's orders sorted by order_uid before the write;
//   - -NAME: the index or constraint NAME dropped first.
//
// Each trial logs the rate, the CPU of the writer's backends and of the
// whole server, the WAL (bytes and full-page images per order), each
// statement's time, WAL and buffer reads (pg_stat_statements, when the
// server preloads it), each index's buffer accesses and reads, and what
// else ran: autovacuum workers seen in the database, calls of
// orders_fill_summary (track_functions), autovacuum and autoanalyze runs.
// SCALE_WRITE_PERF_DIR, when set, gets a perf record profile of the
// writer's backends during each measured write. For every figure, run the
// server as bench-scale does (the system's binaries, durable, with
// deploy/postgres/postgresql.conf) and add shared_preload_libraries =
// 'pg_stat_statements' and track_functions = 'all' to its settings.
func TestWriteCost(t *testing.T) {
	variants := strings.Split(cmp.Or(os.Getenv("SCALE_WRITE_VARIANTS"), "base"), ",")
	count := func(name string, def int) int { return envCount(t, name, def) }
	rounds, leadN, sliceN := count("SCALE_WRITE_ROUNDS", 1), count("SCALE_LEAD_IN", 100_000), count("SCALE_SLICE", 100_000)
	source, migrateUp := os.Getenv("SCALE_WRITE_SOURCE"), os.Getenv("SCALE_WRITE_MIGRATE") == "1"
	ctx := context.Background()
	admin := testenv.Postgres(t) // a connection to the server, and the URL to derive others from
	var results []writeTrial
	for round := range rounds {
		for _, v := range variants {
			res := writeTrialRun(ctx, t, admin, source, migrateUp, v, leadN, sliceN)
			res.round = round + 1
			results = append(results, res)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-32s %5s %9s %8s %8s %7s %9s %9s %8s %6s %6s\n", "variant", "round", "stored", "orders/s",
		"backend", "server", "WAL B/o", "FPI/1k", "autovac", "fill", "load")
	for _, r := range results {
		fmt.Fprintf(&b, "%-32s %5d %9d %8.0f %8.3f %7.3f %9.0f %9.1f %8d %6d %s\n", r.variant, r.round, r.stored, r.rate,
			r.backend1k, r.server1k, r.walPerOrder, r.fpi1k, r.autovacuum, r.fillCalls, r.load)
	}
	t.Logf("CPU-s per 1,000 orders (backend: the writer's two backends; server: every process of the server)\n%s", b.String())
}

// envCount is the count in the environment variable name, def if unset.
func envCount(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := parseCount(v)
	if err != nil {
		t.Fatalf("%s=%q: want a count", name, v)
	}
	return n
}

// writeTrial is what one trial measured.
type writeTrial struct {
	variant                   string
	round, stored             int
	rate, backend1k, server1k float64
	walPerOrder, fpi1k        float64
	autovacuum, fillCalls     int
	load                      string
}

func writeTrialRun(ctx context.Context, t *testing.T, admin *testenv.PG, source string, migrateUp bool, variant string, leadN, sliceN int) writeTrial {
	t.Helper()
	pg := cloneDatabase(ctx, t, admin, source)
	defer dropDatabase(ctx, t, admin, pg)
	if migrateUp {
		err := migrations.With(pg.URL, func(m *migrate.Migrate) error {
			if err := m.Up(); !errors.Is(err, migrate.ErrNoChange) {
				return err
			}
			return nil
		})
		if err != nil {
			t.Fatalf("migrate %s: %v", pg.Name, err)
		}
	}
	if q := os.Getenv("SCALE_WRITE_SQL"); q != "" {
		mustExec(ctx, t, pg.Pool, q)
	}
	sorted := false
	switch {
	case variant == "base":
	case variant == "sorted":
		sorted = true
	case strings.HasPrefix(variant, "-"):
		dropIndexOrConstraint(ctx, t, pg.Pool, strings.TrimPrefix(variant, "-"))
	default:
		t.Fatalf("variant %q: want base, sorted or -NAME", variant)
	}
	var stored int
	if err := pg.Pool.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&stored); err != nil {
		t.Fatal(err)
	}
	// The stored orders are the timeline's first ones (the loader's).
	lead := generateRange(int64(stored), leadN)
	slice := generateRange(int64(stored+leadN), sliceN)

	mustExec(ctx, t, pg.Pool, "CHECKPOINT")
	// The lead-in's backends end before the measured write, so that the
	// statistics they had not reported yet are not counted in its figures.
	leadPool, err := postgres.Connect(ctx, pg.URLAs("order_ingestor"), 2)
	if err != nil {
		t.Fatal(err)
	}
	writeChunks(ctx, t, postgres.NewWriter(leadPool, 10*time.Minute, nil), lead, sorted)
	leadPool.Close()
	awaitBackendsGone(ctx, t, pg.Pool)
	pool, err := postgres.Connect(ctx, pg.URLAs("order_ingestor"), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	w := postgres.NewWriter(pool, 10*time.Minute, nil)
	// Both connections open before the measurement, so that their
	// backends' CPU is read from the start.
	var conns []*pgxpool.Conn
	for range 2 {
		c, err := pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.Release()
	}

	_, err = pg.Pool.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
	hasStatements := err == nil
	if hasStatements {
		mustExec(ctx, t, pg.Pool, "SELECT pg_stat_statements_reset()")
	}
	before := snapshotStats(ctx, t, pg.Pool)
	lsn := walLSN(ctx, t, pg.Pool)
	backends := testenv.BackendCPU(t, pg.Pool, "order_ingestor")
	server := postgresCPU(ctx, t, pg.Pool)
	autovac := watchAutovacuum(ctx, t, pg)
	stopPerf := perfRecord(t, backends, variant)
	start := time.Now()
	writeChunks(ctx, t, w, slice, sorted)
	elapsed := time.Since(start)
	stopPerf()
	backendCPU := testenv.BackendCPU(t, pg.Pool, "order_ingestor").Since(backends)
	serverCPU := cpuDelta(server, postgresCPU(ctx, t, pg.Pool))
	wal := walSince(ctx, t, pg.Pool, lsn) // the server's WAL, from its position: what the write made it write
	seen := autovac()
	// The backends' statistics reach the shared views when they end.
	pool.Close()
	awaitBackendsGone(ctx, t, pg.Pool)
	after := snapshotStats(ctx, t, pg.Pool)

	n := float64(len(slice))
	res := writeTrial{variant: variant, stored: stored, rate: n / elapsed.Seconds(),
		backend1k: backendCPU.Seconds() / n * 1000, server1k: serverCPU.Seconds() / n * 1000,
		walPerOrder: wal / n, fpi1k: float64(after.walFPI-before.walFPI) / n * 1000,
		autovacuum: seen, fillCalls: int(after.fillCalls - before.fillCalls), load: readLoad(t)}

	var b strings.Builder
	fmt.Fprintf(&b, "trial %s at %d stored (+%d lead-in): %.0f orders/s; CPU-s per 1,000: backends %.3f, server %.3f; "+
		"WAL %.0f B and %.1f FPI per order; autovacuum seen %d times (runs: vacuum %d, analyze %d); orders_fill_summary calls %d; load %s\n",
		variant, stored, leadN, res.rate, res.backend1k, res.server1k, res.walPerOrder, float64(after.walFPI-before.walFPI)/n,
		seen, after.autovacuums-before.autovacuums, after.autoanalyzes-before.autoanalyzes, res.fillCalls, res.load)
	fmt.Fprintf(&b, "  %-44s %9s %9s %9s %9s\n", "index", "hit/o", "read/o", "size MB", "depth")
	for _, ix := range after.indexOrder {
		d := after.indexes[ix]
		p := before.indexes[ix]
		fmt.Fprintf(&b, "  %-44s %9.2f %9.3f %9.0f %9d\n", ix, float64(d.hit-p.hit)/n, float64(d.read-p.read)/n,
			float64(d.bytes)/(1<<20), d.depth)
	}
	if hasStatements {
		b.WriteString(statementCosts(ctx, t, pg, n))
	}
	t.Log(b.String())
	return res
}

// writeChunks writes orders with w in batches of bulkChunk, two in flight,
// each batch sorted by order_uid first when sorted.
func writeChunks(ctx context.Context, t *testing.T, w *postgres.Writer, orders []storedOrder, sorted bool) {
	t.Helper()
	chunks := make(chan []storedOrder)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(chunks)
		for c := range slices.Chunk(orders, bulkChunk) {
			if sorted {
				c = slices.Clone(c)
				slices.SortFunc(c, func(a, b storedOrder) int { return strings.Compare(a.OrderUID, b.OrderUID) })
			}
			select {
			case chunks <- c:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	for range 2 {
		g.Go(func() error { return writeService(gctx, w, chunks) })
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}

func mustExec(ctx context.Context, t *testing.T, pool *pgxpool.Pool, sql string) {
	t.Helper()
	if _, err := pool.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// cloneDatabase copies source for one trial, or makes an empty database
// of the newest schema when source is "".
func cloneDatabase(ctx context.Context, t *testing.T, admin *testenv.PG, source string) *testenv.PG {
	t.Helper()
	name := "w_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	from := source
	if from == "" {
		if err := admin.Pool.QueryRow(ctx, "SELECT datname FROM pg_database WHERE datname LIKE 'tmpl_%' ORDER BY oid DESC LIMIT 1").Scan(&from); err != nil {
			t.Fatalf("testenv's template: %v", err)
		}
	}
	for _, q := range []string{
		fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s STRATEGY FILE_COPY", pgx.Identifier{name}.Sanitize(), pgx.Identifier{from}.Sanitize()),
		fmt.Sprintf("GRANT CONNECT ON DATABASE %s TO order_ingestor, order_reader", pgx.Identifier{name}.Sanitize()),
	} {
		if _, err := admin.Pool.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	u, err := url.Parse(admin.URL)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	pool, err := pgxpool.New(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	return &testenv.PG{URL: u.String(), Name: name, Pool: pool}
}

func dropDatabase(ctx context.Context, t *testing.T, admin *testenv.PG, pg *testenv.PG) {
	t.Helper()
	pg.Pool.Close()
	if _, err := admin.Pool.Exec(ctx, "DROP DATABASE "+pgx.Identifier{pg.Name}.Sanitize()+" WITH (FORCE)"); err != nil {
		t.Errorf("drop %s: %v", pg.Name, err)
	}
}

// dropIndexOrConstraint drops the constraint named name (its index with
// it), or else the index.
func dropIndexOrConstraint(ctx context.Context, t *testing.T, pool *pgxpool.Pool, name string) {
	t.Helper()
	var table string
	err := pool.QueryRow(ctx, "SELECT conrelid::regclass::text FROM pg_constraint WHERE conname = $1", name).Scan(&table)
	q := "DROP INDEX " + pgx.Identifier{name}.Sanitize()
	if err == nil {
		q = "ALTER TABLE " + table + " DROP CONSTRAINT " + pgx.Identifier{name}.Sanitize()
	} else if !errors.Is(err, pgx.ErrNoRows) {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// watchAutovacuum counts, every 100 ms until the returned function is
// called, the autovacuum workers working in pg's database.
func watchAutovacuum(ctx context.Context, t *testing.T, pg *testenv.PG) func() int {
	t.Helper()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	seen := 0
	wg.Go(func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			var n int
			if err := pg.Pool.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker' AND datname = current_database()").Scan(&n); err == nil {
				seen += n
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})
	return func() int {
		close(stop)
		wg.Wait()
		return seen
	}
}

// awaitBackendsGone waits until the writer's backends have ended (and so
// reported their statistics).
func awaitBackendsGone(ctx context.Context, t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND usename = 'order_ingestor'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d writer backends still running", n)
		}
		time.Sleep(20 * time.Millisecond) // polling the server: no event to wait for
	}
}

type indexStat struct {
	hit, read, bytes int64
	depth            int
}

type writeStats struct {
	walFPI                    int64
	autovacuums, autoanalyzes int64
	fillCalls                 int64
	indexes                   map[string]indexStat
	indexOrder                []string
}

func snapshotStats(ctx context.Context, t *testing.T, pool *pgxpool.Pool) writeStats {
	t.Helper()
	s := writeStats{indexes: map[string]indexStat{}}
	if _, err := pool.Exec(ctx, "SELECT pg_stat_clear_snapshot()"); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, "SELECT wal_fpi FROM pg_stat_wal").Scan(&s.walFPI); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, "SELECT coalesce(sum(autovacuum_count), 0)::bigint, coalesce(sum(autoanalyze_count), 0)::bigint FROM pg_stat_user_tables").Scan(&s.autovacuums, &s.autoanalyzes); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, "SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_user_functions WHERE funcname = 'orders_fill_summary'").Scan(&s.fillCalls); err != nil {
		t.Fatal(err)
	}
	rows, err := pool.Query(ctx, `SELECT s.relname || '.' || s.indexrelname, s.idx_blks_hit, s.idx_blks_read, pg_relation_size(s.indexrelid)
		FROM pg_statio_user_indexes s WHERE s.relname IN ('orders', 'delivery', 'payment', 'items', 'erased_orders') ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name string
		var st indexStat
		if err := rows.Scan(&name, &st.hit, &st.read, &st.bytes); err != nil {
			t.Fatal(err)
		}
		s.indexes[name] = st
		s.indexOrder = append(s.indexOrder, name)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	// The B-tree's levels, from its metapage (pageinspect, when installed).
	if _, err := pool.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pageinspect"); err == nil {
		for _, name := range s.indexOrder {
			_, ix, _ := strings.Cut(name, ".")
			var level int
			if err := pool.QueryRow(ctx, "SELECT level FROM bt_metap($1)", ix).Scan(&level); err == nil {
				st := s.indexes[name]
				st.depth = level + 1
				s.indexes[name] = st
			}
		}
	}
	return s
}

// statementCosts reports pg_stat_statements' figures of pg's database
// since the last reset, per order.
func statementCosts(ctx context.Context, t *testing.T, pg *testenv.PG, n float64) string {
	t.Helper()
	rows, err := pg.Pool.Query(ctx, `SELECT left(regexp_replace(query, '\s+', ' ', 'g'), 60), calls, total_exec_time,
			wal_bytes::bigint, wal_fpi, shared_blks_hit, shared_blks_read, shared_blks_dirtied, shared_blks_written
		FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
			AND userid = 'order_ingestor'::regrole ORDER BY total_exec_time DESC`)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "  %-60s %6s %9s %9s %8s %8s %8s %8s %8s\n", "statement", "calls", "ms/1k", "WAL B/o", "FPI/o", "hit/o", "read/o", "dirty/o", "write/o")
	for rows.Next() {
		var q string
		var calls, wal, fpi, hit, read, dirtied, written int64
		var ms float64
		if err := rows.Scan(&q, &calls, &ms, &wal, &fpi, &hit, &read, &dirtied, &written); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "  %-60s %6d %9.1f %9.0f %8.2f %8.2f %8.3f %8.3f %8.3f\n", q, calls, ms/n*1000, float64(wal)/n,
			float64(fpi)/n, float64(hit)/n, float64(read)/n, float64(dirtied)/n, float64(written)/n)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// perfRecord profiles the backends with perf record while the measured
// write runs, to SCALE_WRITE_PERF_DIR/<variant>-<time>.data, when that is set.
func perfRecord(t *testing.T, backends testenv.BackendTimes, variant string) func() {
	t.Helper()
	dir := os.Getenv("SCALE_WRITE_PERF_DIR")
	if dir == "" {
		return func() {}
	}
	pids := make([]string, 0, len(backends))
	for pid := range backends {
		pids = append(pids, strconv.Itoa(pid))
	}
	out := filepath.Join(dir, fmt.Sprintf("%s-%d.data", strings.TrimPrefix(variant, "-"), time.Now().Unix()))
	cmd := osexec.Command("perf", "record", "-e", "cpu-clock", "-g", "-F", "499", "-o", out, "-p", strings.Join(pids, ","))
	if err := cmd.Start(); err != nil {
		t.Fatalf("perf record: %v", err)
	}
	return func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		_ = cmd.Wait()
		t.Logf("perf profile of the writer's backends: %s", out)
	}
}

// TestInsertCost prices each table's insert and each index's share of it,
// on one backend with nothing else in the way: on a copy of
// SCALE_WRITE_SOURCE (as TestWriteCost; empty when unset) after a
// CHECKPOINT and a lead-in through the writer (SCALE_LEAD_IN, default
// 100,000), the rows of SCALE_INSERT_ORDERS (20,000) new orders are
// staged in temporary tables, then, round after round (SCALE_WRITE_ROUNDS,
// default 5), inserted into each table with INSERT ... SELECT in a
// transaction that is rolled back: once as the schema is, and once per
// index of the table with that index dropped inside the transaction. The
// backend's CPU (from /proc) per order, median of the rounds, is the
// table's cost; the difference an index's absence makes is the index's.
// Before each insert the staged rows get new keys (rekey), and after each
// round the tables are vacuumed, so that no insert meets rolled-back
// entries. SCALE_INSERT_NONUNIQUE=1 adds, per unique index, the insert
// with the index rebuilt without UNIQUE (the unique check's share, plus
// what a freshly built index costs), and SCALE_WRITE_SQL is run on the
// copy first, as in TestWriteCost. The figures' resolution is the /proc
// tick (10 ms) over SCALE_INSERT_ORDERS orders: 0.5 µs an order at 20,000.
func TestInsertCost(t *testing.T) {
	count := func(name string, def int) int { return envCount(t, name, def) }
	rounds, leadN, n := count("SCALE_WRITE_ROUNDS", 5), count("SCALE_LEAD_IN", 100_000), count("SCALE_INSERT_ORDERS", 20_000)
	ctx := context.Background()
	admin := testenv.Postgres(t)
	pg := cloneDatabase(ctx, t, admin, os.Getenv("SCALE_WRITE_SOURCE"))
	defer dropDatabase(ctx, t, admin, pg)
	if os.Getenv("SCALE_WRITE_MIGRATE") == "1" {
		if err := migrations.Up(pg.URL); err != nil {
			t.Fatal(err)
		}
	}
	if q := os.Getenv("SCALE_WRITE_SQL"); q != "" {
		mustExec(ctx, t, pg.Pool, q)
	}
	var stored int
	if err := pg.Pool.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&stored); err != nil {
		t.Fatal(err)
	}
	mustExec(ctx, t, pg.Pool, "CHECKPOINT")
	pool, err := postgres.Connect(ctx, pg.URLAs("order_ingestor"), 2)
	if err != nil {
		t.Fatal(err)
	}
	writeChunks(ctx, t, postgres.NewWriter(pool, 10*time.Minute, nil), generateRange(int64(stored), leadN), false)
	pool.Close()
	orders := generateRange(1_000_000_000+int64(stored), n) // rolled back: outside the timeline

	conn, err := pg.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	var pid int
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	tables := []string{"orders", "delivery", "payment", "items"}
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, table := range tables {
			if _, err := tx.Exec(ctx, "CREATE TEMP TABLE "+table+" (LIKE public."+table+" INCLUDING DEFAULTS)"); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	stage(ctx, t, conn, orders)

	// A variant drops one index (drop) or, with SCALE_INSERT_NONUNIQUE=1,
	// also replaces a unique one by a plain index of the same key (plain:
	// the CREATE INDEX statement), so that the unique check's share shows.
	type variant struct{ table, drop, plain string }
	var variants []variant
	nonUnique := os.Getenv("SCALE_INSERT_NONUNIQUE") == "1"
	for _, table := range tables {
		variants = append(variants, variant{table: table})
		rows, err := conn.Query(ctx, `SELECT coalesce(c.conname, i.relname), x.indisunique, pg_get_indexdef(x.indexrelid)
			FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
			LEFT JOIN pg_constraint c ON c.conindid = x.indexrelid WHERE x.indrelid = $1::regclass ORDER BY 1`, "public."+table)
		if err != nil {
			t.Fatal(err)
		}
		var name, def string
		var unique bool
		_, err = pgx.ForEachRow(rows, []any{&name, &unique, &def}, func() error {
			variants = append(variants, variant{table: table, drop: name})
			if unique && nonUnique {
				variants = append(variants, variant{table: table, drop: name, plain: strings.Replace(def, "CREATE UNIQUE INDEX", "CREATE INDEX", 1)})
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	cpu := map[variant][]time.Duration{}
	trial := 0
	for range rounds {
		for _, v := range variants {
			trial++
			rekey(ctx, t, conn, trial)
			err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				if v.drop != "" {
					q := "DROP INDEX public." + pgx.Identifier{v.drop}.Sanitize()
					var isConstraint bool
					if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_constraint WHERE conname = $1)", v.drop).Scan(&isConstraint); err != nil {
						return err
					}
					if isConstraint {
						q = "ALTER TABLE public." + v.table + " DROP CONSTRAINT " + pgx.Identifier{v.drop}.Sanitize()
					}
					if _, err := tx.Exec(ctx, q); err != nil {
						return err
					}
					if v.plain != "" {
						if _, err := tx.Exec(ctx, v.plain); err != nil {
							return err
						}
					}
				}
				before, err := testenv.ProcessCPU(pid)
				if err != nil {
					return err
				}
				if _, err := tx.Exec(ctx, "INSERT INTO public."+v.table+" SELECT * FROM pg_temp."+v.table); err != nil {
					return err
				}
				after, err := testenv.ProcessCPU(pid)
				if err != nil {
					return err
				}
				cpu[v] = append(cpu[v], after-before)
				return errRollback
			})
			if !errors.Is(err, errRollback) {
				t.Fatalf("insert into %s without %q: %v", v.table, v.drop, err)
			}
		}
		// The rolled-back rows' index entries go, as autovacuum would
		// remove them, so that each round inserts into the indexes the
		// lead-in left.
		for _, table := range tables {
			mustExec(ctx, t, pg.Pool, "VACUUM public."+table)
		}
	}
	median := func(ds []time.Duration) float64 {
		s := slices.Clone(ds)
		slices.Sort(s)
		return s[len(s)/2].Seconds() / float64(n) * 1e6
	}
	var b strings.Builder
	fmt.Fprintf(&b, "insert CPU at %d stored (+%d lead-in), %d orders, median of %d rounds, µs per order:\n", stored, leadN, n, rounds)
	var total float64
	for _, v := range variants {
		if v.drop == "" {
			whole := median(cpu[v])
			total += whole
			fmt.Fprintf(&b, "  %-9s %7.2f\n", v.table, whole)
			continue
		}
		what, of := "without", "the index"
		if v.plain != "" {
			what, of = "plain   ", "the unique check"
		}
		fmt.Fprintf(&b, "  %-9s %s %-36s %7.2f (%s: %6.2f)\n", v.table, what, v.drop, median(cpu[v]), of,
			median(cpu[variant{table: v.table}])-median(cpu[v]))
	}
	fmt.Fprintf(&b, "  all four tables %7.2f; load %s\n", total, readLoad(t))
	t.Log(b.String())
}

// rekey gives the staged orders new uids and payment transactions (the
// same for every table), derived from the current ones and trial, so
// that no insert meets the rolled-back entries of an earlier one: each
// keeps the uid's length and its random spread over the key space.
func rekey(ctx context.Context, t *testing.T, conn *pgxpool.Conn, trial int) {
	t.Helper()
	const uid = "left(md5(order_uid || $1::text), 16) || right(order_uid, 4)"
	for _, q := range []string{
		"UPDATE pg_temp.orders SET order_uid = " + uid,
		"UPDATE pg_temp.delivery SET order_uid = " + uid,
		"UPDATE pg_temp.payment SET order_uid = " + uid + ", transaction = left(md5(transaction || $1::text), 16) || right(transaction, 4)",
		"UPDATE pg_temp.items SET order_uid = " + uid,
	} {
		if _, err := conn.Exec(ctx, q, strconv.Itoa(trial)); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for _, table := range []string{"orders", "delivery", "payment", "items"} {
		if _, err := conn.Exec(ctx, "VACUUM pg_temp."+table); err != nil {
			t.Fatal(err)
		}
	}
}

// stage fills the temporary tables (pg_temp's orders, delivery, payment
// and items) with the rows the writer would
// write for orders, the summary columns of orders included.
func stage(ctx context.Context, t *testing.T, conn *pgxpool.Conn, orders []storedOrder) {
	t.Helper()
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if err := copyInto(ctx, tx, "pg_temp", orders); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE pg_temp.orders o SET amount = p.amount, currency = p.currency,
			item_count = (SELECT count(*) FROM pg_temp.items i WHERE i.order_uid = o.order_uid)
			FROM pg_temp.payment p WHERE p.order_uid = o.order_uid`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
