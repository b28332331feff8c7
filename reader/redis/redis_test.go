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

// TestCircuit: a cut Redis is skipped without waiting, and used again
// after it is back.
func TestCircuit(t *testing.T) {
	t.Parallel()
	rd := testenv.Redis(t)
	redisURL, proxy := testenv.ProxyURL(t, rd.URL)
	c, err := redis.New(redis.Options{URL: redisURL, Prefix: rd.Prefix,
		TTL: time.Minute, Timeout: 500 * time.Millisecond})
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

	proxy.Cut()
	if _, err := c.Get(ctx, "x"); err == nil || errors.Is(err, cache.ErrSkipped) {
		t.Fatalf("first Get after the cut: %v, want a Redis error", err)
	}
	if c.Up() {
		t.Fatal("circuit still closed after a failure")
	}
	start := time.Now()
	for range 100 {
		if _, err := c.Get(ctx, "x"); !errors.Is(err, cache.ErrSkipped) && err == nil {
			t.Fatal("Get succeeded through a cut proxy")
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("100 lookups with Redis down took %v: the circuit does not skip", d)
	}

	proxy.Restore()
	deadline := time.Now().Add(15 * time.Second)
	for {
		b, err := c.Get(ctx, "x")
		if err == nil && string(b) == `{"x":1}` {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Redis not used again after restore: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !c.Up() {
		t.Fatal("circuit still open after a success")
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
