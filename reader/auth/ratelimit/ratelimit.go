// Package ratelimit limits events per key across every instance of a
// service through Redis (GCRA, github.com/go-redis/redis_rate), and
// locally (golang.org/x/time/rate) while Redis is unreachable or slow.
//
// A Redis round trip per event would cost more than the request it
// guards, so each instance leases tokens: when its lease of a key runs
// out it takes up to n tokens at once (AllowAtMost) and spends them
// locally for at most the lease time (100 ms). n starts at 1 and grows
// while leases run out before they expire (to at least twice as many, or
// what the key spent per lease time), up to the tokens the rate refills
// in one lease time (and at most the burst); it halves when a lease
// expires unused. A busy key (leases of two tokens or more) fetches its
// next lease in the background once half of the current one is spent,
// sized to what it spends, so that its events do not queue behind a
// Redis round trip each time a lease runs out. A busy key so costs about
// one Redis call per lease time per instance, a quiet one a call per
// event, and the global limit holds, less the unused tokens of expired
// leases (which only make it stricter); a lease fetched ahead starts its
// lease time when it takes over, so a token is spent within two lease
// times of when Redis counted it. A denial is remembered until its
// Retry-After, so a client hammering past its limit costs no Redis call
// either.
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
	// gen counts the resets of state, so that a lease fetched ahead for
	// an earlier rate is dropped.
	gen uint64
	// fetching is closed when the lease being fetched ahead arrives (or
	// fails); nil when none is.
	fetching chan struct{}
}

type state struct {
	rate      Rate
	cur, next lease // being spent; fetched ahead of cur's end
	leaseSize int
	remaining int // Redis's count after the last lease
	resetEnd  time.Time
	denyEnd   time.Time // denied until then, known without asking Redis
	// noAheadUntil stops fetching ahead after Redis refused a lease
	// fetched ahead: the key is at its limit, and asking again for each
	// of cur's last tokens would cost a call per event.
	noAheadUntil time.Time
	local        *rate.Limiter
	lastUsed     time.Time
}

// lease is tokens taken from Redis at once, spent locally until end.
type lease struct {
	tokens int // not yet spent
	got    int // granted
	at     time.Time
	end    time.Time
}

// take spends one token of l if it has one before its end.
func (l *lease) take(now time.Time) bool {
	if l.tokens > 0 && now.Before(l.end) {
		l.tokens--
		return true
	}
	return false
}

// Allow reports whether one event for key may happen under r, and takes
// it. An unlimited r is always allowed and costs nothing.
func (l *Limiter) Allow(ctx context.Context, key string, r Rate) Result {
	if r.Unlimited() {
		return Result{Allowed: true}
	}
	b := l.bucket(key)
	start := time.Now()
	// The lock is usually free, and the event's time is then start; one
	// that waited for it (behind another event's Redis call) reads the
	// clock again.
	contended := !b.mu.TryLock()
	if contended {
		b.mu.Lock()
	}
	defer b.mu.Unlock()
	for waited := false; ; waited = true {
		if b.rate != r { // a new key, or its rate changed
			b.state = state{rate: r, leaseSize: 1}
			b.gen++
		}
		now := start
		if contended || waited {
			now = time.Now()
		}
		b.lastUsed = now
		var wait time.Duration // for Redis, as Result.Waited
		if waited {
			wait = now.Sub(start)
		}
		if now.Before(b.denyEnd) {
			return Result{Limit: r.Burst, RetryAfter: b.denyEnd.Sub(now), ResetAfter: b.resetEnd.Sub(now), Waited: wait}
		}
		if b.spend(now, l.lease) {
			if l.redis != nil {
				l.fetchAhead(b, key, now)
			}
			return Result{Allowed: true, Limit: r.Burst, Remaining: b.remaining + b.cur.tokens + b.next.tokens, ResetAfter: b.resetEnd.Sub(now), Waited: wait}
		}
		if l.redis == nil {
			return b.allowLocal(now)
		}
		// The lease fetched ahead is on its way: wait for it rather than
		// ask for another (its call is bounded by the limiter's timeout).
		if ch := b.fetching; ch != nil && !waited {
			b.mu.Unlock()
			<-ch
			b.mu.Lock()
			continue
		}
		res, ok := l.allowRedis(ctx, key, b, start, now)
		if !ok {
			waited := res.Waited
			res = b.allowLocal(now)
			res.Waited = waited
		}
		return res
	}
}

// spend takes one leased token: of the current lease, or of the one
// fetched ahead once the current one is spent or over.
func (b *bucket) spend(now time.Time, leaseTime time.Duration) bool {
	if b.cur.take(now) {
		return true
	}
	if b.next.tokens > 0 && now.Before(b.next.end) {
		// A lease fetched ahead was fetched to be spent after the
		// current one: its lease time starts when it takes over, but
		// its tokens are spent within two lease times of their grant.
		b.cur, b.next = b.next, lease{}
		b.cur.at = now
		if end := now.Add(leaseTime); end.Before(b.cur.end) {
			b.cur.end = end
		}
		return b.cur.take(now)
	}
	return false
}

// errCircuitOpen is what the log says when the limiter falls back without
// having asked Redis.
var errCircuitOpen = errors.New("circuit open: Redis failed recently (for this limiter or another user of the same Redis)")

// leaseFor sets b.leaseSize for a lease asked for now, when the current
// one is spent or over. A lease spent before its end asks for at least
// twice as many tokens, and for what the key spent in a lease time at the
// rate it spent them, so that a busy key reaches its size in a call or
// two; one that ended with tokens left, for half as many.
func (l *Limiter) leaseFor(b *bucket, now time.Time) int {
	c := b.cur
	switch {
	case c.got > 0 && now.Before(c.end):
		b.leaseSize = max(b.leaseSize*2, l.demand(c, now))
	case c.tokens > 0:
		b.leaseSize /= 2
	}
	b.leaseSize = l.clamp(b.rate, b.leaseSize)
	return b.leaseSize
}

// demand is how many tokens the key spends in a lease time, at the rate
// it spent c's so far.
func (l *Limiter) demand(c lease, now time.Time) int {
	took := now.Sub(c.at)
	if took <= 0 {
		return 1
	}
	return int(math.Ceil(float64(c.got-c.tokens) * float64(l.lease) / float64(took)))
}

// clamp bounds a lease to what r refills in one lease time, and to the
// burst.
func (l *Limiter) clamp(r Rate, n int) int {
	most := int(math.Ceil(float64(r.Limit) * float64(l.lease) / float64(r.Period)))
	return min(max(n, 1), max(most, 1), r.Burst)
}

// fetchAhead starts fetching the next lease of a busy key in the
// background once half of the current one is spent, so that its events
// do not wait for Redis when the current lease runs out: without it,
// every lease's renewal holds the key's lock for a Redis round trip, and
// every request of the key queues behind it. A quiet key (leases of one
// token) never fetches ahead, which would only let tokens expire unused.
func (l *Limiter) fetchAhead(b *bucket, key string, now time.Time) {
	c := b.cur
	if b.fetching != nil || b.next.tokens > 0 || c.got < 2 || c.tokens*2 > c.got || now.Before(b.noAheadUntil) {
		return
	}
	rkey := "rate:" + l.prefix + key
	node := l.breaker.Route(context.Background(), rkey)
	if !l.breaker.Allow(node) {
		return
	}
	// What the key spends in a lease time: the next lease is spent from
	// when this one runs out, at about the same pace.
	size := l.clamp(b.rate, max(l.demand(c, now), 2))
	done := make(chan struct{})
	b.fetching = done
	gen, r := b.gen, b.rate
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
		defer cancel()
		at := time.Now()
		l.redisCalls.Add(1)
		res, err := l.redis.AllowAtMost(ctx, l.prefix+key, limit(r), size)
		if redisconn.NodeFailed(err) {
			l.breaker.Done(node, rkey, err)
		} else {
			l.breaker.Done(node, rkey, nil)
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		b.fetching = nil
		// A failure is met again, and handled, by the call made when
		// the current lease runs out.
		if err != nil || b.gen != gen {
			return
		}
		l.markUp()
		b.resetEnd = at.Add(max(res.ResetAfter, 0))
		if res.Allowed <= 0 {
			b.noAheadUntil = at.Add(max(res.RetryAfter, time.Millisecond))
			return
		}
		b.leaseSize = size
		// Its lease time starts when it takes over (see spend).
		b.next = lease{tokens: res.Allowed, got: res.Allowed, at: at, end: at.Add(2 * l.lease)}
		b.remaining = res.Remaining
	}()
}

// limit is r as redis_rate takes it.
func limit(r Rate) redis_rate.Limit {
	return redis_rate.Limit{Rate: r.Limit, Burst: r.Burst, Period: r.Period}
}

// allowRedis leases tokens for b from Redis; ok is false when the event
// must be decided locally: the node's circuit is open, or Redis failed
// (the Result then holds only Waited). start is when the event came, now
// when it got the bucket's lock.
func (l *Limiter) allowRedis(ctx context.Context, key string, b *bucket, start, now time.Time) (Result, bool) {
	// redis_rate's key; the breaker routes it as the call will go.
	rkey := "rate:" + l.prefix + key
	node := l.breaker.Route(ctx, rkey)
	if !l.breaker.Allow(node) {
		l.markDown(errCircuitOpen)
		return Result{}, false
	}
	r := b.rate
	size := l.leaseFor(b, now)

	// Detached from the request: a caller that gives up must not make
	// the others waiting for this lease fall back to local limits.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.timeout)
	defer cancel()
	l.redisCalls.Add(1)
	res, err := l.redis.AllowAtMost(ctx, l.prefix+key, limit(r), size)
	// Since start, taken before the bucket's lock: waiting for another
	// request's call to the same key is waiting for Redis too.
	waited := time.Since(start)
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
	b.cur, b.next = lease{}, lease{}
	if res.Allowed <= 0 {
		retry := max(res.RetryAfter, time.Millisecond)
		b.denyEnd = now.Add(retry)
		return Result{Limit: r.Burst, RetryAfter: retry, ResetAfter: b.resetEnd.Sub(now), Waited: waited}, true
	}
	b.cur = lease{tokens: res.Allowed - 1, got: res.Allowed, at: now, end: now.Add(l.lease)}
	b.remaining = res.Remaining
	return Result{Allowed: true, Limit: r.Burst, Remaining: b.remaining + b.cur.tokens, ResetAfter: b.resetEnd.Sub(now), Waited: waited}, true
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
