package redis_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/orderservice/orders/reader/cache"
	"github.com/orderservice/orders/reader/redis"
	"github.com/orderservice/orders/shared/localserver"
	"github.com/orderservice/orders/shared/testenv"
)

// clusterCache is a Cache on a private cluster, with entries u0..u<n-1>
// stored through one SetMany (keys of every slot in one pipeline).
func clusterCache(t *testing.T, replicas, n int) (*testenv.RedisClusterEnv, *redis.Cache) {
	t.Helper()
	rc := testenv.RedisCluster(t, replicas)
	c, err := redis.New(redis.Options{URL: rc.URL, Prefix: rc.Prefix, TTL: time.Minute, Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	entries := make([]cache.Entry, n)
	for i := range entries {
		entries[i] = cache.Entry{UID: fmt.Sprint("u", i), JSON: []byte(fmt.Sprint(i))}
	}
	if err := c.SetMany(context.Background(), entries); err != nil {
		t.Fatalf("SetMany over every slot: %v", err)
	}
	return rc, c
}

// byMaster splits u0..u<n-1> into those the given master serves and the
// others.
func byMaster(t *testing.T, rc *testenv.RedisClusterEnv, master *localserver.Server, n int) (on, off []int) {
	t.Helper()
	for i := range n {
		m, err := rc.Cluster.Master(context.Background(), rc.Prefix+fmt.Sprint("order:u", i))
		if err != nil {
			t.Fatal(err)
		}
		if m == master {
			on = append(on, i)
		} else {
			off = append(off, i)
		}
	}
	return on, off
}

func wantValue(t *testing.T, c *redis.Cache, i int) {
	t.Helper()
	b, err := c.Get(context.Background(), fmt.Sprint("u", i))
	if err != nil || string(b) != fmt.Sprint(i) {
		t.Fatalf("Get(u%d) = %q, %v", i, b, err)
	}
}

// TestClusterGetsAcrossSlots: concurrent GETs batched into pipelines that
// span every master each get their own answer, misses included.
func TestClusterGetsAcrossSlots(t *testing.T) {
	t.Parallel()
	_, c := clusterCache(t, 0, 200)
	var wg sync.WaitGroup
	for i := range 300 {
		wg.Go(func() {
			b, err := c.Get(context.Background(), fmt.Sprint("u", i))
			switch {
			case i >= 200 && !errors.Is(err, cache.ErrMiss):
				t.Errorf("u%d: %q, %v; want a miss", i, b, err)
			case i < 200 && (err != nil || string(b) != fmt.Sprint(i)):
				t.Errorf("u%d: %q, %v", i, b, err)
			}
		})
	}
	wg.Wait()
	if !c.Up() {
		t.Fatal("Up is false after answers from every master")
	}
	// Erased orders: one Delete over keys of every slot.
	erased := make([]string, 100)
	for i := range erased {
		erased[i] = fmt.Sprint("u", i)
	}
	if err := c.Delete(context.Background(), erased); err != nil {
		t.Fatalf("Delete across slots: %v", err)
	}
	for i := range 200 {
		_, err := c.Get(context.Background(), fmt.Sprint("u", i))
		if deleted := i < 100; deleted != errors.Is(err, cache.ErrMiss) {
			t.Fatalf("u%d after deleting u0..u99: %v", i, err)
		}
	}
}

// TestClusterMasterLost: with a master killed and no replica, its keys
// are skipped after the first failure (without waiting), the other
// masters' keys are still served, one at a time and in shared pipelines,
// and SetMany still stores the orders of the live masters.
func TestClusterMasterLost(t *testing.T) {
	t.Parallel()
	const n = 60
	rc, c := clusterCache(t, 0, n)
	lost, err := rc.Cluster.Master(context.Background(), rc.Prefix+"order:u0")
	if err != nil {
		t.Fatal(err)
	}
	on, off := byMaster(t, rc, lost, n)
	lost.Kill()
	ctx := context.Background()
	if _, err := c.Get(ctx, fmt.Sprint("u", on[0])); err == nil || errors.Is(err, cache.ErrSkipped) {
		t.Fatalf("first Get of a lost key: %v, want a Redis error", err)
	}
	if c.Up() {
		t.Fatal("Up with a master lost")
	}
	start := time.Now()
	for range 20 {
		for _, i := range on {
			if _, err := c.Get(ctx, fmt.Sprint("u", i)); !errors.Is(err, cache.ErrSkipped) && err == nil {
				t.Fatalf("u%d served by a killed master", i)
			}
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("%d lookups of lost keys took %v: the lost node is not skipped", 20*len(on), d)
	}
	for _, i := range off {
		wantValue(t, c, i)
	}
	var wg sync.WaitGroup
	for _, i := range off {
		wg.Go(func() {
			b, err := c.Get(ctx, fmt.Sprint("u", i))
			if err != nil || string(b) != fmt.Sprint(i) {
				t.Errorf("concurrent Get(u%d) with a master lost = %q, %v", i, b, err)
			}
		})
	}
	wg.Wait()

	// New orders: the live masters' are stored, the lost one's skipped.
	var fresh []cache.Entry
	for i := n; i < 2*n; i++ {
		fresh = append(fresh, cache.Entry{UID: fmt.Sprint("u", i), JSON: []byte(fmt.Sprint(i))})
	}
	// The lost master's orders are skipped (ErrSkipped) while its circuit
	// is open; once its pause has passed (the loop above can outlast it on
	// a loaded machine) one of them is the probe, and fails. Either way
	// SetMany reports it, and the count below holds.
	if err := c.SetMany(ctx, fresh); err == nil {
		t.Fatal("SetMany with a master lost: no error, want ErrSkipped or the lost node's failure")
	}
	freshOn, _ := byMaster(t, rc, lost, 2*n)
	stored := 0
	for i := n; i < 2*n; i++ {
		if _, err := c.Get(ctx, fmt.Sprint("u", i)); err == nil {
			stored++
		}
	}
	if want := n - (len(freshOn) - len(on)); stored != want {
		t.Fatalf("%d of the new orders cached, want the %d of the live masters", stored, want)
	}
}

// TestClusterFailover: once a replica has taken over from a killed master,
// the lost master's keys (replicated before the kill) are served again
// without a restart, and Up is true again.
func TestClusterFailover(t *testing.T) {
	t.Parallel()
	const n = 30
	rc, c := clusterCache(t, 1, n)
	ctx := context.Background()
	lost, err := rc.Cluster.Master(ctx, rc.Prefix+"order:u0")
	if err != nil {
		t.Fatal(err)
	}
	on, _ := byMaster(t, rc, lost, n)
	rc.AwaitReplicated(t)
	lost.Kill()
	if _, err := c.Get(ctx, fmt.Sprint("u", on[0])); err == nil {
		t.Fatal("Get answered by a killed master")
	}
	start := time.Now()
	testenv.Await(t, "the lost master's keys served by its replica", 30*time.Second, func() bool {
		_, err := c.Get(ctx, fmt.Sprint("u", on[0]))
		time.Sleep(20 * time.Millisecond) // pacing the probes, not synchronisation
		return err == nil
	})
	t.Logf("served again %v after the kill", time.Since(start))
	for _, i := range on {
		wantValue(t, c, i)
	}
	if !c.Up() {
		t.Fatal("Up is false once every slot is served again")
	}
}

// TestClusterEventsSurviveALostMaster: on a cluster (no replicas), the
// Subscriber receives what is published on the events channel; when the
// master serving the channel's slot (where go-redis subscribes) is
// killed, it resubscribes on another master (redisconn.Subscribe), and
// every message then published (go-redis picks masters in turn, the lost
// one too, and retries on the next) reaches it: the cluster relays the
// channel to every node.
func TestClusterEventsSurviveALostMaster(t *testing.T) {
	t.Parallel()
	rc := testenv.RedisCluster(t, 0)
	c, err := redis.New(redis.Options{URL: rc.URL, Prefix: rc.Prefix, TTL: time.Minute, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	rec := &recorder{}
	gauge := prometheus.NewGauge(prometheus.GaugeOpts{Name: "subscribed"})
	sub := redis.NewSubscriber(c, rec, redis.SubscriberOptions{Subscribed: gauge, HealthInterval: 200 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); sub.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-sub.Subscribed():
	case <-time.After(10 * time.Second):
		t.Fatal("never subscribed")
	}
	publish := func(payload string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return c.Client().Publish(ctx, sub.Channel(), payload).Err()
	}
	awaitStored := func(uid string) {
		t.Helper()
		testenv.Await(t, "the announcement of "+uid, 15*time.Second, func() bool {
			got, _ := rec.state()
			return slices.ContainsFunc(got, func(ch cache.Changes) bool { return slices.Contains(ch.Stored, uid) })
		})
	}
	if err := publish(`{"stored":["before1"]}`); err != nil {
		t.Fatal(err)
	}
	awaitStored("before1")

	lost, err := rc.Cluster.Master(ctx, sub.Channel())
	if err != nil {
		t.Fatal(err)
	}
	lost.Kill()
	_, resyncs := rec.state()
	testenv.Await(t, "a new subscription on a live master", 20*time.Second, func() bool {
		_, n := rec.state()
		return n > resyncs && testutil.ToFloat64(gauge) == 1
	})
	// go-redis sends each PUBLISH to the next master: some of these meet
	// the lost one, and go to another.
	for i := range 6 {
		uid := fmt.Sprint("after", i)
		if err := publish(`{"stored":["` + uid + `"]}`); err != nil {
			t.Fatalf("publish %d with a master lost: %v", i, err)
		}
		awaitStored(uid)
	}
}
