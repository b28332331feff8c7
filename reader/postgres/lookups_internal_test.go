package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/orderservice/orders/shared/ordergen"
	"github.com/orderservice/orders/shared/testenv"
)

func TestLookupStatement(t *testing.T) {
	t.Parallel()
	uids := make([]string, 128)
	for i := range uids {
		uids[i] = fmt.Sprintf("uid%03d", i)
	}
	tests := []struct {
		maxBatch, n, args int
	}{
		{64, 1, 1}, {64, 2, 2}, {64, 3, 4}, {64, 4, 4}, {64, 5, 8}, {64, 33, 64}, {64, 64, 64},
		{1, 1, 1}, {100, 65, 128}, {100, 100, 128},
	}
	for _, tt := range tests {
		l := newLookups(tt.maxBatch)
		if l.most() < tt.maxBatch {
			t.Errorf("newLookups(%d) asks for at most %d", tt.maxBatch, l.most())
		}
		sql, args := l.statement(uids[:tt.n])
		if len(args) != tt.args {
			t.Errorf("maxBatch %d, %d uids: %d arguments, want %d", tt.maxBatch, tt.n, len(args), tt.args)
			continue
		}
		if !strings.HasPrefix(sql, getFrom) || !strings.HasSuffix(sql, fmt.Sprintf("$%d)", tt.args)) || strings.Contains(sql, fmt.Sprintf("$%d,", tt.args)) {
			t.Errorf("maxBatch %d, %d uids: statement ends %q, want %d arguments", tt.maxBatch, tt.n, sql[len(getFrom):], tt.args)
		}
		for k, a := range args {
			if want := uids[min(k, tt.n-1)]; a != want {
				t.Errorf("maxBatch %d, %d uids: argument %d is %v, want %s", tt.maxBatch, tt.n, k+1, a, want)
			}
		}
	}
}

// TestLookupsUseGenericPlans: every lookup statement, once run more than
// PostgreSQL's five custom plans, runs on its generic plan rather than
// being planned again at every call (see lookups), and a padded statement
// answers exactly the orders asked for.
func TestLookupsUseGenericPlans(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	orders := ordergen.New(41).Orders(8)
	testenv.InsertOrders(t, pg.Pool, orders...)
	uids := make([]string, len(orders))
	for i, o := range orders {
		uids[i] = o.OrderUID
	}
	ctx := context.Background()
	// One connection, so that pg_prepared_statements shows the lookups'.
	s, err := Open(ctx, Options{URL: pg.URLAs("order_reader"), MaxConns: 1, MaxBatch: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	asked := map[int]bool{}
	for n := 1; n <= len(uids); n++ {
		for round := range 8 {
			// A missing uid among them: it must stay missing, padded or not.
			ask := append(slices.Clone(uids[round%(len(uids)-n+1):][:n-1]), "missing-"+uids[0])
			found, err := s.query(ctx, s.pool, ask)
			if err != nil {
				t.Fatal(err)
			}
			if len(found) != n-1 {
				t.Fatalf("%d uids with one missing: found %d orders", n, len(found))
			}
			for _, uid := range ask[:n-1] {
				if found[uid] == nil {
					t.Fatalf("%d uids: %s not found", n, uid)
				}
			}
		}
		_, args := s.lookups.statement(uids[:n])
		asked[len(args)] = true
	}
	rows, err := s.pool.Query(ctx, `SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements
		WHERE statement LIKE '%FROM orders o JOIN delivery d%' AND statement NOT LIKE '%pg_prepared_statements%'`)
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for rows.Next() {
		var sql string
		var generic, custom int64
		if err := rows.Scan(&sql, &generic, &custom); err != nil {
			t.Fatal(err)
		}
		seen++
		// PostgreSQL plans five custom plans before it weighs the generic
		// one; more means it plans the lookup again at every call.
		if generic == 0 || custom > 5 {
			t.Errorf("lookup of %d arguments: %d custom plans, %d runs on the generic plan", strings.Count(sql, "$"), custom, generic)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if seen != len(asked) {
		t.Errorf("%d lookup statements prepared, want %d (one per argument count %v)", seen, len(asked), asked)
	}
}
