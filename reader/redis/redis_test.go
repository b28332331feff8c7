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
			rd := testenv.Redis(t)
			redisURL, proxy := testenv.ProxyURL(t, rd.URL)
			const timeout = 300 * time.Millisecond
			c, err := redis.New(redis.Options{URL: redisURL, Prefix: rd.Prefix, TTL: time.Minute, Timeout: timeout})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx := context.Background()
			if err := rd.Client.Set(ctx, rd.Prefix+"order:x", `{"x":1}`, time.Minute).Err(); err != nil {
				t.Fatal(err)
			}
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
