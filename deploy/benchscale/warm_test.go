//go:build benchscale

package benchscale

import (
	"context"
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
// space; SCALE_READER_ENV adds variables to their environment.
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
	r := &run{t: t, logs: t.TempDir(), stored: stored}
	if r.set.readerEnv, err = parseEnv(os.Getenv("SCALE_READER_ENV")); err != nil {
		t.Fatalf("SCALE_READER_ENV: %v", err)
	}
	var readers []string
	if v := os.Getenv("SCALE_WARM_READERS"); v != "" {
		readers = strings.Split(v, ",")
	} else {
		readers = []string{buildBinaries(t, repoRoot(t))["reader"]}
	}
	_, line := authtest.NewKey(t, "bench-warm", "1000000/1000000", auth.ScopeRead, auth.ScopePII)
	r.keys = authtest.NewKeys(t, line).File
	ctx := context.Background()
	pg, reused := testenv.KeptPostgres(t, "warm_"+strconv.Itoa(stored), func(pg *testenv.PG) error {
		start := time.Now()
		if err := loadOrders(ctx, pg, 0, stored, false); err != nil {
			return err
		}
		t.Logf("loaded %d orders in %s", stored, time.Since(start).Round(time.Second))
		for _, q := range []string{"VACUUM (ANALYZE) orders", "VACUUM (ANALYZE) delivery", "VACUUM (ANALYZE) payment",
			"VACUUM (ANALYZE) items", "CHECKPOINT"} {
			if _, err := pg.Pool.Exec(ctx, q); err != nil {
				return err
			}
		}
		return nil
	})
	if reused {
		t.Logf("reusing %s", pg.Name)
	}
	r.pg = pg
	r.redis = testenv.Redis(t)
	type warmRun struct{ wall, reader, pg time.Duration }
	runs := make([][]warmRun, len(readers))
	for round := range rounds {
		for i, bin := range readers {
			r.bins = map[string]string{"reader": bin}
			w, readerCPU, pgCPU := r.warmUpCPU(ctx, warm)
			runs[i] = append(runs[i], warmRun{w.duration, readerCPU, pgCPU})
			t.Logf("round %d, %s: %d orders warmed in %.2f s, CPU: reader %.2f s, PostgreSQL %.2f s; RSS %s; load average %s",
				round+1, bin, w.orders, w.duration.Seconds(), readerCPU.Seconds(), pgCPU.Seconds(), megabytes(w.mem.RSS), readLoad(t))
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
		t.Logf("%s: warm-up of %d among %d stored: median %.2f s (rounds: %s); median CPU: reader %.2f s, PostgreSQL %.2f s",
			bin, warm, stored, median(runs[i], func(w warmRun) time.Duration { return w.wall }), strings.Join(all, ", "),
			median(runs[i], func(w warmRun) time.Duration { return w.reader }),
			median(runs[i], func(w warmRun) time.Duration { return w.pg }))
	}
}

// warmUpCPU is warmUp, with the CPU the warm-up took: the reader
// process's until it was ready (its start-up included) and the
// PostgreSQL server's meanwhile (the database's backends, the
// checkpointer, background writer and WAL writer), read from /proc. The
// CPU figures vary less than the time with the load of a shared machine.
func (r *run) warmUpCPU(ctx context.Context, n int) (warmed, time.Duration, time.Duration) {
	t := r.t
	before := postgresCPU(ctx, t, r.pg.Pool)
	rr := r.startReader(n, "warm-"+strconv.Itoa(n))
	defer rr.stop(r)
	pgCPU := cpuDelta(before, postgresCPU(ctx, t, r.pg.Pool))
	readerCPU, err := testenv.ProcessCPU(rr.cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
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
	return warmed{duration: time.Duration(secs * float64(time.Second)), orders: int(orders), mem: mem}, readerCPU, pgCPU
}
