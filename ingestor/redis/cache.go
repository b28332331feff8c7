// Package redis writes stored orders to the Redis cache that the reader
// serves from: key <prefix>order:<order_uid>, value the order's canonical
// JSON, with a TTL. It deletes erased orders, and publishes what each batch
// changed on the readers' channel (model.EventsChannel, one model.Events
// JSON message per batch). The cache is an optimisation: its failures are
// reported to the caller, who logs and counts them, and never stop
// ingestion (except an erasure's, which the caller retries).
//
// Redis is one server or a Redis Cluster (shared/redisconn: the URL says
// which). Every command names one key, so that a cluster client sends each
// to the master serving its slot; a batch's SETs (and DELs) are one
// pipeline, which a cluster client splits by node. A circuit breaker per
// node (redisconn.Breaker) skips, for a growing pause, the node whose SETs
// failed: with one master of a cluster down, every batch still caches the
// orders of the other masters without waiting for the lost one. Events are
// published on whichever master go-redis picks (it moves to the next one
// when a master fails): a cluster relays every message to every node's
// subscribers.
package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/orderservice/orders/ingestor/ingest"
	"github.com/orderservice/orders/shared/model"
	"github.com/orderservice/orders/shared/redisconn"
)

// errSkipped is the error of the entries left out because their node's
// circuit is open.
var errSkipped = errors.New("skipped: its Redis node failed moments ago")

// Cache is the ingest pipeline's Cache: it sets orders in Redis with one
// pipeline per batch.
type Cache struct {
	client  goredis.UniversalClient
	breaker *redisconn.Breaker
	prefix  string
	ttl     time.Duration
	timeout time.Duration
}

var _ ingest.Cache = (*Cache)(nil)

// NewClient returns the client of url (one server, or a cluster when url
// names several nodes: see redisconn) whose every operation (dial,
// handshake, pipeline) is bounded by timeout and that does not retry on
// its own: a cache write that fails is counted, and the order's next write
// refreshes it anyway.
func NewClient(url string, timeout time.Duration) (goredis.UniversalClient, error) {
	c, err := redisconn.Open(url, redisconn.Options{Timeout: timeout})
	if err != nil {
		return nil, fmt.Errorf("parse REDIS_URL: %w", err) // redisconn never echoes the URL
	}
	return c, nil
}

// New returns a Cache writing keys <prefix>order:<uid> with the given TTL,
// each pipeline bounded by timeout.
func New(client goredis.UniversalClient, prefix string, ttl, timeout time.Duration) *Cache {
	return &Cache{client: client, breaker: redisconn.NewBreaker(client, redisconn.BreakerPolicy, nil),
		prefix: prefix, ttl: ttl, timeout: timeout}
}

// Key returns the cache key of an order.
func (c *Cache) Key(uid string) string { return model.CacheKey(c.prefix, uid) }

// Delete removes the cached copies of orders: one DEL per key, pipelined,
// so that on a cluster each goes to its key's master (a DEL of several
// keys is refused across slots). No circuit skips a node here: the caller
// retries an erasure until every copy is gone.
func (c *Cache) Delete(ctx context.Context, uids []string) error {
	if len(uids) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	cmds, err := c.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for _, uid := range uids {
			p.Del(ctx, c.Key(uid))
		}
		return nil
	})
	if err != nil {
		failed := 0
		for _, cmd := range cmds {
			if cmd.Err() != nil {
				failed++
			}
		}
		return fmt.Errorf("delete %d of %d cached orders: %w", failed, len(uids), err)
	}
	return nil
}

// Channel is the channel Announce publishes on.
func (c *Cache) Channel() string { return model.EventsChannel(c.prefix) }

// Announce publishes what a batch changed as one model.Events message.
// Whether any reader listens makes no difference: pub/sub keeps nothing.
func (c *Cache) Announce(ctx context.Context, ch ingest.Changes) error {
	msg, err := json.Marshal(model.Events{Stored: ch.Stored, Erased: ch.Erased})
	if err != nil {
		return fmt.Errorf("encode events: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if err := c.client.Publish(ctx, c.Channel(), msg).Err(); err != nil {
		return fmt.Errorf("publish events: %w", err)
	}
	return nil
}

// Set writes every entry in one pipeline, except those of nodes whose
// circuit is open. It returns how many entries were not written (failed or
// skipped) and the first error.
func (c *Cache) Set(ctx context.Context, entries []ingest.CacheEntry) (failed int, err error) {
	if len(entries) == 0 {
		return 0, nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	type sent struct {
		key, node string
		cmd       *goredis.StatusCmd
	}
	var first error
	pipe := c.client.Pipeline()
	cmds := make([]sent, 0, len(entries))
	for _, e := range entries {
		key := c.Key(e.UID)
		node := c.breaker.Route(ctx, key)
		if !c.breaker.Allow(node) {
			failed++
			if first == nil {
				first = errSkipped
			}
			continue
		}
		cmds = append(cmds, sent{key, node, pipe.Set(ctx, key, e.Canonical, c.ttl)})
	}
	if len(cmds) > 0 {
		_, _ = pipe.Exec(ctx)
	}
	outcome := map[string]sent{}
	for _, s := range cmds {
		if err := s.cmd.Err(); err != nil {
			failed++
			if first == nil || errors.Is(first, errSkipped) {
				first = err
			}
		}
		if prev, seen := outcome[s.node]; !seen || prev.cmd.Err() == nil {
			outcome[s.node] = s
		}
	}
	for node, s := range outcome {
		if err := s.cmd.Err(); err != nil && errors.Is(context.Cause(ctx), context.Canceled) {
			c.breaker.Release(node) // the caller gave up: nothing learnt about the node
		} else {
			c.breaker.Done(node, s.key, err)
		}
	}
	if failed == 0 {
		return 0, nil
	}
	return failed, fmt.Errorf("cache %d of %d orders: %w", failed, len(entries), first)
}
