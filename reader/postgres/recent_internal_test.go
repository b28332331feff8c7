package postgres

import (
	"bytes"
	"context"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/orderservice/orders/reader/cache"
	"github.com/orderservice/orders/shared/model"
	"github.com/orderservice/orders/shared/ordergen"
	"github.com/orderservice/orders/shared/testenv"
)

// TestRecentScanFallback: a page whose columns are not the types the raw
// decoding reads (a schema changed under the reader) is read with pgx's
// Scan, to the same entries. Not parallel: it changes the tables of the
// column types the pages' reading checks.
func TestRecentScanFallback(t *testing.T) {
	pg := testenv.Postgres(t)
	testenv.InsertOrders(t, pg.Pool, ordergen.New(27).Orders(12)...)
	s, err := Open(context.Background(), Options{URL: pg.URLAs("order_reader"), MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	read := func() []cache.Entry {
		t.Helper()
		var all []cache.Entry
		if err := s.Recent(context.Background(), 12, 5, func(p []cache.Entry) error {
			all = append(all, p...)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return all
	}
	raw := read()
	orders, items := orderColumnTypes, itemColumnTypes
	t.Cleanup(func() { orderColumnTypes, itemColumnTypes = orders, items })
	orderColumnTypes, itemColumnTypes = nil, nil
	scanned := read()
	if len(raw) != 12 || len(scanned) != len(raw) {
		t.Fatalf("%d orders decoded raw, %d scanned, want 12", len(raw), len(scanned))
	}
	for i := range raw {
		if raw[i].UID != scanned[i].UID || !bytes.Equal(raw[i].JSON, scanned[i].JSON) {
			t.Errorf("entry %d: raw %s %s\nscanned %s %s", i, raw[i].UID, raw[i].JSON, scanned[i].UID, scanned[i].JSON)
		}
	}
}

// TestRecentItemsInAnyOrder: a page's items are in position order
// whatever order their rows come in, each with its order, decoded raw or
// scanned.
func TestRecentItemsInAnyOrder(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	orders := ordergen.New(28).Orders(6)
	for _, o := range orders {
		for len(o.Items) < 5 {
			it := o.Items[0]
			it.ChrtID = int64(len(o.Items))
			o.Items = append(o.Items, it)
		}
	}
	testenv.InsertOrders(t, pg.Pool, orders...)
	ctx := context.Background()
	q := recentOrdersPage
	// The items' statement's rows, last position first and the orders
	// interleaved.
	shuffled := q.items + "\nORDER BY i.position DESC, o.order_uid"
	for _, scan := range []bool{false, true} {
		var p page
		err := pgx.BeginFunc(ctx, pg.Pool, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, q.orders, len(orders))
			if err != nil {
				return err
			}
			if err := p.readOrders(rows); err != nil {
				return err
			}
			rows, err = tx.Query(ctx, shuffled, len(orders))
			if err != nil {
				return err
			}
			defer rows.Close()
			if scan {
				rows = scanned{rows}
			}
			return p.readItems(rows)
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.orders) != len(orders) {
			t.Fatalf("%d orders, want %d", len(p.orders), len(orders))
		}
		for _, got := range p.orders {
			i := slices.IndexFunc(orders, func(o *model.Order) bool { return o.OrderUID == got.OrderUID })
			if i < 0 || !slices.Equal(got.Items, orders[i].Items) {
				t.Errorf("scan %v: order %s has items %+v, want %+v", scan, got.OrderUID, got.Items, orders[i].Items)
			}
		}
	}
}

// scanned hides rows' column types, so that readItems scans them.
type scanned struct{ pgx.Rows }

func (scanned) FieldDescriptions() []pgconn.FieldDescription { return nil }

// TestReadersOfAFailedBatch: the callbacks of batched statements (a
// warm-up page's two, the searches') get the rows pgx hands a statement of
// a batch that failed before its result (here the batch's context was
// cancelled), which hold the error and no result: they return the error
// rather than ask the missing result for its columns (which panicked a
// warm-up whose context ended mid-page).
func TestReadersOfAFailedBatch(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	conn, err := pg.Pool.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	for name, read := range map[string]func(pgx.Rows) error{
		"page orders": (&page{}).readOrders,
		"page items":  (&page{}).readItems,
		"searches":    func(rows pgx.Rows) error { return scanSearches(rows, nil) },
	} {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		var b pgx.Batch
		b.Queue("SELECT 1")
		br := conn.SendBatch(ctx, &b)
		rows, _ := br.Query()
		if err := read(rows); err == nil {
			t.Errorf("%s: read a failed batch's rows without an error", name)
		}
		rows.Close()
		_ = br.Close()
	}
}
