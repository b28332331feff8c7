package main

import (
	"cmp"
	"io"
	"net/http"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderservice/orders/shared/ordergen"
)

// BenchmarkIngest measures sustained ingestion: b.N generated orders (1-5
// items each) are loaded into a 6-partition topic of the in-process kfake
// broker, then the ingestor binary (built by the test, default batch
// settings) consumes them into the test's PostgreSQL database. Reported:
//
//   - orders/s: from the first assignment to the last order committed
//     (measured through /metrics, polled every 50ms);
//   - cpu-s/1k-orders: the ingestor process's user+system CPU time per
//     1,000 orders (startup and shutdown included);
//   - peak-rss-MiB: the ingestor process's maximum resident set size.
//
// The broker and the database run outside that process, so their CPU is
// not counted. INGESTOR_BENCH_CPUPROFILE=path saves a CPU profile of the
// ingestor, the first INGESTOR_BENCH_CPUPROFILE_SECONDS (4) of its run;
// INGESTOR_BENCH_LOG=path keeps its log; INGESTOR_BENCH_BATCH_SIZE and
// INGESTOR_BENCH_BATCHES_IN_FLIGHT override the batch defaults. Run it with a fixed size:
//
//	go test -run XXX -bench BenchmarkIngest -benchtime=100000x .
func BenchmarkIngest(b *testing.B) {
	const partitions = 6
	e := newEnv(b, partitions)
	cfg := e.config()
	// Tuning experiments: other batch settings than the defaults.
	for name, field := range map[string]*int{
		"INGESTOR_BENCH_BATCHES_IN_FLIGHT": &cfg.BatchesInFlight,
		"INGESTOR_BENCH_BATCH_SIZE":        &cfg.BatchSize,
	} {
		if v := os.Getenv(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				b.Fatalf("%s: %v", name, err)
			}
			*field = n
		}
	}

	gen := ordergen.New(int64(b.N))
	items := 0
	const chunk = 5000
	for done := 0; done < b.N; done += chunk {
		recs := make([]*kgo.Record, 0, chunk)
		for i := 0; i < chunk && done+i < b.N; i++ {
			o := gen.Order()
			items += len(o.Items)
			recs = append(recs, orderRecord(b, o))
		}
		e.produce(b, partitions, recs...)
	}

	b.ResetTimer()
	p := startBinary(b, cfg, "bench")
	if path := os.Getenv("INGESTOR_BENCH_CPUPROFILE"); path != "" && b.N > 1 {
		// Profile the ingestor process (not the test) for a few seconds.
		seconds := cmp.Or(os.Getenv("INGESTOR_BENCH_CPUPROFILE_SECONDS"), "4")
		go func() {
			resp, err := http.Get("http://" + p.ops + "/debug/pprof/profile?seconds=" + seconds)
			if err != nil {
				return
			}
			defer resp.Body.Close()
			f, err := os.Create(path)
			if err != nil {
				return
			}
			defer f.Close()
			_, _ = io.Copy(f, resp.Body)
		}()
	}
	var began time.Time
	for {
		if began.IsZero() && metric(b, p.ops, "ingestor_assigned_partitions") > 0 {
			began = time.Now()
		}
		if metric(b, p.ops, `ingestor_messages_total{outcome="stored",reason=""}`) >= float64(b.N) {
			break
		}
		select {
		case err := <-p.done:
			b.Fatalf("ingestor exited: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	elapsed := time.Since(began)
	b.StopTimer()
	if path := os.Getenv("INGESTOR_BENCH_HEAPPROFILE"); path != "" && b.N > 1 {
		if resp, err := http.Get("http://" + p.ops + "/debug/pprof/heap"); err == nil {
			if f, err := os.Create(path); err == nil {
				_, _ = io.Copy(f, resp.Body)
				f.Close()
			}
			resp.Body.Close()
		}
	}
	batches := metric(b, p.ops, "ingestor_batch_size_count")
	dbSum, dbCount := metric(b, p.ops, "ingestor_db_write_seconds_sum"), metric(b, p.ops, "ingestor_db_write_seconds_count")
	b.Logf("%.0f batches of %.0f messages on average; %.0f transactions of %.1fms on average",
		batches, float64(b.N)/batches, dbCount, dbSum/dbCount*1000)

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		b.Fatal(err)
	}
	if err := <-p.done; err != nil {
		b.Fatalf("ingestor exit: %v", err)
	}
	p.done <- nil
	if n := count(b, e.pg.Pool, `SELECT count(*) FROM orders`); n != b.N {
		b.Fatalf("%d orders stored, want %d", n, b.N)
	}
	if n := count(b, e.pg.Pool, `SELECT count(*) FROM items`); n != items {
		b.Fatalf("%d items stored, want %d", n, items)
	}
	st := p.cmd.ProcessState
	cpu := (st.UserTime() + st.SystemTime()).Seconds()
	ru := st.SysUsage().(*syscall.Rusage)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "orders/s")
	b.ReportMetric(cpu/float64(b.N)*1000, "cpu-s/1k-orders")
	b.ReportMetric(float64(ru.Maxrss)/1024, "peak-rss-MiB")
	b.ReportMetric(0, "ns/op")
	b.Logf("%d orders (%d items) in %s: user %s, system %s, max RSS %d KiB",
		b.N, items, elapsed.Round(time.Millisecond), st.UserTime(), st.SystemTime(), ru.Maxrss)
}
