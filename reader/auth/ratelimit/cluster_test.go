package ratelimit

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/orderservice/orders/shared/redisconn"
	"github.com/orderservice/orders/shared/testenv"
)

// On a Redis Cluster the limit is still one for every instance, for keys
// of every slot (each GCRA script names one key, so it runs on that key's
// master); with a master lost, the limiter falls back to its local limit
// without failing or waiting, and uses the cluster again afterwards.
func TestSharedAcrossInstancesOnCluster(t *testing.T) {
	t.Parallel()
	rc := testenv.RedisCluster(t, 0)
	limiter := func() *Limiter {
		c, err := redisconn.Open(rc.URL, redisconn.Options{Timeout: testTimeout})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return New(c, Options{Timeout: testTimeout, Prefix: rc.Prefix, Breaker: redisconn.NewBreaker(c, pause(100*time.Millisecond), nil)})
	}
	a, b := limiter(), limiter()
	r := PerMinute(5, 5)
	ctx := context.Background()
	masters := map[string]bool{}
	keys := make([]string, 12)
	for k := range keys {
		keys[k] = fmt.Sprint("cred:api_key:", k)
		m, err := rc.Cluster.Master(ctx, "rate:"+rc.Prefix+keys[k])
		if err != nil {
			t.Fatal(err)
		}
		masters[m.Addr] = true
		var allowed [2]int
		for i := range 12 {
			if [2]*Limiter{a, b}[i%2].Allow(ctx, keys[k], r).Allowed {
				allowed[i%2]++
			}
		}
		if allowed[0]+allowed[1] != 5 || allowed[0] == 0 || allowed[1] == 0 {
			t.Fatalf("key %s: allowed %v by the two instances, want 5 in all, shared", keys[k], allowed)
		}
	}
	if len(masters) != 3 {
		t.Fatalf("the keys' buckets live on %d masters, want 3", len(masters))
	}

	lost, err := rc.Cluster.Master(ctx, "rate:"+rc.Prefix+"cred:api_key:lost")
	if err != nil {
		t.Fatal(err)
	}
	lost.Kill()
	fresh := limiter()
	start := time.Now()
	allowed := 0
	for range 8 {
		if fresh.Allow(ctx, "cred:api_key:lost", r).Allowed {
			allowed++
		}
	}
	if allowed != 5 {
		t.Fatalf("with the key's master lost, %d of 8 events allowed, want the local limit of 5", allowed)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("8 decisions with a master lost took %v", d)
	}
}
