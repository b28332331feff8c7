package postgres_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderservice/orders/reader/cache"
	"github.com/orderservice/orders/reader/postgres"
)

// BenchmarkRecent reads the warm-up's pages alone (Store.Recent: the page
// queries, the decoding and the encoding, no cache and no Redis) from the
// database READER_BENCH_RECENT_URL names, a superuser URL of a database
// that holds many orders (deploy/benchscale's TestWarm keeps one:
// keep_warm_<stored>_<schema>). It skips without one: loading a database
// of a size that tells takes minutes. READER_BENCH_RECENT_COUNT is the
// orders read per op (default 100,000). It reports the PostgreSQL
// backends' CPU per op alongside, read from /proc (0 when the server runs
// elsewhere).
func BenchmarkRecent(b *testing.B) {
	u := os.Getenv("READER_BENCH_RECENT_URL")
	if u == "" {
		b.Skip("set READER_BENCH_RECENT_URL to a database with many orders (see deploy/benchscale TestWarm)")
	}
	n := 100_000
	if v := os.Getenv("READER_BENCH_RECENT_COUNT"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			b.Fatalf("READER_BENCH_RECENT_COUNT=%q: want a positive count", v)
		}
	}
	ctx := context.Background()
	admin, err := pgxpool.New(ctx, u)
	if err != nil {
		b.Fatal(err)
	}
	defer admin.Close()
	ru, err := url.Parse(u)
	if err != nil {
		b.Fatal(err)
	}
	ru.User = url.User("order_reader")
	s, err := postgres.Open(ctx, postgres.Options{URL: ru.String(), MaxConns: 4})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	// The orders of the previous op are garbage when the next starts, as
	// a warm-up's are once the caches hold their bytes.
	var pgCPU time.Duration
	for b.Loop() {
		before := readerBackendCPU(b, admin)
		got := 0
		err := s.Recent(ctx, n, 500, func(page []cache.Entry) error {
			got += len(page)
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		if got != n {
			b.Fatalf("read %d orders, want %d", got, n)
		}
		pgCPU += readerBackendCPU(b, admin).since(before)
	}
	b.ReportMetric(pgCPU.Seconds()/float64(b.N), "pg-cpu-s/op")
}

// backendTimes is the CPU time of each PostgreSQL backend, by pid.
type backendTimes map[int]time.Duration

// readerBackendCPU reads the CPU time of the order_reader backends of
// admin's database from /proc.
func readerBackendCPU(b *testing.B, admin *pgxpool.Pool) backendTimes {
	b.Helper()
	rows, err := admin.Query(context.Background(),
		"SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND usename = 'order_reader'")
	if err != nil {
		b.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		b.Fatal(err)
	}
	out := backendTimes{}
	for _, pid := range pids {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// utime and stime are the 12th and 13th fields after the
		// command (in parentheses, it may hold spaces), in 1/100 s.
		_, rest, ok := strings.Cut(string(stat), ") ")
		f := strings.Fields(rest)
		if !ok || len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		out[int(pid)] = time.Duration(u+st) * 10 * time.Millisecond
	}
	return out
}

// since is the CPU time used after before was read; a backend started
// meanwhile counts whole.
func (t backendTimes) since(before backendTimes) time.Duration {
	var d time.Duration
	for pid, cpu := range t {
		d += cpu - before[pid]
	}
	return d
}
