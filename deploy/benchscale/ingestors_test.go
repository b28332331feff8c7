package benchscale

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/orderservice/orders/ingestor/ingest"
	"github.com/orderservice/orders/ingestor/postgres"
	"github.com/orderservice/orders/shared/testenv"
)

// topicPartitions is the partitions of the benchmark's topic, as
// kafka-init creates them in production.
const topicPartitions = 6

// BenchmarkIngestors is `make bench-ingestors`: how the total ingest rate
// grows with the number of ingestor processes on one machine. The producer
// binary loads SCALE_INGESTORS_ORDERS (100,000) orders once into a
// 6-partition topic of the in-process kfake broker; then each run starts
// k ingestor binaries (SCALE_INGESTORS, default 1,2,3,6; default
// settings) in one new consumer group, so they share the partitions, over
// an empty database of its own, and measures the total rate from the first
// partition assignment of any of them to the moment their stored counters
// add up to every order, and the CPU that the ingestors, the PostgreSQL
// server (the run database's backends plus the checkpointer, background
// writer and WAL writer), redis-server and this process (the broker) used
// in that time. The reference, in the same run: the ingestor's writer
// (ingestor/postgres.Writer) called from this process with the same orders,
// already decoded and hashed, 2 batches of 2,000 in flight as one ingestor
// has, and 12 as six have. SCALE_INGESTORS_ROUNDS (3) rounds run every
// configuration in turn; the table has each one's median.
//
// It is a benchmark so that `make test` compiles it and never runs it:
//
//	go test -run '^$' -bench '^BenchmarkIngestors$' -benchtime=1x -timeout 30m ./deploy/benchscale
func BenchmarkIngestors(b *testing.B) {
	root := repoRoot(b)
	set := ingestorsSettings{orders: 100_000, counts: []int{1, 2, 3, 6}, rounds: 3,
		out: filepath.Join(root, ".artifacts", "bench-ingestors"), benchmarksMD: os.Getenv("SCALE_BENCHMARKS_MD")}
	if v := os.Getenv("SCALE_INGESTORS_ORDERS"); v != "" {
		n, err := parseCount(v)
		if err != nil || n == 0 {
			b.Fatalf("SCALE_INGESTORS_ORDERS=%q: want a positive count", v)
		}
		set.orders = n
	}
	if v := os.Getenv("SCALE_INGESTORS"); v != "" {
		counts, err := parseSteps(v)
		if err != nil || counts[0] == 0 {
			b.Fatalf("SCALE_INGESTORS=%q: want increasing positive counts (%v)", v, err)
		}
		set.counts = counts
	}
	if v := os.Getenv("SCALE_INGESTORS_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("SCALE_INGESTORS_ROUNDS=%q: want a positive count", v)
		}
		set.rounds = n
	}
	if err := os.MkdirAll(set.out, 0o755); err != nil {
		b.Fatal(err)
	}
	load0 := readLoad(b)
	bins := buildBinaries(b, root, "ingestor", "producer")
	kafka, rds := testenv.Kafka(b), testenv.Redis(b)
	redisPID := redisProcess(b, rds.Client)
	topic := kafka.Topic(b, "orders", topicPartitions)
	dlq := kafka.Topic(b, "orders.dlq", 1)
	orders := generateRange(0, set.orders)
	produceFile(b, bins["producer"], kafka.Brokers, topic, orders)
	adm := newAdmin(b, kafka.Brokers)
	if n := topicRecords(b, adm, topic); n != int64(len(orders)) {
		b.Fatalf("topic %s holds %d records, want %d", topic, n, len(orders))
	}

	configs := []ingestConfig{{writers: 2}, {writers: 12}}
	for _, k := range set.counts {
		configs = append(configs, ingestConfig{ingestors: k})
	}
	results := make([][]ingestResult, len(configs))
	for round := range set.rounds {
		for i, c := range configs {
			b.Run(c.name(), func(b *testing.B) {
				env := ingestEnv{bins: bins, brokers: kafka.Brokers, topic: topic, dlq: dlq, redis: rds.Client, redisURL: rds.URL,
					redisPID: redisPID, logs: set.out, round: round}
				var res ingestResult
				if c.ingestors > 0 {
					res = env.runIngestors(b, c.ingestors, len(orders))
				} else {
					res = env.runWriter(b, c.writers, orders)
				}
				results[i] = append(results[i], res)
				b.ReportMetric(res.rate, "orders/s")
				b.ReportMetric(res.cpu1k(res.ingestors), "ingestor-cpu-s/1k")
				b.ReportMetric(res.cpu1k(res.postgres), "postgres-cpu-s/1k")
				b.ReportMetric(res.busyCores(), "busy-cores")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
	medians := make([]ingestResult, len(configs))
	for i := range configs {
		if len(results[i]) == 0 {
			b.Fatalf("%s: no result", configs[i].name())
		}
		medians[i] = medianResult(results[i])
	}
	section := ingestorsReport(set, configs, medians, results, load0, readLoad(b), time.Now().UTC())
	if err := os.WriteFile(filepath.Join(set.out, "results.md"), []byte(section), 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(set.out, "results.json"), ingestorsJSON(b, configs, results), 0o644); err != nil {
		b.Fatal(err)
	}
	if set.benchmarksMD != "" {
		if err := updateBetween(set.benchmarksMD, ingestorsBegin, ingestorsEnd, section); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("results (%s):\n%s", set.out, section)
}

// Markers delimit BenchmarkIngestors's section of BENCHMARKS.md.
const (
	ingestorsBegin = "<!-- bench-ingestors:begin (written by make bench-ingestors) -->"
	ingestorsEnd   = "<!-- bench-ingestors:end -->"
)

type ingestorsSettings struct {
	orders       int
	counts       []int
	rounds       int
	out          string
	benchmarksMD string
}

// ingestConfig is one configuration measured: ingestor processes, or
// (ingestors 0) the writer called directly with writers batches in flight.
type ingestConfig struct {
	ingestors, writers int
}

func (c ingestConfig) name() string {
	if c.ingestors > 0 {
		return fmt.Sprintf("ingestors=%d", c.ingestors)
	}
	return fmt.Sprintf("writer/in-flight=%d", c.writers)
}

// ingestResult is one run: its rate and the CPU time each party used
// while it lasted.
type ingestResult struct {
	orders  int
	elapsed time.Duration
	rate    float64
	// settled is how long after the first assignment every ingestor had
	// partitions (0 for the writer).
	settled time.Duration
	// ingestors is the ingestor processes' CPU (for the writer: 0; its
	// work is in self).
	ingestors, postgres, redis, self time.Duration
	// machineBusy is the whole machine's busy CPU time, every process.
	machineBusy time.Duration
}

func (r ingestResult) cpu1k(d time.Duration) float64 {
	return d.Seconds() / float64(r.orders) * 1000
}

// runCores is the average number of cores the run's own processes kept
// busy (ingestors, PostgreSQL, Redis, this process): busyCores less that
// is other work on the machine.
func (r ingestResult) runCores() float64 {
	return (r.ingestors + r.postgres + r.redis + r.self).Seconds() / r.elapsed.Seconds()
}

// busyCores is the machine's average number of busy cores.
func (r ingestResult) busyCores() float64 { return r.machineBusy.Seconds() / r.elapsed.Seconds() }

// medianResult is the run with the median rate (the lower middle one of
// an even number).
func medianResult(rs []ingestResult) ingestResult {
	s := slices.Clone(rs)
	slices.SortFunc(s, func(a, b ingestResult) int {
		switch {
		case a.rate < b.rate:
			return -1
		case a.rate > b.rate:
			return 1
		}
		return 0
	})
	return s[(len(s)-1)/2]
}

// ingestorsJSON is every round's figures, in seconds.
func ingestorsJSON(b *testing.B, configs []ingestConfig, all [][]ingestResult) []byte {
	type round struct {
		Orders      int     `json:"orders"`
		Seconds     float64 `json:"seconds"`
		Rate        float64 `json:"orders_per_s"`
		Settled     float64 `json:"settled_s"`
		Ingestors   float64 `json:"ingestors_cpu_s"`
		Postgres    float64 `json:"postgres_cpu_s"`
		Redis       float64 `json:"redis_cpu_s"`
		Self        float64 `json:"broker_and_driver_cpu_s"`
		MachineBusy float64 `json:"machine_busy_cpu_s"`
	}
	out := map[string][]round{}
	for i, c := range configs {
		for _, r := range all[i] {
			out[c.name()] = append(out[c.name()], round{r.orders, r.elapsed.Seconds(), r.rate, r.settled.Seconds(),
				r.ingestors.Seconds(), r.postgres.Seconds(), r.redis.Seconds(), r.self.Seconds(), r.machineBusy.Seconds()})
		}
	}
	raw, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

// ingestorsReport is the markdown of BenchmarkIngestors's section.
func ingestorsReport(set ingestorsSettings, configs []ingestConfig, medians []ingestResult, all [][]ingestResult,
	load0, load1 string, at time.Time) string {
	var one float64
	for i, c := range configs {
		if c.ingestors == 1 {
			one = medians[i].rate
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Run of %s: %s orders on a %d-partition topic, %d rounds, the median of each "+
		"(the rates of every round in the last column). CPU in seconds per 1,000 orders, while the run lasted.\n\n",
		at.Format("2006-01-02 15:04 UTC"), thousands(set.orders), topicPartitions, set.rounds)
	b.WriteString("| run | orders/s | × 1 ingestor | every ingestor assigned after | ingestors CPU | PostgreSQL CPU | Redis CPU | broker + driver CPU | cores: the run's / the machine's busy | rounds, orders/s |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for i, c := range configs {
		m := medians[i]
		name := fmt.Sprintf("%d ingestor", c.ingestors)
		if c.ingestors > 1 {
			name += "s"
		}
		settled, ingestors := fmt.Sprintf("%.2f s", m.settled.Seconds()), fmt.Sprintf("%.3f", m.cpu1k(m.ingestors))
		if c.ingestors == 0 {
			name = fmt.Sprintf("reference: the writer alone, %d batches in flight", c.writers)
			settled, ingestors = "—", "—"
		}
		ratio := "—"
		if one > 0 {
			ratio = fmt.Sprintf("%.2f", m.rate/one)
		}
		rates := make([]string, len(all[i]))
		for j, r := range all[i] {
			rates[j] = thousands(int(r.rate + 0.5))
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %.3f | %.3f | %.3f | %.2f / %.2f | %s |\n", name, thousands(int(m.rate+0.5)),
			ratio, settled, ingestors, m.cpu1k(m.postgres), m.cpu1k(m.redis), m.cpu1k(m.self), m.runCores(), m.busyCores(),
			strings.Join(rates, ", "))
	}
	fmt.Fprintf(&b, "\nLoad average (1, 5, 15 min) %s at the start, %s at the end.\n", load0, load1)
	return b.String()
}

// ingestEnv is what one run needs.
type ingestEnv struct {
	bins           map[string]string
	brokers, topic string
	dlq            string
	redis          *redis.Client
	redisURL       string
	redisPID       int
	logs           string
	round          int
}

// ingestorProc is one ingestor process of a run.
type ingestorProc struct {
	cmd  *exec.Cmd
	done chan error
	ops  string
}

// runIngestors starts k ingestor binaries in a new consumer group over an
// empty database and waits until they have stored the topic's n orders.
func (e ingestEnv) runIngestors(b *testing.B, k, n int) ingestResult {
	ctx := context.Background()
	pg := testenv.Postgres(b)
	id := "ingestors" + strconv.FormatInt(time.Now().UnixNano(), 36)
	prefix := id + ":"
	defer deleteKeys(ctx, b, e.redis, prefix)
	procs := make([]*ingestorProc, k)
	for i := range procs {
		p := &ingestorProc{done: make(chan error, 1), ops: freeAddr(b)}
		p.cmd = exec.Command(e.bins["ingestor"])
		p.cmd.Env = []string{
			"PATH=" + os.Getenv("PATH"),
			"INGESTOR_KAFKA_BROKERS=" + e.brokers,
			"INGESTOR_KAFKA_TOPIC=" + e.topic,
			"INGESTOR_KAFKA_GROUP=" + id,
			"INGESTOR_KAFKA_DLQ_TOPIC=" + e.dlq,
			"INGESTOR_DATABASE_URL=" + pg.URLAs("order_ingestor"),
			"INGESTOR_REDIS_URL=" + e.redisURL,
			"INGESTOR_REDIS_KEY_PREFIX=" + prefix,
			"INGESTOR_OPS_ADDR=" + p.ops,
			"INGESTOR_LOG_LEVEL=info",
		}
		logf, err := os.Create(filepath.Join(e.logs, fmt.Sprintf("round-%d-ingestors-%d-%d.log", e.round, k, i)))
		if err != nil {
			b.Fatal(err)
		}
		defer logf.Close()
		p.cmd.Stdout, p.cmd.Stderr = logf, logf
		procs[i] = p
	}
	for _, p := range procs {
		if err := p.cmd.Start(); err != nil {
			b.Fatal(err)
		}
		go func() { p.done <- p.cmd.Wait() }()
		defer func() {
			select {
			case err := <-p.done: // exited already (what it returned was handled)
				_ = err
			default:
				_ = p.cmd.Process.Kill()
				if err := <-p.done; err == nil {
					b.Log("ingestor: exited cleanly when killed")
				}
			}
		}()
	}
	cpuOfIngestors := func() map[int]time.Duration {
		m := map[int]time.Duration{}
		for _, p := range procs {
			d, err := testenv.ProcessCPU(p.cmd.Process.Pid)
			if err != nil {
				b.Fatalf("ingestor CPU: %v", err)
			}
			m[p.cmd.Process.Pid] = d
		}
		return m
	}

	var began, settled time.Time
	var before cpuSample
	var ingBefore map[int]time.Duration
	deadline := time.Now().Add(10 * time.Minute)
	for {
		stored, assigned, members := 0.0, 0.0, 0
		for _, p := range procs {
			scraped := scrapeMetrics(p.ops)
			a, _ := sample(scraped, "ingestor_assigned_partitions")
			s, _ := sample(scraped, `ingestor_messages_total{outcome="stored",reason=""}`)
			stored, assigned = stored+s, assigned+a
			if a > 0 {
				members++
			}
		}
		now := time.Now()
		if began.IsZero() && assigned > 0 {
			began = now
			ingBefore = cpuOfIngestors()
			before = e.sampleCPU(ctx, b, pg)
		}
		if settled.IsZero() && assigned == topicPartitions && members == min(k, topicPartitions) {
			settled = now
		}
		if stored >= float64(n) {
			break
		}
		if now.After(deadline) {
			b.Fatalf("%d ingestors: %.0f of %d orders stored after 10 minutes (logs in %s)", k, stored, n, e.logs)
		}
		for _, p := range procs {
			select {
			case err := <-p.done:
				b.Fatalf("an ingestor exited: %v (logs in %s)", err, e.logs)
			default:
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	end := time.Now()
	after, ingAfter := e.sampleCPU(ctx, b, pg), cpuOfIngestors()
	for _, p := range procs {
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			b.Fatal(err)
		}
	}
	for _, p := range procs {
		if err := <-p.done; err != nil {
			b.Fatalf("ingestor exit: %v (logs in %s)", err, e.logs)
		}
		p.done <- nil
	}
	if got := storedOrders(ctx, b, pg); got != n {
		b.Fatalf("%d ingestors stored %d orders, want %d", k, got, n)
	}
	res := after.since(before, n, end.Sub(began))
	res.ingestors = cpuDelta(ingBefore, ingAfter)
	if !settled.IsZero() {
		res.settled = settled.Sub(began)
	}
	return res
}

// runWriter writes orders with the ingestor's writer from this process,
// inFlight batches of 2,000 at once, each on its own connection.
func (e ingestEnv) runWriter(b *testing.B, inFlight int, orders []storedOrder) ingestResult {
	ctx := context.Background()
	pg := testenv.Postgres(b)
	pool, err := postgres.Connect(ctx, pg.URLAs("order_ingestor"), int32(inFlight))
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	// Open the connections first, as a running ingestor has them.
	conns := make([]func(), 0, inFlight)
	for range inFlight {
		c, err := pool.Acquire(ctx)
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, c.Release)
	}
	for _, release := range conns {
		release()
	}
	w := postgres.NewWriter(pool, 10*time.Minute, nil)
	chunks := make(chan []storedOrder)
	before := e.sampleCPU(ctx, b, pg)
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(chunks)
		for rest := orders; len(rest) > 0; {
			n := min(bulkBatch, len(rest))
			select {
			case chunks <- rest[:n]:
			case <-gctx.Done():
				return gctx.Err()
			}
			rest = rest[n:]
		}
		return nil
	})
	for range inFlight {
		g.Go(func() error {
			for chunk := range chunks {
				res, err := w.Write(gctx, chunk)
				if err != nil {
					return err
				}
				for i, rs := range res {
					if rs.Status != ingest.Inserted {
						return errors.Join(fmt.Errorf("order %s: %v", chunk[i].OrderUID, rs.Status), rs.Err)
					}
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatalf("writer: %v", err)
	}
	elapsed := time.Since(start)
	res := e.sampleCPU(ctx, b, pg).since(before, len(orders), elapsed)
	if got := storedOrders(ctx, b, pg); got != len(orders) {
		b.Fatalf("the writer stored %d orders, want %d", got, len(orders))
	}
	return res
}

// bulkBatch is the ingestor's default batch size.
const bulkBatch = 2000

// cpuSample is the CPU time used so far by each party of a run.
type cpuSample struct {
	postgres map[int]time.Duration
	redis    time.Duration
	self     time.Duration
	machine  machineCPU
}

// sampleCPU reads the CPU time so far of the PostgreSQL processes that
// work for the run's database (its backends, and the checkpointer,
// background writer and WAL writer, which every database shares: the
// lock keeps other benchmarks out, not other work), redis-server, this
// process and the machine.
func (e ingestEnv) sampleCPU(ctx context.Context, b *testing.B, pg *testenv.PG) cpuSample {
	return sampleCPU(ctx, b, pg.Pool, e.redisPID)
}

// sampleCPU reads the CPU time so far of pool's PostgreSQL processes (see
// postgresCPU), redis-server (redisPID), this process and the machine.
func sampleCPU(ctx context.Context, t testing.TB, pool *pgxpool.Pool, redisPID int) cpuSample {
	t.Helper()
	s := cpuSample{postgres: postgresCPU(ctx, t, pool)}
	var err error
	if s.redis, err = testenv.ProcessCPU(redisPID); err != nil {
		t.Fatalf("redis-server CPU: %v", err)
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	s.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	if s.machine, err = readMachineCPU(); err != nil {
		t.Fatal(err)
	}
	return s
}

// postgresCPU is the CPU time so far of the PostgreSQL processes that work
// for pool's database: its backends, and the checkpointer, background
// writer and WAL writer, which every database of the server shares.
func postgresCPU(ctx context.Context, t testing.TB, pool *pgxpool.Pool) map[int]time.Duration {
	t.Helper()
	rows, err := pool.Query(ctx, `SELECT pid FROM pg_stat_activity
		WHERE datname = current_database() OR backend_type IN ('checkpointer', 'background writer', 'walwriter')`)
	if err != nil {
		t.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		t.Fatal(err)
	}
	cpu := map[int]time.Duration{}
	for _, pid := range pids {
		// A backend that ended in between is not counted; one whose
		// /proc entry cannot be read fails the run rather than report a
		// figure without it.
		d, err := testenv.ProcessCPU(int(pid))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatalf("PostgreSQL process %d: %v", pid, err)
		}
		cpu[int(pid)] = d
	}
	if len(cpu) == 0 {
		t.Fatal("no PostgreSQL process found in /proc: is the server in another PID namespace?")
	}
	return cpu
}

// since is the run that ended with s and began with before.
func (s cpuSample) since(before cpuSample, orders int, elapsed time.Duration) ingestResult {
	return ingestResult{
		orders:      orders,
		elapsed:     elapsed,
		rate:        float64(orders) / elapsed.Seconds(),
		postgres:    cpuDelta(before.postgres, s.postgres),
		redis:       s.redis - before.redis,
		self:        s.self - before.self,
		machineBusy: s.machine.Busy - before.machine.Busy,
	}
}

// redisProcess is the PID of the redis-server of rc (INFO server).
func redisProcess(b testing.TB, rc *redis.Client) int {
	info, err := rc.Info(context.Background(), "server").Result()
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			pid, err := strconv.Atoi(v)
			if err != nil {
				b.Fatalf("redis process_id %q: %v", v, err)
			}
			return pid
		}
	}
	b.Fatal("redis INFO server has no process_id")
	return 0
}

func storedOrders(ctx context.Context, b *testing.B, pg *testenv.PG) int {
	var n int
	if err := pg.Pool.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}
