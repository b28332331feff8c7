package migrations_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/golang-migrate/migrate/v4"
	"github.com/jackc/pgx/v5"

	"github.com/orderservice/orders/migrations"
	"github.com/orderservice/orders/shared/model"
	"github.com/orderservice/orders/shared/ordergen"
	"github.com/orderservice/orders/shared/testenv"
)

// childrenVersion is the migration that replaces the children's foreign
// keys with the delete trigger.
const childrenVersion = 20

var childForeignKeys = []string{"delivery.delivery_order_uid_fkey", "items.items_order_uid_fkey", "payment.payment_order_uid_fkey"}

// children counts the delivery, payment and items rows of uid.
func children(t *testing.T, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, uid string) [3]int {
	t.Helper()
	var n [3]int
	// Qualified: a test creates temporary tables of these names.
	err := q.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM public.delivery WHERE order_uid = $1),
		(SELECT count(*) FROM public.payment WHERE order_uid = $1), (SELECT count(*) FROM public.items WHERE order_uid = $1)`, uid).
		Scan(&n[0], &n[1], &n[2])
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func itemsOf(o *model.Order) [3]int { return [3]int{1, 1, len(o.Items)} }

// Deleting orders deletes their delivery, payment and items rows in the
// same statement, as ON DELETE CASCADE did, and nothing of other orders:
// for a role that may delete orders and nothing else (as the erasure
// grants the ingestor), and whatever that role put in its own schema
// (a temporary table named like a child does not catch the delete).
func TestDeletingOrdersDeletesChildren(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	gen := ordergen.New(51)
	orders := gen.Orders(4)
	testenv.InsertOrders(t, pg.Pool, orders...)
	ctx := context.Background()

	tests := []struct {
		name string
		as   string // role of the DELETE ("" = the owner)
		temp bool   // the role first creates temporary tables named delivery, payment and items
		del  []*model.Order
	}{
		{"one order, as the owner", "", false, orders[:1]},
		{"two orders in one statement, as a role with DELETE on orders only", "order_ingestor", false, orders[1:3]},
		{"a role's temporary tables named like the children", "order_ingestor", true, orders[3:]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tx, err := pg.Pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = tx.Rollback(ctx) }()
			if tt.as != "" {
				for _, stmt := range []string{"GRANT DELETE ON orders TO " + tt.as, "SET LOCAL ROLE " + tt.as} {
					if _, err := tx.Exec(ctx, stmt); err != nil {
						t.Fatalf("%s: %v", stmt, err)
					}
				}
			}
			if tt.temp {
				for _, table := range []string{"delivery", "payment", "items"} {
					if _, err := tx.Exec(ctx, "CREATE TEMP TABLE "+table+" (order_uid text) ON COMMIT DROP"); err != nil {
						t.Fatalf("temporary %s: %v", table, err)
					}
				}
			}
			uids := make([]string, len(tt.del))
			for i, o := range tt.del {
				uids[i] = o.OrderUID
			}
			tag, err := tx.Exec(ctx, "DELETE FROM orders WHERE order_uid = ANY($1)", uids)
			if err != nil || tag.RowsAffected() != int64(len(uids)) {
				t.Fatalf("delete: %v, %d rows", err, tag.RowsAffected())
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			for _, o := range tt.del {
				if n := children(t, pg.Pool, o.OrderUID); n != [3]int{} {
					t.Errorf("order %s deleted, children left (delivery, payment, items): %v", o.OrderUID, n)
				}
			}
		})
	}
	// Nothing else was deleted (the tests run in order: a later test's
	// orders are still there when an earlier one deletes).
	var left int
	if err := pg.Pool.QueryRow(ctx, "SELECT count(*) FROM public.items").Scan(&left); err != nil || left != 0 {
		t.Fatalf("items left after every order was deleted: %d, %v", left, err)
	}
}

func TestDeleteKeepsOtherOrders(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	orders := ordergen.New(52).Orders(3)
	testenv.InsertOrders(t, pg.Pool, orders...)
	ctx := context.Background()
	if _, err := pg.Pool.Exec(ctx, "DELETE FROM orders WHERE order_uid = $1", orders[1].OrderUID); err != nil {
		t.Fatal(err)
	}
	for i, o := range orders {
		want := itemsOf(o)
		if i == 1 {
			want = [3]int{}
		}
		if got := children(t, pg.Pool, o.OrderUID); got != want {
			t.Errorf("order %d: children %v, want %v", i, got, want)
		}
	}
	// A rolled-back delete takes nothing.
	tx, err := pg.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "DELETE FROM orders"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if got := children(t, pg.Pool, orders[0].OrderUID); got != itemsOf(orders[0]) {
		t.Errorf("after a rolled-back delete: %v", got)
	}
}

func TestTruncateOrdersEmptiesChildren(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	testenv.InsertOrders(t, pg.Pool, ordergen.New(53).Orders(3)...)
	ctx := context.Background()
	if _, err := pg.Pool.Exec(ctx, "TRUNCATE orders"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := pg.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM delivery) + (SELECT count(*) FROM payment)
		+ (SELECT count(*) FROM items)`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("children rows after TRUNCATE orders: %d, %v", n, err)
	}
}

// Down from childrenVersion puts the foreign keys back (dropping rows no
// order refers to, which no read could see), and up takes them away again.
func TestChildrenMigrationDownUp(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	orders := ordergen.New(54).Orders(2)
	testenv.InsertOrders(t, pg.Pool, orders...)
	ctx := context.Background()
	// An orphan, as a writer other than the ingestor could leave one.
	if _, err := pg.Pool.Exec(ctx, `INSERT INTO items SELECT (jsonb_populate_record(NULL::items,
		to_jsonb(i) || '{"order_uid": "orphan"}')).* FROM items i WHERE order_uid = $1`, orders[0].OrderUID); err != nil {
		t.Fatalf("insert an orphan: %v", err)
	}
	before := versionBefore(t, childrenVersion)
	if err := migrations.With(pg.URL, func(m *migrate.Migrate) error { return m.Migrate(before) }); err != nil {
		t.Fatalf("down to %d: %v", before, err)
	}
	down := readSchema(t, pg.Pool).constraints
	for _, c := range childForeignKeys {
		if !slices.Contains(down, c) {
			t.Errorf("after down: %s missing", c)
		}
	}
	if got := children(t, pg.Pool, "orphan"); got != [3]int{} {
		t.Errorf("orphan rows after down: %v", got)
	}
	if got := children(t, pg.Pool, orders[0].OrderUID); got != itemsOf(orders[0]) {
		t.Errorf("an order's children after down: %v, want %v", got, itemsOf(orders[0]))
	}
	// The cascade of the keys, not a trigger, deletes children now.
	if _, err := pg.Pool.Exec(ctx, "DELETE FROM orders WHERE order_uid = $1", orders[1].OrderUID); err != nil {
		t.Fatal(err)
	}
	if got := children(t, pg.Pool, orders[1].OrderUID); got != [3]int{} {
		t.Errorf("children after a delete at version %d: %v", before, got)
	}
	err := migrations.With(pg.URL, func(m *migrate.Migrate) error {
		if err := m.Migrate(childrenVersion); err != nil && !errors.Is(err, migrate.ErrNoChange) {
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatalf("up to %d: %v", childrenVersion, err)
	}
	for _, c := range readSchema(t, pg.Pool).constraints {
		if slices.Contains(childForeignKeys, c) {
			t.Errorf("after up: %s present", c)
		}
	}
}

// versionBefore is the highest migration version below v.
func versionBefore(t *testing.T, v uint) uint {
	t.Helper()
	var before uint
	for _, x := range versions(t) {
		if x < v {
			before = x
		}
	}
	if before == 0 {
		t.Fatalf("no migration before %d", v)
	}
	return before
}
