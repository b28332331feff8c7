package postgres

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/orderservice/orders/ingestor/ingest"
	"github.com/orderservice/orders/shared/model"
	"github.com/orderservice/orders/shared/ordergen"
	"github.com/orderservice/orders/shared/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func hashed(t *testing.T, o *model.Order) ingest.StoredOrder {
	t.Helper()
	c, err := o.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	return ingest.StoredOrder{Order: o, SHA256: sha256.Sum256(c)}
}

func newWriter(t *testing.T) (*Writer, *testenv.PG) {
	t.Helper()
	pg := testenv.Postgres(t)
	pool, err := Connect(context.Background(), pg.URLAs("order_ingestor"), 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return NewWriter(pool, 10*time.Second, nil), pg
}

// Write tells new, duplicate, conflicting and rejected orders apart, in one
// batch, and stores exactly the new ones.
func TestWriteOutcomes(t *testing.T) {
	t.Parallel()
	w, pg := newWriter(t)
	gen := ordergen.New(3)
	stored, storedToo := gen.Order(), gen.Order()
	testenv.InsertOrders(t, pg.Pool, stored, storedToo)

	changed := *storedToo
	changed.Locale = "fr"
	reuse := gen.Order()
	reuse.Payment.Transaction = stored.Payment.Transaction
	fresh1, fresh2 := gen.Order(), gen.Order()
	sameTxA, sameTxB := gen.Order(), gen.Order()
	sameTxB.Payment.Transaction = sameTxA.Payment.Transaction

	tests := []struct {
		name  string
		batch []*model.Order
		want  []ingest.WriteStatus
	}{
		{"all new (fast path)", []*model.Order{fresh1}, []ingest.WriteStatus{ingest.Inserted}},
		{"mixed", []*model.Order{fresh2, stored, &changed, reuse},
			[]ingest.WriteStatus{ingest.Inserted, ingest.Duplicate, ingest.Conflict, ingest.Rejected}},
		{"two new orders share a payment transaction: the first wins",
			[]*model.Order{sameTxA, sameTxB}, []ingest.WriteStatus{ingest.Inserted, ingest.Rejected}},
	}
	for _, tt := range tests {
		batch := make([]ingest.StoredOrder, len(tt.batch))
		for i, o := range tt.batch {
			batch[i] = hashed(t, o)
		}
		res, err := w.Write(context.Background(), batch)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		for i, r := range res {
			if r.Status != tt.want[i] {
				t.Errorf("%s: order %d: %s (%v), want %s", tt.name, i, r.Status, r.Err, tt.want[i])
			}
			if r.Status == ingest.Rejected && !errors.Is(r.Err, ingest.ErrPermanent) {
				t.Errorf("%s: order %d rejected with an error %v that does not wrap ingest.ErrPermanent", tt.name, i, r.Err)
			}
			if r.Status == ingest.Rejected {
				// The text becomes a dead-letter header: it names the
				// constraint, never the refused value.
				tx := tt.batch[i].Payment.Transaction
				if msg := r.Err.Error(); !strings.Contains(msg, "payment_transaction_key") || strings.Contains(msg, tx) {
					t.Errorf("%s: order %d rejected with %q, want the constraint named and transaction %q left out", tt.name, i, msg, tx)
				}
			}
		}
	}
	var locale string
	if err := pg.Pool.QueryRow(context.Background(), `SELECT locale FROM orders WHERE order_uid=$1`, storedToo.OrderUID).Scan(&locale); err != nil || locale != storedToo.Locale {
		t.Errorf("conflicting write changed the stored order: locale %q, %v", locale, err)
	}
	var orders, items int
	if err := pg.Pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM items)`).Scan(&orders, &items); err != nil {
		t.Fatal(err)
	}
	wantItems := 0
	for _, o := range []*model.Order{stored, storedToo, fresh1, fresh2, sameTxA} {
		wantItems += len(o.Items)
	}
	if orders != 5 || items != wantItems {
		t.Errorf("stored %d orders and %d items, want 5 and %d", orders, items, wantItems)
	}
}

// An unreachable server is a transient error and leaves every order
// pending.
func TestWriteUnreachableIsTransient(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { // accept and hang up at once, like a server going away
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, io.LimitReader(c, 1))
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	pool, err := Connect(context.Background(), fmt.Sprintf("postgres://order_ingestor@%s/x?sslmode=disable", ln.Addr()), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	w := NewWriter(pool, 2*time.Second, nil)
	res, err := w.Write(context.Background(), []ingest.StoredOrder{hashed(t, ordergen.New(1).Order())})
	if err == nil || isPermanent(err) {
		t.Fatalf("Write through a dead server: err %v, want a transient error", err)
	}
	if res[0].Status != ingest.Pending {
		t.Errorf("status %s, want pending", res[0].Status)
	}
}

func TestIsPermanent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want bool
	}{
		{&pgconn.PgError{Code: "23505"}, true},                         // unique_violation
		{&pgconn.PgError{Code: "23514"}, true},                         // check_violation
		{&pgconn.PgError{Code: "22001"}, true},                         // string too long
		{fmt.Errorf("copy: %w", &pgconn.PgError{Code: "23503"}), true}, // wrapped
		{&pgconn.PgError{Code: "40001"}, false},                        // serialization failure
		{&pgconn.PgError{Code: "40P01"}, false},                        // deadlock
		{&pgconn.PgError{Code: "57P01"}, false},                        // admin shutdown
		{&pgconn.PgError{Code: "53300"}, false},                        // too many connections
		{&pgconn.PgError{Code: "42501"}, false},                        // insufficient privilege: wait for an operator
		{context.DeadlineExceeded, false},
		{errors.New("conn closed"), false},
	}
	for _, tt := range tests {
		if got := isPermanent(tt.err); got != tt.want {
			t.Errorf("isPermanent(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// A refused order's error wraps ingest.ErrPermanent and names the SQLSTATE
// and the schema objects, never the values PostgreSQL's message or detail
// quote.
func TestRejection(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		err    error
		want   []string // substrings of the text
		secret []string // values that must not appear
	}{
		{"unique violation",
			fmt.Errorf("copy payment: %w", &pgconn.PgError{Code: "23505",
				Message:        `duplicate key value violates unique constraint "payment_transaction_key"`,
				Detail:         "Key (transaction)=(b563feb7b2b84b6test) already exists.",
				ConstraintName: "payment_transaction_key", TableName: "payment"}),
			[]string{"integrity constraint violation", "SQLSTATE 23505", "constraint payment_transaction_key", "table payment"},
			[]string{"b563feb7b2b84b6test"}},
		{"check violation quoting the row",
			&pgconn.PgError{Code: "23514",
				Message:        `new row for relation "delivery" violates check constraint "delivery_phone_check"`,
				Detail:         "Failing row contains (u1, Test Testov, +9720000000, 2639809, Kiryat Mozkin, Ploshad Mira 15, Kraiot, test@gmail.com).",
				ConstraintName: "delivery_phone_check", TableName: "delivery"},
			[]string{"SQLSTATE 23514", "constraint delivery_phone_check", "table delivery"},
			[]string{"Test Testov", "+9720000000", "test@gmail.com", "Ploshad Mira"}},
		{"data exception quoting the input",
			&pgconn.PgError{Code: "22P02", Message: `invalid input syntax for type bigint: "Test Testov"`,
				TableName: "items", ColumnName: "nm_id"},
			[]string{"data exception", "SQLSTATE 22P02", "table items", "column nm_id"},
			[]string{"Test Testov"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := rejection(tt.err)
			if !errors.Is(err, ingest.ErrPermanent) {
				t.Errorf("rejection(%v) = %v, does not wrap ingest.ErrPermanent", tt.err, err)
			}
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("%q lacks %q", msg, w)
				}
			}
			for _, s := range tt.secret {
				if strings.Contains(msg, s) {
					t.Errorf("%q quotes the refused value %q", msg, s)
				}
			}
		})
	}
}

// Both ways of writing (COPY, and the careful INSERT after a stored uid)
// store each order's summary in its orders row: its payment's amount and
// currency and its number of items, what the reader lists. The schema's
// trigger that fills the columns for writers that leave them out
// (migration 000021) is disabled here, so that only the writer can have
// set them.
func TestWriteStoresSummary(t *testing.T) {
	t.Parallel()
	w, pg := newWriter(t)
	ctx := context.Background()
	if _, err := pg.Pool.Exec(ctx, "ALTER TABLE orders DISABLE TRIGGER orders_fill_summary"); err != nil {
		t.Fatal(err)
	}
	gen := ordergen.New(5)
	stored := gen.Order()
	if _, err := w.Write(ctx, []ingest.StoredOrder{hashed(t, stored)}); err != nil {
		t.Fatal(err)
	}
	few, many := gen.Order(), gen.Order()
	few.Items = few.Items[:1]
	for len(many.Items) < 7 {
		many.Items = append(many.Items, many.Items[0])
	}
	many.Payment.Currency = "KZT"
	tests := []struct {
		name  string
		batch []*model.Order
	}{
		{"copy", []*model.Order{few}},
		{"careful, after a stored uid", []*model.Order{many, stored}},
	}
	for _, tt := range tests {
		batch := make([]ingest.StoredOrder, len(tt.batch))
		for i, o := range tt.batch {
			batch[i] = hashed(t, o)
		}
		if _, err := w.Write(ctx, batch); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		o := tt.batch[0]
		var amount int64
		var currency string
		var count int
		err := pg.Pool.QueryRow(ctx, `SELECT amount, currency, item_count FROM orders WHERE order_uid = $1`, o.OrderUID).
			Scan(&amount, &currency, &count)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if amount != o.Payment.Amount || currency != o.Payment.Currency || count != len(o.Items) {
			t.Errorf("%s: summary %d %s %d items, want %d %s %d", tt.name, amount, currency, count,
				o.Payment.Amount, o.Payment.Currency, len(o.Items))
		}
	}
}
