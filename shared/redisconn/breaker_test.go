package redisconn_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/orderservice/orders/shared/redisconn"
	"github.com/orderservice/orders/shared/retry"
	"github.com/orderservice/orders/shared/testenv"
)

type changes struct {
	mu  sync.Mutex
	all []redisconn.Change
}

func (c *changes) add(ch redisconn.Change) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.all = append(c.all, ch)
}

func (c *changes) list() []redisconn.Change {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]redisconn.Change(nil), c.all...)
}

// TestBreakerOneNode: a failure opens the node's circuit for the pause,
// after which exactly one probe is allowed; a failed probe pauses again, a
// caller that gives up frees the probe, and a success closes the circuit.
// Every opening and closing is notified once.
func TestBreakerOneNode(t *testing.T) {
	t.Parallel()
	rd := testenv.Redis(t)
	c, err := redisconn.Open(rd.URL, redisconn.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var seen changes
	pause := 50 * time.Millisecond
	b := redisconn.NewBreaker(c, retry.Policy{Initial: pause, Max: pause}, seen.add)
	ctx := context.Background()
	node := b.Route(ctx, "k")
	if node == "" || !b.Allow(node) || !b.Closed() {
		t.Fatalf("fresh breaker: node %q, allow %v, closed %v", node, b.Allow(node), b.Closed())
	}
	b.Done(node, "k", nil) // a success on a closed circuit changes nothing
	b.Done(node, "k", errDown)
	if b.Allow(node) || b.Closed() {
		t.Fatal("circuit not open after a failure")
	}
	if got := seen.list(); len(got) != 1 || !got[0].Open || !errors.Is(got[0].Err, errDown) || got[0].Node != node || got[0].Pause != pause {
		t.Fatalf("changes after the failure: %+v", got)
	}
	time.Sleep(pause) // the pause under test
	if !b.Allow(node) {
		t.Fatal("no probe after the pause")
	}
	if b.Allow(node) {
		t.Fatal("a second probe while the first is out")
	}
	b.Release(node) // the prober gave up
	if !b.Allow(node) {
		t.Fatal("no probe after the first prober gave up")
	}
	b.Done(node, "k", errDown) // the probe failed: another pause, no new change
	if b.Allow(node) {
		t.Fatal("allowed right after a failed probe")
	}
	time.Sleep(pause)
	if !b.Allow(node) {
		t.Fatal("no probe after the second pause")
	}
	b.Done(node, "k", nil)
	for range 3 {
		if !b.Allow(node) {
			t.Fatal("circuit not closed after a successful probe")
		}
	}
	if !b.Closed() {
		t.Fatal("Closed is false after a successful probe")
	}
	got := seen.list()
	if len(got) != 2 || got[1].Open || !got[1].AllClosed || got[1].Node != node {
		t.Fatalf("changes: %+v; want one opening and one closing", got)
	}
}

// TestBreakerPerMaster: with a cluster master down, only its circuit
// opens; once a replica has taken over its slots, the old circuit is
// forgotten and every circuit is closed.
func TestBreakerPerMaster(t *testing.T) {
	t.Parallel()
	rc := testenv.RedisCluster(t, 1)
	c, err := redisconn.Open(rc.URL, redisconn.Options{Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var seen changes
	b := redisconn.NewBreaker(c, redisconn.BreakerPolicy, seen.add)
	ctx := context.Background()
	key := rc.Prefix + "order:a"
	lost, err := rc.Cluster.Master(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	var other string // a key on another master
	for i := 0; other == ""; i++ {
		k := rc.Prefix + "order:" + string(rune('b'+i))
		if b.Route(ctx, k) != lost.Addr {
			other = k
		}
	}
	lost.Kill()
	err = c.Get(ctx, key).Err()
	if err == nil {
		t.Fatal("GET answered by a killed master")
	}
	b.Done(lost.Addr, key, err)
	if b.Allow(lost.Addr) || b.Closed() {
		t.Fatal("the killed master's circuit is not open")
	}
	if n := b.Route(ctx, other); !b.Allow(n) {
		t.Fatalf("the circuit of %s (another master) is open too", n)
	}
	testenv.Await(t, "the killed master's circuit forgotten after the failover", 20*time.Second, func() bool {
		c.Get(ctx, key)                   // failures reload the slot map
		time.Sleep(50 * time.Millisecond) // pacing the polls, not synchronisation
		return b.Closed()
	})
	got := seen.list()
	if len(got) != 2 || !got[0].Open || got[1].Open || got[1].Node != lost.Addr || !got[1].AllClosed {
		t.Fatalf("changes: %+v; want the lost master's circuit opened, then closed", got)
	}
	if n := b.Route(ctx, key); n == lost.Addr || !b.Allow(n) {
		t.Fatalf("key routed to %s after the failover (lost %s)", n, lost.Addr)
	}
}
