package testenv

import (
	"context"
	"strings"
	"testing"
)

// TestKeptPostgres: a kept database is loaded once and found loaded by the
// next call, its rows still there; one without the mark of a completed
// load (a load killed half way) is made again from the template and
// loaded again.
func TestKeptPostgres(t *testing.T) {
	t.Parallel()
	name := "test_" + randomHex(4)
	srv, err := pgServerOnce()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var db string
	t.Cleanup(func() {
		if db != "" {
			_, _ = srv.admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+ident(db)+" WITH (FORCE)")
		}
	})
	steps := []struct {
		name       string
		before     string // SQL run as the admin before the call, on the database named %s
		wantLoaded bool   // KeptPostgres finds it loaded and does not call load
	}{
		{"first call loads", "", false},
		{"second call reuses", "", true},
		{"a load that did not finish is done again", "COMMENT ON DATABASE %s IS NULL", false},
		{"and then kept", "", true},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.before != "" {
				if _, err := srv.admin.Exec(ctx, strings.Replace(st.before, "%s", ident(db), 1)); err != nil {
					t.Fatal(err)
				}
			}
			called := false
			pg, loaded := KeptPostgres(t, name, func(pg *PG) error {
				called = true
				InsertOrders(t, pg.Pool, Sample(t))
				return nil
			})
			db = pg.Name
			if loaded != st.wantLoaded || called == st.wantLoaded {
				t.Fatalf("loaded %v, load called %v; want loaded %v", loaded, called, st.wantLoaded)
			}
			var n int
			if err := pg.Pool.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 1 {
				t.Fatalf("%d orders, want the 1 of one load", n)
			}
		})
	}
}
