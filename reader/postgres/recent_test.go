package postgres_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/orderservice/orders/reader/postgres"
	"github.com/orderservice/orders/shared/ordergen"
	"github.com/orderservice/orders/shared/testenv"
)

// TestRecentPagesLookUpByKey: each warm-up page's statements look their
// orders' delivery, payment and items up by key, one index lookup per order,
// rather than scanning a table per page, which made the warm-up's time
// grow with the table (a hash join of the whole payment table to every
// page). The table is analysed, with the page a small part of it, and the
// plans are PostgreSQL's own choice (no planner setting changed).
func TestRecentPagesLookUpByKey(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	ctx := context.Background()
	const stored, page = 6000, 500
	gen := ordergen.New(44)
	for i := 0; i < stored; i += 1000 {
		testenv.InsertOrders(t, pg.Pool, gen.Orders(1000)...)
	}
	if _, err := pg.Pool.Exec(ctx, "ANALYZE orders, delivery, payment, items"); err != nil {
		t.Fatal(err)
	}
	var hi, lo struct {
		created time.Time
		uid     string
	}
	key := `SELECT date_created, order_uid FROM orders ORDER BY date_created DESC, order_uid DESC OFFSET $1 LIMIT 1`
	if err := pg.Pool.QueryRow(ctx, key, 2*page).Scan(&hi.created, &hi.uid); err != nil {
		t.Fatal(err)
	}
	if err := pg.Pool.QueryRow(ctx, key, 3*page).Scan(&lo.created, &lo.uid); err != nil {
		t.Fatal(err)
	}
	both := func(orders, items string) [2]string { return [2]string{orders, items} }
	for _, tc := range []struct {
		name string
		sql  [2]string
		args []any
	}{
		{"a page between two keys", both(postgres.RecentPageSQL("<=", true, page+1)), []any{hi.created, hi.uid, lo.created, lo.uid}},
		{"a page read on past a key", both(postgres.RecentPageSQL("<", true, page+1)), []any{hi.created, hi.uid, lo.created, lo.uid}},
		{"the last page", both(postgres.RecentPageSQL("<=", false, page)), []any{hi.created, hi.uid}},
		{"a single page", postgres.RecentOrdersPage, []any{page}},
	} {
		for k, stmt := range []struct {
			sql    string
			tables []string
		}{
			{tc.sql[0], []string{"orders", "delivery", "payment"}},
			{tc.sql[1], []string{"orders", "items"}},
		} {
			t.Run(tc.name+[]string{", orders", ", items"}[k], func(t *testing.T) {
				var out []struct{ Plan plan }
				var js []byte
				if err := pg.Pool.QueryRow(ctx, "EXPLAIN (FORMAT JSON, ANALYZE, TIMING OFF) "+stmt.sql, tc.args...).Scan(&js); err != nil {
					t.Fatal(err)
				}
				if err := json.Unmarshal(js, &out); err != nil || len(out) != 1 {
					t.Fatalf("plan %s: %v", js, err)
				}
				lookedUp := map[string]bool{}
				out[0].Plan.walk(func(p plan) {
					switch {
					case p.NodeType == "Seq Scan":
						t.Errorf("a sequential scan of %s (%v rows)", p.RelationName, p.ActualRows)
					case p.NodeType == "Hash Join":
						t.Errorf("a hash join")
					case p.RelationName != "":
						lookedUp[p.RelationName] = true
					}
				})
				for _, table := range stmt.tables {
					if !lookedUp[table] {
						t.Errorf("%s is not read through an index", table)
					}
				}
				if t.Failed() {
					t.Logf("plan: %s", js)
				}
			})
		}
	}
}
