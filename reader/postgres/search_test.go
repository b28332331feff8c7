package postgres_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderservice/orders/reader/cache"
	"github.com/orderservice/orders/reader/postgres"
	"github.com/orderservice/orders/shared/model"
	"github.com/orderservice/orders/shared/ordergen"
	"github.com/orderservice/orders/shared/testenv"
)

// searchBase is the date of the oldest order of searchData.
var searchBase = time.Date(2026, time.October, 1, 0, 0, 0, 0, time.UTC)

// searchData is a known data set: 240 generated orders whose searchable
// fields are set by their index i, so that every filter and combination
// has matches and misses. Track numbers are shared by 4 orders each,
// customers by about 34, five currencies take turns and two orders pay in
// a rare one (BYN); dates are 37 minutes apart, but every tenth order has
// its predecessor's date, so that order_uid has to break ties.
func searchData() []*model.Order {
	orders := ordergen.New(31).Orders(240)
	currencies := []string{"RUB", "USD", "EUR", "KZT", "ILS"}
	for i, o := range orders {
		o.TrackNumber = fmt.Sprintf("WBILTRK%03d", i%60)
		for k := range o.Items {
			o.Items[k].TrackNumber = o.TrackNumber
		}
		o.CustomerID = fmt.Sprintf("customer-%d", i%7)
		o.Payment.Currency = currencies[i%5]
		if i == 17 || i == 200 {
			o.Payment.Currency = "BYN"
		}
		o.DateCreated = searchBase.Add(time.Duration(i) * 37 * time.Minute)
		if i%10 == 9 {
			o.DateCreated = orders[i-1].DateCreated
		}
	}
	return orders
}

// expect is what Search must answer: the orders f selects, newest first.
func expect(orders []*model.Order, f cache.Filter) []cache.Summary {
	var out []cache.Summary
	for _, o := range orders {
		if f.TrackNumber != "" && o.TrackNumber != f.TrackNumber ||
			f.CustomerID != "" && o.CustomerID != f.CustomerID ||
			f.Currency != "" && o.Payment.Currency != f.Currency ||
			!f.CreatedFrom.IsZero() && o.DateCreated.Before(f.CreatedFrom) ||
			!f.CreatedTo.IsZero() && !o.DateCreated.Before(f.CreatedTo) {
			continue
		}
		out = append(out, cache.Summary{OrderUID: o.OrderUID, TrackNumber: o.TrackNumber, DateCreated: o.DateCreated,
			Amount: o.Payment.Amount, Currency: o.Payment.Currency, ItemCount: len(o.Items)})
	}
	// The database's collation orders these ASCII uids bytewise too.
	slices.SortFunc(out, func(a, b cache.Summary) int {
		return cmp.Or(b.DateCreated.Compare(a.DateCreated), strings.Compare(b.OrderUID, a.OrderUID))
	})
	return out
}

func TestSearchFilters(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	orders := searchData()
	testenv.InsertOrders(t, pg.Pool, orders...)
	s := open(t, pg)
	ctx := context.Background()
	at := func(i int) time.Time { return orders[i].DateCreated }

	cases := []struct {
		name   string
		filter cache.Filter
		want   int // matches, to keep the data set honest
	}{
		{"none", cache.Filter{}, 240},
		{"track number", cache.Filter{TrackNumber: "WBILTRK007"}, 4},
		{"customer", cache.Filter{CustomerID: "customer-3"}, 34},
		{"currency", cache.Filter{Currency: "EUR"}, 47},
		{"rare currency", cache.Filter{Currency: "BYN"}, 2},
		{"currency nobody paid in", cache.Filter{Currency: "JPY"}, 0},
		// Half-open: the order dated exactly created_from is in, the one
		// dated exactly created_to is out (orders 8 and 9 share a date).
		{"created from", cache.Filter{CreatedFrom: at(200)}, 40},
		{"created to", cache.Filter{CreatedTo: at(8)}, 8},
		{"created from and to", cache.Filter{CreatedFrom: at(8), CreatedTo: at(20)}, 12},
		{"empty range", cache.Filter{CreatedFrom: at(50), CreatedTo: at(50)}, 0},
		{"unknown track number", cache.Filter{TrackNumber: "WBILNONE"}, 0},
		{"unknown customer", cache.Filter{CustomerID: "customer-7"}, 0},
		{"track number and customer", cache.Filter{TrackNumber: "WBILTRK010", CustomerID: "customer-3"}, 1},
		{"track number of another customer", cache.Filter{TrackNumber: "WBILTRK010", CustomerID: "customer-5"}, 0},
		{"track number and currency", cache.Filter{TrackNumber: "WBILTRK010", Currency: "RUB"}, 4},
		{"customer and currency", cache.Filter{CustomerID: "customer-3", Currency: "USD"}, 6},
		{"customer and dates", cache.Filter{CustomerID: "customer-3", CreatedFrom: at(30), CreatedTo: at(100)}, 10},
		{"currency and dates", cache.Filter{Currency: "KZT", CreatedFrom: at(30), CreatedTo: at(100)}, 14},
		{"customer, currency and dates", cache.Filter{CustomerID: "customer-3", Currency: "USD",
			CreatedFrom: at(30), CreatedTo: at(100)}, 2},
		{"all five", cache.Filter{TrackNumber: "WBILTRK010", CustomerID: "customer-3", Currency: "RUB",
			CreatedFrom: at(0), CreatedTo: at(239)}, 1},
		{"all five, outside the dates", cache.Filter{TrackNumber: "WBILTRK010", CustomerID: "customer-3", Currency: "RUB",
			CreatedFrom: at(100)}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			want := expect(orders, tc.filter)
			if len(want) != tc.want {
				t.Fatalf("the data set has %d matches, the case says %d", len(want), tc.want)
			}
			got, err := s.Search(ctx, cache.Query{Filter: tc.filter, Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("Search got %d orders, want %d:\ngot  %v\nwant %v", len(got), len(want), got, want)
			}
			// The same list in pages of 7, each resuming after the last
			// key of the one before.
			var paged []cache.Summary
			q := cache.Query{Filter: tc.filter, Limit: 7}
			for range 100 {
				page, err := s.Search(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				paged = append(paged, page...)
				if len(page) < q.Limit {
					break
				}
				k := page[len(page)-1].Key()
				q.After = &k
			}
			if !slices.Equal(paged, want) {
				t.Fatalf("pages of 7 got %d orders, want %d:\ngot  %v\nwant %v", len(paged), len(want), paged, want)
			}
		})
	}
}

// addNoise stores n more orders, each with its own customer and track
// number, paid in searchData's five currencies in turn, without items,
// dated among searchData's, so that the planner sees the selectivities of
// a real table: one customer's or track number's orders are a small part
// of it, a currency's a large one. Plain SQL copies of one stored order:
// thousands of generated orders would take seconds to insert.
func addNoise(t *testing.T, pg *testenv.PG, like string, n int) {
	t.Helper()
	ctx := context.Background()
	const currency = `(ARRAY['RUB', 'USD', 'EUR', 'KZT', 'ILS'])[g % 5 + 1]`
	err := pgx.BeginFunc(ctx, pg.Pool, func(tx pgx.Tx) error {
		// jsonb_populate_record in the FROM list runs once per row;
		// (jsonb_populate_record(...)).* would run once per column.
		if _, err := tx.Exec(ctx, `INSERT INTO orders SELECT r.* FROM orders o, generate_series(1, $3) g,
			jsonb_populate_record(NULL::orders, to_jsonb(o) ||
				jsonb_build_object('order_uid', 'noise' || g, 'customer_id', 'shopper-' || g,
				'track_number', 'WBILNOISE' || g, 'currency', `+currency+`, 'item_count', 0,
				'date_created', $2::timestamptz + (g % 240) * interval '37 minutes' + g * interval '1 second')) r
			WHERE o.order_uid = $1`, like, searchBase, n); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO payment SELECT r.* FROM payment p, generate_series(1, $2) g,
			jsonb_populate_record(NULL::payment, to_jsonb(p) ||
				jsonb_build_object('order_uid', 'noise' || g, 'transaction', 'noise' || g, 'currency', `+currency+`)) r
			WHERE p.order_uid = $1`, like, n)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "ANALYZE")
		return err
	})
	if err != nil {
		t.Fatalf("add noise: %v", err)
	}
}

// plan is a node of EXPLAIN (FORMAT JSON).
type plan struct {
	NodeType     string  `json:"Node Type"`
	RelationName string  `json:"Relation Name"`
	IndexName    string  `json:"Index Name"`
	IndexCond    string  `json:"Index Cond"`
	Filter       string  `json:"Filter"`
	ActualRows   float64 `json:"Actual Rows"`
	HeapFetches  float64 `json:"Heap Fetches"`
	RowsRemoved  float64 `json:"Rows Removed by Filter"`
	Plans        []plan  `json:"Plans"`
}

func (p plan) walk(fn func(plan)) {
	fn(p)
	for _, c := range p.Plans {
		c.walk(fn)
	}
}

// explain returns the plan of the query Search sends for q, with
// sequential scans priced out (the table is small; the question is whether
// an index serves each filter, and which).
func explain(t *testing.T, pg *testenv.PG, q cache.Query, analyze bool) plan {
	t.Helper()
	ctx := context.Background()
	sql, args := postgres.SearchQuery(q)
	opts := "FORMAT JSON"
	if analyze {
		opts += ", ANALYZE, TIMING OFF"
	}
	var out []struct{ Plan plan }
	err := pgx.BeginFunc(ctx, pg.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL enable_seqscan = off"); err != nil {
			return err
		}
		var js []byte
		if err := tx.QueryRow(ctx, "EXPLAIN ("+opts+") "+sql, args...).Scan(&js); err != nil {
			return err
		}
		return json.Unmarshal(js, &out)
	})
	if err != nil || len(out) != 1 {
		t.Fatalf("explain %s: %v", sql, err)
	}
	return out[0].Plan
}

// TestSearchUsesIndexes: every filter is served by the index made for it
// (migrations/sql), the keyset is an index condition rather than a filter
// on rows already read, and no table is scanned whole.
func TestSearchUsesIndexes(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	orders := searchData()
	testenv.InsertOrders(t, pg.Pool, orders...)
	addNoise(t, pg, orders[0].OrderUID, 5000)
	after := &cache.Key{DateCreated: orders[120].DateCreated, OrderUID: orders[120].OrderUID}
	cases := []struct {
		name   string
		filter cache.Filter
		index  string // the index that must yield the orders
	}{
		{"newest", cache.Filter{}, "orders_recent_idx"},
		{"track number", cache.Filter{TrackNumber: "WBILTRK007"}, "orders_track_number_idx"},
		{"customer", cache.Filter{CustomerID: "customer-3"}, "orders_customer_summary_idx"},
		{"dates", cache.Filter{CreatedFrom: orders[10].DateCreated, CreatedTo: orders[200].DateCreated}, "orders_recent_idx"},
		{"common currency", cache.Filter{Currency: "RUB"}, "orders_currency_idx"},
		{"rare currency", cache.Filter{Currency: "BYN"}, "orders_currency_idx"},
		{"customer and currency", cache.Filter{CustomerID: "customer-3", Currency: "EUR"}, "orders_customer_summary_idx"},
		{"track number and dates", cache.Filter{TrackNumber: "WBILTRK007", CreatedFrom: orders[0].DateCreated}, "orders_track_number_idx"},
	}
	for _, tc := range cases {
		for _, after := range []*cache.Key{nil, after} {
			name := tc.name
			if after != nil {
				name += " after a key"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				p := explain(t, pg, cache.Query{Filter: tc.filter, After: after, Limit: 21}, false)
				var used []string
				p.walk(func(n plan) {
					if n.NodeType == "Seq Scan" {
						t.Errorf("sequential scan of %s", n.RelationName)
					}
					if n.IndexName == "" {
						return
					}
					used = append(used, n.IndexName)
					// The keyset bounds the walk of an orders index from
					// the start (the currency index cannot carry it).
					if after != nil && n.IndexName == tc.index && n.RelationName == "orders" &&
						!strings.Contains(n.IndexCond, "date_created") {
						t.Errorf("%s: the keyset is not an index condition: %+v", n.IndexName, n)
					}
				})
				if !slices.Contains(used, tc.index) {
					t.Errorf("indexes used %v, want %s", used, tc.index)
				}
			})
		}
	}
}

// TestSearchDeepPageReadsOnePage: a page deep in a customer's history reads
// as many index entries as the first page, the rows it returns and no
// more (an OFFSET would read every row before the page and discard them),
// and, once VACUUM has marked the table's pages all-visible, reads nothing
// but the index: no heap page of orders, no other table.
func TestSearchDeepPageReadsOnePage(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	orders := searchData()
	testenv.InsertOrders(t, pg.Pool, orders...)
	addNoise(t, pg, orders[0].OrderUID, 5000)
	if _, err := pg.Pool.Exec(context.Background(), "VACUUM orders"); err != nil {
		t.Fatal(err)
	}
	f := cache.Filter{CustomerID: "customer-3"}
	history := expect(orders, f)
	deep := history[25].Key()
	const limit = 5
	for _, after := range []*cache.Key{nil, &deep} {
		p := explain(t, pg, cache.Query{Filter: f, After: after, Limit: limit}, true)
		found := false
		p.walk(func(n plan) {
			if n.RelationName != "" && n.RelationName != "orders" {
				t.Errorf("after %v: the search reads %s", after, n.RelationName)
			}
			if n.IndexName != "orders_customer_summary_idx" {
				return
			}
			found = true
			if n.ActualRows != limit || n.RowsRemoved != 0 {
				t.Errorf("after %v: the index scan read %v rows and removed %v, want %d and 0", after, n.ActualRows, n.RowsRemoved, limit)
			}
			if n.NodeType != "Index Only Scan" || n.HeapFetches != 0 {
				t.Errorf("after %v: %s with %v heap fetches, want an Index Only Scan with none", after, n.NodeType, n.HeapFetches)
			}
		})
		if !found {
			t.Errorf("after %v: orders_customer_summary_idx not used", after)
		}
	}
}

// page is what Search answers for q, given the whole list want of its
// filters: the orders after q.After, at most q.Limit.
func page(want []cache.Summary, q cache.Query) []cache.Summary {
	if q.After != nil {
		i := slices.IndexFunc(want, func(s cache.Summary) bool { return s.Key() == *q.After })
		want = want[i+1:]
	}
	return want[:min(len(want), q.Limit)]
}

// TestSearchBatchesQueuedSearches: with the one searcher held up (its
// query waits on a lock), searches queue; once it is free they are
// answered in one round trip, and each caller gets its own page: searches
// of one shape share a query whatever their values and limits, those of
// other shapes (and those the LATERAL form does not serve) go in the same
// pipeline, a search asked twice is answered twice, an unknown value gets
// an empty page. A caller that gives up while queued is answered at once
// and left out.
func TestSearchBatchesQueuedSearches(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	orders := searchData()
	testenv.InsertOrders(t, pg.Pool, orders...)
	sizes := &batchSizes{}
	s, err := postgres.Open(context.Background(), postgres.Options{
		URL: pg.URLAs("order_reader"), MaxConns: 2, Searchers: 1, SearchBatchSize: sizes,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	ctx := context.Background()
	customer := expect(orders, cache.Filter{CustomerID: "customer-3"})
	deep := customer[20].Key()
	at := func(i int) time.Time { return orders[i].DateCreated }

	queued := []struct {
		name string
		q    cache.Query
	}{
		{"track number", cache.Query{Filter: cache.Filter{TrackNumber: "WBILTRK007"}, Limit: 21}},
		{"another track number, a shorter page", cache.Query{Filter: cache.Filter{TrackNumber: "WBILTRK010"}, Limit: 2}},
		{"the same track number again", cache.Query{Filter: cache.Filter{TrackNumber: "WBILTRK007"}, Limit: 21}},
		{"unknown track number", cache.Query{Filter: cache.Filter{TrackNumber: "WBILNONE"}, Limit: 21}},
		{"customer", cache.Query{Filter: cache.Filter{CustomerID: "customer-3"}, Limit: 11}},
		{"another customer", cache.Query{Filter: cache.Filter{CustomerID: "customer-5"}, Limit: 11}},
		{"customer, deep page", cache.Query{Filter: cache.Filter{CustomerID: "customer-3"}, After: &deep, Limit: 5}},
		{"customer and currency", cache.Query{Filter: cache.Filter{CustomerID: "customer-3", Currency: "USD"}, Limit: 21}},
		{"customer and dates", cache.Query{Filter: cache.Filter{CustomerID: "customer-3", CreatedFrom: at(30), CreatedTo: at(100)}, Limit: 21}},
		{"currency", cache.Query{Filter: cache.Filter{Currency: "EUR"}, Limit: 21}},
		{"rare currency", cache.Query{Filter: cache.Filter{Currency: "BYN"}, Limit: 21}},
		{"dates", cache.Query{Filter: cache.Filter{CreatedFrom: at(8), CreatedTo: at(20)}, Limit: 21}},
		{"newest", cache.Query{Limit: 3}},
	}

	release := pg.LockTable(t, "orders")
	type answer struct {
		i    int
		list []cache.Summary
		err  error
	}
	answers := make(chan answer, len(queued)+2)
	search := func(ctx context.Context, i int, q cache.Query) {
		list, err := s.Search(ctx, q)
		answers <- answer{i, list, err}
	}
	first := cache.Query{Filter: cache.Filter{TrackNumber: "WBILTRK001"}, Limit: 21}
	go search(ctx, -1, first)
	testenv.Await(t, "the first search's query to wait on the lock", 10*time.Second, func() bool {
		return pg.LockWaiters(t, "order_reader") == 1
	})
	for i, c := range queued {
		go search(ctx, i, c.q)
	}
	impatient, giveUp := context.WithCancel(ctx)
	go search(impatient, -2, queued[0].q)
	testenv.Await(t, "every search to queue", 10*time.Second, func() bool { return s.QueuedSearches() == len(queued)+1 })
	giveUp()
	if a := <-answers; a.i != -2 || !errors.Is(a.err, context.Canceled) {
		t.Fatalf("answer %d (%v) came first, want the caller that gave up with context.Canceled", a.i, a.err)
	}
	release()

	for range len(queued) + 1 {
		a := <-answers
		q, name := first, "the held-up search"
		if a.i >= 0 {
			q, name = queued[a.i].q, queued[a.i].name
		}
		want := page(expect(orders, q.Filter), q)
		if a.err != nil || !slices.Equal(a.list, want) {
			t.Errorf("%s: got %v, %d orders, want %d:\ngot  %v\nwant %v", name, a.err, len(a.list), len(want), a.list, want)
		}
	}
	// The held-up query was one search; the queued ones shared the next
	// round trip, without the one whose caller gave up.
	if got := sizes.get(); !slices.Equal(got, []int{1, len(queued)}) {
		t.Fatalf("batch sizes %v, want [1 %d]", got, len(queued))
	}
}
