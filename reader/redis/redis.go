// Package redis is the reader's shared cache tier: the orders the ingestor
// (and the reader itself) stored under <prefix>order:<order_uid>.
//
// Redis is only a cache, so an outage must cost neither errors nor latency.
// A circuit breaker skips Redis after a failure for a growing pause (100 ms
// doubling to 5 s); after the pause one command probes it, and the first
// success closes the circuit again, so Redis is used again without a restart.
package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/orderservice/orders/reader/batch"
	"github.com/orderservice/orders/reader/cache"
	"github.com/orderservice/orders/shared/model"
	"github.com/orderservice/orders/shared/retry"
	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"
)

// Cache is the cache's shared tier.
var _ cache.Remote = (*Cache)(nil)

// The cache's sentinels as this tier returns them: a goredis.Nil reply is
// translated to errMiss here, at the border, so that the cache never sees
// a go-redis error value.
var (
	errMiss    = fmt.Errorf("redis: %w", cache.ErrMiss)
	errSkipped = fmt.Errorf("redis: %w", cache.ErrSkipped)
)

// breaker is the circuit's pause after each failure in a row: 100 ms
// doubling to 5 s, without jitter: while the circuit is open a reader sends
// one probe per pause, too few to need spreading.
var breaker = retry.Policy{Initial: 100 * time.Millisecond, Max: 5 * time.Second}

// Options configure a Cache.
type Options struct {
	URL     string
	Prefix  string        // key prefix; the key of an order is model.CacheKey(Prefix, uid)
	TTL     time.Duration // expiry of the entries the reader writes
	Timeout time.Duration // limit of one command
	Logger  *slog.Logger
	Up      prometheus.Gauge // set to 1/0 as the circuit closes/opens; may be nil
}

// Cache reads and writes orders in Redis behind a circuit breaker.
type Cache struct {
	client  *goredis.Client
	prefix  string
	ttl     time.Duration
	timeout time.Duration
	log     *slog.Logger
	up      prometheus.Gauge

	gets      chan getRequest
	stop      chan struct{}
	stopped   chan struct{}
	closeOnce sync.Once

	mu        sync.Mutex
	openUntil time.Time                   // zero while closed
	pauses    *backoff.ExponentialBackOff // the next pause while open
	probing   bool
}

// New creates the client. It does not connect until first use.
func New(o Options) (*Cache, error) {
	opt, err := goredis.ParseURL(o.URL)
	if err != nil {
		return nil, fmt.Errorf("parse REDIS_URL: %w", err)
	}
	// A cache that retries or waits is worse than no cache: fail fast and
	// let the database answer.
	opt.MaxRetries = -1
	opt.DialTimeout = max(o.Timeout, 250*time.Millisecond)
	opt.ReadTimeout = o.Timeout
	opt.WriteTimeout = o.Timeout
	opt.PoolTimeout = o.Timeout
	opt.ContextTimeoutEnabled = true
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Cache{
		client: goredis.NewClient(opt), prefix: o.Prefix, ttl: o.TTL, timeout: o.Timeout,
		log: o.Logger, up: o.Up, pauses: breaker.BackOff(),
		gets: make(chan getRequest, getQueue), stop: make(chan struct{}), stopped: make(chan struct{}),
	}
	go c.batchGets()
	return c, nil
}

// Client is the go-redis client of the cache, for the reader's other
// uses of the same Redis (the shared rate limits): one pool, with the
// cache's fail-fast settings (no retries, every command bounded by its
// context and the timeout).
func (c *Cache) Client() *goredis.Client { return c.client }

// Close stops the batching goroutine and closes the client's connections.
func (c *Cache) Close() error {
	c.closeOnce.Do(func() { close(c.stop) })
	<-c.stopped
	return c.client.Close()
}

const (
	getQueue = 1024
	getBatch = 128
)

type getResult struct {
	body []byte
	err  error
}

type getRequest struct {
	key   string
	reply chan getResult // buffered: the batcher never blocks on a reply
}

// batchGets sends the GETs waiting at the moment (up to getBatch) in one
// pipelined round trip. A lone GET goes out at once, as without batching;
// under a burst of misses many share one write and one read, which on a
// loaded machine costs far less than a round trip each.
func (c *Cache) batchGets() {
	defer close(c.stopped)
	pending := make([]getRequest, 0, getBatch)
	cmds := make([]*goredis.StringCmd, 0, getBatch)
	for {
		var ok bool
		if pending, ok = batch.Next(c.stop, c.gets, pending, getBatch); !ok {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
		cmds = cmds[:0]
		var err error
		if len(pending) == 1 {
			cmd := c.client.Get(ctx, pending[0].key)
			cmds = append(cmds, cmd)
			err = cmd.Err()
		} else {
			_, err = c.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
				for _, r := range pending {
					cmds = append(cmds, p.Get(ctx, r.key))
				}
				return nil
			})
		}
		if errors.Is(err, goredis.Nil) {
			err = nil // a miss is an answer
		}
		c.done(ctx, err)
		cancel()
		for i, r := range pending {
			b, err := cmds[i].Bytes()
			r.reply <- getResult{b, err}
		}
	}
}

// Key is the Redis key of an order.
func (c *Cache) Key(uid string) string { return model.CacheKey(c.prefix, uid) }

// Get returns the cached JSON of an order: cache.ErrMiss when Redis does not
// hold it, cache.ErrSkipped while the circuit is open (or the queue is
// full), another error when Redis failed.
func (c *Cache) Get(ctx context.Context, uid string) ([]byte, error) {
	if !c.allow() {
		return nil, errSkipped
	}
	req := getRequest{key: c.Key(uid), reply: make(chan getResult, 1)}
	select {
	case c.gets <- req:
	default:
		// The queue is full: Redis cannot keep up; skip it this time.
		return nil, errSkipped
	}
	select {
	case r := <-req.reply:
		if errors.Is(r.err, goredis.Nil) {
			return nil, errMiss
		}
		if r.err != nil {
			return nil, fmt.Errorf("redis get %q: %w", uid, r.err)
		}
		return r.body, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("redis get %q: %w", uid, context.Cause(ctx))
	}
}

// SetMany stores orders with the configured TTL in one pipelined round
// trip (the warm-up, and the orders the reader loaded from the database).
// SET NX keeps the value the ingestor wrote when there is one: both are the
// canonical encoding, so there is nothing to overwrite.
func (c *Cache) SetMany(ctx context.Context, entries []cache.Entry) error {
	if len(entries) == 0 {
		return nil
	}
	if !c.allow() {
		return errSkipped
	}
	// A pipeline of many commands may take longer than one command.
	ctx, cancel := context.WithTimeout(ctx, c.timeout*10)
	defer cancel()
	_, err := c.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for _, e := range entries {
			p.SetNX(ctx, c.Key(e.UID), e.JSON, c.ttl)
		}
		return nil
	})
	c.done(ctx, err)
	if err != nil {
		return fmt.Errorf("redis pipeline of %d orders: %w", len(entries), err)
	}
	return nil
}

// Delete removes orders (erased ones) in one command.
func (c *Cache) Delete(ctx context.Context, uids []string) error {
	if len(uids) == 0 {
		return nil
	}
	if !c.allow() {
		return errSkipped
	}
	keys := make([]string, len(uids))
	for i, uid := range uids {
		keys[i] = c.Key(uid)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	err := c.client.Del(ctx, keys...).Err()
	c.done(ctx, err)
	if err != nil {
		return fmt.Errorf("redis delete of %d orders: %w", len(keys), err)
	}
	return nil
}

// Up reports whether the circuit is closed.
func (c *Cache) Up() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.openUntil.IsZero()
}

// allow reports whether a command may go to Redis: always while the circuit
// is closed; once per pause while it is open (the probe).
func (c *Cache) allow() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.openUntil.IsZero() {
		return true
	}
	if c.probing || time.Now().Before(c.openUntil) {
		return false
	}
	c.probing = true
	return true
}

// done records a command's outcome. A caller that gave up (its own context
// ended, not the command's timeout) says nothing about Redis.
func (c *Cache) done(ctx context.Context, err error) {
	if err != nil && errors.Is(context.Cause(ctx), context.Canceled) {
		c.mu.Lock()
		c.probing = false
		c.mu.Unlock()
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.probing = false
	if err == nil {
		if !c.openUntil.IsZero() {
			c.openUntil = time.Time{}
			c.pauses.Reset()
			c.setUp(1)
			c.log.Info("redis is back: cache tier in use again")
		}
		return
	}
	pause := c.pauses.NextBackOff()
	if c.openUntil.IsZero() {
		c.setUp(0)
		c.log.Warn("redis failed: skipping the cache tier", "pause", pause, "err", err)
	}
	c.openUntil = time.Now().Add(pause)
}

func (c *Cache) setUp(v float64) {
	if c.up != nil {
		c.up.Set(v)
	}
}
