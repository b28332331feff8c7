package cache_test

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orderservice/orders/reader/cache"
	"github.com/orderservice/orders/reader/metrics"
	"github.com/orderservice/orders/reader/pii"
	"github.com/orderservice/orders/reader/postgres"
	"github.com/orderservice/orders/reader/redis"
	"github.com/orderservice/orders/shared/model"
	"github.com/orderservice/orders/shared/ordergen"
	"github.com/orderservice/orders/shared/testenv"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type fixture struct {
	pg      *testenv.PG
	rd      *testenv.RedisEnv
	tiers   *cache.Tiered
	metrics *metrics.Metrics
}

// newFixture builds tiers over a fresh database and key prefix; tune, if
// given, changes their options.
func newFixture(t *testing.T, localBytes int64, tune ...func(*cache.Options)) *fixture {
	t.Helper()
	return newMaskingFixture(t, localBytes, nil, tune...)
}

// newMaskingFixture is newFixture with a Mask.
func newMaskingFixture(t *testing.T, localBytes int64, mask func([]byte) ([]byte, error), tune ...func(*cache.Options)) *fixture {
	t.Helper()
	ctx := context.Background()
	pg := testenv.Postgres(t)
	rd := testenv.Redis(t)
	m := metrics.New(prometheus.NewRegistry())
	store, err := postgres.Open(ctx, postgres.Options{URL: pg.URLAs("order_reader"), MaxConns: 4, Latency: m.DBQueryDuration})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	rc, err := redis.New(redis.Options{URL: rd.URL, Prefix: rd.Prefix, TTL: time.Minute, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close() })
	opts := cache.Options{Store: store, Remote: rc, LocalBytes: localBytes,
		NegativeTTL: time.Second, LoadTimeout: 10 * time.Second, Mask: mask, Metrics: m}
	for _, f := range tune {
		f(&opts)
	}
	tiers, err := cache.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tiers.Close)
	return &fixture{pg: pg, rd: rd, tiers: tiers, metrics: m}
}

func (f *fixture) count(tier, result string) float64 {
	return testutil.ToFloat64(f.metrics.CacheLookups.WithLabelValues(tier, result))
}

func hasMasked(o *cache.Order) bool {
	_, ok := o.Masked()
	return ok
}

func maskedBody(o *cache.Order) []byte {
	m, _ := o.Masked()
	return m.Append(nil)
}

func canonical(t *testing.T, o *model.Order) []byte {
	t.Helper()
	b, err := o.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestGiveUpDoesNotCancelSharedLoad: the caller that started a load gives
// up; another caller waiting for the same order still gets it, from the
// one query.
func TestGiveUpDoesNotCancelSharedLoad(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1<<20)
	o := ordergen.New(31).Order()
	testenv.InsertOrders(t, f.pg.Pool, o)
	ctx := context.Background()
	release := f.pg.LockTable(t, "items")

	impatient, giveUp := context.WithCancel(ctx)
	type result struct {
		order *cache.Order
		err   error
	}
	first := make(chan result, 1)
	go func() {
		order, _, err := f.tiers.Get(impatient, o.OrderUID)
		first <- result{order, err}
	}()
	testenv.Await(t, "the first lookup to miss", 10*time.Second, func() bool { return f.count("local", "miss") == 1 })
	second := make(chan result, 1)
	go func() {
		order, _, err := f.tiers.Get(ctx, o.OrderUID)
		second <- result{order, err}
	}()
	testenv.Await(t, "the second lookup to miss", 10*time.Second, func() bool { return f.count("local", "miss") == 2 })

	giveUp()
	if r := <-first; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("first caller: %v, want context.Canceled", r.err)
	}
	release()
	r := <-second
	if r.err != nil {
		t.Fatalf("second caller failed with the first one: %v", r.err)
	}
	if !bytes.Equal(r.order.Body, canonical(t, o)) {
		t.Fatalf("second caller got %s", r.order.Body)
	}
	if n := testutil.CollectAndCount(f.metrics.DBQueryDuration); n != 1 {
		t.Fatalf("%d query series", n)
	}
	if got := f.count("db", "hit"); got != 1 {
		t.Fatalf("%v database loads, want 1", got)
	}
}

// TestMalformedRedisValue: what Redis holds is never served unless it is
// JSON; the database answers instead.
func TestMalformedRedisValue(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1<<20)
	o := ordergen.New(32).Order()
	testenv.InsertOrders(t, f.pg.Pool, o)
	ctx := context.Background()
	if err := f.rd.Client.Set(ctx, f.rd.Prefix+"order:"+o.OrderUID, "{not json", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	got, src, err := f.tiers.Get(ctx, o.OrderUID)
	if err != nil || src != cache.DB || !bytes.Equal(got.Body, canonical(t, o)) {
		t.Fatalf("Get: %v from %q: %v", err, src, got)
	}
	if f.count("redis", "error") != 1 {
		t.Fatal("malformed redis value not counted as an error")
	}
}

// TestLocalTierBoundedByBytes: the in-process tier never holds more bytes
// than configured.
func TestLocalTierBoundedByBytes(t *testing.T) {
	t.Parallel()
	const bound = 16 << 10
	f := newFixture(t, bound)
	gen := ordergen.New(33)
	orders := gen.Orders(100)
	testenv.InsertOrders(t, f.pg.Pool, orders...)
	n, err := f.tiers.Warm(context.Background(), 100)
	if err != nil || n != 100 {
		t.Fatalf("Warm: %d, %v", n, err)
	}
	if fill := <-f.tiers.WarmFilled(); fill.Written != 100 || fill.Err != nil {
		t.Fatalf("Redis fill: %+v", fill)
	}
	testenv.Await(t, "eviction down to the bound", 10*time.Second, func() bool { return f.tiers.LocalBytes() <= bound })
	if f.tiers.LocalBytes() == 0 {
		t.Fatal("local tier empty")
	}
	// Every order is still served, evicted ones from Redis.
	for _, o := range orders {
		got, _, err := f.tiers.Get(context.Background(), o.OrderUID)
		if err != nil || !bytes.Equal(got.Body, canonical(t, o)) {
			t.Fatalf("Get(%s): %v", o.OrderUID, err)
		}
	}
	if f.count("db", "hit") != 0 {
		t.Fatalf("%v database loads: the warm-up filled Redis with every order", f.count("db", "hit"))
	}
}

// TestMaskedViewPreparedOnce: an order entering the local tier from the
// warm-up, Redis or PostgreSQL carries its masked view, computed by Mask
// once per order whatever the number of lookups; a Redis value that is
// JSON but not an order is never served, masked or not.
func TestMaskedViewPreparedOnce(t *testing.T) {
	t.Parallel()
	var masks, orderMasks atomic.Int64
	f := newMaskingFixture(t, 1<<20, func(b []byte) ([]byte, error) {
		masks.Add(1)
		return pii.MaskJSON(b)
	}, func(o *cache.Options) {
		o.MaskOrder = func(o model.Order) model.Order {
			orderMasks.Add(1)
			return pii.Mask(o)
		}
	})
	ctx := context.Background()
	gen := ordergen.New(34)
	warm, dbOnly, redisOnly, notAnOrder := gen.Order(), gen.Order(), gen.Order(), gen.Order()
	testenv.InsertOrders(t, f.pg.Pool, warm)
	if n, err := f.tiers.Warm(ctx, 10); err != nil || n != 1 {
		t.Fatalf("Warm: %d, %v", n, err)
	}
	testenv.InsertOrders(t, f.pg.Pool, dbOnly, notAnOrder)
	if err := f.rd.Client.Set(ctx, f.rd.Prefix+"order:"+redisOnly.OrderUID, canonical(t, redisOnly), time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	// JSON, but the strict decoder refuses it: a string where an
	// integer belongs.
	if err := f.rd.Client.Set(ctx, f.rd.Prefix+"order:"+notAnOrder.OrderUID, `{"sm_id":"x"}`, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		order *model.Order
		first cache.Source
	}{{"warm", warm, cache.Local}, {"db", dbOnly, cache.DB}, {"redis", redisOnly, cache.Redis}, {"not an order in redis", notAnOrder, cache.DB}} {
		t.Run(tc.name, func(t *testing.T) {
			want := canonical(t, tc.order)
			wantMasked, err := pii.MaskJSON(want)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 5 {
				got, src, err := f.tiers.Get(ctx, tc.order.OrderUID)
				if err != nil {
					t.Fatal(err)
				}
				if i == 0 && src != tc.first || i > 0 && src != cache.Local {
					t.Fatalf("lookup %d from %s", i, src)
				}
				if !bytes.Equal(got.Body, want) {
					t.Fatalf("full view %s, want %s", got.Body, want)
				}
				m, ok := got.Masked()
				if !ok || !bytes.Equal(m.Append(nil), wantMasked) {
					t.Fatalf("masked view %q, want %s", m.Append(nil), wantMasked)
				}
				if m.ETag == got.Full().ETag || m.LengthHeader[0] != strconv.Itoa(len(wantMasked)) {
					t.Fatalf("masked view's ETag %s (the full view's %s), Content-Length %v", m.ETag, got.Full().ETag, m.LengthHeader)
				}
			}
			if c, err := f.tiers.Cached(tc.order.OrderUID); err != nil || c == nil || !hasMasked(c) {
				t.Fatalf("Cached: %v, %v", c, err)
			}
		})
	}
	// One mask per order entering the cache: 4 orders, 20 lookups. The
	// warm-up's order came decoded from the store, so MaskOrder masked it
	// without decoding; Mask decoded the other three, and the malformed
	// Redis value failed its mask once before the database's bytes were
	// masked.
	if got, gotOrders := masks.Load(), orderMasks.Load(); got != 4 || gotOrders != 1 {
		t.Fatalf("Mask ran %d times and MaskOrder %d, want 4 and 1", got, gotOrders)
	}
	if f.count("redis", "error") != 1 {
		t.Fatal("the Redis value that is not an order was not counted as an error")
	}
}

// TestWarmManyPages: a warm-up of several pages (read ahead, prepared in
// parallel) has, once Warm returns, every order in the local tier, each
// with its masked view, and once its Redis fill has ended, in Redis.
func TestWarmManyPages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newMaskingFixture(t, 64<<20, pii.MaskJSON, func(o *cache.Options) { o.MaskOrder = pii.Mask })
	orders := ordergen.New(71).Orders(1234) // pages of 500: three, the last partial
	testenv.InsertOrders(t, f.pg.Pool, orders...)
	n, err := f.tiers.Warm(ctx, len(orders))
	if err != nil || n != len(orders) {
		t.Fatalf("Warm: %d, %v", n, err)
	}
	if fill := <-f.tiers.WarmFilled(); fill.Written != len(orders) || fill.Left != 0 || fill.Err != nil {
		t.Fatalf("Redis fill: %+v", fill)
	}
	rc, err := redis.New(redis.Options{URL: f.rd.URL, Prefix: f.rd.Prefix, TTL: time.Minute, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	for _, o := range orders {
		want := canonical(t, o)
		masked, err := pii.MaskJSON(want)
		if err != nil {
			t.Fatal(err)
		}
		got, err := f.tiers.Cached(o.OrderUID)
		if err != nil || got == nil || !bytes.Equal(got.Body, want) || !hasMasked(got) || !bytes.Equal(maskedBody(got), masked) {
			t.Fatalf("local tier, %s: %v, %v", o.OrderUID, got, err)
		}
		if b, err := rc.Get(ctx, o.OrderUID); err != nil || !bytes.Equal(b, want) {
			t.Fatalf("redis, %s: %v", o.OrderUID, err)
		}
	}
}

// gatedRemote is a Remote whose SetMany waits for gate to close.
type gatedRemote struct {
	cache.Remote
	entered chan struct{} // closed by the first SetMany
	once    sync.Once
	gate    chan struct{}
}

func (g *gatedRemote) SetMany(ctx context.Context, entries []cache.Entry) error {
	g.once.Do(func() { close(g.entered) })
	<-g.gate
	return g.Remote.SetMany(ctx, entries)
}

// TestWarmFillAfterLocal: Warm returns once the local tier holds the
// orders, before Redis has any; the Redis fill that follows leaves out an
// order erased meanwhile, and stops at a resync (erasures announced while
// the reader was not subscribed were missed).
func TestWarmFillAfterLocal(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// during runs while the first page's write waits.
		during func(tiers *cache.Tiered, erased string)
		// wantWritten is the orders the fill writes, of the three pages.
		wantWritten func(orders int) int
	}{
		{"erasure", func(tiers *cache.Tiered, erased string) {
			tiers.Invalidate(context.Background(), cache.Changes{Erased: []string{erased}})
		}, func(orders int) int { return orders - 1 }},
		{"resync", func(tiers *cache.Tiered, _ string) { tiers.Resync() }, func(int) int { return 500 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			gate := &gatedRemote{entered: make(chan struct{}), gate: make(chan struct{})}
			f := newMaskingFixture(t, 64<<20, pii.MaskJSON, func(o *cache.Options) {
				o.MaskOrder = pii.Mask
				gate.Remote = o.Remote
				o.Remote = gate
			})
			orders := ordergen.New(72).Orders(1234) // pages of 500: three
			testenv.InsertOrders(t, f.pg.Pool, orders...)
			n, err := f.tiers.Warm(ctx, len(orders))
			if err != nil || n != len(orders) {
				t.Fatalf("Warm: %d, %v", n, err)
			}
			// The newest page is written first; erase an order of the
			// last one, not yet checked.
			erased := oldest(orders).OrderUID
			for _, o := range orders {
				if c, err := f.tiers.Cached(o.OrderUID); err != nil || c == nil {
					t.Fatalf("local tier, %s: %v, %v", o.OrderUID, c, err)
				}
			}
			<-gate.entered
			if keys := f.rd.Client.Keys(ctx, f.rd.Prefix+"order:*").Val(); len(keys) != 0 {
				t.Fatalf("%d orders in Redis before its fill wrote", len(keys))
			}
			tc.during(f.tiers, erased)
			close(gate.gate)
			fill := <-f.tiers.WarmFilled()
			want := tc.wantWritten(len(orders))
			if fill.Written != want || fill.Left != len(orders)-want || fill.Err != nil {
				t.Fatalf("Redis fill: %+v, want %d written", fill, want)
			}
			if keys := f.rd.Client.Keys(ctx, f.rd.Prefix+"order:*").Val(); len(keys) != want {
				t.Fatalf("%d orders in Redis, want %d", len(keys), want)
			}
			if err := f.rd.Client.Get(ctx, f.rd.Prefix+"order:"+erased).Err(); err == nil {
				t.Fatal("the erased order was written to Redis")
			}
		})
	}
}

func oldest(orders []*model.Order) *model.Order {
	best := orders[0]
	for _, o := range orders[1:] {
		if o.DateCreated.Before(best.DateCreated) || o.DateCreated.Equal(best.DateCreated) && o.OrderUID < best.OrderUID {
			best = o
		}
	}
	return best
}
