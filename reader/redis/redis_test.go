package redis_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/orderservice/orders/reader/cache"
	"github.com/orderservice/orders/reader/redis"
	"github.com/orderservice/orders/shared/redisconn"
	"github.com/orderservice/orders/shared/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestGetSetMany(t *testing.T) {
	t.Parallel()
	rd := testenv.Redis(t)
	c, err := redis.New(redis.Options{URL: rd.URL, Prefix: rd.Prefix, TTL: time.Minute, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if _, err := c.Get(ctx, "a"); !errors.Is(err, cache.ErrMiss) {
		t.Fatalf("Get of a missing order: %v", err)
	}
	if err := c.SetMany(ctx, []cache.Entry{{UID: "a", JSON: []byte(`{"a":1}`)}, {UID: "b", JSON: []byte(`{"b":2}`)}}); err != nil {
		t.Fatal(err)
	}
	// SET NX: an existing value (the ingestor's) is kept.
	if err := c.SetMany(ctx, []cache.Entry{{UID: "a", JSON: []byte(`{"other":1}`)}}); err != nil {
		t.Fatal(err)
	}
	got, err := c.Get(ctx, "a")
	if err != nil || !bytes.Equal(got, []byte(`{"a":1}`)) {
		t.Fatalf("Get(a) = %s, %v", got, err)
	}
	ttl, err := rd.Client.TTL(ctx, rd.Prefix+"order:b").Result()
	if err != nil || ttl <= 0 || ttl > time.Minute {
		t.Fatalf("TTL of order:b = %v, %v", ttl, err)
	}
}

// TestCircuit: a Redis that fails, cut (errors at once) or stalled
// (nothing answers: each command waits for its timeout), opens the
// circuit; while it is open lookups are skipped without reaching Redis
// (the proxy sees no connection and no command, and the lookups do not
// wait for the timeout), and after Redis is back it is used again.
func TestCircuit(t *testing.T) {
	t.Parallel()
	for _, fault := range []struct {
		name   string
		inject func(*testenv.Proxy)
	}{
		{"cut", (*testenv.Proxy).Cut},
		{"stall", (*testenv.Proxy).Stall},
	} {
		t.Run(fault.name, func(t *testing.T) {
			t.Parallel()
			const timeout = 300 * time.Millisecond
			c, proxy := proxiedCache(t, timeout)
			ctx := context.Background()
			if _, err := c.Get(ctx, "x"); err != nil {
				t.Fatal(err)
			}

			fault.inject(proxy)
			if _, err := c.Get(ctx, "x"); err == nil || errors.Is(err, cache.ErrSkipped) {
				t.Fatalf("first Get after the fault: %v, want a Redis error", err)
			}
			if c.Up() {
				t.Fatal("circuit still closed after a failure")
			}
			// The circuit's first pause is 100 ms: 100 lookups take far less,
			// but a machine that stalls the loop may let one probe through.
			before := proxy.Stats()
			start := time.Now()
			tried := 0
			for i := range 100 {
				_, err := c.Get(ctx, "x")
				if !errors.Is(err, cache.ErrSkipped) {
					tried++
				}
				if tried > 1 {
					t.Fatalf("lookup %d reached Redis (%v): %d of %d not skipped while the circuit is open", i, err, tried, i+1)
				}
			}
			if d := time.Since(start); d > timeout+time.Second {
				t.Errorf("100 lookups with the circuit open took %v: they waited for Redis", d)
			}
			after := proxy.Stats()
			if conns, cmds := after.Accepted-before.Accepted, after.Chunks-before.Chunks; conns > int64(tried) || cmds > int64(2*tried) {
				t.Errorf("%d connections and %d writes reached Redis during 100 lookups with the circuit open (%d probes)", conns, cmds, tried)
			}

			proxy.Restore()
			testenv.Await(t, "Redis used again after the restore", 15*time.Second, func() bool {
				b, err := c.Get(ctx, "x")
				return err == nil && string(b) == `{"x":1}`
			})
			if !c.Up() {
				t.Fatal("circuit still open after a success")
			}
		})
	}
}

// TestGetWithinTheRequestsRedisTimeout: a request that has waited for
// Redis already (its rate limit, redisconn.WithWaited) waits in Get only
// for what is left of one timeout. Redis here is slow, not failed (every
// chunk delayed 150 ms each way, a GET answered in about 300 ms, within
// the 600 ms timeout): only the request's own budget cuts it short, and
// one with nothing left does not ask Redis at all.
func TestGetWithinTheRequestsRedisTimeout(t *testing.T) {
	t.Parallel()
	const timeout = 600 * time.Millisecond
	c, proxy := proxiedCache(t, timeout)
	ctx := context.Background()
	if _, err := c.Get(ctx, "x"); err != nil { // the connection is made
		t.Fatal(err)
	}
	proxy.Delay(150 * time.Millisecond)
	for _, tc := range []struct {
		name    string
		waited  time.Duration
		want    func(error) bool
		atLeast time.Duration // Get's own wait
		asks    bool          // a command reaches Redis
	}{
		{"no wait before: the answer", 0, func(err error) bool { return err == nil }, 0, true},
		{"150 ms left: cut short", timeout - 150*time.Millisecond,
			func(err error) bool { return errors.Is(err, context.DeadlineExceeded) }, 150 * time.Millisecond, true},
		{"nothing left: skipped", timeout, func(err error) bool { return errors.Is(err, cache.ErrSkipped) }, 0, false},
	} {
		before, start := proxy.Stats(), time.Now()
		_, err := c.Get(redisconn.WithWaited(ctx, tc.waited), "x")
		took := time.Since(start)
		if !tc.want(err) {
			t.Errorf("%s: Get after waiting %v: %v", tc.name, tc.waited, err)
		}
		// The request's whole Redis wait stays within the timeout; the
		// margin is for scheduling only (an answer takes 300 ms).
		if took < tc.atLeast || tc.waited+took > timeout+100*time.Millisecond {
			t.Errorf("%s: Get took %v after %v waited, want at least %v and %v in all", tc.name, took, tc.waited, tc.atLeast, timeout)
		}
		if asked := proxy.Stats().Chunks > before.Chunks; asked != tc.asks {
			t.Errorf("%s: a command reached Redis: %v, want %v", tc.name, asked, tc.asks)
		}
	}
	if !c.Up() {
		t.Error("a Get cut short by the request's budget opened the circuit: Redis answered")
	}
}

// TestConcurrentGets: GETs batched into shared pipelines each get their
// own answer.
func TestConcurrentGets(t *testing.T) {
	t.Parallel()
	rd := testenv.Redis(t)
	c, err := redis.New(redis.Options{URL: rd.URL, Prefix: rd.Prefix, TTL: time.Minute, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	var entries []cache.Entry
	for i := range 300 {
		if i%3 != 0 {
			entries = append(entries, cache.Entry{UID: fmt.Sprint("k", i), JSON: []byte(fmt.Sprint(i))})
		}
	}
	if err := c.SetMany(ctx, entries); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 300 {
		wg.Go(func() {
			b, err := c.Get(ctx, fmt.Sprint("k", i))
			switch {
			case i%3 == 0 && !errors.Is(err, cache.ErrMiss):
				t.Errorf("k%d: %q, %v; want a miss", i, b, err)
			case i%3 != 0 && (err != nil || string(b) != fmt.Sprint(i)):
				t.Errorf("k%d: %q, %v", i, b, err)
			}
		})
	}
	wg.Wait()
}

// proxiedCache returns a Cache with timeout that reaches the test's Redis
// through a proxy the test controls, and that holds order x ({"x":1}).
func proxiedCache(t *testing.T, timeout time.Duration) (*redis.Cache, *testenv.Proxy) {
	t.Helper()
	rd := testenv.Redis(t)
	redisURL, proxy := testenv.ProxyURL(t, rd.URL)
	c, err := redis.New(redis.Options{URL: redisURL, Prefix: rd.Prefix, TTL: time.Minute, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := rd.Client.Set(context.Background(), rd.Prefix+"order:x", `{"x":1}`, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	return c, proxy
}
