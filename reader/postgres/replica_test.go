package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/orderservice/orders/reader/cache"
	"github.com/orderservice/orders/reader/postgres"
	"github.com/orderservice/orders/shared/model"
	"github.com/orderservice/orders/shared/ordergen"
	"github.com/orderservice/orders/shared/testenv"
)

// replicaStore is a Store on r's primary with replicaURLs, its metrics, and
// its log.
type replicaStore struct {
	*postgres.Store
	m    postgres.ReplicaMetrics
	logs *testenv.Buffer
}

func openReplicated(t *testing.T, r *testenv.PGReplicated, replicaURLs ...string) *replicaStore {
	t.Helper()
	m := postgres.ReplicaMetrics{
		Lookups:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "l"}, []string{"target", "result"}),
		Rechecks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "r"}, []string{"result"}),
		Up:       prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "u"}, []string{"target"}),
	}
	logs := &testenv.Buffer{}
	// One loader: lookups run one query at a time, so that each test
	// knows which target each one met.
	s, err := postgres.Open(context.Background(), postgres.Options{
		URL: r.URLAs("order_reader"), ReplicaURLs: replicaURLs, MaxConns: 4, Loaders: 1,
		Replica: m, Logger: testLogger(logs),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return &replicaStore{Store: s, m: m, logs: logs}
}

func (s *replicaStore) lookups(target, result string) int {
	return int(testutil.ToFloat64(s.m.Lookups.WithLabelValues(target, result)))
}

func (s *replicaStore) rechecks(result string) int {
	return int(testutil.ToFloat64(s.m.Rechecks.WithLabelValues(result)))
}

func (s *replicaStore) up(target string) float64 {
	return testutil.ToFloat64(s.m.Up.WithLabelValues(target))
}

func (s *replicaStore) want(t *testing.T, o *model.Order) {
	t.Helper()
	want, err := o.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(context.Background(), o.OrderUID)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("Get(%s) = %.80s, %v; want the stored order", o.OrderUID, got, err)
	}
}

// onReplica reports whether the replica has replayed o.
func onReplica(t *testing.T, r *testenv.PGReplicated, o *model.Order) bool {
	t.Helper()
	var n int
	if err := r.ReplicaPool.QueryRow(context.Background(), "SELECT count(*) FROM orders WHERE order_uid = $1", o.OrderUID).Scan(&n); err != nil {
		t.Fatalf("ask the replica: %v", err)
	}
	return n == 1
}

// TestReplicas runs the reader's lookups on a real streaming replica
// (pg_basebackup, a standby of the test's own primary): they go to the
// replicas in turn; a replica's miss is asked of the primary, so that an
// order the paused replica has not replayed is served, not a 404; a
// replica cut off is skipped while the primary serves, and used again
// once it is back; a replica stopped for good leaves the primary serving.
func TestReplicas(t *testing.T) {
	t.Parallel()
	r := testenv.PostgresWithReplica(t)
	gen := ordergen.New(51)
	orders := gen.Orders(6)
	testenv.InsertOrders(t, r.Pool, orders...)
	r.AwaitReplay(t)
	replica := r.ReplicaURLAs("order_reader")

	t.Run("lookups go to the replicas in turn", func(t *testing.T) {
		// The same standby twice: two targets to balance over.
		s := openReplicated(t, r, replica, replica)
		for _, o := range orders {
			s.want(t, o)
		}
		if a, b := s.lookups("replica1", "found"), s.lookups("replica2", "found"); a != 3 || b != 3 {
			t.Fatalf("found on replica1 %d, replica2 %d times; want 3 each", a, b)
		}
		if n := s.lookups("primary", "found") + s.lookups("primary", "not_found"); n != 0 {
			t.Fatalf("the primary was asked for %d orders every replica holds", n)
		}
		if s.up("replica1") != 1 || s.up("replica2") != 1 {
			t.Fatal("replica_up is not 1 for a replica in use")
		}
	})

	t.Run("an unknown uid is unknown to the primary too", func(t *testing.T) {
		s := openReplicated(t, r, replica)
		if _, err := s.Get(context.Background(), "no-such-order"); !errors.Is(err, cache.ErrNotFound) {
			t.Fatalf("Get of an unknown uid: %v, want ErrNotFound", err)
		}
		if s.lookups("replica1", "not_found") != 1 || s.lookups("primary", "not_found") != 1 || s.rechecks("not_found") != 1 {
			t.Fatalf("replica not_found %d, primary not_found %d, rechecks %d; want 1 each",
				s.lookups("replica1", "not_found"), s.lookups("primary", "not_found"), s.rechecks("not_found"))
		}
	})

	t.Run("a lagging replica's miss is served by the primary", func(t *testing.T) {
		s := openReplicated(t, r, replica)
		r.PauseReplay(t)
		late := gen.Order()
		testenv.InsertOrders(t, r.Pool, late)
		r.AwaitReceived(t)
		if onReplica(t, r, late) {
			t.Fatal("the paused replica holds the order: no lag to test")
		}
		s.want(t, late)
		s.want(t, orders[0]) // replicated before the pause: the replica answers
		if s.rechecks("found") != 1 || s.lookups("primary", "found") != 1 || s.lookups("replica1", "found") != 1 {
			t.Fatalf("rechecks found %d, primary found %d, replica found %d; want 1 each",
				s.rechecks("found"), s.lookups("primary", "found"), s.lookups("replica1", "found"))
		}
		r.ResumeReplay(t)
		r.AwaitReplay(t)
		s.want(t, late)
		if s.lookups("replica1", "found") != 2 || s.rechecks("found") != 1 {
			t.Fatalf("after the catch-up: replica found %d, rechecks %d; want 2 and still 1",
				s.lookups("replica1", "found"), s.rechecks("found"))
		}
	})

	t.Run("a replica cut off is skipped, and used again once back", func(t *testing.T) {
		via, proxy := testenv.ProxyURL(t, replica)
		s := openReplicated(t, r, via)
		s.want(t, orders[0])
		proxy.Cut()
		start := time.Now()
		for _, o := range orders {
			s.want(t, o)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%d lookups with the replica cut took %v", len(orders), d)
		}
		if s.lookups("replica1", "error") != 1 || s.lookups("primary", "found") != len(orders) {
			t.Fatalf("replica errors %d, primary found %d; want 1 (then skipped) and %d",
				s.lookups("replica1", "error"), s.lookups("primary", "found"), len(orders))
		}
		if s.up("replica1") != 0 {
			t.Fatal("replica_up is 1 for a replica cut off")
		}
		if !strings.Contains(s.logs.String(), "read replica failed") {
			t.Fatalf("no log line for the failed replica:\n%s", s.logs)
		}
		proxy.Restore()
		before := s.lookups("replica1", "found")
		testenv.Await(t, "the replica used again", 10*time.Second, func() bool {
			s.want(t, orders[1])
			time.Sleep(20 * time.Millisecond) // pacing the lookups, not synchronisation
			return s.lookups("replica1", "found") > before
		})
		if s.up("replica1") != 1 || !strings.Contains(s.logs.String(), "read replica back in use") {
			t.Fatalf("replica back, but replica_up %v, logs:\n%s", s.up("replica1"), s.logs)
		}
	})

	t.Run("a replica stopped leaves the primary serving", func(t *testing.T) {
		s := openReplicated(t, r, replica)
		s.want(t, orders[0])
		r.Replica.Stop()
		for _, o := range orders {
			s.want(t, o)
		}
		late := gen.Order()
		testenv.InsertOrders(t, r.Pool, late)
		s.want(t, late)
		if _, err := s.Get(context.Background(), "no-such-order"); !errors.Is(err, cache.ErrNotFound) {
			t.Fatalf("Get of an unknown uid with the replica stopped: %v", err)
		}
		if s.up("replica1") != 0 || s.lookups("replica1", "error") == 0 {
			t.Fatalf("replica stopped: replica_up %v, errors %d", s.up("replica1"), s.lookups("replica1", "error"))
		}
	})
}

func testLogger(w *testenv.Buffer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
