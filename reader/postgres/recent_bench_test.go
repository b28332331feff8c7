package postgres_test

import (
	"context"
	"net/url"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderservice/orders/reader/cache"
	"github.com/orderservice/orders/reader/postgres"
	"github.com/orderservice/orders/shared/testenv"
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
		before := testenv.BackendCPU(b, admin, "order_reader")
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
		pgCPU += testenv.BackendCPU(b, admin, "order_reader").Since(before)
	}
	b.ReportMetric(pgCPU.Seconds()/float64(b.N), "pg-cpu-s/op")
}
