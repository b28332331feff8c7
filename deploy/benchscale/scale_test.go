//go:build benchscale

package benchscale

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golang-migrate/migrate/v4"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderservice/orders/migrations"
	"github.com/orderservice/orders/reader/auth"
	"github.com/orderservice/orders/reader/auth/authtest"
	"github.com/orderservice/orders/shared/testenv"
)

// settings are the run's knobs, from the environment.
type settings struct {
	steps   []int
	slice   int     // orders ingested through the real path per step
	leadIn  int     // orders written unmeasured before each schema's measured write
	gets    int     // uncached GETs per step
	getRate float64 // their rate, per second
	warmBig int     // the larger warm-up
	out     string  // artifacts directory
	// benchmarksMD is the BENCHMARKS.md whose section gets the table ("" =
	// leave it alone).
	benchmarksMD string
	// schemaVersion, when set, migrates the service schema to this
	// version instead of the newest (to measure a schema change).
	schemaVersion uint
	// readerEnv and ingestorEnv are extra variables of the services'
	// environments (to measure a setting), KEY=VALUE separated by spaces.
	readerEnv, ingestorEnv []string
	// trace and cpuProfile, when set, are files that receive the reader's
	// execution trace and CPU profile (from its ops port's /debug/pprof)
	// over the uncached GETs, for `go tool trace` and `go tool pprof`:
	// where a request waited (scheduler, network, locks, the GC) and where
	// the reader's CPU went, when the figures say only that it was slow.
	trace, cpuProfile string
}

// getInterval is the time between two uncached GETs.
func (s settings) getInterval() time.Duration {
	return time.Duration(float64(time.Second) / s.getRate)
}

func loadSettings(t *testing.T, root string) settings {
	t.Helper()
	s := settings{slice: 100_000, leadIn: 100_000, gets: 10_000, getRate: 1000, warmBig: 100_000,
		out: filepath.Join(root, ".artifacts", "bench-scale"), benchmarksMD: os.Getenv("SCALE_BENCHMARKS_MD")}
	steps := os.Getenv("SCALE_STEPS")
	if steps == "" {
		steps = "0,1000000,3000000"
	}
	var err error
	if s.steps, err = parseSteps(steps); err != nil {
		t.Fatalf("SCALE_STEPS: %v", err)
	}
	for name, dst := range map[string]*int{"SCALE_SLICE": &s.slice, "SCALE_GETS": &s.gets} {
		if v := os.Getenv(name); v != "" {
			if *dst, err = parseCount(v); err != nil || *dst == 0 {
				t.Fatalf("%s=%q: want a positive count", name, v)
			}
		}
	}
	if v := os.Getenv("SCALE_LEAD_IN"); v != "" {
		if s.leadIn, err = parseCount(v); err != nil {
			t.Fatalf("SCALE_LEAD_IN=%q: want a count (0: measure right after a checkpoint)", v)
		}
	}
	if v := os.Getenv("SCALE_GET_RATE"); v != "" {
		if s.getRate, err = strconv.ParseFloat(v, 64); err != nil || s.getRate <= 0 {
			t.Fatalf("SCALE_GET_RATE=%q: want a positive rate", v)
		}
	}
	if v := os.Getenv("SCALE_SCHEMA_VERSION"); v != "" {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n == 0 {
			t.Fatalf("SCALE_SCHEMA_VERSION=%q: want a migration version", v)
		}
		s.schemaVersion = uint(n)
	}
	if v := os.Getenv("SCALE_OUT"); v != "" {
		s.out = v
	}
	for name, dst := range map[string]*[]string{"SCALE_READER_ENV": &s.readerEnv, "SCALE_INGESTOR_ENV": &s.ingestorEnv} {
		if *dst, err = parseEnv(os.Getenv(name)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	return s
}

// run is the state of one bench-scale run.
type run struct {
	t     *testing.T
	set   settings
	bins  map[string]string
	pg    *testenv.PG
	redis *testenv.RedisEnv
	// redisPID is redis-server's process, for its CPU time.
	redisPID int
	kafka    *testenv.KafkaEnv
	logs     string
	keys     string // the readers' API keys file
	token    string // an API key of it, with orders:read and orders:pii
	seq      int64  // orders generated so far: the next one's timeline number
	stored   int    // orders in the service's tables (and in bare)
}

// TestScale is `make bench-scale`: see the package documentation.
func TestScale(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.work")); err != nil {
		t.Fatalf("the repository root (go.work) is not %s: %v", root, err)
	}
	r := &run{t: t, set: loadSettings(t, root)}
	r.logs = filepath.Join(r.set.out, "logs")
	if err := os.MkdirAll(r.logs, 0o755); err != nil {
		t.Fatal(err)
	}
	r.bins = buildBinaries(t, root, "ingestor", "reader", "producer", "refreader")
	// The uncached GETs ask for whole orders (orders:pii: the stored bytes,
	// no masking, an audit record each), as a service with full access
	// does; the limit never refuses them.
	token, line := authtest.NewKey(t, "bench-scale", "1000000/1000000", auth.ScopeRead, auth.ScopePII)
	r.keys, r.token = authtest.NewKeys(t, line).File, token
	pgSource := postgresServer(t, root, r.logs)
	r.pg = testenv.Postgres(t)
	r.redis = testenv.Redis(t)
	r.redisPID = redisProcess(t, r.redis.Client)
	r.kafka = testenv.Kafka(t)
	ctx := context.Background()
	if v := r.set.schemaVersion; v > 0 {
		err := migrations.With(r.pg.URL, func(m *migrate.Migrate) error {
			if err := m.Migrate(v); !errors.Is(err, migrate.ErrNoChange) {
				return err
			}
			return nil
		})
		if err != nil {
			t.Fatalf("migrate to version %d: %v", v, err)
		}
	}
	if _, err := r.pg.Pool.Exec(ctx, bareSchema); err != nil {
		t.Fatalf("bare schema: %v", err)
	}
	m := describeMachine(t, r.pg.Pool, r.redis.Client)
	m.PGSource = pgSource
	t.Logf("machine: %+v", m)
	var rows []row
	for _, step := range r.set.steps {
		rows = append(rows, r.step(step))
		m.LoadAfter = readLoad(t)
		r.writeReport(m, rows)
	}
}

// step loads the database up to n orders (if it holds fewer) and measures.
func (r *run) step(n int) row {
	t := r.t
	ctx := context.Background()
	if n > r.stored {
		start := time.Now()
		r.bulkLoad(ctx, n-r.stored)
		t.Logf("step %d: bulk-loaded %d orders in %s", n, n-r.stored, time.Since(start).Round(time.Second))
		r.stored = n
	}
	start := time.Now()
	r.settle(ctx)
	t.Logf("step %d: VACUUM ANALYZE in %s", r.stored, time.Since(start).Round(time.Second))
	out := row{Stored: r.stored, Slice: r.set.slice}

	// Each schema's measured write follows a checkpoint (no dirty buffers
	// of the other's) and that schema's own lead-in (see leadIn); both
	// schemas end with the same rows.
	lead := r.generate(r.set.leadIn)
	slice := r.generate(r.set.slice)
	r.checkpoint(ctx)
	r.leadIn(ctx, "bare", lead)
	lsn := walLSN(ctx, r.t, r.pg.Pool)
	pgBefore := postgresCPU(ctx, t, r.pg.Pool)
	out.BareRate = r.bareCopy(ctx, slice)
	barePG := cpuDelta(pgBefore, postgresCPU(ctx, t, r.pg.Pool))
	t.Logf("step %d: bare COPY %.0f orders/s, PostgreSQL %.3f CPU-s per 1,000, %.0f WAL bytes per order (after a lead-in of %d)",
		r.stored, out.BareRate, barePG.Seconds()/float64(len(slice))*1000, walSince(ctx, r.t, r.pg.Pool, lsn)/float64(len(slice)), len(lead))
	r.checkpoint(ctx)
	r.leadIn(ctx, "public", lead)
	lsn = walLSN(ctx, r.t, r.pg.Pool)
	ing := r.ingest(ctx, slice)
	out.IngestRate, out.IngestCPU1k, out.IngestPeakRSS, out.IngestPGCPU1k = ing.rate, ing.cpu1k, ing.peakRSS, ing.pgCPU1k
	t.Logf("step %d: ingest %.0f orders/s (%.2f of bare), %.3f CPU-s per 1,000; PostgreSQL %.3f CPU-s per 1,000 (%.2f cores busy); %.0f WAL bytes per order",
		r.stored, ing.rate, out.ratio(), ing.cpu1k, ing.pgCPU1k, ing.busy, walSince(ctx, r.t, r.pg.Pool, lsn)/float64(len(slice)))
	r.stored += len(lead) + len(slice)
	if _, err := r.pg.Pool.Exec(ctx, "ANALYZE"); err != nil {
		t.Fatal(err)
	}

	out.BytesPerOrder = r.bytesPerOrder(ctx, "public")
	out.BareBytesPerOrder = r.bytesPerOrder(ctx, "bare")

	w := r.warmUp(1000)
	out.Warm1k = w.duration
	w = r.warmUp(r.set.warmBig)
	out.Warm100k, out.Warmed100k, out.ReaderRSS, out.ReaderPeakRSS = w.duration, w.orders, w.mem.RSS, w.mem.Peak
	t.Logf("step %d: warm-up 1,000 %s, %d %s, RSS %s (peak %s)", r.stored, out.Warm1k, w.orders, w.duration,
		megabytes(w.mem.RSS), megabytes(w.mem.Peak))
	g := r.uncachedGets(ctx)
	out.GetP50, out.GetP99, out.GetRate, out.Gets, out.GetErrors = g.p50, g.p99, r.set.getRate, g.n, g.errs
	out.RefGetP50, out.RefGetP99 = g.refP50, g.refP99
	t.Logf("step %d: uncached GET p50 %s p99 %s (%d at %.0f/s); the reference server's p50 %s p99 %s",
		r.stored, g.p50, g.p99, g.n, r.set.getRate, g.refP50, g.refP99)
	out.Anatomy = r.anatomy(ctx)
	out.LoadAverage = readLoad(t)
	return out
}

// settle brings the tables to the state production's autovacuum keeps
// them in (hint bits set, visibility map, statistics) before the step's
// measurements, whether or not autovacuum has caught up with the bulk load
// (the run's own server runs it; SCALE_DATABASE_URL's may not).
func (r *run) settle(ctx context.Context) {
	for _, table := range []string{"orders", "delivery", "payment", "items", "bare.orders", "bare.delivery", "bare.payment", "bare.items"} {
		if _, err := r.pg.Pool.Exec(ctx, "VACUUM (ANALYZE) "+table); err != nil {
			r.t.Fatalf("vacuum %s: %v", table, err)
		}
	}
}

// checkpoint starts the next measurement with no dirty buffers of the
// previous one to flush, and with the same full-page-write state.
func (r *run) checkpoint(ctx context.Context) {
	if _, err := r.pg.Pool.Exec(ctx, "CHECKPOINT"); err != nil {
		r.t.Fatalf("checkpoint: %v", err)
	}
}

// walLSN is the server's current WAL position.
func walLSN(ctx context.Context, t testing.TB, pool *pgxpool.Pool) string {
	t.Helper()
	var lsn string
	if err := pool.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn); err != nil {
		t.Fatalf("WAL position: %v", err)
	}
	return lsn
}

// walSince is the WAL the server wrote since lsn (every database's: the
// run's own server has no other, SCALE_DATABASE_URL's may).
func walSince(ctx context.Context, t testing.TB, pool *pgxpool.Pool, lsn string) float64 {
	t.Helper()
	var n float64
	if err := pool.QueryRow(ctx, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::float8", lsn).Scan(&n); err != nil {
		t.Fatalf("WAL since %s: %v", lsn, err)
	}
	return n
}

// bytesPerOrder is the size of the schema's four tables (heap, TOAST,
// indexes) over its number of orders.
func (r *run) bytesPerOrder(ctx context.Context, schema string) float64 {
	var size, orders float64
	err := r.pg.Pool.QueryRow(ctx, `SELECT sum(pg_total_relation_size(c.oid))::float8 FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname IN ('orders', 'delivery', 'payment', 'items') AND c.relkind = 'r'`, schema).Scan(&size)
	if err != nil {
		r.t.Fatalf("size of %s: %v", schema, err)
	}
	if err := r.pg.Pool.QueryRow(ctx, "SELECT count(*)::float8 FROM "+schema+".orders").Scan(&orders); err != nil {
		r.t.Fatalf("count %s.orders: %v", schema, err)
	}
	if int(orders) != r.stored {
		r.t.Fatalf("%s.orders holds %.0f orders, want %d", schema, orders, r.stored)
	}
	return size / orders
}

// ingested is what the ingestor measured on one slice.
type ingested struct {
	rate, cpu1k float64
	peakRSS     int64
	// pgCPU1k is the PostgreSQL server's CPU per 1,000 orders while the
	// ingest lasted, busy the cores it kept busy on average.
	pgCPU1k, busy float64
}

// ingest sends slice with the producer to a fresh 6-partition topic and
// times the ingestor binary from its first partition assignment until the
// last order is committed.
func (r *run) ingest(ctx context.Context, slice []storedOrder) ingested {
	t := r.t
	const partitions = 6
	topic := r.kafka.Topic(t, "orders", partitions)
	dlq := r.kafka.Topic(t, "orders.dlq", 1)
	adm := r.kafkaAdmin()
	defer func() {
		if _, err := adm.DeleteTopics(ctx, topic, dlq); err != nil {
			t.Logf("delete topics: %v", err)
		}
		adm.Close()
	}()

	file := filepath.Join(t.TempDir(), "slice.ndjson")
	writeNDJSON(t, file, slice)
	logf := r.logFile(fmt.Sprintf("step-%d-producer.log", r.stored))
	prod := exec.Command(r.bins["producer"], "--brokers", r.kafka.Brokers, "--topic", topic, "--file", file, "--progress", "off")
	prod.Stdout, prod.Stderr = logf, logf
	if err := prod.Run(); err != nil {
		t.Fatalf("producer: %v (log %s)", err, logf.Name())
	}
	_ = os.Remove(file)
	if n := topicRecords(t, adm, topic); n != int64(len(slice)) {
		t.Fatalf("topic %s holds %d records, want %d", topic, n, len(slice))
	}

	prefix := "scale" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":"
	defer r.deletePrefix(ctx, prefix)
	ops := freeAddr(t)
	cmd := exec.Command(r.bins["ingestor"])
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"INGESTOR_KAFKA_BROKERS=" + r.kafka.Brokers,
		"INGESTOR_KAFKA_TOPIC=" + topic,
		"INGESTOR_KAFKA_GROUP=ingestor-" + topic,
		"INGESTOR_KAFKA_DLQ_TOPIC=" + dlq,
		"INGESTOR_DATABASE_URL=" + r.pg.URLAs("order_ingestor"),
		"INGESTOR_REDIS_URL=" + r.redis.URL,
		"INGESTOR_REDIS_KEY_PREFIX=" + prefix,
		"INGESTOR_OPS_ADDR=" + ops,
		"INGESTOR_LOG_LEVEL=info",
	}
	cmd.Env = append(cmd.Env, r.set.ingestorEnv...)
	logf = r.logFile(fmt.Sprintf("step-%d-ingestor.log", r.stored))
	done := startLogged(t, cmd, logf)
	defer func() {
		select {
		case err := <-done: // exited already (what it returned was handled)
			_ = err
		default:
			_ = cmd.Process.Kill()
			if err := <-done; err == nil {
				t.Log("ingestor: exited cleanly when killed")
			}
		}
	}()
	var began time.Time
	var pgBefore map[int]time.Duration
	deadline := time.Now().Add(15 * time.Minute)
	for {
		scraped := scrapeMetrics(ops)
		if v, _ := sample(scraped, "ingestor_assigned_partitions"); v > 0 && began.IsZero() {
			began = time.Now()
			pgBefore = postgresCPU(ctx, t, r.pg.Pool)
		}
		if v, _ := sample(scraped, `ingestor_messages_total{outcome="stored",reason=""}`); v >= float64(len(slice)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ingestor: not every order stored after 15 minutes (log %s)", logf.Name())
		}
		select {
		case err := <-done:
			t.Fatalf("ingestor exited: %v (log %s)", err, logf.Name())
		case <-time.After(50 * time.Millisecond):
		}
	}
	elapsed := time.Since(began)
	pgCPU := cpuDelta(pgBefore, postgresCPU(ctx, t, r.pg.Pool))
	scraped := scrapeMetrics(ops)
	if v, _ := sample(scraped, `ingestor_messages_total{outcome="stored",reason=""}`); v != float64(len(slice)) {
		t.Fatalf("ingestor stored %.0f orders, want %d", v, len(slice))
	}
	// How much of the ingest the database transactions took: their mean,
	// and their total against the elapsed time (2 in flight at most by
	// default: 2.0 means PostgreSQL was writing all the time).
	if sum, ok := sample(scraped, "ingestor_db_write_seconds_sum"); ok {
		if n, _ := sample(scraped, "ingestor_db_write_seconds_count"); n > 0 {
			t.Logf("step %d: %.0f batch transactions, %.0f ms each on average, %.2f transactions in flight on average",
				r.stored, n, 1000*sum/n, sum/elapsed.Seconds())
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("ingestor exit: %v (log %s)", err, logf.Name())
	}
	done <- nil
	st := cmd.ProcessState
	cpu := (st.UserTime() + st.SystemTime()).Seconds()
	ru, _ := st.SysUsage().(*syscall.Rusage)
	var peak int64
	if ru != nil {
		peak = ru.Maxrss * 1024
	}
	return ingested{rate: float64(len(slice)) / elapsed.Seconds(), cpu1k: cpu / float64(len(slice)) * 1000, peakRSS: peak,
		pgCPU1k: pgCPU.Seconds() / float64(len(slice)) * 1000, busy: pgCPU.Seconds() / elapsed.Seconds()}
}

func (r *run) kafkaAdmin() *kadm.Client {
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(r.kafka.Brokers, ",")...))
	if err != nil {
		r.t.Fatal(err)
	}
	return kadm.NewClient(cl)
}

// readerRun is one reader process.
type readerRun struct {
	cmd    *exec.Cmd
	done   chan error
	base   string
	ops    string
	prefix string
}

// startReader starts the reader binary with warm orders to warm up and an
// empty Redis key space of its own, and waits until it is ready.
func (r *run) startReader(warm int, name string) *readerRun {
	t := r.t
	rr := &readerRun{prefix: "scale" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":"}
	listen, ops := freeAddr(t), freeAddr(t)
	rr.base, rr.ops = "http://"+listen, "http://"+ops
	rr.cmd = exec.Command(r.bins["reader"])
	rr.cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"READER_LISTEN_ADDR=" + listen,
		"READER_OPS_ADDR=" + ops,
		"READER_DATABASE_URL=" + r.pg.URLAs("order_reader"),
		"READER_REDIS_URL=" + r.redis.URL,
		"READER_REDIS_KEY_PREFIX=" + rr.prefix,
		"READER_WARM_COUNT=" + strconv.Itoa(warm),
		"READER_WARM_TIMEOUT=5m",
		"READER_API_KEYS_FILE=" + r.keys,
		"READER_AUDIT_LOG=" + filepath.Join(r.logs, fmt.Sprintf("step-%d-reader-%s-audit.log", r.stored, name)),
	}
	rr.cmd.Env = append(rr.cmd.Env, r.set.readerEnv...)
	logf := r.logFile(fmt.Sprintf("step-%d-reader-%s.log", r.stored, name))
	rr.done = startLogged(t, rr.cmd, logf)
	if err := waitReady(rr.base+"/readyz", 6*time.Minute, rr.done); err != nil {
		if !errors.Is(err, errExited) {
			rr.stop(r)
		}
		t.Fatalf("reader: %v (log %s)", err, logf.Name())
	}
	return rr
}

// stop ends the reader and deletes its Redis keys.
func (rr *readerRun) stop(r *run) {
	_ = rr.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-rr.done:
		if err != nil {
			r.t.Logf("reader exit: %v", err)
		}
	case <-time.After(30 * time.Second):
		_ = rr.cmd.Process.Kill()
		if err := <-rr.done; err == nil {
			r.t.Log("reader: exited cleanly when killed")
		}
	}
	r.deletePrefix(context.Background(), rr.prefix)
}

// warmed is one warm-up.
type warmed struct {
	duration time.Duration
	orders   int
	mem      memStatus
}

// warmUp starts a reader that warms n orders and reads how long it took
// and its memory once ready.
func (r *run) warmUp(n int) warmed {
	rr := r.startReader(n, "warm-"+strconv.Itoa(n))
	defer rr.stop(r)
	scraped := scrapeMetrics(strings.TrimPrefix(rr.ops, "http://"))
	secs, ok := sample(scraped, "reader_warmup_duration_seconds")
	orders, ok2 := sample(scraped, "reader_warmup_orders")
	if !ok || !ok2 {
		r.t.Fatal("reader_warmup_duration_seconds or reader_warmup_orders missing")
	}
	if want := min(n, r.stored); int(orders) != want {
		r.t.Fatalf("warm-up of %d loaded %.0f orders, want %d", n, orders, want)
	}
	mem, err := readMemStatus(rr.cmd.Process.Pid)
	if err != nil {
		r.t.Fatal(err)
	}
	return warmed{duration: time.Duration(secs * float64(time.Second)), orders: int(orders), mem: mem}
}

// gotten is the uncached GETs' latency.
type gotten struct {
	p50, p99 time.Duration
	n, errs  int
	// refP50 and refP99 are the reference server's (referenceGets).
	refP50, refP99 time.Duration
	// The percentage of GETs over 10 ms at the client, in the reader's
	// handler, and of the reader's lookup queries.
	over10Client, over10Handler, over10Query float64
}

// startLogged starts cmd with its output to logf; the channel delivers
// what its Wait returns (buffered, one value).
func startLogged(t *testing.T, cmd *exec.Cmd, logf *os.File) chan error {
	t.Helper()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	return done
}

// errExited is waitReady's error when the process exited first.
var errExited = errors.New("exited")

// waitReady polls url until it answers 200, for at most within, and fails
// at once when the process whose Wait done delivers exits first.
func waitReady(url string, within time.Duration, done <-chan error) error {
	for deadline := time.Now().Add(within); httpStatus(url) != http.StatusOK; {
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s", within)
		}
		select {
		case err := <-done:
			return fmt.Errorf("%w: %v", errExited, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// getPrimers is how many GETs open a server's pool connections and
// prepare its statements before the measured ones, as a running server
// has them.
const getPrimers = 200

// prime asks base for the first getPrimers of uids, unmeasured, and
// returns the rest.
func prime(t *testing.T, client *http.Client, base, token string, uids []string) []string {
	t.Helper()
	for _, uid := range uids[:getPrimers] {
		if code := get(client, base+"/order/"+uid, token); code != http.StatusOK {
			t.Fatalf("GET %s/order/%s: %d", base, uid, code)
		}
	}
	return uids[getPrimers:]
}

// openLoop asks base for each of uids once, one every interval from a
// moment just after the call (open loop: each request's latency counts
// from when it was due), and returns each one's latency and status (0
// when it failed), the first one's due time and the time they all took.
func openLoop(client *http.Client, base, token string, uids []string, interval time.Duration) (lat []time.Duration, status []int, start time.Time, elapsed time.Duration) {
	lat, status = make([]time.Duration, len(uids)), make([]int, len(uids))
	start = time.Now().Add(10 * time.Millisecond)
	var wg sync.WaitGroup
	for i, uid := range uids {
		due := start.Add(time.Duration(i) * interval)
		time.Sleep(time.Until(due))
		wg.Go(func() {
			status[i] = get(client, base+"/order/"+uid, token)
			lat[i] = time.Since(due)
		})
	}
	wg.Wait()
	return lat, status, start, time.Since(start)
}

// failures counts the statuses other than 200 (0: the request failed),
// and each one's count.
func failures(status []int) (n int, codes map[int]int) {
	codes = map[int]int{}
	for _, code := range status {
		if code != http.StatusOK {
			codes[code]++
			n++
		}
	}
	return n, codes
}

// referenceGets runs the uncached GETs against the reference server
// (refreader: one query per request, no cache, no batching), uids as the
// reader's, at the same rate: what this machine, at this moment, gives
// the simplest server that answers from PostgreSQL.
func (r *run) referenceGets(client *http.Client, uids []string) gotten {
	t := r.t
	listen := freeAddr(t)
	cmd := exec.Command(r.bins["refreader"])
	cmd.Env = []string{"REF_LISTEN_ADDR=" + listen, "REF_DATABASE_URL=" + r.pg.URLAs("order_reader")}
	logf := r.logFile(fmt.Sprintf("step-%d-refreader.log", r.stored))
	done := startLogged(t, cmd, logf)
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if err := <-done; err != nil {
			t.Logf("refreader exit: %v (log %s)", err, logf.Name())
		}
	}()
	base := "http://" + listen
	if err := waitReady(base+"/readyz", time.Minute, done); err != nil {
		t.Fatalf("refreader: %v (log %s)", err, logf.Name())
	}
	uids = prime(t, client, base, r.token, uids)
	lat, status, _, _ := openLoop(client, base, r.token, uids, r.set.getInterval())
	errs, codes := failures(status)
	if errs*100 > len(uids) {
		t.Fatalf("%d of %d GETs of the reference server failed (status: count %v; log %s)", errs, len(uids), codes, logf.Name())
	}
	g := gotten{p50: percentile(lat, 50), p99: percentile(lat, 99), n: len(uids), errs: errs}
	t.Logf("step %d: the reference server's uncached GETs: p50 %s, p99 %s (%d at %.0f/s, %d failed)",
		r.stored, g.p50, g.p99, g.n, r.set.getRate, errs)
	return g
}

// uncachedGets asks a reader without warm-up for distinct stored orders
// sampled over the whole table, each once, at a fixed rate (open loop:
// each request's latency counts from when it was due, so a stall delays
// the requests behind it in the figures too), and checks that every one
// was answered by PostgreSQL.
func (r *run) uncachedGets(ctx context.Context) gotten {
	t := r.t
	// Two samples: one for the reference server, asked first, and one for
	// the reader, so that neither finds the other's orders in PostgreSQL's
	// buffers.
	all := r.sampleUIDs(ctx, 2*(r.set.gets+getPrimers))
	uids := all[:r.set.gets+getPrimers]
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}, Timeout: 30 * time.Second}
	ref := r.referenceGets(client, all[len(uids):])
	rr := r.startReader(0, "get")
	defer rr.stop(r)
	uids = prime(t, client, rr.base, r.token, uids)
	opsAddr := strings.TrimPrefix(rr.ops, "http://")
	before := scrapeMetrics(opsAddr)
	hits0, _ := sample(before, `reader_cache_lookups_total{result="hit",tier="db"}`)

	interval := r.set.getInterval()
	waits := r.sampleWaits()
	cpu0 := r.getsCPU(ctx, rr)
	span := time.Duration(len(uids)) * interval
	traced := r.profileReader(opsAddr, "trace", r.set.trace, span)
	profiled := r.profileReader(opsAddr, "profile", r.set.cpuProfile, span)
	lat, failed, start, elapsed := openLoop(client, rr.base, r.token, uids, interval)
	traced()
	profiled()
	r.reportStalls(lat, start, interval, waits.finish()) // before percentile sorts lat
	cpu1 := r.getsCPU(ctx, rr)
	t.Logf("step %d: CPU during the GETs' %s, in cores: reader %.2f, PostgreSQL %.2f, redis-server %.2f, this process (client, broker, sampler) %.2f; the machine %.2f of %d",
		r.stored, elapsed.Round(time.Millisecond), cores(cpu1.reader-cpu0.reader, elapsed), cores(cpuDelta(cpu0.postgres, cpu1.postgres), elapsed),
		cores(cpu1.redis-cpu0.redis, elapsed), cores(cpu1.self-cpu0.self, elapsed), cores(cpu1.machine.Busy-cpu0.machine.Busy, elapsed), runtime.NumCPU())
	if err := errors.Join(cpu0.schedErr, cpu1.schedErr); err != nil {
		t.Logf("step %d: the reader's run-queue delay is not known: %v", r.stored, err)
	} else {
		ran, waited, slices := cpu1.readerRun-cpu0.readerRun, cpu1.readerWait-cpu0.readerWait, cpu1.readerSlices-cpu0.readerSlices
		t.Logf("step %d: the reader's threads waited runnable for a CPU %.2f s per s they ran (%s on a CPU, %s waiting, over %d times on a CPU: %s a wait)",
			r.stored, waited.Seconds()/max(1e-9, ran.Seconds()), ran.Round(time.Millisecond), waited.Round(time.Millisecond),
			slices, (waited / time.Duration(max(1, slices))).Round(time.Microsecond))
	}
	// A reader that sheds load (a 503 when a lookup misses its deadline on
	// an overloaded machine) is measured, not dropped: the failures are
	// counted in the figures, and only a reader that fails more than 1%
	// stops the run.
	errs, codes := failures(failed)
	if errs > 0 {
		t.Logf("step %d: %d of %d uncached GETs failed (status: count %v)", r.stored, errs, len(uids), codes)
	}
	if errs*100 > len(uids) {
		t.Fatalf("%d of %d uncached GETs failed (status: count %v)", errs, len(uids), codes)
	}
	after := scrapeMetrics(opsAddr)
	hits, _ := sample(after, `reader_cache_lookups_total{result="hit",tier="db"}`)
	if int(hits-hits0) != len(uids)-errs {
		t.Fatalf("%.0f of %d answered GETs were answered by PostgreSQL: not all uncached", hits-hits0, len(uids)-errs)
	}
	g := gotten{p50: percentile(lat, 50), p99: percentile(lat, 99), n: len(uids), errs: errs, refP50: ref.p50, refP99: ref.p99}
	// Where the slow ones were slow: the share over 10 ms as the client
	// saw it, as the reader's handler timed it, and of the reader's lookup
	// queries as it timed them (PostgreSQL and the connection).
	over := func(metric, labels string) float64 {
		o1, n1 := histogramOver(after, metric, labels, "0.01")
		o0, n0 := histogramOver(before, metric, labels, "0.01")
		if n1 == n0 {
			t.Logf("no %s{%s} observed during the GETs", metric, labels)
			return 0
		}
		return 100 * (o1 - o0) / (n1 - n0)
	}
	slow := 0
	for _, d := range lat {
		if d > 10*time.Millisecond {
			slow++
		}
	}
	g.over10Client = 100 * float64(slow) / float64(len(lat))
	g.over10Handler = over("reader_http_request_duration_seconds", `/order/{order_uid}"`)
	g.over10Query = over("reader_db_query_duration_seconds", `query="get"`)
	t.Logf("step %d: GETs over 10 ms: %.2f%% as the client saw them, %.2f%% in the reader's handler, %.2f%% of its lookup queries",
		r.stored, g.over10Client, g.over10Handler, g.over10Query)
	return g
}

// profileReader starts the reader's /debug/pprof/<kind> (trace or
// profile) over d when file is set; the function it returns waits for it
// to be written to file.
func (r *run) profileReader(ops, kind, file string, d time.Duration) (wait func()) {
	if file == "" {
		return func() {}
	}
	t := r.t
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/%s?seconds=%d", ops, kind, max(1, int(d.Seconds())))) //nolint:noctx // local, bounded by seconds
		if err != nil {
			t.Errorf("reader %s: %v", kind, err)
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(file)
		if err != nil {
			t.Errorf("reader %s: %v", kind, err)
			return
		}
		defer f.Close()
		if _, err := io.Copy(f, resp.Body); err != nil {
			t.Errorf("reader %s: %v", kind, err)
		}
	}()
	return func() {
		<-done
		t.Logf("the reader's %s over the GETs: %s", kind, file)
	}
}

// sampleUIDs returns n distinct stored uids drawn uniformly over the
// orders table, in random order.
func (r *run) sampleUIDs(ctx context.Context, n int) []string {
	pct := min(100, 150*float64(n)/float64(r.stored))
	rows, err := r.pg.Pool.Query(ctx, "SELECT order_uid FROM orders TABLESAMPLE BERNOULLI ($1) REPEATABLE (7)", pct)
	if err != nil {
		r.t.Fatal(err)
	}
	uids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		r.t.Fatal(err)
	}
	if len(uids) < n {
		r.t.Fatalf("sampled %d stored orders, want %d (stored: %d)", len(uids), n, r.stored)
	}
	rng := rand.New(rand.NewPCG(uint64(r.stored), 11))
	rng.Shuffle(len(uids), func(i, j int) { uids[i], uids[j] = uids[j], uids[i] })
	return uids[:n]
}

// get sends GET url with the API key and returns the status (0 if no
// answer came).
func get(client *http.Client, url, token string) int {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	if err != nil {
		return 0
	}
	req.Header.Set("Authorization", authtest.Bearer(token))
	resp, err := client.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	_, _ = bufio.NewReader(resp.Body).WriteTo(discard{})
	return resp.StatusCode
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// deletePrefix removes the Redis keys a process of the run wrote.
func (r *run) deletePrefix(ctx context.Context, prefix string) {
	deleteKeys(ctx, r.t, r.redis.Client, prefix)
}

func (r *run) logFile(name string) *os.File {
	f, err := os.Create(filepath.Join(r.logs, name))
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { _ = f.Close() })
	return f
}

// machine is what the run ran on.
type machine struct {
	CPUs       int
	CPUModel   string
	Memory     int64
	Kernel     string
	Go         string
	PostgreSQL string
	PGSettings string
	PGSource   string // which server: the run's own, or SCALE_DATABASE_URL's
	Redis      string
	Commit     string
	LoadBefore string
	LoadAfter  string
	Started    time.Time
}

func describeMachine(t *testing.T, pool *pgxpool.Pool, rc *redis.Client) machine {
	t.Helper()
	ctx := context.Background()
	m := machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), LoadBefore: readLoad(t), Started: time.Now().UTC()}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		m.Memory, _ = memTotal(string(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				m.CPUModel = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if err := pool.QueryRow(ctx, "SHOW server_version").Scan(&m.PostgreSQL); err != nil {
		t.Fatal(err)
	}
	rows, err := pool.Query(ctx, `SELECT name || '=' || current_setting(name) FROM pg_settings
		WHERE name IN ('shared_buffers', 'max_wal_size', 'synchronous_commit', 'autovacuum', 'wal_compression',
		'full_page_writes', 'checkpoint_timeout', 'wal_buffers', 'effective_cache_size', 'fsync') ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	settings, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	m.PGSettings = strings.Join(settings, ", ")
	if info, err := rc.Info(ctx, "server").Result(); err == nil {
		for line := range strings.Lines(info) {
			if v, ok := strings.CutPrefix(line, "redis_version:"); ok {
				m.Redis = strings.TrimSpace(v)
			}
		}
	}
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
	}
	return m
}

// writeReport writes the table, the raw figures and the plots, and the
// BENCHMARKS.md section, after every step (a run cut short keeps what it
// measured).
func (r *run) writeReport(m machine, rows []row) {
	t := r.t
	table := markdown(rows)
	section := r.reportText(m, table)
	if err := os.WriteFile(filepath.Join(r.set.out, "results.md"), []byte(section), 0o644); err != nil {
		t.Fatal(err)
	}
	raw, err := json.MarshalIndent(struct {
		Machine machine `json:"machine"`
		Rows    []row   `json:"rows"`
	}{m, rows}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.set.out, "results.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := plots(rows, r.set.out); err != nil {
		t.Fatal(err)
	}
	if r.set.benchmarksMD != "" {
		if err := updateSection(r.set.benchmarksMD, section); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("results (%s):\n%s", r.set.out, table)
}

func (r *run) reportText(m machine, table string) string {
	var b strings.Builder
	steps := make([]string, len(r.set.steps))
	for i, s := range r.set.steps {
		steps[i] = strconv.Itoa(s)
	}
	schema := "the newest migration"
	if r.set.schemaVersion > 0 {
		schema = fmt.Sprintf("migrations up to version %d", r.set.schemaVersion)
	}
	lead := "each right after a checkpoint (no lead-in)"
	if r.set.leadIn > 0 {
		lead = fmt.Sprintf("each after a checkpoint and an unmeasured lead-in of %s orders into the same schema", thousands(r.set.leadIn))
	}
	fmt.Fprintf(&b, "Run of %s (commit %s), steps %s, %s orders ingested per step (and as many by bare COPY), %s; %s uncached GETs at %.0f/s, schema: %s.\n\n",
		m.Started.Format("2006-01-02 15:04 UTC"), m.Commit, strings.Join(steps, ", "), thousands(r.set.slice),
		lead, thousands(r.set.gets), r.set.getRate, schema)
	b.WriteString(table)
	fmt.Fprintf(&b, "\nMachine: %d CPUs (%s), %.1f GiB memory, Linux %s; %s; PostgreSQL %s, %s (%s); Redis %s. "+
		"Load average (1, 5, 15 min) %s at the start, %s at the end; the last column is each step's, at its end.\n",
		m.CPUs, m.CPUModel, float64(m.Memory)/(1<<30), m.Kernel, m.Go, m.PostgreSQL, m.PGSource, m.PGSettings, m.Redis,
		m.LoadBefore, m.LoadAfter)
	return b.String()
}

func httpStatus(url string) int {
	resp, err := http.Get(url) //nolint:noctx // local, and polled
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// getsSample is the CPU time so far of the processes the uncached GETs
// involve.
type getsSample struct {
	cpuSample
	reader time.Duration
	// readerRun and readerWait are the reader's threads' time on a CPU
	// and waiting runnable for one (schedstat): a wait that is a large
	// share of the run on a machine with idle CPU time says the requests
	// queue for the kernel's scheduler, not for the reader.
	readerRun, readerWait time.Duration
	readerSlices          int64
	schedErr              error // a kernel without schedstat: the line is left out
}

func (r *run) getsCPU(ctx context.Context, rr *readerRun) getsSample {
	s := getsSample{cpuSample: sampleCPU(ctx, r.t, r.pg.Pool, r.redisPID)}
	var err error
	if s.reader, err = testenv.ProcessCPU(rr.cmd.Process.Pid); err != nil {
		r.t.Fatalf("reader CPU: %v", err)
	}
	s.readerRun, s.readerWait, s.readerSlices, s.schedErr = threadsSchedstat(rr.cmd.Process.Pid)
	return s
}

// threadsSchedstat sums the schedstat of pid's threads (a thread that
// ended in between is not counted).
func threadsSchedstat(pid int) (run, wait time.Duration, slices int64, err error) {
	files, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(files) == 0 {
		return 0, 0, 0, fmt.Errorf("no threads of process %d: %v", pid, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, 0, 0, err
		}
		r, w, n, err := parseSchedstat(string(b))
		if err != nil {
			return 0, 0, 0, err
		}
		run, wait, slices = run+r, wait+w, slices+n
	}
	return run, wait, slices, nil
}

// cores is CPU time d spread over elapsed.
func cores(d, elapsed time.Duration) float64 { return d.Seconds() / elapsed.Seconds() }
