package migrations_test

import (
	"context"
	"slices"
	"strconv"
	"testing"

	"github.com/golang-migrate/migrate/v4"
	"github.com/jackc/pgx/v5"

	"github.com/orderservice/orders/migrations"
	"github.com/orderservice/orders/shared/ordergen"
	"github.com/orderservice/orders/shared/testenv"
)

// The summary columns of orders: added by 000021, filled by 000022, then
// the indexes of 000023–000026 read them.
const (
	summaryColumnsVersion  = 21
	summaryBackfillVersion = 22
)

var summaryChecks = []string{"orders.orders_amount_check", "orders.orders_currency_check", "orders.orders_item_count_check"}

func migrateTo(t *testing.T, pg *testenv.PG, version uint) {
	t.Helper()
	if err := migrations.With(pg.URL, func(m *migrate.Migrate) error { return m.Migrate(version) }); err != nil {
		t.Fatalf("migrate to version %d: %v", version, err)
	}
}

// summaryMismatches counts the orders whose summary columns differ from
// their payment and items rows; an order without a payment row must keep
// NULLs.
func summaryMismatches(t *testing.T, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (mismatched, filled, empty int) {
	t.Helper()
	err := q.QueryRow(context.Background(), `SELECT
		count(*) FILTER (WHERE (o.amount, o.currency, o.item_count) IS DISTINCT FROM (p.amount, p.currency,
			CASE WHEN p.order_uid IS NOT NULL THEN (SELECT count(*) FROM items i WHERE i.order_uid = o.order_uid) END)),
		count(*) FILTER (WHERE o.amount IS NOT NULL AND o.currency IS NOT NULL AND o.item_count IS NOT NULL),
		count(*) FILTER (WHERE o.amount IS NULL AND o.currency IS NULL AND o.item_count IS NULL)
		FROM orders o LEFT JOIN payment p ON p.order_uid = o.order_uid`).Scan(&mismatched, &filled, &empty)
	if err != nil {
		t.Fatal(err)
	}
	return mismatched, filled, empty
}

func validated(t *testing.T, pg *testenv.PG) []string {
	t.Helper()
	return queryStrings(t, pg.Pool, `SELECT conrelid::regclass::text || '.' || conname FROM pg_constraint
		WHERE conrelid = 'orders'::regclass AND convalidated ORDER BY 1`)
}

// TestSummaryBackfill: orders stored before 000021 get their amount,
// currency and item count from their payment and items rows in 000022, in
// several transactions (batches of 5,000), and the CHECKs end validated.
// An order without a payment row keeps NULLs.
func TestSummaryBackfill(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	ctx := context.Background()
	migrateTo(t, pg, summaryColumnsVersion-1)
	orders := ordergen.New(61).Orders(40) // varied currencies and item counts
	testenv.InsertOrders(t, pg.Pool, orders...)
	// 10,000 more: plain SQL copies of one order, with 0 to 3 items and
	// amounts of their own (in the FROM list, jsonb_populate_record runs
	// once per row; (f(...)).* would call it once per column).
	const copies = 10_000
	like := orders[0].OrderUID
	err := pgx.BeginFunc(ctx, pg.Pool, func(tx pgx.Tx) error {
		for _, sql := range []string{
			`INSERT INTO orders SELECT r.* FROM orders o, generate_series(1, $2) g,
				jsonb_populate_record(NULL::orders, to_jsonb(o) || jsonb_build_object('order_uid', 'copy' || g)) r
				WHERE o.order_uid = $1`,
			`INSERT INTO payment SELECT r.* FROM payment p, generate_series(1, $2) g,
				jsonb_populate_record(NULL::payment, to_jsonb(p) ||
					jsonb_build_object('order_uid', 'copy' || g, 'transaction', 'copy' || g, 'amount', g)) r
				WHERE p.order_uid = $1`,
			`INSERT INTO items SELECT r.* FROM items i, generate_series(1, $2) g, generate_series(0, g % 4 - 1) k,
				jsonb_populate_record(NULL::items, to_jsonb(i) || jsonb_build_object('order_uid', 'copy' || g, 'position', k)) r
				WHERE i.order_uid = $1 AND i.position = 0`,
			// An order without payment (a writer's bug): nothing to copy.
			`INSERT INTO orders SELECT (jsonb_populate_record(NULL::orders, to_jsonb(o) ||
				'{"order_uid": "unpaid"}')).* FROM orders o WHERE o.order_uid = $1 AND $2 > 0`,
		} {
			if _, err := tx.Exec(ctx, sql, like, copies); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("store orders: %v", err)
	}
	total := len(orders) + copies + 1

	migrateTo(t, pg, summaryColumnsVersion)
	if _, filled, empty := summaryMismatches(t, pg.Pool); filled != 0 || empty != total {
		t.Fatalf("version %d: %d orders with a summary, %d without; want 0 and %d", summaryColumnsVersion, filled, empty, total)
	}
	for _, c := range summaryChecks {
		if slices.Contains(validated(t, pg), c) {
			t.Errorf("version %d: %s is validated; it must be NOT VALID, so that adding it scans nothing", summaryColumnsVersion, c)
		}
	}

	migrateTo(t, pg, summaryBackfillVersion)
	mismatched, filled, empty := summaryMismatches(t, pg.Pool)
	if mismatched != 0 || filled != total-1 || empty != 1 {
		t.Errorf("after the backfill: %d mismatched, %d filled, %d empty; want 0, %d and 1 (the unpaid order)",
			mismatched, filled, empty, total-1)
	}
	var batches int
	if err := pg.Pool.QueryRow(ctx, `SELECT count(DISTINCT xmin::text) FROM orders WHERE amount IS NOT NULL`).Scan(&batches); err != nil {
		t.Fatal(err)
	}
	if want := (total + 4999) / 5000; batches != want {
		t.Errorf("the backfill wrote in %d transactions, want %d (batches of 5,000)", batches, want)
	}
	for _, c := range summaryChecks {
		if !slices.Contains(validated(t, pg), c) {
			t.Errorf("%s not validated after the backfill", c)
		}
	}
}

// TestSummaryTrigger: an order written without its summary columns (by a
// writer of the previous release) gets them when its transaction commits,
// with the ingestor's privileges (which do not include UPDATE); one
// written with them keeps what its writer gave; one without a payment row
// keeps NULLs.
func TestSummaryTrigger(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	ctx := context.Background()
	gen := ordergen.New(62)
	oldWriter := gen.Orders(3)
	testenv.InsertOrders(t, ingestorPool(t, pg), oldWriter...)
	if mismatched, filled, _ := summaryMismatches(t, pg.Pool); mismatched != 0 || filled != len(oldWriter) {
		t.Errorf("orders written without their summary: %d mismatched, %d filled; want 0 and %d", mismatched, filled, len(oldWriter))
	}

	like := oldWriter[0]
	tests := []struct {
		name   string
		set    string // orders columns of the copy of like, as JSON
		paid   bool   // a payment row is written too
		amount *int64 // what orders.amount must hold after commit
	}{
		{"columns given", `{"amount": 1}`, true, ptr(int64(1))},
		{"columns left out", `{"amount": null, "currency": null, "item_count": null}`, true, ptr(like.Payment.Amount)},
		{"no payment row", `{"amount": null, "currency": null, "item_count": null}`, false, nil},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			uid := "trigger" + strconv.Itoa(i)
			err := pgx.BeginFunc(ctx, ingestorPool(t, pg), func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, `INSERT INTO orders SELECT (jsonb_populate_record(NULL::orders, to_jsonb(o) ||
					$2::jsonb || jsonb_build_object('order_uid', $3::text))).* FROM orders o WHERE o.order_uid = $1`,
					like.OrderUID, tt.set, uid); err != nil {
					return err
				}
				if !tt.paid {
					return nil
				}
				_, err := tx.Exec(ctx, `INSERT INTO payment SELECT (jsonb_populate_record(NULL::payment, to_jsonb(p) ||
					jsonb_build_object('order_uid', $2::text, 'transaction', $2::text))).* FROM payment p WHERE p.order_uid = $1`,
					like.OrderUID, uid)
				return err
			})
			if err != nil {
				t.Fatalf("write: %v", err)
			}
			var amount *int64
			var count *int16
			if err := pg.Pool.QueryRow(ctx, "SELECT amount, item_count FROM orders WHERE order_uid = $1", uid).Scan(&amount, &count); err != nil {
				t.Fatal(err)
			}
			if (amount == nil) != (tt.amount == nil) || amount != nil && *amount != *tt.amount {
				t.Errorf("amount %v, want %v", deref(amount), deref(tt.amount))
			}
			if tt.name == "columns left out" && (count == nil || *count != 0) {
				t.Errorf("item_count %v, want 0 (no items rows were written)", deref(count))
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestSummaryIndexMigrations applies and reverts 000023–000026 one by one
// while the ingestor's kind of traffic goes on (see stepWhileWriting):
// each index is built and dropped CONCURRENTLY, and the old indexes come
// back on the way down.
func TestSummaryIndexMigrations(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	ctx := context.Background()
	sample := testenv.Sample(t)
	testenv.InsertOrders(t, pg.Pool, sample)
	migrateTo(t, pg, summaryBackfillVersion)
	const (
		track    = "orders.orders_track_number_idx"
		customer = "orders.orders_customer_idx"
		summary  = "orders.orders_customer_summary_idx"
		currency = "orders.orders_currency_idx"
		payment  = "payment.payment_currency_idx"
	)
	all := []string{track, customer, summary, currency, payment}
	want := map[uint][]string{
		22: {track, customer, payment},
		23: {track, customer, summary, payment},
		24: {track, summary, payment},
		25: {track, summary, currency, payment},
		26: {track, summary, currency},
	}
	writers := ingestorPool(t, pg)
	gen := ordergen.New(63)
	check := func(version uint) {
		t.Helper()
		var got uint
		if err := pg.Pool.QueryRow(ctx, "SELECT version FROM schema_migrations").Scan(&got); err != nil {
			t.Fatal(err)
		}
		ix := readSchema(t, pg.Pool).indexes
		for _, s := range all {
			if got != version || slices.Contains(ix, s) != slices.Contains(want[version], s) {
				t.Fatalf("version %d, indexes %v; want version %d with %v", got, ix, version, want[version])
			}
		}
	}
	check(22)
	for v := uint(23); v <= 26; v++ {
		stepWhileWriting(t, pg, writers, sample.OrderUID, "up"+strconv.Itoa(int(v)), gen.Order(), 1)
		check(v)
	}
	if v := newestVersion(t); v != 26 {
		t.Fatalf("the newest migration is %d: add it to this test", v)
	}
	for v := uint(25); v >= 22; v-- {
		stepWhileWriting(t, pg, writers, sample.OrderUID, "down"+strconv.Itoa(int(v)), gen.Order(), -1)
		check(v)
	}
	if mismatched, filled, _ := summaryMismatches(t, pg.Pool); mismatched != 0 || filled != 1+2*8 {
		t.Errorf("%d orders mismatched, %d with a summary; want 0 and %d", mismatched, filled, 1+2*8)
	}
}
