package main

import (
	"context"
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/orderservice/orders/shared/ordergen"
	"github.com/orderservice/orders/shared/testenv"
)

// TestRedisStalled: Redis accepts connections and answers nothing (a black
// hole, which only timeouts notice). Every order is still served from the
// database, each request within READER_REDIS_TIMEOUT, per circuit that
// may try Redis on its way, of the slowest request with Redis healthy; the
// circuits open, and while they are open requests neither reach Redis (the
// proxy counts what arrives) nor wait for its timeout, but for the probes
// the circuits let through; once Redis answers again it is used again.
//
// Two circuits may try Redis for one request: the rate limiter's (1 s
// pauses) and the cache's (100 ms doubling). They are separate, so a
// request that meets a probe of each waits two timeouts; without rate
// limits the bound is one.
func TestRedisStalled(t *testing.T) {
	t.Parallel()
	const timeout = 300 * time.Millisecond
	for _, tc := range []struct {
		name      string
		rateLimit string
		circuits  int // Redis users per request, each with its own circuit
	}{
		{"cache only", "0", 1},
		{"cache and rate limiter", "100", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			redisURL, proxy := testenv.ProxyURL(t, e.redis.URL)
			e.vars["REDIS_URL"] = redisURL
			e.vars["READER_WARM_COUNT"] = "0"
			e.vars["READER_REDIS_TIMEOUT"] = timeout.String()
			e.vars["READER_RATE_LIMIT"] = tc.rateLimit
			r := e.start(t, true)
			gen := ordergen.New(71)
			orders := gen.Orders(40)
			testenv.InsertOrders(t, e.pg.Pool, orders...)

			// get asks for an order not cached anywhere yet: every tier is asked.
			get := func(i int) time.Duration {
				t.Helper()
				start := time.Now()
				resp := r.do(t, http.MethodGet, "/order/"+orders[i].OrderUID)
				took := time.Since(start)
				if resp.status != http.StatusOK || resp.header.Get("X-Cache") != "db" {
					t.Fatalf("order %d: %d X-Cache %q %s", i, resp.status, resp.header.Get("X-Cache"), resp.body)
				}
				requireJSONEqual(t, resp.body, canonical(t, orders[i]))
				return took
			}
			var normal time.Duration
			for i := range 10 {
				normal = max(normal, get(i))
			}

			proxy.Stall()
			before, stalled := proxy.Stats(), time.Now()
			// Scheduling noise on a shared machine; a request that waited for a
			// Redis that never answers would wait for READER_REQUEST_TIMEOUT (5 s).
			const noise = 250 * time.Millisecond
			bound := normal + time.Duration(tc.circuits)*timeout + noise
			waited := 0 // requests that waited for a Redis timeout: the probes
			var slowest time.Duration
			for i := 10; i < len(orders); i++ {
				took := get(i)
				slowest = max(slowest, took)
				if took > bound {
					t.Errorf("order %d took %v with Redis stalled; normal is at most %v, the Redis timeout %v (%d circuits)", i, took, normal, timeout, tc.circuits)
				}
				if took >= timeout {
					waited++
				}
			}
			elapsed := time.Since(stalled)
			if up := r.metric(t, "reader_redis_up"); up != 0 {
				t.Fatalf("reader_redis_up = %v with Redis stalled", up)
			}
			// The cache's circuit pauses 100 ms and doubles the pause after
			// each failed probe, so in elapsed it lets through the first
			// command and at most 1+log2(elapsed/100ms) probes; the rate
			// limiter's tries again every second. Without the circuits each
			// of the 30 requests would send a GET, and its database answer a
			// SET NX, and wait for both.
			probes := 2 + int(math.Ceil(math.Log2(float64(elapsed)/float64(100*time.Millisecond))))
			if tc.circuits > 1 {
				probes += 1 + int(math.Ceil(elapsed.Seconds()))
			}
			after := proxy.Stats()
			t.Logf("Redis stalled %v: normal latency at most %v, stalled at most %v, %d requests waited for a timeout, %d writes reached Redis, %d tries allowed",
				elapsed.Round(time.Millisecond), normal, slowest, waited, after.Chunks-before.Chunks, probes)
			if cmds := after.Chunks - before.Chunks; waited > probes || cmds > int64(2*probes) {
				t.Errorf("with Redis stalled for %v: %d of %d requests waited for a timeout and %d writes reached Redis; the circuits allow %d tries",
					elapsed.Round(time.Millisecond), waited, len(orders)-10, cmds, probes)
			}

			proxy.Restore()
			back := gen.Order() // only in Redis: only Redis can answer it
			if err := e.redis.Client.Set(context.Background(), e.redis.Prefix+"order:"+back.OrderUID, canonical(t, back), time.Minute).Err(); err != nil {
				t.Fatal(err)
			}
			testenv.Await(t, "Redis used again after the stall", 15*time.Second, func() bool {
				resp := r.do(t, http.MethodGet, "/order/"+back.OrderUID)
				return resp.status == http.StatusOK && resp.header.Get("X-Cache") == "redis"
			})
		})
	}
}
