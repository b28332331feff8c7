// Package cache is the reader's tiered order lookup: an in-process cache of
// encoded orders bounded by bytes (otter), then Redis, then PostgreSQL.
//
// Concurrent misses for one order_uid share one load (singleflight); the
// load runs detached from the request that started it, so a caller that
// gives up does not fail the others. Unknown order_uids are remembered for a
// short time (the negative cache) so that a flood of them does not reach the
// database every time; an order ingested meanwhile is found once that time
// has passed. Orders are immutable, so entries are never invalidated: the
// local tier evicts by size only.
//
// This package is the reader's core: it declares what it needs of the
// remote tiers (Store, Remote) and the types and errors they exchange
// (types.go). Packages postgres and redis implement them, and httpapi
// serves what Tiered answers; none of them is imported here.
package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/orderservice/orders/reader/batch"
	"github.com/orderservice/orders/reader/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"
)

// Options configure a Tiered cache.
type Options struct {
	Store  Store
	Remote Remote // may be nil: no shared tier
	// LocalBytes bounds the in-process tier; 0 disables it.
	LocalBytes int64
	// NegativeTTL is how long an unknown uid stays unknown; 0 disables.
	NegativeTTL time.Duration
	// LoadTimeout limits one shared load (Redis then PostgreSQL).
	LoadTimeout time.Duration
	// Mask turns an order's canonical JSON into the canonical JSON of its
	// masked view (pii.MaskJSON). It runs once per order entering the
	// local tier, never per request; nil prepares no masked view.
	Mask    func(canonical []byte) ([]byte, error)
	Metrics *metrics.Metrics // may be nil
	Logger  *slog.Logger
}

// Tiered looks orders up tier by tier. It is safe for concurrent use.
type Tiered struct {
	store       Store
	remote      Remote
	local       *otter.Cache[string, *Order]
	negative    *otter.Cache[string, struct{}]
	loadTimeout time.Duration
	mask        func([]byte) ([]byte, error)
	log         *slog.Logger
	flight      singleflight.Group
	fills       chan Entry // orders loaded from the database, for Redis
	stopFills   context.CancelFunc
	fillsDone   chan struct{}
	c           counters
}

// counters are resolved once: a label lookup per request would cost more
// than the local cache hit it counts.
type counters struct {
	localHit, localMiss, negHit, redisHit, redisMiss, redisErr, dbHit, dbMiss, dbErr prometheus.Counter
	shared                                                                           prometheus.Counter
}

type nopCounter struct{ prometheus.Counter }

func (nopCounter) Inc() {}

// New builds the tiers.
func New(o Options) (*Tiered, error) {
	if o.Store == nil {
		return nil, errors.New("cache: a Store is required")
	}
	if o.LoadTimeout <= 0 {
		o.LoadTimeout = 3 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	t := &Tiered{store: o.Store, remote: o.Remote, loadTimeout: o.LoadTimeout, mask: o.Mask, log: o.Logger,
		fills: make(chan Entry, fillQueue), fillsDone: make(chan struct{})}
	if o.LocalBytes > 0 {
		local, err := otter.New(&otter.Options[string, *Order]{
			MaximumWeight: uint64(o.LocalBytes),
			// The bytes of both views plus the key, the ETags and overhead.
			Weigher: func(uid string, v *Order) uint32 {
				n := len(v.Body) + len(v.ETag) + len(uid) + 96
				if v.Masked != nil {
					n += len(v.Masked.Body) + len(v.Masked.ETag) + 96
				}
				return uint32(min(n, 1<<31))
			},
		})
		if err != nil {
			return nil, fmt.Errorf("local cache: %w", err)
		}
		t.local = local
	}
	if o.NegativeTTL > 0 {
		neg, err := otter.New(&otter.Options[string, struct{}]{
			MaximumSize:      100_000,
			ExpiryCalculator: otter.ExpiryWriting[string, struct{}](o.NegativeTTL),
		})
		if err != nil {
			return nil, fmt.Errorf("negative cache: %w", err)
		}
		t.negative = neg
	}
	if m := o.Metrics; m != nil {
		l := m.CacheLookups
		t.c = counters{
			localHit: l.WithLabelValues("local", "hit"), localMiss: l.WithLabelValues("local", "miss"),
			negHit:   l.WithLabelValues("negative", "hit"),
			redisHit: l.WithLabelValues("redis", "hit"), redisMiss: l.WithLabelValues("redis", "miss"),
			redisErr: l.WithLabelValues("redis", "error"),
			dbHit:    l.WithLabelValues("db", "hit"), dbMiss: l.WithLabelValues("db", "miss"),
			dbErr:  l.WithLabelValues("db", "error"),
			shared: m.SingleflightShared,
		}
	} else {
		n := nopCounter{}
		t.c = counters{n, n, n, n, n, n, n, n, n, n}
	}
	// Started last: an error above leaves no goroutine behind.
	if o.Remote != nil {
		ctx, stop := context.WithCancel(context.Background())
		t.stopFills = stop
		go t.writeFills(ctx)
	} else {
		close(t.fillsDone)
	}
	return t, nil
}

// LocalBytes is the weighted size of the in-process tier.
func (t *Tiered) LocalBytes() uint64 {
	if t.local == nil {
		return 0
	}
	return t.local.WeightedSize()
}

// Close stops the caches' background goroutines. Orders still queued for
// Redis are dropped.
func (t *Tiered) Close() {
	if t.stopFills != nil {
		t.stopFills()
	}
	<-t.fillsDone
	if t.local != nil {
		t.local.StopAllGoroutines()
	}
	if t.negative != nil {
		t.negative.StopAllGoroutines()
	}
}

// Cached answers from memory alone: the order when the in-process tier
// holds it; ErrNotFound when the negative cache knows the uid as unknown;
// (nil, nil) when only Get can tell. It never waits, so callers skip
// setting up a deadline for a lookup that cannot block.
func (t *Tiered) Cached(uid string) (*Order, error) {
	if t.local != nil {
		if o, ok := t.local.GetIfPresent(uid); ok {
			t.c.localHit.Inc()
			return o, nil
		}
	}
	if t.negative != nil {
		if _, ok := t.negative.GetIfPresent(uid); ok {
			t.c.localMiss.Inc()
			t.c.negHit.Inc()
			return nil, ErrNotFound
		}
	}
	return nil, nil
}

type loaded struct {
	order  *Order
	source Source
}

// Get returns an order and the tier it came from. Errors wrap ErrNotFound
// or ErrUnavailable, or are ctx's error when the caller gave up.
func (t *Tiered) Get(ctx context.Context, uid string) (*Order, Source, error) {
	if t.local != nil {
		if o, ok := t.local.GetIfPresent(uid); ok {
			t.c.localHit.Inc()
			return o, Local, nil
		}
		t.c.localMiss.Inc()
	}
	if t.negative != nil {
		if _, ok := t.negative.GetIfPresent(uid); ok {
			t.c.negHit.Inc()
			return nil, "", ErrNotFound
		}
	}
	var led atomic.Bool
	ch := t.flight.DoChan(uid, func() (any, error) {
		led.Store(true)
		// Detached: the first caller's cancellation must not fail the
		// others waiting for the same load.
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.loadTimeout)
		defer cancel()
		return t.load(lctx, uid)
	})
	select {
	case r := <-ch:
		if !led.Load() {
			t.c.shared.Inc()
		}
		if r.Err != nil {
			return nil, "", r.Err
		}
		l := r.Val.(loaded)
		return l.order, l.source, nil
	case <-ctx.Done():
		return nil, "", fmt.Errorf("order %q: %w", uid, context.Cause(ctx))
	}
}

func (t *Tiered) load(ctx context.Context, uid string) (loaded, error) {
	// A load that ended just before this one started has filled the local
	// tier: do not query again.
	if t.local != nil {
		if o, ok := t.local.GetIfPresent(uid); ok {
			return loaded{o, Local}, nil
		}
	}
	if t.remote != nil {
		body, err := t.remote.Get(ctx, uid)
		var o *Order
		if err == nil {
			o, err = t.prepare(body)
		}
		switch {
		case err == nil:
			t.c.redisHit.Inc()
			t.putLocal(uid, o)
			return loaded{o, Redis}, nil
		case errors.Is(err, errMalformed):
			// Never serve what is not an order; the database has the
			// truth. The error names no field value.
			t.c.redisErr.Inc()
			t.log.Error("redis holds a malformed order, reading the database", "order_uid", uid, "err", err)
		case errors.Is(err, ErrMiss):
			t.c.redisMiss.Inc()
		case errors.Is(err, ErrSkipped):
			// The circuit is open: counted once, when it opened.
		default:
			t.c.redisErr.Inc()
			t.log.Warn("redis lookup failed, reading the database", "order_uid", uid, "err", err)
		}
	}
	body, err := t.store.Get(ctx, uid)
	if errors.Is(err, ErrNotFound) {
		t.c.dbMiss.Inc()
		if t.negative != nil {
			t.negative.Set(uid, struct{}{})
		}
		return loaded{}, fmt.Errorf("order %q: %w", uid, ErrNotFound)
	}
	if err != nil {
		t.c.dbErr.Inc()
		return loaded{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	t.c.dbHit.Inc()
	o, err := t.prepare(body)
	if err != nil {
		// The database's bytes are the model's own encoding: this is a
		// bug, and the order is not served rather than served unmasked.
		t.log.Error("an order from the database could not be prepared", "order_uid", uid, "err", err)
		return loaded{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	t.putLocal(uid, o)
	t.fillRemote(uid, body)
	return loaded{o, DB}, nil
}

// errMalformed marks bytes that are not an order: not JSON, or (with a
// Mask) not an order's JSON.
var errMalformed = errors.New("malformed order")

// prepare makes the cache entry of an order's canonical JSON: the full
// view and, with a Mask, the masked one. Both are computed here, once per
// order entering the cache, so that a request only picks one.
func (t *Tiered) prepare(body []byte) (*Order, error) {
	if t.mask == nil {
		if !json.Valid(body) {
			return nil, errMalformed
		}
		return NewOrder(body), nil
	}
	// Masking decodes the order, which checks it is one.
	masked, err := t.mask(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errMalformed, err)
	}
	v := NewView(masked)
	return &Order{View: NewView(body), Masked: &v}, nil
}

func (t *Tiered) putLocal(uid string, o *Order) {
	if t.local != nil {
		t.local.Set(uid, o)
	}
}

const (
	// fillQueue bounds the orders waiting for Redis; past it fills are
	// dropped (Redis is only a cache, and slow or down when this fills).
	fillQueue = 4096
	// fillBatch is the most orders written in one pipeline.
	fillBatch = 256
)

// fillRemote queues an order loaded from the database for Redis, so the
// answer does not wait for the write.
func (t *Tiered) fillRemote(uid string, body []byte) {
	if t.remote == nil {
		return
	}
	select {
	case t.fills <- Entry{UID: uid, JSON: body}:
	default:
	}
}

// writeFills writes queued orders to Redis, as many as are waiting (up to
// fillBatch) per pipelined round trip: under a burst of misses this costs
// Redis and the reader far fewer round trips than one SET per order.
func (t *Tiered) writeFills(ctx context.Context) {
	defer close(t.fillsDone)
	entries := make([]Entry, 0, fillBatch)
	for {
		var ok bool
		if entries, ok = batch.Next(ctx.Done(), t.fills, entries, fillBatch); !ok {
			return
		}
		if err := t.remote.SetMany(ctx, entries); err != nil && !errors.Is(err, ErrSkipped) && ctx.Err() == nil {
			t.log.Debug("redis fill failed", "orders", len(entries), "err", err)
		}
	}
}

// Warm loads the n most recent orders into both tiers, a page of orders per
// query and per Redis pipeline. It returns how many orders it loaded; a
// Redis failure is logged, not returned.
func (t *Tiered) Warm(ctx context.Context, n int) (int, error) {
	count := 0
	err := t.store.Recent(ctx, n, 500, func(page []Entry) error {
		for _, e := range page {
			o, err := t.prepare(e.JSON)
			if err != nil {
				t.log.Error("warm-up: an order could not be prepared, leaving it out", "order_uid", e.UID, "err", err)
				continue
			}
			t.putLocal(e.UID, o)
		}
		count += len(page)
		if t.remote != nil {
			if err := t.remote.SetMany(ctx, page); err != nil {
				t.log.Warn("warm-up could not fill redis", "orders", len(page), "err", err)
			}
		}
		return nil
	})
	if err != nil {
		return count, fmt.Errorf("warm-up: %w", err)
	}
	return count, nil
}

// Summaries returns the limit most recent orders, newest first. The list
// is never cached: it changes with every ingested order.
func (t *Tiered) Summaries(ctx context.Context, limit int) ([]Summary, error) {
	return t.store.Summaries(ctx, limit)
}
