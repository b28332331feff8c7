package cache_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/orderservice/orders/reader/cache"
	"github.com/orderservice/orders/shared/ordergen"
	"github.com/orderservice/orders/shared/testenv"
)

// longNegative keeps unknown uids unknown for far longer than any test:
// only an invalidation can make them known.
func longNegative(o *cache.Options) { o.NegativeTTL = time.Hour }

func (f *fixture) inRedis(t *testing.T, uid string) bool {
	t.Helper()
	return f.rd.Client.Exists(context.Background(), f.rd.Prefix+"order:"+uid).Val() == 1
}

// getAsync runs Get on a goroutine; the result arrives on the channel.
func (f *fixture) getAsync(uid string) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, _, err := f.tiers.Get(context.Background(), uid)
		done <- err
	}()
	return done
}

// An announced stored uid loses its negative entry: the next lookup finds
// the order at once, not when the entry expires.
func TestStoredAnnouncementDropsNegativeEntry(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1<<20, longNegative)
	ctx := context.Background()
	o := ordergen.New(51).Order()
	if _, _, err := f.tiers.Get(ctx, o.OrderUID); !errors.Is(err, cache.ErrNotFound) {
		t.Fatalf("Get before the order exists: %v", err)
	}
	testenv.InsertOrders(t, f.pg.Pool, o)
	if _, err := f.tiers.Cached(o.OrderUID); !errors.Is(err, cache.ErrNotFound) {
		t.Fatalf("Cached after the insert, before the announcement: %v, want the negative entry", err)
	}
	f.tiers.Invalidate(ctx, cache.Changes{Stored: []string{o.OrderUID, "other-uid"}})
	got, src, err := f.tiers.Get(ctx, o.OrderUID)
	if err != nil || src != cache.DB || !bytes.Equal(got.Body, canonical(t, o)) {
		t.Fatalf("Get after the announcement: %v from %q", err, src)
	}
	if v := testutil.ToFloat64(f.metrics.Invalidations.WithLabelValues("stored")); v != 2 {
		t.Errorf("invalidations{stored} = %v, want 2", v)
	}
}

// A lookup that asked the database before the order was committed, and
// answers after the announcement, must not leave a negative entry behind.
func TestStoredAnnouncementDuringALoad(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1<<20, longNegative)
	ctx := context.Background()
	o := ordergen.New(52).Order()
	release := f.pg.LockTable(t, "items") // the lookup waits in PostgreSQL
	first := f.getAsync(o.OrderUID)
	testenv.Await(t, "the lookup to reach the database", 10*time.Second, func() bool { return f.pg.LockWaiters(t, "order_reader") > 0 })
	f.tiers.Invalidate(ctx, cache.Changes{Stored: []string{o.OrderUID}})
	release()
	if err := <-first; !errors.Is(err, cache.ErrNotFound) {
		t.Fatalf("the lookup under way: %v, want not found (the database answered from before)", err)
	}
	testenv.InsertOrders(t, f.pg.Pool, o)
	if _, src, err := f.tiers.Get(ctx, o.OrderUID); err != nil || src != cache.DB {
		t.Fatalf("Get after the order is stored: %v from %q, want it from the database (no negative entry)", err, src)
	}
}

// An erased order loses every copy: the local tier, Redis, and any lookup
// under way, which read it before the erasure and must not put it back.
func TestErasedOrderIsDroppedEverywhere(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1<<20, longNegative)
	ctx := context.Background()
	gen := ordergen.New(53)
	cached, loading := gen.Order(), gen.Order()
	testenv.InsertOrders(t, f.pg.Pool, cached, loading)

	if _, _, err := f.tiers.Get(ctx, cached.OrderUID); err != nil {
		t.Fatal(err)
	}
	testenv.Await(t, "the fill of Redis", 10*time.Second, func() bool { return f.inRedis(t, cached.OrderUID) })
	if o, _ := f.tiers.Cached(cached.OrderUID); o == nil {
		t.Fatal("the order is not in the local tier")
	}

	// loading's lookup reads PostgreSQL, blocked, while the erasure comes:
	// its rows are still there when the lookup goes on (a read from
	// before the erasure), and it must be neither served nor cached.
	release := f.pg.LockTable(t, "items")
	under := f.getAsync(loading.OrderUID)
	testenv.Await(t, "the lookup to reach the database", 10*time.Second, func() bool { return f.pg.LockWaiters(t, "order_reader") > 0 })
	f.tiers.Invalidate(ctx, cache.Changes{Erased: []string{cached.OrderUID, loading.OrderUID}})
	// A new lookup of the erased uid does not join the one under way.
	if _, _, err := f.tiers.Get(ctx, loading.OrderUID); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("Get of an erased uid while a load is under way: %v, want not found at once", err)
	}
	release()
	if err := <-under; !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("the lookup under way: %v, want not found", err)
	}

	for _, uid := range []string{cached.OrderUID, loading.OrderUID} {
		if o, err := f.tiers.Cached(uid); o != nil {
			t.Errorf("%s still in the local tier (%v)", uid, err)
		}
		if _, _, err := f.tiers.Get(ctx, uid); !errors.Is(err, cache.ErrNotFound) {
			t.Errorf("Get(%s) after the erasure: %v, want not found (the database still has it: the test did not delete it)", uid, err)
		}
		if f.inRedis(t, uid) {
			t.Errorf("%s still in Redis", uid)
		}
	}
	if v := testutil.ToFloat64(f.metrics.Invalidations.WithLabelValues("erased")); v != 2 {
		t.Errorf("invalidations{erased} = %v, want 2", v)
	}
}

// An erased order's Redis key goes too, although the ingestor deleted it
// before announcing: a fill of this reader may have put it back since.
func TestErasureDeletesTheRedisCopy(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1<<20)
	ctx := context.Background()
	o := ordergen.New(54).Order()
	testenv.InsertOrders(t, f.pg.Pool, o)
	if _, _, err := f.tiers.Get(ctx, o.OrderUID); err != nil {
		t.Fatal(err)
	}
	testenv.Await(t, "the fill of Redis", 10*time.Second, func() bool { return f.inRedis(t, o.OrderUID) })
	f.tiers.Invalidate(ctx, cache.Changes{Erased: []string{o.OrderUID}})
	if f.inRedis(t, o.OrderUID) {
		t.Fatal("Invalidate left the erased order in Redis")
	}
}

// Resync empties the local and negative tiers.
func TestResyncEmptiesLocalTiers(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1<<20, longNegative)
	ctx := context.Background()
	gen := ordergen.New(55)
	known, later := gen.Order(), gen.Order()
	testenv.InsertOrders(t, f.pg.Pool, known)
	if _, _, err := f.tiers.Get(ctx, known.OrderUID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.tiers.Get(ctx, later.OrderUID); !errors.Is(err, cache.ErrNotFound) {
		t.Fatal(err)
	}
	f.tiers.Resync()
	for _, uid := range []string{known.OrderUID, later.OrderUID} {
		if o, err := f.tiers.Cached(uid); o != nil || err != nil {
			t.Errorf("Cached(%s) after Resync = %v, %v; want nothing known", uid, o, err)
		}
	}
	testenv.InsertOrders(t, f.pg.Pool, later)
	if _, _, err := f.tiers.Get(ctx, later.OrderUID); err != nil {
		t.Errorf("Get of an order stored while unsubscribed, after Resync: %v", err)
	}
	if v := testutil.ToFloat64(f.metrics.InvalidationResyncs); v != 1 {
		t.Errorf("resyncs = %v, want 1", v)
	}
}
