// Package redis is the reader's shared cache tier: the orders the ingestor
// (and the reader itself) stored under <prefix>order:<order_uid>, on one
// Redis server or a Redis Cluster (shared/redisconn: the URL says which).
//
// Redis is only a cache, so an outage must cost neither errors nor latency.
// A circuit breaker per node (redisconn.Breaker) skips a node after a
// failure for a growing pause (100 ms doubling to 5 s); after the pause one
// command probes it, and the first success closes the circuit again, so the
// node is used again without a restart. On a cluster with a master down,
// the keys of the other masters are still served from Redis, and those of
// the lost master come from PostgreSQL until a replica takes its slots.
//
// Every command names one key, so that each goes to the master serving its
// slot; batches of them are pipelines, which a cluster client splits by
// node (an MGET over keys of different slots is an error on a cluster).
package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/orderservice/orders/reader/batch"
	"github.com/orderservice/orders/reader/cache"
	"github.com/orderservice/orders/shared/model"
	"github.com/orderservice/orders/shared/redisconn"
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

// Options configure a Cache.
type Options struct {
	// URL is one server's (redis://host:6379/0, rediss://, unix://) or a
	// cluster's, naming several nodes (redis://h1:7001?addr=h2:7002).
	URL     string
	Prefix  string        // key prefix; the key of an order is model.CacheKey(Prefix, uid)
	TTL     time.Duration // expiry of the entries the reader writes
	Timeout time.Duration // limit of one command
	Logger  *slog.Logger
	Up      prometheus.Gauge // 1 while every node's circuit is closed, else 0; may be nil
}

// Cache reads and writes orders in Redis behind a circuit breaker per node.
type Cache struct {
	client  goredis.UniversalClient
	breaker *redisconn.Breaker
	prefix  string
	ttl     time.Duration
	timeout time.Duration
	log     *slog.Logger
	up      prometheus.Gauge

	gets      chan getRequest
	stop      chan struct{}
	stopped   chan struct{}
	closeOnce sync.Once
}

// New creates the client. It does not connect until first use.
func New(o Options) (*Cache, error) {
	// A cache that retries or waits is worse than no cache: fail fast and
	// let the database answer.
	client, err := redisconn.Open(o.URL, redisconn.Options{Timeout: o.Timeout, DialTimeout: max(o.Timeout, 250*time.Millisecond)})
	if err != nil {
		return nil, fmt.Errorf("parse REDIS_URL: %w", err)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Cache{
		client: client, prefix: o.Prefix, ttl: o.TTL, timeout: o.Timeout, log: o.Logger, up: o.Up,
		gets: make(chan getRequest, getQueue), stop: make(chan struct{}), stopped: make(chan struct{}),
	}
	c.breaker = redisconn.NewBreaker(client, redisconn.BreakerPolicy, c.changed)
	go c.batchGets()
	return c, nil
}

// Client is the go-redis client of the cache (one server's, or a
// cluster's), for the reader's other uses of the same Redis (the shared
// rate limits): one pool, with the cache's fail-fast settings (no retries,
// every command bounded by its context and the timeout). Its other users
// should share the cache's Breaker too.
func (c *Cache) Client() goredis.UniversalClient { return c.client }

// Breaker is the circuit breaker of Client's nodes, for Client's other
// users: a node any of them found failing is skipped by all, so that a
// request that meets Redis twice (its rate limit, then its order) waits
// for a failed node at most once.
func (c *Cache) Breaker() *redisconn.Breaker { return c.breaker }

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
	node  string         // the node the key's slot is on, as routed by the breaker
	reply chan getResult // buffered: the batcher never blocks on a reply
}

// batchGets sends the GETs waiting at the moment (up to getBatch) in one
// pipelined round trip (on a cluster, one per node, in parallel). A lone GET
// goes out at once, as without batching; under a burst of misses many
// share one write and one read, which on a loaded machine costs far less
// than a round trip each.
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
		if len(pending) == 1 {
			cmds = append(cmds, c.client.Get(ctx, pending[0].key))
		} else {
			_, _ = c.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
				for _, r := range pending {
					cmds = append(cmds, p.Get(ctx, r.key))
				}
				return nil
			})
		}
		outcome := map[string]error{}
		for i, r := range pending {
			err := cmds[i].Err()
			if errors.Is(err, goredis.Nil) {
				err = nil // a miss is an answer
			}
			if prev, seen := outcome[r.node]; !seen || prev == nil {
				outcome[r.node] = err
			}
		}
		for node, err := range outcome {
			c.done(ctx, node, keyOn(pending, node), err)
		}
		cancel()
		for i, r := range pending {
			b, err := cmds[i].Bytes()
			r.reply <- getResult{b, err}
		}
	}
}

// keyOn returns the key of the first request routed to node.
func keyOn(pending []getRequest, node string) string {
	for _, r := range pending {
		if r.node == node {
			return r.key
		}
	}
	return ""
}

// Key is the Redis key of an order.
func (c *Cache) Key(uid string) string { return model.CacheKey(c.prefix, uid) }

// Get returns the cached JSON of an order: cache.ErrMiss when Redis does not
// hold it, cache.ErrSkipped while the circuit of the node holding it is
// open (or the queue is full, or the request has waited a whole timeout
// for Redis already), another error when Redis failed or did not answer
// within what is left of the request's timeout (redisconn.Remaining).
func (c *Cache) Get(ctx context.Context, uid string) ([]byte, error) {
	// What the request's rate limit waited for Redis is taken off: a
	// request waits for Redis one timeout at most in all.
	limit := redisconn.Remaining(ctx, c.timeout)
	if limit <= 0 {
		return nil, errSkipped
	}
	key := c.Key(uid)
	node := c.breaker.Route(ctx, key)
	if !c.breaker.Allow(node) {
		return nil, errSkipped
	}
	req := getRequest{key: key, node: node, reply: make(chan getResult, 1)}
	select {
	case c.gets <- req:
	default:
		// The queue is full: Redis cannot keep up; skip it this time.
		c.breaker.Release(node)
		return nil, errSkipped
	}
	// The batch goes on with the command's own timeout and tells the
	// breaker how the node did; a request with less left stops waiting.
	var budget <-chan time.Time
	if limit < c.timeout {
		t := time.NewTimer(limit)
		defer t.Stop()
		budget = t.C
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
	case <-budget:
		return nil, fmt.Errorf("redis get %q: no answer within the %v left of the request's Redis timeout: %w", uid, limit, context.DeadlineExceeded)
	case <-ctx.Done():
		return nil, fmt.Errorf("redis get %q: %w", uid, context.Cause(ctx))
	}
}

// SetMany stores orders with the configured TTL in one pipelined round
// trip (the warm-up, and the orders the reader loaded from the database).
// SET NX keeps the value the ingestor wrote when there is one: both are the
// canonical encoding, so there is nothing to overwrite. The orders of
// nodes whose circuit is open are left out; the error then wraps
// cache.ErrSkipped, or the first failure when some node failed.
func (c *Cache) SetMany(ctx context.Context, entries []cache.Entry) error {
	if len(entries) == 0 {
		return nil
	}
	keys := make([]string, len(entries))
	for i, e := range entries {
		keys[i] = c.Key(e.UID)
	}
	// A pipeline of many commands may take longer than one command.
	ctx, cancel := context.WithTimeout(ctx, c.timeout*10)
	defer cancel()
	skipped, failed, err := c.pipeline(ctx, keys, func(p goredis.Pipeliner, i int) goredis.Cmder {
		return p.SetNX(ctx, keys[i], entries[i].JSON, c.ttl)
	})
	switch {
	case failed > 0:
		return fmt.Errorf("redis pipeline: %d of %d orders failed (%d skipped): %w", failed, len(entries), skipped, err)
	case skipped > 0:
		return fmt.Errorf("%d of %d orders: %w", skipped, len(entries), errSkipped)
	}
	return nil
}

// pipeline sends one command per key (queue makes the command of keys[i])
// in one pipeline, leaving out the keys of nodes whose circuit is open,
// and records each node's outcome. It returns how many keys were skipped
// and how many failed, with the first failure.
func (c *Cache) pipeline(ctx context.Context, keys []string, queue func(p goredis.Pipeliner, i int) goredis.Cmder) (skipped, failed int, first error) {
	type sent struct {
		node string
		cmd  goredis.Cmder
	}
	nodes := make([]string, len(keys))
	allowed := make([]int, 0, len(keys))
	for i, key := range keys {
		nodes[i] = c.breaker.Route(ctx, key)
		if c.breaker.Allow(nodes[i]) {
			allowed = append(allowed, i)
		}
	}
	skipped = len(keys) - len(allowed)
	if len(allowed) == 0 {
		return skipped, 0, nil
	}
	cmds := make([]sent, len(allowed))
	_, _ = c.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for j, i := range allowed {
			cmds[j] = sent{nodes[i], queue(p, i)}
		}
		return nil
	})
	outcome := map[string]error{}
	keyOf := map[string]string{}
	for j, s := range cmds {
		err := s.cmd.Err()
		if errors.Is(err, goredis.Nil) {
			err = nil // SET NX of a key already set: an answer
		}
		if err != nil {
			failed++
			if first == nil {
				first = err
			}
		}
		if prev, seen := outcome[s.node]; !seen || prev == nil {
			outcome[s.node], keyOf[s.node] = err, keys[allowed[j]]
		}
	}
	for node, err := range outcome {
		c.done(ctx, node, keyOf[node], err)
	}
	return skipped, failed, first
}

// Delete removes orders (erased ones): one DEL per key, pipelined, so
// that on a cluster each goes to its key's master (a DEL of several keys
// is refused across slots). The keys of nodes whose circuit is open are
// left; the error then wraps cache.ErrSkipped, or the first failure.
func (c *Cache) Delete(ctx context.Context, uids []string) error {
	if len(uids) == 0 {
		return nil
	}
	keys := make([]string, len(uids))
	for i, uid := range uids {
		keys[i] = c.Key(uid)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	skipped, failed, err := c.pipeline(ctx, keys, func(p goredis.Pipeliner, i int) goredis.Cmder {
		return p.Del(ctx, keys[i])
	})
	switch {
	case failed > 0:
		return fmt.Errorf("redis delete: %d of %d orders failed (%d skipped): %w", failed, len(keys), skipped, err)
	case skipped > 0:
		return fmt.Errorf("redis delete: %d of %d orders: %w", skipped, len(keys), errSkipped)
	}
	return nil
}

// Up reports whether every node's circuit is closed.
func (c *Cache) Up() bool { return c.breaker.Closed() }

// done records the outcome of the commands sent to node. A caller that
// gave up (its own context ended, not the command's timeout) says nothing
// about Redis.
func (c *Cache) done(ctx context.Context, node, key string, err error) {
	if err != nil && errors.Is(context.Cause(ctx), context.Canceled) {
		c.breaker.Release(node)
		return
	}
	c.breaker.Done(node, key, err)
}

// changed logs a circuit opening or closing and sets the Up gauge.
func (c *Cache) changed(ch redisconn.Change) {
	switch {
	case ch.Open:
		c.setUp(0)
		c.log.Warn("redis failed: skipping the keys of this node", "node", ch.Node, "pause", ch.Pause, "err", ch.Err)
	case ch.AllClosed:
		c.setUp(1)
		c.log.Info("redis is back: cache tier in use again", "node", ch.Node)
	default:
		c.log.Info("redis node is back; others still skipped", "node", ch.Node)
	}
}

func (c *Cache) setUp(v float64) {
	if c.up != nil {
		c.up.Set(v)
	}
}
