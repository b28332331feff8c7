package ratelimit

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orderservice/orders/shared/redisconn"
	"github.com/orderservice/orders/shared/retry"
	"github.com/orderservice/orders/shared/testenv"
	"github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// testTimeout is the Redis timeout of tests that need Redis's answers: a
// loaded test machine must not turn them into local decisions.
const testTimeout = 5 * time.Second

// client connects to url as a service would: no retries, and the
// context's deadline cuts a slow call short.
func client(t *testing.T, url string) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	opts.MaxRetries = -1
	opts.ContextTimeoutEnabled = true
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// upMetrics records RateLimitRedis calls.
type upMetrics struct {
	mu    sync.Mutex
	calls []bool
}

func (m *upMetrics) RateLimitRedis(up bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = append(m.calls, up)
}

func (m *upMetrics) last() (bool, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.calls) == 0 {
		return false, 0
	}
	return m.calls[len(m.calls)-1], len(m.calls)
}

func TestParseRate(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Rate
		wantErr bool
	}{
		{"0", Rate{}, false},
		{"0/0", Rate{}, false},
		{"50", PerSecond(50, 50), false},
		{"50/100", PerSecond(50, 100), false},
		{"1/1", Rate{Limit: 1, Period: time.Second, Burst: 1}, false},
		{"1000000/1000000", PerSecond(1_000_000, 1_000_000), false},
		{"", Rate{}, true},
		{"/5", Rate{}, true},
		{"5/", Rate{}, true},
		{"5/0", Rate{}, true},
		{"0/5", Rate{}, true},
		{"-1", Rate{}, true},
		{"+5", Rate{}, true},
		{"1.5", Rate{}, true},
		{"5/10/20", Rate{}, true},
		{"1000001", Rate{}, true},
		{"99999999999999999999", Rate{}, true},
		{" 5", Rate{}, true},
	} {
		got, err := ParseRate(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ParseRate(%q) = %+v, %v; want %+v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
		if err == nil && tc.in != "0/0" {
			if back, err := ParseRate(got.String()); err != nil || back != got {
				t.Errorf("ParseRate(%q.String() = %q) = %+v, %v", tc.in, got.String(), back, err)
			}
		}
	}
}

func TestUnlimitedCostsNothing(t *testing.T) {
	l := New(nil, Options{})
	for range 1000 {
		if res := l.Allow(context.Background(), "k", Rate{}); !res.Allowed {
			t.Fatal("an unlimited rate denied an event")
		}
	}
	if n := l.size.Load(); n != 0 {
		t.Fatalf("an unlimited rate made %d buckets", n)
	}
}

func TestLocalLimit(t *testing.T) {
	l := New(nil, Options{})
	r := PerMinute(3, 3)
	var allowed int
	for range 5 {
		res := l.Allow(context.Background(), "k", r)
		if res.Allowed {
			allowed++
			continue
		}
		// 3 a minute: one token every 20 s.
		if res.RetryAfter <= 0 || res.RetryAfter > 20*time.Second {
			t.Errorf("RetryAfter = %v, want in (0, 20s]", res.RetryAfter)
		}
		if res.Limit != 3 || res.Remaining != 0 {
			t.Errorf("denied result %+v, want Limit 3, Remaining 0", res)
		}
	}
	if allowed != 3 {
		t.Fatalf("%d of 5 events allowed at 3 a minute (burst 3), want 3", allowed)
	}
	// Keys are independent.
	if !l.Allow(context.Background(), "other", r).Allowed {
		t.Fatal("another key was denied")
	}
}

// The limit is one for every instance sharing Redis.
func TestSharedAcrossInstances(t *testing.T) {
	env := testenv.Redis(t)
	a := New(client(t, env.URL), Options{Timeout: testTimeout, Prefix: env.Prefix})
	b := New(client(t, env.URL), Options{Timeout: testTimeout, Prefix: env.Prefix})
	r := PerMinute(5, 5)
	var allowed [2]int
	for i := range 12 {
		l := [2]*Limiter{a, b}[i%2]
		res := l.Allow(context.Background(), "cred:api_key:ci", r)
		if res.Allowed {
			allowed[i%2]++
			if want := 5 - allowed[0] - allowed[1]; res.Remaining != want {
				t.Errorf("event %d: Remaining = %d, want %d", i, res.Remaining, want)
			}
		} else if res.RetryAfter <= 0 || res.RetryAfter > 12*time.Second {
			t.Errorf("event %d: denied with RetryAfter %v, want in (0, 12s]", i, res.RetryAfter)
		}
	}
	if allowed[0]+allowed[1] != 5 || allowed[0] == 0 || allowed[1] == 0 {
		t.Fatalf("allowed %v by the two instances, want 5 in all, shared", allowed)
	}
	// Another key, and another prefix, have their own counts.
	if !a.Allow(context.Background(), "cred:api_key:other", r).Allowed {
		t.Fatal("another key was denied")
	}
	c := New(client(t, env.URL), Options{Timeout: testTimeout, Prefix: env.Prefix + "x:"})
	if !c.Allow(context.Background(), "cred:api_key:ci", r).Allowed {
		t.Fatal("the same key under another prefix was denied")
	}
}

// A busy key takes its tokens in leases: far fewer Redis calls than
// events, and still never more events than Redis handed out.
func TestLeasesSpareRedisCalls(t *testing.T) {
	for _, tc := range []struct {
		name string
		rate Rate
		// every event allowed, or only what the rate gives
		allAllowed bool
	}{
		{"under the limit", PerSecond(1_000_000, 1_000_000), true},
		{"over the limit", PerSecond(2000, 100), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := testenv.Redis(t)
			limiters := []*Limiter{
				New(client(t, env.URL), Options{Timeout: testTimeout, Prefix: env.Prefix}),
				New(client(t, env.URL), Options{Timeout: testTimeout, Prefix: env.Prefix}),
			}
			r := tc.rate
			var allowed, events atomic.Int64
			start := time.Now()
			var wg sync.WaitGroup
			for i := range 4 {
				wg.Go(func() {
					l := limiters[i%2]
					for range 3000 {
						events.Add(1)
						if l.Allow(context.Background(), "busy", r).Allowed {
							allowed.Add(1)
						}
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			calls := limiters[0].redisCalls.Load() + limiters[1].redisCalls.Load()
			// Redis hands out at most the burst plus what refills meanwhile.
			most := int64(r.Burst) + int64(float64(r.Limit)*elapsed.Seconds()) + 1
			t.Logf("%d events in %v: %d allowed (at most %d), %d Redis calls",
				events.Load(), elapsed, allowed.Load(), most, calls)
			switch {
			case tc.allAllowed && allowed.Load() != events.Load():
				t.Errorf("%d of %d events allowed under the limit", allowed.Load(), events.Load())
			case allowed.Load() > most:
				t.Errorf("%d events allowed in %v, more than the %d the rate allows", allowed.Load(), elapsed, most)
			case !tc.allAllowed && allowed.Load() <= int64(r.Burst) && elapsed > 200*time.Millisecond:
				t.Errorf("only %d events allowed in %v at %v", allowed.Load(), elapsed, r)
			}
			if calls*20 > events.Load() {
				t.Errorf("%d Redis calls for %d events, want at most one for 20", calls, events.Load())
			}
		})
	}
}

// A denial is remembered until its Retry-After: a client past its limit
// costs no Redis call.
func TestDenialIsRemembered(t *testing.T) {
	env := testenv.Redis(t)
	l := New(client(t, env.URL), Options{Timeout: testTimeout, Prefix: env.Prefix})
	r := PerMinute(1, 1)
	if !l.Allow(context.Background(), "k", r).Allowed {
		t.Fatal("first event denied")
	}
	first := l.Allow(context.Background(), "k", r)
	if first.Allowed {
		t.Fatal("second event allowed at 1 a minute")
	}
	calls := l.redisCalls.Load()
	for range 100 {
		res := l.Allow(context.Background(), "k", r)
		if res.Allowed || res.RetryAfter <= 0 || res.RetryAfter > first.RetryAfter {
			t.Fatalf("result %+v after a denial with RetryAfter %v", res, first.RetryAfter)
		}
	}
	if got := l.redisCalls.Load(); got != calls {
		t.Fatalf("%d Redis calls for events already known denied", got-calls)
	}
}

// With Redis cut off, each instance limits alone, says so once, and
// shares again once Redis is back.
func TestFallbackWhenRedisUnreachable(t *testing.T) {
	env := testenv.Redis(t)
	url, proxy := testenv.ProxyURL(t, env.URL)
	var log testenv.Buffer
	m := &upMetrics{}
	c := client(t, url)
	l := New(c, Options{
		Timeout: testTimeout, Prefix: env.Prefix, Breaker: redisconn.NewBreaker(c, pause(50*time.Millisecond), nil),
		Log: testLogger(&log), Metrics: m,
	})
	direct := New(client(t, env.URL), Options{Timeout: testTimeout, Prefix: env.Prefix})
	r := PerMinute(3, 3)
	if res := l.Allow(context.Background(), "k", r); !res.Allowed || res.Remaining != 2 {
		t.Fatalf("through Redis: %+v, want allowed with 2 remaining", res)
	}
	if up, n := m.last(); !up || n != 1 {
		t.Fatalf("metrics: last %v after %d calls, want up once", up, n)
	}

	proxy.Cut()
	var allowed int
	start := time.Now()
	for range 6 {
		if l.Allow(context.Background(), "k", r).Allowed {
			allowed++
		}
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("6 events took %v with Redis cut off", elapsed)
	}
	// The local bucket is fresh: 3 more.
	if allowed != 3 {
		t.Errorf("%d of 6 events allowed locally at 3 a minute, want 3", allowed)
	}
	if up, _ := m.last(); up {
		t.Error("metrics not told of the fallback")
	}
	if got := countLines(log.String(), "Redis unavailable"); got != 1 {
		t.Errorf("%d fallback log lines, want 1:\n%s", got, log.String())
	}

	proxy.Restore()
	testenv.Await(t, "the limiter to use Redis again", 10*time.Second, func() bool {
		l.Allow(context.Background(), "probe", r)
		up, _ := m.last()
		return up
	})
	// Shared again: Redis still holds the one event of before the cut,
	// and what l allows now is counted for the other instance too.
	if res := l.Allow(context.Background(), "k2", r); !res.Allowed {
		t.Fatalf("after recovery: %+v", res)
	}
	if res := direct.Allow(context.Background(), "k2", r); !res.Allowed || res.Remaining != 1 {
		t.Fatalf("other instance after recovery: %+v, want allowed with 1 remaining", res)
	}
	if res := direct.Allow(context.Background(), "k", r); !res.Allowed || res.Remaining != 1 {
		t.Fatalf("other instance, key used before the cut: %+v, want allowed with 1 remaining", res)
	}
	if !contains(log.String(), "Redis available again") {
		t.Errorf("no recovery log line:\n%s", log.String())
	}
}

// A Redis that accepts connections and never answers costs each event at
// most the timeout, and only until the limiter stops asking it.
func TestFallbackWhenRedisIsSlow(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // held open, never answered
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	m := &upMetrics{}
	l := New(client(t, "redis://"+ln.Addr().String()+"/0"), Options{Timeout: 50 * time.Millisecond, Metrics: m})
	r := PerMinute(2, 2)
	start := time.Now()
	var allowed int
	for range 4 {
		if l.Allow(context.Background(), "k", r).Allowed {
			allowed++
		}
	}
	elapsed := time.Since(start)
	if allowed != 2 {
		t.Errorf("%d of 4 events allowed locally at 2 a minute, want 2", allowed)
	}
	// One call waits for the timeout; the others are decided locally at once.
	if elapsed > time.Second {
		t.Errorf("4 events took %v against a silent Redis with a 50ms timeout", elapsed)
	}
	if got := l.redisCalls.Load(); got != 1 {
		t.Errorf("%d Redis calls during the pause after a timeout, want 1", got)
	}
	if up, _ := m.last(); up {
		t.Error("metrics not told of the fallback")
	}
}

// A request that gives up does not fail the lease for the others.
func TestCancelledCallerStillUsesRedis(t *testing.T) {
	env := testenv.Redis(t)
	m := &upMetrics{}
	l := New(client(t, env.URL), Options{Timeout: testTimeout, Prefix: env.Prefix, Metrics: m})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if res := l.Allow(ctx, "k", PerMinute(3, 3)); !res.Allowed || res.Remaining != 2 {
		t.Fatalf("cancelled caller: %+v, want allowed through Redis, 2 remaining", res)
	}
	if up, n := m.last(); !up || n != 1 {
		t.Fatal("a cancelled caller made the limiter fall back")
	}
}

func TestKeysAreBounded(t *testing.T) {
	l := New(nil, Options{MaxKeys: 100})
	for i := range 1000 {
		l.Allow(context.Background(), "fail:10.0.0."+strconv.Itoa(i), PerMinute(10, 10))
	}
	if n := l.size.Load(); n > 100 {
		t.Fatalf("%d keys kept, bound 100", n)
	}
	var counted int64
	l.buckets.Range(func(any, any) bool { counted++; return true })
	if counted != l.size.Load() {
		t.Fatalf("size %d, map holds %d", l.size.Load(), counted)
	}
}

// pause is a breaker policy of a constant pause d.
func pause(d time.Duration) retry.Policy { return retry.Policy{Initial: d, Max: d} }

func testLogger(w *testenv.Buffer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func countLines(s, sub string) int {
	var n int
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, sub) {
			n++
		}
	}
	return n
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// TestBreakerSharedWithAnotherUser: the limiter and another user of the
// same client (the reader's cache) share one breaker. A node the other
// user found stalled is skipped by the limiter at once: no call, nothing
// reaches the proxy, no wait. A timeout the limiter met opens the circuit
// for the other user too, and the event says how long it waited. Once the
// node answers a probe (whoever sends it) the limiter shares through Redis
// again.
func TestBreakerSharedWithAnotherUser(t *testing.T) {
	for _, tc := range []struct {
		name string
		// opener fails the node for the breaker with Redis stalled: another
		// user's command timing out, or the limiter's own call.
		limiterOpens bool
	}{
		{"opened by another user", false},
		{"opened by the limiter", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := testenv.Redis(t)
			url, proxy := testenv.ProxyURL(t, env.URL)
			const timeout = 200 * time.Millisecond
			c := client(t, url)
			// A pause far longer than the test: only a success closes it.
			b := redisconn.NewBreaker(c, pause(time.Hour), nil)
			m := &upMetrics{}
			l := New(c, Options{Timeout: timeout, Prefix: env.Prefix, Breaker: b, Metrics: m})
			ctx := context.Background()
			r := PerMinute(3, 3)
			if res := l.Allow(ctx, "before", r); !res.Allowed || res.Remaining != 2 {
				t.Fatalf("through Redis: %+v", res)
			}
			// The other user's key, on the same node.
			other := env.Prefix + "order:x"
			node := b.Route(ctx, other)

			proxy.Stall()
			if tc.limiterOpens {
				start := time.Now()
				res := l.Allow(ctx, "opens", r)
				if !res.Allowed || res.Waited < timeout || time.Since(start) > timeout+time.Second {
					t.Fatalf("the stalled call: %+v after %v; want allowed locally after waiting the %v timeout", res, time.Since(start), timeout)
				}
				if b.Allow(node) {
					t.Fatal("the limiter's timeout left the circuit closed for the other user")
				}
			} else {
				cctx, cancel := context.WithTimeout(ctx, timeout)
				err := c.Get(cctx, other).Err()
				cancel()
				if !redisconn.NodeFailed(err) {
					t.Fatalf("GET through the stalled proxy: %v", err)
				}
				b.Done(node, other, err)
			}
			calls, seen := l.redisCalls.Load(), proxy.Stats()
			start := time.Now()
			for i := range 50 {
				res := l.Allow(ctx, "k"+strconv.Itoa(i), r)
				if !res.Allowed || res.Waited != 0 {
					t.Fatalf("event %d with the circuit open: %+v; want allowed locally without waiting", i, res)
				}
			}
			// 50 fresh keys: without the shared circuit each would call Redis.
			if got := l.redisCalls.Load() - calls; got != 0 {
				t.Errorf("%d Redis calls with the circuit open", got)
			}
			if now := proxy.Stats(); now != seen {
				t.Errorf("the proxy saw %+v with the circuit open, %+v before", now, seen)
			}
			if d := time.Since(start); d >= timeout {
				t.Errorf("50 events with the circuit open took %v, the Redis timeout is %v", d, timeout)
			}
			if up, _ := m.last(); up {
				t.Error("metrics not told of the fallback")
			}

			proxy.Restore()
			// The other user's probe succeeds: the circuit closes for both.
			testenv.Await(t, "the other user's GET through the restored proxy", 10*time.Second, func() bool {
				cctx, cancel := context.WithTimeout(ctx, time.Second)
				defer cancel()
				err := c.Get(cctx, other).Err()
				return !redisconn.NodeFailed(err)
			})
			b.Done(node, other, nil)
			calls = l.redisCalls.Load()
			if res := l.Allow(ctx, "before", r); !res.Allowed || res.Remaining != 1 {
				t.Fatalf("after recovery: %+v, want allowed by Redis with 1 remaining (its count from before)", res)
			}
			if got := l.redisCalls.Load() - calls; got != 1 {
				t.Errorf("%d Redis calls after recovery, want 1", got)
			}
			if up, _ := m.last(); !up {
				t.Error("metrics not told of the recovery")
			}
		})
	}
}

// A busy key fetches its next lease while it spends the current one, so
// that its events do not wait for Redis when a lease runs out; a quiet
// key asks Redis once per event and never fetches a lease it would let
// expire. Redis is 2 × 10 ms away behind a proxy; the events come at a
// steady pace from one caller.
func TestLeaseFetchedAhead(t *testing.T) {
	for _, tc := range []struct {
		name   string
		every  time.Duration // between events
		events int
		lease  time.Duration
		// after the first settle events, at most maxWaits may wait
		settle, maxWaits int
		// Redis calls per event, at most (0: no bound)
		callsPerEvent float64
		exactCalls    bool // one call per event, no lease fetched ahead
	}{
		// A lease runs out every 200 ms: without fetching ahead, each
		// renewal waits 20 ms, at least 3 times after the settling. The
		// lease fetched ahead is asked for 100 ms before it is needed
		// (when half is spent), a margin that a loaded test machine's
		// stalls of tens of milliseconds do not use up (with 100 ms
		// leases, its 50 ms sometimes were).
		{name: "busy key", every: time.Millisecond, events: 1200, lease: 200 * time.Millisecond,
			settle: 450, maxWaits: 1, callsPerEvent: 0.1},
		{name: "quiet key", every: 60 * time.Millisecond, events: 8, lease: 20 * time.Millisecond,
			settle: 0, maxWaits: 8, exactCalls: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := testenv.Redis(t)
			url, proxy := testenv.ProxyURL(t, env.URL)
			proxy.Delay(10 * time.Millisecond)
			l := New(client(t, url), Options{Timeout: testTimeout, Prefix: env.Prefix, Lease: tc.lease})
			r := PerSecond(1_000_000, 1_000_000)
			tick := time.NewTicker(tc.every)
			defer tick.Stop()
			waits := 0
			for i := range tc.events {
				<-tick.C
				res := l.Allow(context.Background(), "k", r)
				if !res.Allowed {
					t.Fatalf("event %d denied under the limit: %+v", i, res)
				}
				if i >= tc.settle && res.Waited > 0 {
					waits++
				}
			}
			calls := l.redisCalls.Load()
			t.Logf("%d events, %d Redis calls, %d of the last %d waited", tc.events, calls, waits, tc.events-tc.settle)
			if waits > tc.maxWaits {
				t.Errorf("%d of the last %d events waited for Redis, want at most %d", waits, tc.events-tc.settle, tc.maxWaits)
			}
			if tc.callsPerEvent > 0 && float64(calls) > tc.callsPerEvent*float64(tc.events) {
				t.Errorf("%d Redis calls for %d events, want at most %.0f", calls, tc.events, tc.callsPerEvent*float64(tc.events))
			}
			if tc.exactCalls && calls != int64(tc.events) {
				t.Errorf("%d Redis calls for %d quiet events, want one each", calls, tc.events)
			}
		})
	}
}
