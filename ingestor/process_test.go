package main

import (
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/orderservice/orders/shared/ordergen"
)

// The ingestor binary is SIGKILLed mid-stream and started again: every
// order ends up stored exactly once, nothing is dead-lettered. Then SIGTERM
// stops it with exit status 0.
func TestKilledMidStreamLosesNothing(t *testing.T) {
	t.Parallel()
	const partitions, total = 3, 3000
	e := newEnv(t, partitions)
	cfg := e.config()
	cfg.BatchSize = 100

	var l ledger
	e.produceStream(t, ordergen.New(31), total, 500, partitions, &l)

	first := startBinary(t, cfg, "first")
	stored := func() int { return count(t, e.pg.Pool, `SELECT count(*) FROM orders`) }
	eventually(t, 60*time.Second, func() string {
		if n := stored(); n < 200 {
			return fmt.Sprintf("%d orders stored before the kill", n)
		}
		return ""
	})
	first.kill(t)
	if n := stored(); n >= total {
		t.Fatalf("all %d orders were stored before the kill: the test proves nothing; lower the batch size", n)
	}
	e.checkCommitted(t, &l)

	second := startBinary(t, cfg, "second")
	eventually(t, 90*time.Second, func() string {
		e.checkCommitted(t, &l)
		if n := stored(); n != total {
			return fmt.Sprintf("%d of %d orders stored", n, total)
		}
		return ""
	})
	if n := count(t, e.pg.Pool, `SELECT count(*) FROM items`); n != l.items {
		t.Errorf("%d items stored, want %d", n, l.items)
	}
	if n := e.dlqCount(t); n != 0 {
		t.Errorf("%d dead letters, want 0", n)
	}

	if err := second.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-second.done:
		second.done <- err
		if err != nil {
			t.Fatalf("after SIGTERM: %v, want exit status 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit within 30s of SIGTERM")
	}
	c := e.committed(t)
	var sum int64
	for _, o := range c {
		sum += o
	}
	if sum != total {
		t.Errorf("committed offsets %v after SIGTERM sum to %d, want %d", c, sum, total)
	}
}

// Two ingestors in one group share six partitions; when one is killed its
// partitions move to the other and nothing is lost.
func TestRebalanceOnKill(t *testing.T) {
	t.Parallel()
	const partitions = 6
	e := newEnv(t, partitions)
	cfg := e.config()
	cfg.BatchSize = 50

	a := startBinary(t, cfg, "a")
	b := startBinary(t, cfg, "b")
	assigned := func(p *proc) float64 { return metric(t, p.ops, "ingestor_assigned_partitions") }
	eventually(t, 60*time.Second, func() string {
		na, nb := assigned(a), assigned(b)
		if na == 0 || nb == 0 || na+nb != partitions {
			return fmt.Sprintf("assignment a=%v b=%v", na, nb)
		}
		return ""
	})

	var l ledger
	gen := ordergen.New(41)
	e.produceStream(t, gen, 600, 60, partitions, &l)
	stored := func() int { return count(t, e.pg.Pool, `SELECT count(*) FROM orders`) }
	eventually(t, 60*time.Second, func() string {
		if n := stored(); n != 600 {
			return fmt.Sprintf("%d of 600 orders stored", n)
		}
		return ""
	})
	// Both did some of the work.
	for name, p := range map[string]*proc{"a": a, "b": b} {
		if v := metric(t, p.ops, `ingestor_messages_total{outcome="stored",reason=""}`); v == 0 {
			t.Errorf("ingestor %s stored nothing", name)
		}
	}

	a.kill(t)
	e.produceStream(t, gen, 600, 60, partitions, &l)
	eventually(t, 90*time.Second, func() string {
		if v := assigned(b); v != partitions {
			return fmt.Sprintf("survivor owns %v partitions", v)
		}
		e.checkCommitted(t, &l)
		if n := stored(); n != 1200 {
			return fmt.Sprintf("%d of 1200 orders stored", n)
		}
		return ""
	})
	if n := count(t, e.pg.Pool, `SELECT count(*) FROM items`); n != l.items {
		t.Errorf("%d items stored, want %d", n, l.items)
	}
	if s := httpStatus("http://" + b.ops + "/readyz"); s != http.StatusOK {
		t.Errorf("survivor /readyz = %d", s)
	}
}

// A graceful shutdown commits the offsets: the next run re-reads nothing
// that was stored.
func TestGracefulShutdownCommitsOffsets(t *testing.T) {
	t.Parallel()
	const partitions = 2
	e := newEnv(t, partitions)
	cfg := e.config()
	// No auto-commit within the test: what is committed after the stop was
	// committed by the shutdown (the default 1 s would commit by itself
	// and hide a missing final commit).
	cfg.KafkaProperties += ";auto.commit.interval.ms=3600000"

	in := start(t, cfg)
	var l ledger
	gen := ordergen.New(51)
	e.produceStream(t, gen, 200, 50, partitions, &l)
	eventually(t, 30*time.Second, func() string {
		if v := metric(t, in.ops, `ingestor_messages_total{outcome="stored",reason=""}`); v != 200 {
			return fmt.Sprintf("stored = %v", v)
		}
		return ""
	})
	// The interval is honoured: nothing is committed while the ingestor
	// runs, for longer than the consumer's default interval.
	for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); time.Sleep(100 * time.Millisecond) { // sampling an invariant over time
		if c := e.committed(t); len(c) != 0 {
			t.Fatalf("committed %v before the shutdown, with auto.commit.interval.ms=3600000", c)
		}
	}
	if err := in.stop(t); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	c := e.committed(t)
	if c[0]+c[1] != 200 {
		t.Fatalf("committed %v after shutdown, want 200 in total", c)
	}

	again := start(t, cfg)
	o := gen.Order()
	e.produce(t, 1, orderRecord(t, o))
	eventually(t, 30*time.Second, func() string {
		if n := count(t, e.pg.Pool, `SELECT count(*) FROM orders WHERE order_uid=$1`, o.OrderUID); n != 1 {
			return "new order not stored yet"
		}
		// The outcome is counted once the whole batch is resolved, just
		// after the row is visible.
		if v := metric(t, again.ops, `ingestor_messages_total{outcome="stored",reason=""}`); v < 1 {
			return "new order not counted yet"
		}
		return ""
	})
	// Everything the second run handled: the new order only.
	var handled []string
	for _, outcome := range []string{"stored", "duplicate"} {
		if v := metric(t, again.ops, fmt.Sprintf(`ingestor_messages_total{outcome=%q,reason=""}`, outcome)); v != 0 {
			handled = append(handled, fmt.Sprintf("%s=%v", outcome, v))
		}
	}
	if got := strings.Join(handled, " "); got != "stored=1" {
		t.Errorf("second run handled %q, want only the new order (stored=1)", got)
	}
}
