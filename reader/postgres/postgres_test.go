package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderservice/orders/reader/cache"
	"github.com/orderservice/orders/reader/postgres"
	"github.com/orderservice/orders/shared/model"
	"github.com/orderservice/orders/shared/ordergen"
	"github.com/orderservice/orders/shared/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func open(t testing.TB, pg *testenv.PG) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), postgres.Options{URL: pg.URLAs("order_reader"), MaxConns: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// TestGetIsCanonical: the one-query document, re-encoded, is byte for byte
// the canonical JSON of the ingested order (what the ingestor caches).
func TestGetIsCanonical(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	gen := ordergen.New(21)
	orders := append([]*model.Order{testenv.Sample(t)}, gen.Orders(20)...)
	orders = append(orders, oddOrder(gen))
	testenv.InsertOrders(t, pg.Pool, orders...)
	s := open(t, pg)
	ctx := context.Background()
	for _, o := range orders {
		got, err := s.Get(ctx, o.OrderUID)
		if err != nil {
			t.Fatalf("Get(%s): %v", o.OrderUID, err)
		}
		want, err := o.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("Get(%s):\n got %s\nwant %s", o.OrderUID, got, want)
		}
	}
	if _, err := s.Get(ctx, "missing"); !errors.Is(err, cache.ErrNotFound) {
		t.Fatalf("Get(missing) = %v, want ErrNotFound", err)
	}
}

// oddOrder is an order with the edge cases the schema allows: empty
// optional strings, JSON-special and non-ASCII characters, many items
// (their order must hold), a non-UTC, sub-second creation time.
func oddOrder(gen *ordergen.Generator) *model.Order {
	odd := gen.Order()
	odd.InternalSignature = ""
	odd.Payment.RequestID = ""
	odd.Delivery.Name = `Quote " back\slash <tag> & Ünïcødé 日本`
	odd.DateCreated = time.Date(2024, 2, 29, 23, 59, 59, 123456000, time.FixedZone("X", 3*3600+1800))
	for i := range 40 {
		it := odd.Items[0]
		it.ChrtID = int64(1000 - i)
		it.Name = string(rune('A' + i%26))
		odd.Items = append(odd.Items, it)
	}
	return odd
}

// TestRecentIsGet: the warm-up's pages hold what the lookups answer, byte
// for byte, and each entry's decoded order encodes to its JSON (the cache
// masks that order): for the edge cases of TestGetIsCanonical, an order
// whose items were stored out of position order, one without items, and
// dates before and after PostgreSQL's epoch, at page sizes that split and
// do not split them. An order without a payment row is in neither.
func TestRecentIsGet(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	gen := ordergen.New(26)
	orders := append([]*model.Order{testenv.Sample(t)}, gen.Orders(30)...)
	orders = append(orders, oddOrder(gen))
	orders[1].DateCreated = time.Date(1999, time.December, 31, 23, 59, 59, 999999000, time.UTC)
	orders[2].DateCreated = time.Date(2000, time.January, 1, 0, 0, 0, 0, time.UTC)
	testenv.InsertOrders(t, pg.Pool, orders...)
	ctx := context.Background()
	noItems, reversed, noPayment := orders[3].OrderUID, orders[4].OrderUID, orders[5].OrderUID
	for _, q := range []string{
		`DELETE FROM items WHERE order_uid = '` + noItems + `'`,
		`DELETE FROM payment WHERE order_uid = '` + noPayment + `'`,
		// The same items, stored last position first.
		`CREATE TEMP TABLE moved AS SELECT * FROM items WHERE order_uid = '` + reversed + `'`,
		`DELETE FROM items WHERE order_uid = '` + reversed + `'`,
		`INSERT INTO items SELECT * FROM moved ORDER BY position DESC`,
	} {
		if _, err := pg.Pool.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s := open(t, pg)
	for _, batch := range []int{1, 4, 500} {
		got := 0
		err := s.Recent(ctx, 100, batch, func(p []cache.Entry) error {
			for _, e := range p {
				got++
				if e.UID == noPayment {
					t.Errorf("batch %d: the order without a payment row is listed", batch)
				}
				want, err := s.Get(ctx, e.UID)
				if err != nil {
					return fmt.Errorf("Get(%s): %w", e.UID, err)
				}
				if !bytes.Equal(e.JSON, want) {
					t.Errorf("batch %d, order %s:\n got %s\nwant %s", batch, e.UID, e.JSON, want)
				}
				enc, err := e.Order.Canonical()
				if err != nil || !bytes.Equal(enc, e.JSON) {
					t.Errorf("batch %d, order %s: the decoded order encodes to %s (%v), its JSON is %s", batch, e.UID, enc, err, e.JSON)
				}
				if e.UID == noItems && (e.Order.Items == nil || len(e.Order.Items) != 0) {
					t.Errorf("batch %d: the order without items has items %#v", batch, e.Order.Items)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if got != len(orders)-1 {
			t.Errorf("batch %d: %d orders, want %d", batch, got, len(orders)-1)
		}
	}
}

// batchSizes records the batch sizes the Store reports.
type batchSizes struct {
	mu    sync.Mutex
	sizes []int
}

func (b *batchSizes) Observe(v float64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sizes = append(b.sizes, int(v))
}

func (b *batchSizes) get() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.sizes)
}

// TestGetBatchesQueuedLookups: with the one loader held up (its query waits
// on a lock), lookups queue; once it is free they all go in one query, and
// each caller gets its own answer: its order, ErrNotFound for an unknown
// uid, the same order twice for a uid asked twice. A caller that gives up
// while queued is answered at once and left out of the query.
func TestGetBatchesQueuedLookups(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	gen := ordergen.New(24)
	orders := gen.Orders(10)
	testenv.InsertOrders(t, pg.Pool, orders...)
	sizes := &batchSizes{}
	s, err := postgres.Open(context.Background(), postgres.Options{
		URL: pg.URLAs("order_reader"), MaxConns: 2, Loaders: 1, BatchSize: sizes,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	ctx := context.Background()

	release := pg.LockTable(t, "items")
	type answer struct {
		uid  string
		body []byte
		err  error
	}
	answers := make(chan answer, 20)
	get := func(ctx context.Context, uid string) {
		body, err := s.Get(ctx, uid)
		answers <- answer{uid, body, err}
	}
	go get(ctx, orders[0].OrderUID)
	testenv.Await(t, "the first lookup's query to wait on the lock", 10*time.Second, func() bool {
		return pg.LockWaiters(t, "order_reader") == 1
	})
	queued := []string{"unknown-1", orders[1].OrderUID, "unknown-2"}
	for _, o := range orders[1:] {
		queued = append(queued, o.OrderUID)
	}
	for _, uid := range queued {
		go get(ctx, uid)
	}
	impatient, giveUp := context.WithCancel(ctx)
	go get(impatient, orders[9].OrderUID)
	testenv.Await(t, "every lookup to queue", 10*time.Second, func() bool { return s.Queued() == len(queued)+1 })
	giveUp()
	if a := <-answers; !errors.Is(a.err, context.Canceled) {
		t.Fatalf("the caller that gave up got %v (%s), want context.Canceled", a.err, a.uid)
	}
	release()

	want := map[string][]byte{}
	for _, o := range orders {
		b, err := o.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		want[o.OrderUID] = b
	}
	for range len(queued) + 1 {
		a := <-answers
		switch w, ok := want[a.uid]; {
		case !ok && !errors.Is(a.err, cache.ErrNotFound):
			t.Errorf("Get(%s) = %v, want ErrNotFound", a.uid, a.err)
		case ok && (a.err != nil || !bytes.Equal(a.body, w)):
			t.Errorf("Get(%s) = %v, %s\nwant %s", a.uid, a.err, a.body, w)
		}
	}
	// The held-up query asked for one order; the queued ones shared the
	// next, without the lookup whose caller gave up.
	if got := sizes.get(); !slices.Equal(got, []int{1, len(queued)}) {
		t.Fatalf("batch sizes %v, want [1 %d]", got, len(queued))
	}
}

// TestGetAfterClose: a lookup after Close fails with ErrClosed.
func TestGetAfterClose(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	s := open(t, pg)
	s.Close()
	if _, err := s.Get(context.Background(), "any"); !errors.Is(err, postgres.ErrClosed) {
		t.Fatalf("Get after Close = %v, want ErrClosed", err)
	}
}

func TestRecentAndSearch(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	gen := ordergen.New(22)
	orders := gen.Orders(23)
	testenv.InsertOrders(t, pg.Pool, orders...)
	s := open(t, pg)
	ctx := context.Background()

	for _, tc := range []struct{ n, batch, want, pages int }{
		{10, 4, 10, 3}, {23, 5, 23, 5}, {100, 10, 23, 3}, {0, 5, 0, 0},
	} {
		var got []cache.Entry
		pages := 0
		err := s.Recent(ctx, tc.n, tc.batch, func(p []cache.Entry) error {
			pages++
			got = append(got, p...)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != tc.want || pages != tc.pages {
			t.Fatalf("Recent(%d, %d): %d orders in %d pages, want %d in %d", tc.n, tc.batch, len(got), pages, tc.want, tc.pages)
		}
		seen := map[string]bool{}
		for i, e := range got {
			o, err := model.Decode(e.JSON)
			if err != nil || o.OrderUID != e.UID {
				t.Fatalf("entry %d: %v %q", i, err, e.UID)
			}
			if seen[e.UID] {
				t.Fatalf("order %s twice", e.UID)
			}
			seen[e.UID] = true
			if i > 0 {
				prev, _ := model.Decode(got[i-1].JSON)
				if o.DateCreated.After(prev.DateCreated) {
					t.Fatalf("not newest first at %d", i)
				}
			}
		}
	}

	sums, err := s.Search(ctx, cache.Query{Limit: 5})
	if err != nil {
		t.Fatal(err)
	}
	if len(sums) != 5 {
		t.Fatalf("%d summaries", len(sums))
	}
	var first []cache.Entry
	_ = s.Recent(ctx, 5, 5, func(p []cache.Entry) error { first = p; return nil })
	for i, sm := range sums {
		if sm.OrderUID != first[i].UID {
			t.Fatalf("summary %d is %s, recent order is %s", i, sm.OrderUID, first[i].UID)
		}
	}
}

// TestRecentKeysetPages: the warm-up's pages, at every page size, add up
// to exactly the n most recent orders in (date_created, order_uid) order,
// each once, when many orders share a timestamp and page boundaries fall
// inside such a group; and orders stored while the pages are read (newer
// ones, and one that sorts above the boundary in a group of equal
// timestamps) neither shift the pages nor show up in them.
func TestRecentKeysetPages(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	gen := ordergen.New(25)
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	// 31 orders in four groups of equal timestamps (one a microsecond
	// apart from the next group) and a few alone.
	stamps := []time.Time{base, base.Add(time.Microsecond), base.Add(time.Second), base.Add(-time.Hour)}
	orders := gen.Orders(31)
	for i, o := range orders {
		if i < 28 {
			o.DateCreated = stamps[i%len(stamps)]
		} else {
			o.DateCreated = base.Add(-time.Duration(i) * time.Minute)
		}
	}
	testenv.InsertOrders(t, pg.Pool, orders...)
	s := open(t, pg)
	ctx := context.Background()
	newest := func(n int) []string {
		t.Helper()
		rows, err := pg.Pool.Query(ctx, `SELECT order_uid FROM orders ORDER BY date_created DESC, order_uid DESC LIMIT $1`, n)
		if err != nil {
			t.Fatal(err)
		}
		uids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return uids
	}
	recent := func(n, batch int, between func(page int)) (uids []string, sizes []int) {
		t.Helper()
		err := s.Recent(ctx, n, batch, func(p []cache.Entry) error {
			sizes = append(sizes, len(p))
			for _, e := range p {
				uids = append(uids, e.UID)
			}
			if between != nil {
				between(len(sizes))
			}
			return nil
		})
		if err != nil {
			t.Fatalf("Recent(%d, %d): %v", n, batch, err)
		}
		return uids, sizes
	}

	for _, tc := range []struct{ n, batch int }{
		{31, 1}, {31, 2}, {31, 3}, {31, 4}, {31, 5}, {31, 7}, {31, 10}, {31, 30}, {31, 31}, {31, 32},
		{100, 3}, {20, 6}, {13, 4},
	} {
		want := newest(tc.n)
		got, sizes := recent(tc.n, tc.batch, nil)
		if !slices.Equal(got, want) {
			t.Fatalf("Recent(%d, %d) in pages %v:\n got %v\nwant %v", tc.n, tc.batch, sizes, got, want)
		}
	}

	// Orders stored between pages: two newer than all, one that shares the
	// timestamp of the first page's last order but sorts above it (in the
	// page already read), and one that sorts just above the first order
	// of the fifth page (in the fourth, not read yet: the pages are read
	// at most recentFetchers ahead). The pages hold the orders that were
	// the newest at the start, plus the last one, each once: a page that
	// grew is read on, and nothing shifts.
	const n, batch = 24, 5
	want := newest(n)
	keyOf := func(uid string) time.Time {
		t.Helper()
		var created time.Time
		if err := pg.Pool.QueryRow(ctx, `SELECT date_created FROM orders WHERE order_uid = $1`, uid).Scan(&created); err != nil {
			t.Fatal(err)
		}
		return created
	}
	extra := gen.Orders(4)
	extra[0].DateCreated = base.Add(time.Hour)
	extra[1].DateCreated = base.Add(2 * time.Hour)
	for k, at := range map[int]string{2: want[batch-1], 3: want[4*batch]} {
		extra[k].DateCreated = keyOf(at)
		extra[k].OrderUID = at + "z" // just above it in order_uid DESC
		extra[k].Payment.Transaction = extra[k].OrderUID
	}
	got, _ := recent(n, batch, func(page int) {
		if page == 1 {
			testenv.InsertOrders(t, pg.Pool, extra...)
		}
	})
	want = slices.Insert(want, 4*batch, extra[3].OrderUID)
	if !slices.Equal(got, want) {
		t.Fatalf("with orders stored between pages:\n got %v\nwant %v", got, want)
	}

	// An error of fn ends the pages: Recent returns it, and fn is not
	// called again although pages were being read ahead.
	stop := errors.New("stop")
	calls := 0
	err := s.Recent(ctx, 31, 2, func([]cache.Entry) error {
		calls++
		if calls == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 2 {
		t.Fatalf("Recent with fn failing on page 2: %v after %d calls, want %v after 2", err, calls, stop)
	}
}

// BenchmarkGet is the database tier alone: 8 goroutines looking up orders
// at once, their lookups batched as the loaders allow.
func BenchmarkGet(b *testing.B) {
	pg := testenv.Postgres(b)
	gen := ordergen.New(23)
	orders := gen.Orders(1000)
	uids := make([]string, len(orders))
	for i, o := range orders {
		uids[i] = o.OrderUID
	}
	testenv.InsertOrders(b, pg.Pool, orders...)
	s := open(b, pg)
	ctx := context.Background()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(p *testing.PB) {
		i := 0
		for p.Next() {
			if _, err := s.Get(ctx, uids[i%len(uids)]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}
