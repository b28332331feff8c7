// Package redis writes stored orders to the Redis cache that the reader
// serves from: key <prefix>order:<order_uid>, value the order's canonical
// JSON, with a TTL. It deletes erased orders, and publishes what each batch
// changed on the readers' channel (model.EventsChannel, one model.Events
// JSON message per batch). The cache is an optimisation: its failures are
// reported to the caller, who logs and counts them, and never stop
// ingestion (except an erasure's, which the caller retries).
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
)

// Cache is the ingest pipeline's Cache: it sets orders in Redis with one
// pipeline per batch.
type Cache struct {
	client  *goredis.Client
	prefix  string
	ttl     time.Duration
	timeout time.Duration
}

var _ ingest.Cache = (*Cache)(nil)

// NewClient parses url (redis:// or rediss://) and returns a client whose
// every operation (dial, handshake, pipeline) is bounded by timeout and
// that does not retry on its own: a cache write that fails is counted, and
// the order's next write refreshes it anyway.
func NewClient(url string, timeout time.Duration) (*goredis.Client, error) {
	opts, err := goredis.ParseURL(url)
	if err != nil {
		return nil, errors.New("parse REDIS_URL: invalid Redis URL") // never echo a password
	}
	opts.MaxRetries = -1
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = timeout, timeout, timeout
	opts.PoolTimeout = timeout
	// Without this go-redis ignores the context's deadline on the socket.
	opts.ContextTimeoutEnabled = true
	return goredis.NewClient(opts), nil
}

// New returns a Cache writing keys <prefix>order:<uid> with the given TTL,
// each pipeline bounded by timeout.
func New(client *goredis.Client, prefix string, ttl, timeout time.Duration) *Cache {
	return &Cache{client: client, prefix: prefix, ttl: ttl, timeout: timeout}
}

// Key returns the cache key of an order.
func (c *Cache) Key(uid string) string { return model.CacheKey(c.prefix, uid) }

// Delete removes the cached copies of orders, in one command.
func (c *Cache) Delete(ctx context.Context, uids []string) error {
	if len(uids) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	keys := make([]string, len(uids))
	for i, uid := range uids {
		keys[i] = c.Key(uid)
	}
	if err := c.client.Del(ctx, keys...).Err(); err != nil {
		return fmt.Errorf("delete %d cached orders: %w", len(keys), err)
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

// Set writes every entry in one pipeline. It returns how many entries failed
// and the first error.
func (c *Cache) Set(ctx context.Context, entries []ingest.CacheEntry) (failed int, err error) {
	if len(entries) == 0 {
		return 0, nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	pipe := c.client.Pipeline()
	cmds := make([]*goredis.StatusCmd, len(entries))
	for i, e := range entries {
		cmds[i] = pipe.Set(ctx, c.Key(e.UID), e.Canonical, c.ttl)
	}
	_, err = pipe.Exec(ctx)
	if err == nil {
		return 0, nil
	}
	var first error
	for _, cmd := range cmds {
		if cmd.Err() != nil {
			failed++
			if first == nil {
				first = cmd.Err()
			}
		}
	}
	if failed == 0 { // Exec failed before any command got a result
		failed, first = len(entries), err
	}
	return failed, fmt.Errorf("cache %d of %d orders: %w", failed, len(entries), first)
}
