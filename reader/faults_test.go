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
// hole, which only timeouts notice), or answers slowly. Every order is
// still served from the database, each request within READER_REDIS_TIMEOUT
// of the slowest request with Redis healthy (plus a margin, below), with
// rate limits on or off: the rate limiter and the cache share one circuit
// breaker, so that once either has waited for a stalled Redis neither
// waits for it again, and what the limiter waited is taken off the
// cache's timeout. With Redis stalled the circuit opens, and while it is
// open neither asks Redis (the proxy counts what reaches it) nor waits,
// but for the probes the circuit lets through; once Redis answers again
// both use it again.
func TestRedisStalled(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		rateLimit string
		timeout   time.Duration // READER_REDIS_TIMEOUT
		// fault is applied once the normal latency is measured; stalled
		// says it is a stall (the circuit must open and bound the probes).
		fault   func(*testenv.Proxy)
		stalled bool
		orders  int
	}{
		{"stalled, cache only", "0", 400 * time.Millisecond, (*testenv.Proxy).Stall, true, 30},
		{"stalled, cache and rate limiter", "100", 400 * time.Millisecond, (*testenv.Proxy).Stall, true, 30},
		// Each round trip 840 ms (420 ms each way): the limiter's call and
		// the cache's GET each answer within the 1 s timeout (with 160 ms
		// to spare for scheduling), one after the other they would take
		// 1.7 s. Only the bound on a request's Redis time in all, not the
		// circuit, keeps the request within one timeout.
		{"slow, cache and rate limiter", "100", time.Second, func(p *testenv.Proxy) { p.Delay(420 * time.Millisecond) }, false, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			timeout := tc.timeout
			e := newEnv(t)
			redisURL, proxy := testenv.ProxyURL(t, e.redis.URL)
			e.vars["REDIS_URL"] = redisURL
			e.vars["READER_WARM_COUNT"] = "0"
			e.vars["READER_REDIS_TIMEOUT"] = timeout.String()
			e.vars["READER_RATE_LIMIT"] = tc.rateLimit
			r := e.start(t, true)
			gen := ordergen.New(71)
			orders := gen.Orders(10 + tc.orders)
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
			if tc.rateLimit != "0" {
				if up := r.metric(t, "reader_auth_ratelimit_redis_up"); up != 1 {
					t.Fatalf("reader_auth_ratelimit_redis_up = %v with Redis healthy", up)
				}
			}

			tc.fault(proxy)
			before, faulty := proxy.Stats(), time.Now()
			// The margin is for scheduling on the shared 2-core machine
			// under -race (the slowest of 10 requests with Redis healthy
			// is 20-90 ms there): half a timeout, so that a request that
			// waits two timeouts (two circuits, or no bound on the
			// request's Redis time in all) exceeds it by half a timeout
			// less its normal latency. A request that waited for a Redis
			// that never answers would wait for READER_REQUEST_TIMEOUT (5 s).
			margin := timeout / 2
			bound := normal + timeout + margin
			waited := 0 // requests that waited for a Redis timeout: the probes
			var slowest time.Duration
			for i := 10; i < len(orders); i++ {
				took := get(i)
				slowest = max(slowest, took)
				if took > bound {
					t.Errorf("order %d took %v with Redis at fault; normal is at most %v, the Redis timeout %v", i, took, normal, timeout)
				}
				if took >= timeout {
					waited++
				}
			}
			elapsed := time.Since(faulty)
			after := proxy.Stats()
			t.Logf("Redis at fault %v: normal latency at most %v, at fault at most %v (bound %v), %d requests waited a timeout, %d writes reached Redis",
				elapsed.Round(time.Millisecond), normal, slowest, bound, waited, after.Chunks-before.Chunks)
			if tc.stalled {
				// A lookup does not wait for the stalled Redis (it asks
				// PostgreSQL after READER_REDIS_HEDGE), so the requests may
				// all be answered before the first command's timeout
				// opens the circuit: it opens then.
				testenv.Await(t, "reader_redis_up 0 with Redis stalled", 2*timeout+5*time.Second, func() bool {
					return r.metric(t, "reader_redis_up") == 0
				})
				if tc.rateLimit != "0" {
					if up := r.metric(t, "reader_auth_ratelimit_redis_up"); up != 0 {
						t.Fatalf("reader_auth_ratelimit_redis_up = %v with Redis stalled", up)
					}
				}
				// The one circuit pauses 100 ms and doubles the pause after
				// each failed probe, so in elapsed it lets through the first
				// commands and at most 1+log2(elapsed/100ms) probes, whether
				// the limiter, a lookup or a fill sends them. Without it each
				// request would send the limiter's call, a GET, and its
				// database answer a SET NX, and wait for the first two.
				probes := 2 + int(math.Ceil(math.Log2(float64(elapsed)/float64(100*time.Millisecond))))
				if cmds := after.Chunks - before.Chunks; waited > probes || cmds > int64(2*probes) {
					t.Errorf("with Redis stalled for %v: %d of %d requests waited for a timeout and %d writes reached Redis; the circuit allows %d tries",
						elapsed.Round(time.Millisecond), waited, tc.orders, cmds, probes)
				}
			}

			proxy.Restore()
			back := gen.Order() // only in Redis: only Redis can answer it
			if err := e.redis.Client.Set(context.Background(), e.redis.Prefix+"order:"+back.OrderUID, canonical(t, back), time.Minute).Err(); err != nil {
				t.Fatal(err)
			}
			testenv.Await(t, "Redis used again after the fault", 15*time.Second, func() bool {
				resp := r.do(t, http.MethodGet, "/order/"+back.OrderUID)
				return resp.status == http.StatusOK && resp.header.Get("X-Cache") == "redis"
			})
			if tc.rateLimit != "0" {
				// Told on the limiter's first success through Redis.
				testenv.Await(t, "the rate limits shared through Redis again", 15*time.Second, func() bool {
					r.do(t, http.MethodGet, "/order/"+back.OrderUID)
					return r.metric(t, "reader_auth_ratelimit_redis_up") == 1
				})
			}
		})
	}
}
