// Package cache is the reader's tiered order lookup: an in-process cache of
// encoded orders bounded by bytes (otter), then Redis, then PostgreSQL.
//
// Concurrent misses for one order_uid share one load (singleflight); the
// load runs detached from the request that started it, so a caller that
// gives up does not fail the others. Unknown order_uids are remembered for a
// short time (the negative cache) so that a flood of them does not reach the
// database every time. Orders are immutable, so a cached order never goes
// stale; what changes is that an unknown uid gets stored, or a stored order
// gets erased. The ingestor announces both after each batch on its events
// channel (package redis subscribes), and Invalidate drops the negative
// entries of the stored uids and every copy of the erased ones. A load that
// was under way when a change arrived must not put back what it read
// before: each load notes the generation of stored announcements and of
// resynchronisations when it starts and, after caching its answer, looks
// again (an erased uid is remembered for a minute, longer than any load
// takes). While the reader is not subscribed, new orders are found once
// their negative entries expire, and on every (re)subscription Resync
// empties the in-process tiers, since erasures may have been missed.
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
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/orderservice/orders/reader/batch"
	"github.com/orderservice/orders/reader/metrics"
	"github.com/orderservice/orders/shared/model"
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
	// RemoteHedge is how long a load waits for Remote before it asks the
	// Store as well, taking the first answer (see askRemote); 0 waits for
	// Remote's answer, however long it takes.
	RemoteHedge time.Duration
	// Mask turns an order's canonical JSON into the canonical JSON of its
	// masked view (pii.MaskJSON). It runs once per order entering the
	// local tier, never per request; nil prepares no masked view.
	Mask func(canonical []byte) ([]byte, error)
	// MaskOrder masks a decoded order (pii.Mask). With Mask, it makes the
	// masked view of an order the store hands over decoded (Entry.Order,
	// the warm-up) without Mask's decoding, which was two thirds of the
	// warm-up's CPU. Optional.
	MaskOrder func(model.Order) model.Order
	Metrics   *metrics.Metrics // may be nil
	Logger    *slog.Logger
}

// Tiered looks orders up tier by tier. It is safe for concurrent use.
type Tiered struct {
	store    Store
	remote   Remote
	local    *otter.Cache[string, *Order]
	negative *otter.Cache[string, struct{}]
	erased   *otter.Cache[string, struct{}] // uids erased lately (see Invalidate)
	// storedGen counts announcements of stored orders, epoch resyncs: a
	// load compares them before and after (see rememberUnknown, keep).
	storedGen, epoch atomic.Uint64
	loadTimeout      time.Duration
	hedge            time.Duration
	mask             func([]byte) ([]byte, error)
	maskOrder        func(model.Order) model.Order
	log              *slog.Logger
	flight           singleflight.Group
	fills            chan Entry // orders loaded from the database, for Redis
	stopFills        context.CancelFunc
	fillsDone        chan struct{}
	fillCtx          context.Context // the fills' (writeFills, fillWarmed), cancelled by Close
	warmFills        sync.WaitGroup
	warmFilled       chan WarmFill
	c                counters
}

// counters are resolved once: a label lookup per request would cost more
// than the local cache hit it counts.
type counters struct {
	localHit, localMiss, negHit, redisHit, redisMiss, redisErr, redisSlow, dbHit, dbMiss, dbErr prometheus.Counter
	shared                                                                                      prometheus.Counter
	invStored, invErased, resyncs                                                               prometheus.Counter
}

type nopCounter struct{ prometheus.Counter }

func (nopCounter) Inc() {}

func (nopCounter) Add(float64) {}

// erasedMemory is how long an erased uid is remembered: far longer than a
// load may take (LoadTimeout) and a fill may wait, so that neither puts an
// erased order back.
const erasedMemory = time.Minute

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
	t := &Tiered{store: o.Store, remote: o.Remote, loadTimeout: o.LoadTimeout, hedge: o.RemoteHedge, mask: o.Mask, maskOrder: o.MaskOrder, log: o.Logger,
		fills: make(chan Entry, fillQueue), fillsDone: make(chan struct{}), warmFilled: make(chan WarmFill, 1)}
	if o.LocalBytes > 0 {
		local, err := otter.New(&otter.Options[string, *Order]{
			MaximumWeight: uint64(o.LocalBytes),
			// The bytes of both views plus the key, the ETags and overhead.
			Weigher: func(uid string, o *Order) uint32 { return o.weight(uid) },
		})
		if err != nil {
			return nil, fmt.Errorf("local cache: %w", err)
		}
		t.local = local
	}
	erased, err := otter.New(&otter.Options[string, struct{}]{
		MaximumSize:      100_000,
		ExpiryCalculator: otter.ExpiryWriting[string, struct{}](max(erasedMemory, 4*o.LoadTimeout)),
	})
	if err != nil {
		return nil, fmt.Errorf("erased uids: %w", err)
	}
	t.erased = erased
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
			redisErr: l.WithLabelValues("redis", "error"), redisSlow: l.WithLabelValues("redis", "slow"),
			dbHit: l.WithLabelValues("db", "hit"), dbMiss: l.WithLabelValues("db", "miss"),
			dbErr:     l.WithLabelValues("db", "error"),
			shared:    m.SingleflightShared,
			invStored: m.Invalidations.WithLabelValues("stored"), invErased: m.Invalidations.WithLabelValues("erased"),
			resyncs: m.InvalidationResyncs,
		}
	} else {
		n := nopCounter{}
		t.c = counters{n, n, n, n, n, n, n, n, n, n, n, n, n, n}
	}
	// Started last: an error above leaves no goroutine behind.
	if o.Remote != nil {
		ctx, stop := context.WithCancel(context.Background())
		t.fillCtx, t.stopFills = ctx, stop
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
	t.warmFills.Wait()
	if t.local != nil {
		t.local.StopAllGoroutines()
	}
	if t.negative != nil {
		t.negative.StopAllGoroutines()
	}
	t.erased.StopAllGoroutines()
}

var _ Invalidator = (*Tiered)(nil)

// Invalidate implements Invalidator. A stored uid loses its negative entry,
// so that the next lookup finds the order. An erased uid loses its copy in
// every tier, Redis included (the ingestor deleted its key already; this
// removes one a fill of this reader may have put back since), is answered
// not found from now on, and new lookups of it no longer join a load that
// started before the erasure.
func (t *Tiered) Invalidate(ctx context.Context, c Changes) {
	if len(c.Stored) > 0 {
		t.storedGen.Add(1) // before the negative entries go: see rememberUnknown
		if t.negative != nil {
			for _, uid := range c.Stored {
				t.negative.Invalidate(uid)
			}
		}
		t.c.invStored.Add(float64(len(c.Stored)))
	}
	if len(c.Erased) == 0 {
		return
	}
	for _, uid := range c.Erased {
		t.erased.Set(uid, struct{}{}) // before the copies go: see keep
		if t.local != nil {
			t.local.Invalidate(uid)
		}
		t.flight.Forget(uid)
	}
	t.c.invErased.Add(float64(len(c.Erased)))
	if t.remote != nil {
		if err := t.remote.Delete(ctx, c.Erased); err != nil && !errors.Is(err, ErrSkipped) {
			t.log.Warn("redis: could not delete erased orders", "orders", len(c.Erased), "err", err)
		}
	}
}

// Resync implements Invalidator: it empties the local and negative tiers,
// and makes every load under way forget what it read (see keep).
func (t *Tiered) Resync() {
	t.epoch.Add(1)
	t.storedGen.Add(1)
	if t.local != nil {
		t.local.InvalidateAll()
	}
	if t.negative != nil {
		t.negative.InvalidateAll()
	}
	t.c.resyncs.Inc()
}

// isErased reports whether uid was erased lately.
func (t *Tiered) isErased(uid string) bool {
	_, ok := t.erased.GetIfPresent(uid)
	return ok
}

// keep caches o, which a load that began at epoch read, in the local tier,
// unless an erasure or a resync came in meanwhile: it looks after putting,
// and Invalidate and Resync change their state before dropping copies, so
// one of the two always sees the other. It reports whether o may be
// served: not when its uid was erased.
func (t *Tiered) keep(uid string, o *Order, epoch uint64) bool {
	t.putLocal(uid, o)
	erased := t.isErased(uid)
	if (erased || t.epoch.Load() != epoch) && t.local != nil {
		t.local.Invalidate(uid)
	}
	return !erased
}

// rememberUnknown puts uid in the negative cache, unless stored orders were
// announced since the load that found it unknown began (gen): the database
// answered from before, and the uid may be stored now.
func (t *Tiered) rememberUnknown(uid string, gen uint64) {
	if t.negative == nil {
		return
	}
	t.negative.Set(uid, struct{}{})
	if t.storedGen.Load() != gen {
		t.negative.Invalidate(uid)
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
	notFound := fmt.Errorf("order %q: %w", uid, ErrNotFound)
	if t.isErased(uid) {
		return loaded{}, notFound
	}
	gen, epoch := t.storedGen.Load(), t.epoch.Load()
	// A load that ended just before this one started has filled the local
	// tier: do not query again.
	if t.local != nil {
		if o, ok := t.local.GetIfPresent(uid); ok {
			return loaded{o, Local}, nil
		}
	}
	var hedged <-chan fetched // the database's answer, when the hedge asked it
	if t.remote != nil {
		r := t.askRemote(ctx, uid)
		if r.answered {
			if l, ok, err := t.settleRemote(uid, r.fetched, epoch); ok {
				return l, err
			}
		}
		hedged = r.db
	}
	var db fetched
	if hedged != nil {
		db = <-hedged
	} else {
		db.body, db.err = t.store.Get(ctx, uid)
	}
	body, err := db.body, db.err
	if errors.Is(err, ErrNotFound) {
		t.c.dbMiss.Inc()
		t.rememberUnknown(uid, gen)
		return loaded{}, notFound
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
	if !t.keep(uid, o, epoch) {
		return loaded{}, notFound
	}
	if t.epoch.Load() == epoch {
		t.fillRemote(uid, body)
	}
	return loaded{o, DB}, nil
}

// fetched is one tier's answer.
type fetched struct {
	body []byte
	err  error
}

// remoteAnswer is what askRemote learnt: the shared tier's answer, if it
// came (answered), and the database's lookup if the hedge started one (db
// delivers its answer, at once if it came first; nil when none started).
type remoteAnswer struct {
	fetched
	answered bool
	db       <-chan fetched
}

// askRemote asks the shared tier for uid. A lookup that Redis has not
// answered within the hedge delay asks the database as well (a hedged
// request) and takes whichever answer settles it first: a Redis that is
// slow for a moment (a busy machine, a pipeline waiting behind another)
// costs the lookup at most the hedge delay plus the database's time,
// instead of Redis's own. The database settles the lookup with an order;
// its not-found or its failure waits for Redis's answer after all, which
// may hold the order, so that the hedge changes how soon a lookup is
// answered, never what. A Redis hit settles it too; the database's lookup
// then ends with the load (its context).
func (t *Tiered) askRemote(ctx context.Context, uid string) remoteAnswer {
	if t.hedge <= 0 {
		body, err := t.remote.Get(ctx, uid)
		return remoteAnswer{fetched: fetched{body, err}, answered: true}
	}
	fromRemote := make(chan fetched, 1)
	go func() {
		body, err := t.remote.Get(ctx, uid)
		fromRemote <- fetched{body, err}
	}()
	hedge := time.NewTimer(t.hedge)
	defer hedge.Stop()
	select {
	case f := <-fromRemote:
		return remoteAnswer{fetched: f, answered: true}
	case <-hedge.C:
	}
	t.c.redisSlow.Inc()
	fromStore := make(chan fetched, 1)
	go func() {
		body, err := t.store.Get(ctx, uid)
		fromStore <- fetched{body, err}
	}()
	select {
	case f := <-fromRemote:
		return remoteAnswer{fetched: f, answered: true, db: fromStore}
	case d := <-fromStore:
		fromStore <- d // for the load, which reads it from db
		if d.err == nil {
			return remoteAnswer{db: fromStore}
		}
		return remoteAnswer{fetched: <-fromRemote, answered: true, db: fromStore}
	}
}

// settleRemote handles the shared tier's answer: ok reports that it
// settled the lookup (a hit, or a hit on an order erased meanwhile);
// otherwise the database's answer decides.
func (t *Tiered) settleRemote(uid string, f fetched, epoch uint64) (l loaded, ok bool, err error) {
	var o *Order
	err = f.err
	if err == nil {
		o, err = t.prepare(f.body)
	}
	switch {
	case err == nil:
		t.c.redisHit.Inc()
		if !t.keep(uid, o, epoch) {
			return loaded{}, true, fmt.Errorf("order %q: %w", uid, ErrNotFound)
		}
		return loaded{o, Redis}, true, nil
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
	return loaded{}, false, nil
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
		return NewOrder(body, nil), nil
	}
	// Masking decodes the order, which checks it is one.
	masked, err := t.mask(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errMalformed, err)
	}
	return NewOrder(body, masked), nil
}

// prepareEntry is prepare for an entry from the store: with the entry's
// decoded order and MaskOrder, the masked view is encoded from the order
// (the store's JSON is that order's canonical encoding), in scratch, which
// it returns for the next order (NewOrder keeps none of it).
func (t *Tiered) prepareEntry(e Entry, scratch []byte) (*Order, []byte, error) {
	if t.mask == nil || t.maskOrder == nil || e.Order == nil {
		o, err := t.prepare(e.JSON)
		return o, scratch, err
	}
	masked := t.maskOrder(*e.Order)
	b, err := masked.AppendCanonical(scratch[:0])
	if err != nil {
		return nil, scratch, fmt.Errorf("%w: %w", errMalformed, err)
	}
	return NewOrder(e.JSON, b), b, nil
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
//
// An order erased while its fill waited is not written; one erased while
// it was being written is deleted again: Invalidate marks the uid before
// it deletes the key, and this looks after writing.
func (t *Tiered) writeFills(ctx context.Context) {
	defer close(t.fillsDone)
	entries := make([]Entry, 0, fillBatch)
	for {
		var ok bool
		if entries, ok = batch.Next(ctx.Done(), t.fills, entries, fillBatch); !ok {
			return
		}
		entries = slices.DeleteFunc(entries, func(e Entry) bool { return t.isErased(e.UID) })
		if err := t.remote.SetMany(ctx, entries); err != nil && !errors.Is(err, ErrSkipped) && ctx.Err() == nil {
			t.log.Debug("redis fill failed", "orders", len(entries), "err", err)
		}
		t.undoErasedFills(ctx, entries)
	}
}

// undoErasedFills deletes from Redis the entries just written whose uid was
// erased while they were being written (see writeFills).
func (t *Tiered) undoErasedFills(ctx context.Context, entries []Entry) {
	var erased []string
	for _, e := range entries {
		if t.isErased(e.UID) {
			erased = append(erased, e.UID)
		}
	}
	if len(erased) == 0 {
		return
	}
	if err := t.remote.Delete(ctx, erased); err != nil && !errors.Is(err, ErrSkipped) && ctx.Err() == nil {
		t.log.Warn("redis: could not delete erased orders after a fill", "orders", len(erased), "err", err)
	}
}

// Warm loads the n most recent orders into the local tier, a page of
// orders per query, and returns how many it loaded once they are all
// there. A page is prepared (both views) while the next pages are read.
//
// With a Remote, the same orders are then written to it in the
// background, a page per pipeline (see fillWarmed), and WarmFilled reports
// the outcome: the local tier is what this reader serves from, and Redis's
// writes (with redis-server's own work, about a sixth of a warm-up's CPU,
// on the same cores) would only delay it. Warm is meant to run once, at
// start.
//
// It logs where the time went (at debug level): waiting for the store's
// pages and preparing them. Whichever dominates paces the warm-up.
func (t *Tiered) Warm(ctx context.Context, n int) (int, error) {
	count, pages := 0, 0
	epoch := t.epoch.Load()
	warmWorkers := runtime.GOMAXPROCS(0)
	var (
		start   = time.Now()
		prepare time.Duration
		fill    [][]Entry // the pages for Redis, written once all are in the local tier
	)
	err := t.store.Recent(ctx, n, warmPage, func(page []Entry) error {
		began := time.Now()
		defer func() { prepare += time.Since(began) }()
		pages++
		// Erased meanwhile: in neither tier.
		page = slices.DeleteFunc(page, func(e Entry) bool { return t.isErased(e.UID) })
		// Masking, encoding and hashing are most of the warm-up's CPU:
		// the page's orders are prepared on every processor.
		var prepared sync.WaitGroup
		for part := range slices.Chunk(page, max(1, (len(page)+warmWorkers-1)/warmWorkers)) {
			prepared.Go(func() {
				var (
					scratch []byte
					o       *Order
					err     error
				)
				for i, e := range part {
					o, scratch, err = t.prepareEntry(e, scratch)
					// The decoded order is not needed past here: not
					// kept alive while the page waits for Redis.
					part[i].Order = nil
					if err != nil {
						t.log.Error("warm-up: an order could not be prepared, leaving it out", "order_uid", e.UID, "err", err)
						part[i].UID = "" // not written to Redis either
						continue
					}
					t.keep(e.UID, o, epoch)
				}
			})
		}
		prepared.Wait()
		count += len(page)
		if t.remote != nil {
			fill = append(fill, page)
		}
		return nil
	})
	read := time.Since(start)
	t.log.Debug("warm-up stages", "orders", count, "pages", pages,
		"store_wait", read-prepare, "prepare", prepare)
	if t.remote != nil {
		t.warmFills.Go(func() {
			f := t.fillWarmed(fill, start, epoch)
			select {
			case t.warmFilled <- f:
			default: // a second Warm's: WarmFilled has the first's
			}
		})
	}
	if err != nil {
		return count, fmt.Errorf("warm-up: %w", err)
	}
	return count, nil
}

// WarmFill is the outcome of a warm-up's Redis fill (see Warm).
type WarmFill struct {
	// Written is the orders sent to Redis (each kept there if it was
	// already: SetMany's SETNX), Left those not written: erased meanwhile,
	// or left when the fill stopped (a resync, warmFillLimit, Close, or a
	// page that failed, Err).
	Written, Left int
	// Duration is the fill's, from the end of the local warm-up.
	Duration time.Duration
	// Err is the first failure to write a page, nil when none failed.
	Err error
}

// WarmFilled delivers the outcome of the Redis fill of Warm once it has
// ended; nothing without a Remote or before Warm.
func (t *Tiered) WarmFilled() <-chan WarmFill { return t.warmFilled }

// fillWarmed writes the pages of a warm-up that began at start (at epoch)
// to Redis, after the local tier is filled. A page's orders erased
// meanwhile are left out, and those erased while it was being written
// are deleted again (as writeFills does): that relies on the erased uids
// being remembered (erasedMemory) for longer than a page can wait, so the
// fill gives up past warmFillLimit from the start of the warm-up (the
// pages were read after it). It stops at a resync too, since erasures
// announced while the reader was not subscribed were missed; a page that
// fails (Redis down: its circuit opens, and the next are skipped at once)
// is left out, and the fill goes on.
func (t *Tiered) fillWarmed(pages [][]Entry, start time.Time, epoch uint64) WarmFill {
	began := time.Now()
	var f WarmFill
	for i, page := range pages {
		if t.fillCtx.Err() != nil || t.epoch.Load() != epoch || time.Since(start) > warmFillLimit {
			for _, p := range pages[i:] {
				f.Left += len(p)
			}
			break
		}
		n := len(page)
		page = slices.DeleteFunc(page, func(e Entry) bool { return e.UID == "" || t.isErased(e.UID) })
		f.Left += n - len(page)
		if err := t.remote.SetMany(t.fillCtx, page); err != nil {
			if f.Err == nil {
				f.Err = err
			}
			f.Left += len(page)
		} else {
			f.Written += len(page)
		}
		t.undoErasedFills(t.fillCtx, page)
		pages[i] = nil // the page's bytes stay only as long as the local tier keeps them
	}
	f.Duration = time.Since(began)
	return f
}

const (
	// warmPage is the orders of one warm-up query and Redis pipeline.
	warmPage = 500
	// warmFillLimit is how long after the warm-up's start its Redis fill
	// may still write: half of erasedMemory, so that an order erased
	// after it was read is still known as erased when its page is written.
	warmFillLimit = erasedMemory / 2
)

// Search returns a page of order summaries (see Store.Search). Lists are
// never cached: they change with every ingested order.
func (t *Tiered) Search(ctx context.Context, q Query) ([]Summary, error) {
	return t.store.Search(ctx, q)
}
