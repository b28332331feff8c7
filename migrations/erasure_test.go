package migrations_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/golang-migrate/migrate/v4"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/orderservice/orders/migrations"
	"github.com/orderservice/orders/shared/testenv"
)

// erasureVersion is the migration that adds erased_orders.
const erasureVersion = 10

// erasureGrants are the privileges erasure adds to the ingestor's role.
var erasureGrants = []string{
	"order_ingestor:erased_orders:INSERT", "order_ingestor:erased_orders:SELECT", "order_ingestor:orders:DELETE",
}

// versions lists the versions of the migration files, ascending.
func versions(t *testing.T) []uint {
	t.Helper()
	names, err := fs.Glob(migrations.FS(), "*.up.sql")
	if err != nil || len(names) == 0 {
		t.Fatalf("no migrations: %v", err)
	}
	var out []uint
	for _, n := range names {
		v, err := strconv.ParseUint(n[:strings.IndexByte(n, '_')], 10, 64)
		if err != nil {
			t.Fatalf("migration %s: %v", n, err)
		}
		out = append(out, uint(v))
	}
	slices.Sort(out)
	return out
}

// newestVersion is the highest version among the migration files.
func newestVersion(t *testing.T) uint {
	t.Helper()
	vs := versions(t)
	return vs[len(vs)-1]
}

// The table refuses what an erasure record cannot be, and one uid is
// recorded once.
func TestErasedOrdersRows(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	ctx := context.Background()
	sum := sha256.Sum256([]byte("b563feb7b2b84b6test"))
	const insert = `INSERT INTO erased_orders (uid_sha256, source_topic, source_partition, source_offset) VALUES ($1, $2, $3, $4)`
	if _, err := pg.Pool.Exec(ctx, insert, sum[:], "orders", 0, 7); err != nil {
		t.Fatalf("a valid record: %v", err)
	}
	var n int
	if err := pg.Pool.QueryRow(ctx, `SELECT count(*) FROM erased_orders WHERE erased_at > now() - interval '1 minute'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("erased_at defaults to now: %d rows, %v", n, err)
	}
	tests := []struct {
		name string
		args []any
		code string
	}{
		{"the same uid again", []any{sum[:], "orders", 1, 9}, "23505"},
		{"a hash of 31 bytes", []any{sum[:31], "orders", 0, 1}, "23514"},
		{"no topic", []any{[]byte(strings.Repeat("x", 32)), "", 0, 1}, "23514"},
		{"a negative partition", []any{[]byte(strings.Repeat("y", 32)), "orders", -1, 1}, "23514"},
		{"a negative offset", []any{[]byte(strings.Repeat("z", 32)), "orders", 0, -1}, "23514"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := pg.Pool.Exec(ctx, insert, tt.args...)
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != tt.code {
				t.Fatalf("got %v, want SQLSTATE %s", err, tt.code)
			}
		})
	}
}

// The ingestor may record and look up erasures and delete orders (the
// cascade takes the children along), nothing more; the reader gets nothing.
func TestErasurePrivileges(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	sample := testenv.Sample(t)
	testenv.InsertOrders(t, pg.Pool, sample)
	ctx := context.Background()
	const record = `INSERT INTO erased_orders (uid_sha256, source_topic, source_partition, source_offset)
		VALUES (sha256('x'::bytea), 'orders', 0, 1)`
	tests := []struct {
		role      string
		statement string
		allowed   bool
	}{
		{"order_ingestor", record, true},
		{"order_ingestor", "SELECT count(*) FROM erased_orders", true},
		{"order_ingestor", "INSERT INTO erased_orders (uid_sha256, source_topic, source_partition, source_offset) VALUES (sha256('x'::bytea), 'orders', 0, 1) ON CONFLICT DO NOTHING", true},
		{"order_ingestor", "DELETE FROM orders WHERE order_uid = '" + sample.OrderUID + "'", true},
		{"order_ingestor", "UPDATE erased_orders SET source_offset = 0", false},
		{"order_ingestor", "DELETE FROM erased_orders", false},
		{"order_ingestor", "TRUNCATE erased_orders", false},
		{"order_ingestor", "DELETE FROM payment", false},
		{"order_ingestor", "DELETE FROM delivery", false},
		{"order_reader", "SELECT count(*) FROM erased_orders", false},
		{"order_reader", record, false},
		{"order_reader", "DELETE FROM orders", false},
	}
	for _, tt := range tests {
		t.Run(tt.role+" "+tt.statement, func(t *testing.T) {
			tx, err := execAs(ctx, t, pg, tt.role, tt.statement)
			wantPrivilege(t, tt.role, tt.allowed, err)
			if tt.allowed && strings.HasPrefix(tt.statement, "DELETE FROM orders") {
				// The role cannot delete the children itself: the cascade does.
				for _, table := range []string{"orders", "delivery", "payment", "items"} {
					var n int
					if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil || n != 0 {
						t.Errorf("%s after erasing the order: %d rows, %v", table, n, err)
					}
				}
			}
		})
	}
}

// Reverting the erasure migration drops the table and the privileges it
// granted, and leaves the orders alone; applying it again restores both.
func TestErasureMigrationDownUp(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	sample := testenv.Sample(t)
	testenv.InsertOrders(t, pg.Pool, sample)
	ctx := context.Background()

	var before uint
	for _, v := range versions(t) {
		if v < erasureVersion {
			before = v
		}
	}
	if err := migrations.With(pg.URL, func(m *migrate.Migrate) error { return m.Migrate(before) }); err != nil {
		t.Fatalf("migrate down to %d: %v", before, err)
	}
	s := readSchema(t, pg.Pool)
	if slices.Contains(s.tables, "erased_orders") {
		t.Errorf("erased_orders still there at version %d", before)
	}
	for _, g := range erasureGrants {
		if slices.Contains(s.grants, g) {
			t.Errorf("grant %s still there at version %d", g, before)
		}
	}
	var n int
	if err := pg.Pool.QueryRow(ctx, `SELECT count(*) FROM orders`).Scan(&n); err != nil || n != 1 {
		t.Errorf("orders after reverting the erasure migration: %d, %v", n, err)
	}

	if err := migrations.Up(pg.URL); err != nil {
		t.Fatalf("up: %v", err)
	}
	checkUp(t, readSchema(t, pg.Pool))
}
