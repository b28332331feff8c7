// Package ratelimit limits events per key across every instance of a
// service through Redis (GCRA, github.com/go-redis/redis_rate), and
// locally (golang.org/x/time/rate) while Redis is unreachable or slow.
//
// A Redis round trip per event would cost more than the request it
// guards, so each instance leases tokens: when its lease of a key runs
// out it takes up to n tokens at once (AllowAtMost) and spends them
// locally for at most the lease time (100 ms). n starts at 1 and doubles
// while leases run out before they expire, up to the tokens the rate
// refills in one lease time (and at most the burst); it halves when a
// lease expires unused. A busy key so costs about one Redis call per
// lease time per instance, a quiet one a call per event, and the global
// limit holds, less the unused tokens of expired leases (which only make
// it stricter). A denial is remembered until its Retry-After, so a
// client hammering past its limit costs no Redis call either.
//
// While Redis fails, each instance limits on its own at the full rate
// (so N instances allow up to N times the rate), and says so once in the
// log and in Metrics. Whether to ask Redis is a circuit breaker's call
// (redisconn.Breaker, one circuit per node): shared with the other users
// of the same client (the reader's cache), so that once any of them has
// found a node failing none waits for it again, and the breaker's one
// probe per pause, whoever sends it, lets Redis back in.
package ratelimit

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/orderservice/orders/shared/redisconn"
	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"
)

// Result is the outcome of one Allow.
type Result struct {
	// Allowed says whether the event may happen.
	Allowed bool
	// Limit is the burst, the most events allowed at once (the
	// RateLimit-Limit header).
	Limit int
	// Remaining is about how many more events are allowed now.
	Remaining int
	// RetryAfter is how long to wait before the next event is allowed,
	// when Allowed is false.
	RetryAfter time.Duration
	// ResetAfter is about how long until the full burst is available.
	ResetAfter time.Duration
	// Waited is how long the event waited for Redis (0 when it was
	// decided without a call). Callers that use the same Redis later for
	// the same request take it off their own timeout
	// (redisconn.WithWaited), so that the request waits one timeout at
	// most in all.
	Waited time.Duration
}

// Metrics is told when the limiter stops or starts using Redis.
type Metrics interface {
	// RateLimitRedis is called with false when the limiter falls back to
	// local limits and with true when it uses Redis again (and once with
	// true at start when it has Redis).
	RateLimitRedis(up bool)
}

// Options tune a Limiter; the zero value of each field is its default.
type Options struct {
	// Prefix goes before every key in Redis (redis_rate adds "rate:" in
	// front of it); give each service and test its own.
	Prefix string
	// Timeout bounds one Redis call (default 100ms); past it the event is
	// decided locally. The client must have ContextTimeoutEnabled for a
	// slow server to be cut off at this limit.
	Timeout time.Duration
	// Breaker decides when to skip a Redis node and when to probe it
	// again; it must be a breaker of New's client. Give the breaker of
	// the other users of the same client (the reader's cache:
	// redis.Cache.Breaker), so that they skip a failed node together.
	// Default: one of the limiter's own, with redisconn.BreakerPolicy.
	Breaker *redisconn.Breaker
	// Lease is the longest time leased tokens are kept (default 100ms).
	Lease time.Duration
	// MaxKeys bounds the keys kept in memory (default 100,000); past it,
	// keys idle for a minute are dropped, then any.
	MaxKeys int
	// Log receives the Redis fallback and recovery lines (default: none).
	Log *slog.Logger
	// Metrics is told about fallbacks (default: nothing).
	Metrics Metrics
}

// Limiter decides whether events may happen, per key. It is safe for
// concurrent use.
type Limiter struct {
	redis   *redis_rate.Limiter // nil: local only
	breaker *redisconn.Breaker
	prefix  string
	timeout time.Duration
	lease   time.Duration
	maxKeys int
	log     *slog.Logger
	metrics Metrics

	buckets sync.Map // string → *bucket
	size    atomic.Int64
	sweepMu sync.Mutex

	down       atomic.Bool
	redisCalls atomic.Int64 // for tests: proves leases and the breaker spare calls
}

// New returns a Limiter sharing its counts through rdb, or limiting
// locally (one instance) when rdb is nil.
func New(rdb redis.UniversalClient, o Options) *Limiter {
	l := &Limiter{breaker: o.Breaker,
		prefix: o.Prefix, timeout: o.Timeout, lease: o.Lease,
		maxKeys: o.MaxKeys, log: o.Log, metrics: o.Metrics,
	}
	if l.timeout <= 0 {
		l.timeout = 100 * time.Millisecond
	}
	if l.lease <= 0 {
		l.lease = 100 * time.Millisecond
	}
	if l.maxKeys <= 0 {
		l.maxKeys = 100_000
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	if rdb != nil {
		l.redis = redis_rate.NewLimiter(rdb)
		if l.breaker == nil {
			l.breaker = redisconn.NewBreaker(rdb, redisconn.BreakerPolicy, nil)
		}
		if l.metrics != nil {
			l.metrics.RateLimitRedis(true)
		}
	}
	return l
}

// bucket is one key's state on this instance.
type bucket struct {
	mu sync.Mutex
	state
}

type state struct {
	rate      Rate
	tokens    int // leased from Redis, not yet spent
	leaseEnd  time.Time
	leaseSize int
	remaining int // Redis's count after the last lease
	resetEnd  time.Time
	denyEnd   time.Time // denied until then, known without asking Redis
	local     *rate.Limiter
	lastUsed  time.Time
}

// Allow reports whether one event for key may happen under r, and takes
// it. An unlimited r is always allowed and costs nothing.
func (l *Limiter) Allow(ctx context.Context, key string, r Rate) Result {
	if r.Unlimited() {
		return Result{Allowed: true}
	}
	b := l.bucket(key)
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.rate != r { // a new key, or its rate changed
		b.state = state{rate: r, leaseSize: 1}
	}
	b.lastUsed = now
	if now.Before(b.denyEnd) {
		return Result{Limit: r.Burst, RetryAfter: b.denyEnd.Sub(now), ResetAfter: b.resetEnd.Sub(now)}
	}
	if b.tokens > 0 && now.Before(b.leaseEnd) {
		b.tokens--
		return Result{Allowed: true, Limit: r.Burst, Remaining: b.remaining + b.tokens, ResetAfter: b.resetEnd.Sub(now)}
	}
	if l.redis == nil {
		return b.allowLocal(now)
	}
	res, ok := l.allowRedis(ctx, key, b, now)
	if !ok {
		waited := res.Waited
		res = b.allowLocal(now)
		res.Waited = waited
	}
	return res
}

// errCircuitOpen is what the log says when the limiter falls back without
// having asked Redis.
var errCircuitOpen = errors.New("circuit open: Redis failed recently (for this limiter or another user of the same Redis)")

// allowRedis leases tokens for b from Redis; ok is false when the event
// must be decided locally: the node's circuit is open, or Redis failed
// (the Result then holds only Waited).
func (l *Limiter) allowRedis(ctx context.Context, key string, b *bucket, now time.Time) (Result, bool) {
	// redis_rate's key; the breaker routes it as the call will go.
	rkey := "rate:" + l.prefix + key
	node := l.breaker.Route(ctx, rkey)
	if !l.breaker.Allow(node) {
		l.markDown(errCircuitOpen)
		return Result{}, false
	}
	r := b.rate
	// A lease spent before it expired asks for a larger one; one that
	// expired with tokens left, for a smaller one.
	if now.Before(b.leaseEnd) {
		b.leaseSize *= 2
	} else if b.tokens > 0 {
		b.leaseSize /= 2
	}
	most := int(math.Ceil(float64(r.Limit) * float64(l.lease) / float64(r.Period)))
	b.leaseSize = min(max(b.leaseSize, 1), max(most, 1), r.Burst)

	// Detached from the request: a caller that gives up must not make
	// the others waiting for this lease fall back to local limits.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.timeout)
	defer cancel()
	l.redisCalls.Add(1)
	res, err := l.redis.AllowAtMost(ctx, l.prefix+key, redis_rate.Limit{Rate: r.Limit, Burst: r.Burst, Period: r.Period}, b.leaseSize)
	// Since now, taken before the bucket's lock: waiting for another
	// request's call to the same key is waiting for Redis too.
	waited := time.Since(now)
	if redisconn.NodeFailed(err) {
		l.breaker.Done(node, rkey, err)
		l.markDown(err)
		return Result{Waited: waited}, false
	}
	l.breaker.Done(node, rkey, nil) // the node answered, even if with an error
	if err != nil {
		l.markDown(err)
		return Result{Waited: waited}, false
	}
	l.markUp()
	b.resetEnd = now.Add(max(res.ResetAfter, 0))
	b.tokens = 0
	if res.Allowed <= 0 {
		retry := max(res.RetryAfter, time.Millisecond)
		b.denyEnd = now.Add(retry)
		return Result{Limit: r.Burst, RetryAfter: retry, ResetAfter: b.resetEnd.Sub(now), Waited: waited}, true
	}
	b.tokens = res.Allowed - 1
	b.leaseEnd = now.Add(l.lease)
	b.remaining = res.Remaining
	return Result{Allowed: true, Limit: r.Burst, Remaining: b.remaining + b.tokens, ResetAfter: b.resetEnd.Sub(now), Waited: waited}, true
}

// allowLocal decides with this instance's own bucket for the key.
func (b *bucket) allowLocal(now time.Time) Result {
	r := b.rate
	if b.local == nil {
		b.local = rate.NewLimiter(rate.Every(r.interval()), r.Burst)
	}
	if b.local.AllowN(now, 1) {
		left := b.local.TokensAt(now)
		return Result{
			Allowed: true, Limit: r.Burst, Remaining: int(left),
			ResetAfter: time.Duration((float64(r.Burst) - left) * float64(r.interval())),
		}
	}
	missing := 1 - b.local.TokensAt(now)
	return Result{
		Limit:      r.Burst,
		RetryAfter: time.Duration(missing * float64(r.interval())),
		ResetAfter: time.Duration((float64(r.Burst) - 1 + missing) * float64(r.interval())),
	}
}

// markDown says, once per outage, that events are decided locally.
func (l *Limiter) markDown(err error) {
	if l.down.CompareAndSwap(false, true) {
		l.log.Warn("rate limit: Redis unavailable, limiting on this instance alone", "err", err)
		if l.metrics != nil {
			l.metrics.RateLimitRedis(false)
		}
	}
}

// markUp says, once per outage, that Redis decides again: when every
// node's circuit is closed, so that on a cluster with one master lost the
// keys of the others do not make it flap.
func (l *Limiter) markUp() {
	if !l.down.Load() || !l.breaker.Closed() {
		return
	}
	if l.down.CompareAndSwap(true, false) {
		l.log.Info("rate limit: Redis available again, limits are shared")
		if l.metrics != nil {
			l.metrics.RateLimitRedis(true)
		}
	}
}

// bucket returns key's bucket, made on first use.
func (l *Limiter) bucket(key string) *bucket {
	if b, ok := l.buckets.Load(key); ok {
		return b.(*bucket)
	}
	b, loaded := l.buckets.LoadOrStore(key, &bucket{})
	if !loaded && l.size.Add(1) > int64(l.maxKeys) {
		l.sweep()
	}
	return b.(*bucket)
}

// sweep drops idle keys, then any, until the map is back under its
// bound. A dropped key starts afresh locally; Redis keeps its count.
func (l *Limiter) sweep() {
	if !l.sweepMu.TryLock() {
		return
	}
	defer l.sweepMu.Unlock()
	idle := time.Now().Add(-time.Minute)
	for _, onlyIdle := range []bool{true, false} {
		l.buckets.Range(func(k, v any) bool {
			if l.size.Load() <= int64(l.maxKeys)*9/10 {
				return false
			}
			b := v.(*bucket)
			b.mu.Lock()
			drop := !onlyIdle || b.lastUsed.Before(idle)
			b.mu.Unlock()
			if drop {
				if _, ok := l.buckets.LoadAndDelete(k); ok {
					l.size.Add(-1)
				}
			}
			return true
		})
	}
}
