//go:build benchscale

package benchscale

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/orderservice/orders/reader/auth"
	"github.com/orderservice/orders/reader/auth/authtest"
	"github.com/orderservice/orders/shared/testenv"
)

// TestWarm times the reader's warm-up alone (reader_warmup_duration_seconds
// of a reader binary started with READER_WARM_COUNT), against a database
// of SCALE_WARM_STORED orders that outlives the run, so that a change to
// the warm-up is measured in a minute rather than in a bench-scale run:
//
//	SCALE_WARM_STORED=1000000 go test -tags benchscale -run '^TestWarm$' -count=1 -v ./deploy/benchscale
//
// The first run loads the orders as bench-scale's bulk loader does (the
// same timeline, the ingestor's writer, no bare schema), then VACUUM
// (ANALYZE) and a CHECKPOINT, into testenv.KeptPostgres's database
// keep_warm_<stored>_<schema> (drop it with DROP DATABASE when done); later
// runs reuse it. The server is testenv's (TEST_DATABASE_URL): point it at
// one running deploy/postgres/postgresql.conf for figures comparable to
// bench-scale's. SCALE_WARM_READERS is a comma-separated list of reader
// binaries to compare (default: one built from this checkout), run in
// turn for SCALE_WARM_ROUNDS rounds (default 5), each warming
// SCALE_WARM_COUNT orders (default 100,000) into an empty Redis key
// space; SCALE_READER_ENV adds variables to their environment (e.g.
// READER_LOG_LEVEL=debug for the warm-up's stage log) and SCALE_WARM_LOGS
// names a directory that keeps the readers' logs (default: the test's
// temporary directory, removed at its end).
func TestWarm(t *testing.T) {
	stored, err := parseCount(os.Getenv("SCALE_WARM_STORED"))
	if err != nil || stored == 0 {
		t.Skip("set SCALE_WARM_STORED (the orders of the kept database, e.g. 1000000)")
	}
	count := func(name string, def int) int {
		v := os.Getenv(name)
		if v == "" {
			return def
		}
		n, err := parseCount(v)
		if err != nil || n == 0 {
			t.Fatalf("%s=%q: want a positive count", name, v)
		}
		return n
	}
	rounds, warm := count("SCALE_WARM_ROUNDS", 5), count("SCALE_WARM_COUNT", 100_000)
	r := &run{t: t, logs: logsDir(t, "SCALE_WARM_LOGS"), stored: stored}
	if r.set.readerEnv, err = parseEnv(os.Getenv("SCALE_READER_ENV")); err != nil {
		t.Fatalf("SCALE_READER_ENV: %v", err)
	}
	readers := readerBinaries(t, "SCALE_WARM_READERS")
	_, line := authtest.NewKey(t, "bench-warm", "1000000/1000000", auth.ScopeRead, auth.ScopePII)
	r.keys = authtest.NewKeys(t, line).File
	ctx := context.Background()
	r.pg = keptOrders(ctx, t, "warm", stored)
	r.redis = testenv.Redis(t)
	redisPID := redisProcess(t, r.redis.Client)
	type warmRun struct{ wall, reader, pg, redis time.Duration }
	runs := make([][]warmRun, len(readers))
	for round := range rounds {
		for i, bin := range readers {
			r.bins = map[string]string{"reader": bin}
			w, cpu := r.warmUpCPU(ctx, warm, fmt.Sprintf("warm-%d-round%d-reader%d", warm, round+1, i+1), redisPID)
			runs[i] = append(runs[i], warmRun{w.duration, cpu.reader, cpu.pg, cpu.redis})
			fill := ""
			if cpu.fill > 0 {
				fill = fmt.Sprintf("; Redis filled %.2f s later (CPU: reader %.2f s, Redis %.2f s)",
					cpu.fill.Seconds(), cpu.fillReader.Seconds(), cpu.fillRedis.Seconds())
			}
			t.Logf("round %d, %s: %d orders warmed in %.2f s, CPU: reader %.2f s, PostgreSQL %.2f s, Redis %.2f s%s; RSS %s; load average %s",
				round+1, bin, w.orders, w.duration.Seconds(), cpu.reader.Seconds(), cpu.pg.Seconds(), cpu.redis.Seconds(), fill,
				megabytes(w.mem.RSS), readLoad(t))
		}
	}
	median := func(rs []warmRun, f func(warmRun) time.Duration) float64 {
		s := make([]time.Duration, len(rs))
		for k, r := range rs {
			s[k] = f(r)
		}
		slices.Sort(s)
		return s[(len(s)-1)/2].Seconds()
	}
	for i, bin := range readers {
		all := make([]string, len(runs[i]))
		for k, w := range runs[i] {
			all[k] = strconv.FormatFloat(w.wall.Seconds(), 'f', 2, 64)
		}
		t.Logf("%s: warm-up of %d among %d stored: median %.2f s (rounds: %s); median CPU: reader %.2f s, PostgreSQL %.2f s, Redis %.2f s",
			bin, warm, stored, median(runs[i], func(w warmRun) time.Duration { return w.wall }), strings.Join(all, ", "),
			median(runs[i], func(w warmRun) time.Duration { return w.reader }),
			median(runs[i], func(w warmRun) time.Duration { return w.pg }),
			median(runs[i], func(w warmRun) time.Duration { return w.redis }))
	}
}

// warmCPU is the CPU a warm-up took, per process, until the reader was
// ready; fillReader and fillRedis are the reader's and redis-server's
// afterwards, until the warm-up's Redis fill had ended (a reader that
// fills Redis after its warm-up), of duration fill.
type warmCPU struct {
	reader, pg, redis, fillReader, fillRedis, fill time.Duration
}

// warmUpCPU is warmUp, with the CPU the warm-up took: the reader
// process's until it was ready (its start-up included), the PostgreSQL
// server's meanwhile (the database's backends, the checkpointer,
// background writer and WAL writer) and redis-server's (redisPID), read
// from /proc. The CPU figures vary less than the time with the load of a
// shared machine. The reader's log is name's.
func (r *run) warmUpCPU(ctx context.Context, n int, name string, redisPID int) (warmed, warmCPU) {
	t := r.t
	var cpu warmCPU
	redisBefore, err := testenv.ProcessCPU(redisPID)
	if err != nil {
		t.Fatalf("redis-server CPU: %v", err)
	}
	before := postgresCPU(ctx, t, r.pg.Pool)
	rr := r.startReader(n, name)
	defer rr.stop(r)
	cpu.pg = cpuDelta(before, postgresCPU(ctx, t, r.pg.Pool))
	if cpu.reader, err = testenv.ProcessCPU(rr.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	redisAfter, err := testenv.ProcessCPU(redisPID)
	if err != nil {
		t.Fatalf("redis-server CPU: %v", err)
	}
	cpu.redis = redisAfter - redisBefore
	scraped := scrapeMetrics(strings.TrimPrefix(rr.ops, "http://"))
	secs, ok := sample(scraped, "reader_warmup_duration_seconds")
	orders, ok2 := sample(scraped, "reader_warmup_orders")
	if !ok || !ok2 || int(orders) != min(n, r.stored) {
		t.Fatalf("warm-up of %d: reader_warmup_duration_seconds %v, reader_warmup_orders %v", n, secs, orders)
	}
	mem, err := readMemStatus(rr.cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := sample(scraped, "reader_warmup_redis_duration_seconds"); ok {
		var fill float64
		deadline := time.Now().Add(time.Minute)
		for fill == 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond) // polled: the reader announces the fill's end nowhere else
			fill, _ = sample(scrapeMetrics(strings.TrimPrefix(rr.ops, "http://")), "reader_warmup_redis_duration_seconds")
		}
		if fill == 0 {
			t.Fatalf("warm-up of %d: no reader_warmup_redis_duration_seconds a minute after it", n)
		}
		cpu.fill = time.Duration(fill * float64(time.Second))
		readerNow, err := testenv.ProcessCPU(rr.cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		redisNow, err := testenv.ProcessCPU(redisPID)
		if err != nil {
			t.Fatalf("redis-server CPU: %v", err)
		}
		cpu.fillReader, cpu.fillRedis = readerNow-cpu.reader, redisNow-redisAfter
	}
	return warmed{duration: time.Duration(secs * float64(time.Second)), orders: int(orders), mem: mem}, cpu
}
