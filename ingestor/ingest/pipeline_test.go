package ingest_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/orderservice/orders/ingestor/ingest"
	"github.com/orderservice/orders/ingestor/kafka"
	"github.com/orderservice/orders/ingestor/metrics"
	"github.com/orderservice/orders/ingestor/postgres"
	"github.com/orderservice/orders/ingestor/redis"
	"github.com/orderservice/orders/shared/ordergen"
	"github.com/orderservice/orders/shared/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// pipeline builds a Pipeline on real services, its database reached
// through a proxy the test can cut.
func pipeline(t *testing.T) (*ingest.Pipeline, *metrics.Metrics, *testenv.PG, *testenv.Proxy) {
	t.Helper()
	pg := testenv.Postgres(t)
	dbURL, proxy := testenv.ProxyURL(t, pg.URLAs("order_ingestor"))
	pool, err := postgres.Connect(context.Background(), dbURL, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)

	rd := testenv.Redis(t)
	rc, err := redis.NewClient(rd.URL, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close() })

	k := testenv.Kafka(t)
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	dlq, err := kafka.NewDeadLetterProducer(log, k.Brokers, k.Topic(t, "dlq", 1), "test", 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dlq.Close(5 * time.Second) })

	m := metrics.New()
	p := ingest.New(log, m, postgres.NewWriter(pool, 2*time.Second, nil),
		redis.New(rc, rd.Prefix, time.Hour, time.Second), dlq,
		ingest.Options{MaxSize: 1 << 20, Retry: ingest.Retry{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond}})
	return p, m, pg, proxy
}

func messages(t *testing.T, seed int64, n int) []ingest.Message {
	t.Helper()
	gen := ordergen.New(seed)
	msgs := make([]ingest.Message, n)
	for i := range msgs {
		v, err := json.Marshal(gen.Order())
		if err != nil {
			t.Fatal(err)
		}
		msgs[i] = ingest.Message{Topic: "orders", Offset: int64(i), Value: v, Timestamp: time.Now()}
	}
	return msgs
}

func stored(t *testing.T, pg *testenv.PG) int {
	t.Helper()
	var n int
	if err := pg.Pool.QueryRow(context.Background(), `SELECT count(*) FROM orders`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// While the database is away, Commit keeps retrying through the
// consumer's WaitFunc (never skipping), reports the database as failing,
// and completes once it is back.
func TestCommitWaitsOutADatabaseOutage(t *testing.T) {
	t.Parallel()
	p, m, pg, proxy := pipeline(t)
	msgs := append(messages(t, 1, 3), ingest.Message{Topic: "orders", Offset: 3, Value: []byte("nope")})

	proxy.Cut()
	waits := 0
	wait := func(ctx context.Context, d time.Duration) error {
		waits++
		if !p.DatabaseFailing() {
			t.Errorf("wait %d: DatabaseFailing() = false during the outage", waits)
		}
		if waits == 3 {
			proxy.Restore()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
			return nil
		}
	}
	if err := p.Handle(context.Background(), msgs, wait); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	if waits < 3 {
		t.Errorf("waited %d times, want at least 3", waits)
	}
	if p.DatabaseFailing() {
		t.Error("DatabaseFailing() still true after the outage")
	}
	if n := stored(t, pg); n != 3 {
		t.Errorf("%d orders stored, want 3", n)
	}
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"stored", testutil.ToFloat64(m.Messages.WithLabelValues(metrics.OutcomeStored, "")), 3},
		{"malformed", testutil.ToFloat64(m.Messages.WithLabelValues(metrics.OutcomeDeadLetter, "malformed")), 1},
		{"retries", testutil.ToFloat64(m.Retries.WithLabelValues("db")), float64(waits)},
		{"outage gauge", testutil.ToFloat64(m.Outage.WithLabelValues("db")), 0},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

// A cancelled context (shutdown out of time) abandons the batch: Commit
// returns the context's error and nothing is counted as done.
func TestCommitAbandonsOnCancel(t *testing.T) {
	t.Parallel()
	p, m, pg, proxy := pipeline(t)
	proxy.Cut()
	ctx, cancel := context.WithCancel(context.Background())
	wait := func(ctx context.Context, d time.Duration) error {
		cancel()
		return ctx.Err()
	}
	err := p.Commit(ctx, p.Prepare(messages(t, 2, 2)), wait)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Commit: %v, want context.Canceled", err)
	}
	proxy.Restore()
	if n := stored(t, pg); n != 0 {
		t.Errorf("%d orders stored, want 0", n)
	}
	if v := testutil.ToFloat64(m.Messages.WithLabelValues(metrics.OutcomeStored, "")); v != 0 {
		t.Errorf("stored counter = %v after an abandoned batch", v)
	}
}

// Keep drops the messages of partitions the consumer lost.
func TestBatchKeep(t *testing.T) {
	t.Parallel()
	p := ingest.New(slog.New(slog.DiscardHandler), metrics.New(), nil, nil, nil, ingest.Options{MaxSize: 1 << 20})
	msgs := messages(t, 3, 6)
	for i := range msgs {
		msgs[i].Partition = int32(i % 3)
	}
	b := p.Prepare(msgs)
	b.Keep(func(partition int32) bool { return partition != 1 })
	var got []int32
	b.Messages(func(m *ingest.Message) { got = append(got, m.Partition) })
	if want := []int32{0, 2, 0, 2}; !slices.Equal(got, want) {
		t.Errorf("partitions after Keep = %v, want %v", got, want)
	}
}
