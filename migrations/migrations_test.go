package migrations_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-migrate/migrate/v4"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderservice/orders/migrations"
	"github.com/orderservice/orders/shared/model"
	"github.com/orderservice/orders/shared/ordergen"
	"github.com/orderservice/orders/shared/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var orderTables = []string{"delivery", "items", "orders", "payment"}

// allTables are the tables of the latest schema, sorted.
var allTables = []string{"delivery", "erased_orders", "items", "orders", "payment"}

// schema is what the migration is expected to create, as read back from
// the catalog.
type schema struct {
	tables      []string
	constraints []string // table.constraint (CHECK, PK, FK, UNIQUE)
	grants      []string // role:table:privilege
	indexes     []string // table.index, valid ones only
}

// searchIndexes are the indexes of migrations 2 to 4, one each, in
// version order (see TestIndexMigrations).
var searchIndexes = []string{"orders.orders_track_number_idx", "orders.orders_customer_idx", "payment.payment_currency_idx"}

// newestSearchIndexes are the search indexes of the newest schema: the
// customer's and the currency's were replaced in 000023–000026
// (TestSummaryIndexMigrations).
var newestSearchIndexes = []string{"orders.orders_track_number_idx", "orders.orders_customer_summary_idx", "orders.orders_currency_idx"}

func readSchema(t *testing.T, pool *pgxpool.Pool) schema {
	t.Helper()
	strs := func(sql string) []string { return queryStrings(t, pool, sql) }
	return schema{
		tables: strs(`SELECT table_name::text FROM information_schema.tables
			WHERE table_schema = 'public' AND table_name <> 'schema_migrations' ORDER BY 1`),
		constraints: strs(`SELECT conrelid::regclass::text || '.' || conname FROM pg_constraint
			WHERE connamespace = 'public'::regnamespace
			AND conrelid::regclass::text <> 'schema_migrations' ORDER BY 1`),
		grants: strs(`SELECT grantee || ':' || table_name || ':' || privilege_type
			FROM information_schema.role_table_grants
			WHERE grantee IN ('order_ingestor', 'order_reader') ORDER BY 1`),
		// An index that CREATE INDEX CONCURRENTLY failed to build stays
		// behind INVALID: it costs writes and serves no query.
		indexes: strs(`SELECT c.relname::text || '.' || i.relname FROM pg_index x
			JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class c ON c.oid = x.indrelid
			WHERE c.relnamespace = 'public'::regnamespace AND c.relname <> 'schema_migrations'
			AND x.indisvalid ORDER BY 1`),
	}
}

func rolesExist(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	return queryStrings(t, pool, `SELECT rolname::text FROM pg_roles
		WHERE rolname IN ('order_ingestor', 'order_reader') AND rolcanlogin ORDER BY 1`)
}

// queryStrings runs sql, whose rows are one text column, and returns them.
func queryStrings(t *testing.T, pool *pgxpool.Pool, sql string) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), sql)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func checkUp(t *testing.T, s schema) {
	t.Helper()
	if !slices.Equal(s.tables, allTables) {
		t.Errorf("tables %v, want %v", s.tables, allTables)
	}
	for _, c := range []string{
		"orders.orders_pkey", "orders.orders_order_uid_check", "orders.orders_content_sha256_check",
		"payment.payment_amount_check", "payment.payment_currency_check", "payment.payment_transaction_key",
		"payment.payment_pkey", "items.items_pkey", "items.items_position_check",
		"items.items_sale_check", "delivery.delivery_pkey",
	} {
		if !slices.Contains(s.constraints, c) {
			t.Errorf("constraint %s missing; have %v", c, s.constraints)
		}
	}
	// The children's foreign keys are gone (000020); a trigger deletes them
	// with their order instead (TestDeletingOrdersDeletesChildren).
	for _, c := range childForeignKeys {
		if slices.Contains(s.constraints, c) {
			t.Errorf("constraint %s present; the newest schema has no foreign keys", c)
		}
	}
	var want []string
	for _, table := range orderTables {
		want = append(want, "order_ingestor:"+table+":INSERT", "order_ingestor:"+table+":SELECT", "order_reader:"+table+":SELECT")
	}
	want = append(want, erasureGrants...)
	slices.Sort(want)
	if !slices.Equal(s.grants, want) {
		t.Errorf("grants %v, want %v", s.grants, want)
	}
	for _, ix := range append([]string{"orders.orders_recent_idx", "orders.orders_pkey"}, newestSearchIndexes...) {
		if !slices.Contains(s.indexes, ix) {
			t.Errorf("valid index %s missing; have %v", ix, s.indexes)
		}
	}
	for _, ix := range []string{"orders.orders_customer_idx", "payment.payment_currency_idx"} {
		if slices.Contains(s.indexes, ix) {
			t.Errorf("index %s present; the newest schema replaced it", ix)
		}
	}
	for _, c := range summaryChecks {
		if !slices.Contains(s.constraints, c) {
			t.Errorf("constraint %s missing; have %v", c, s.constraints)
		}
	}
}

func TestUpDownUp(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t) // migrated up already
	first := readSchema(t, pg.Pool)
	checkUp(t, first)
	if roles := rolesExist(t, pg.Pool); len(roles) != 2 {
		t.Errorf("login roles after up: %v, want order_ingestor and order_reader", roles)
	}
	testenv.InsertOrders(t, pg.Pool, testenv.Sample(t))

	if err := migrations.Down(pg.URL); err != nil {
		t.Fatalf("down: %v", err)
	}
	down := readSchema(t, pg.Pool)
	if len(down.tables) != 0 || len(down.constraints) != 0 || len(down.grants) != 0 || len(down.indexes) != 0 {
		t.Errorf("after down: tables %v constraints %v grants %v indexes %v, want none",
			down.tables, down.constraints, down.grants, down.indexes)
	}

	if err := migrations.Up(pg.URL); err != nil {
		t.Fatalf("up again: %v", err)
	}
	again := readSchema(t, pg.Pool)
	checkUp(t, again)
	if !slices.Equal(first.constraints, again.constraints) || !slices.Equal(first.grants, again.grants) ||
		!slices.Equal(first.indexes, again.indexes) {
		t.Errorf("second up differs from the first:\nfirst %+v\nagain %+v", first, again)
	}
	// Up on an up-to-date schema is a no-op, not an error.
	if err := migrations.Up(pg.URL); err != nil {
		t.Errorf("up on an up-to-date schema: %v", err)
	}
	m, err := migrations.New(pg.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	version, dirty, err := m.Version()
	if want := newestVersion(t); err != nil || dirty || version != want {
		t.Errorf("version %d dirty %v err %v, want %d clean", version, dirty, err, want)
	}
}

// copyRow inserts a copy of the sample's row of table with some columns
// changed, so that each case breaks exactly one rule of an otherwise valid
// row.
func copyRow(ctx context.Context, tx pgx.Tx, table, from string, set map[string]any) error {
	_, err := tx.Exec(ctx, `INSERT INTO `+table+` SELECT (jsonb_populate_record(NULL::`+table+`, to_jsonb(t) || $1::jsonb)).*
		FROM `+table+` t WHERE order_uid = $2`, set, from)
	return err
}

func TestConstraintsRejectBadRows(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	sample := testenv.Sample(t)
	testenv.InsertOrders(t, pg.Pool, sample)
	ctx := context.Background()

	tests := []struct {
		name       string
		table      string
		bad        map[string]any // nil: the copy is valid and must be stored
		constraint string
	}{
		{"valid order", "orders", nil, ""},
		{"valid delivery", "delivery", nil, ""},
		{"valid payment", "payment", nil, ""},
		{"valid item", "items", nil, ""},
		{"order_uid with a space", "orders", map[string]any{"order_uid": "bad uid"}, "orders_order_uid_check"},
		{"order_uid too long", "orders", map[string]any{"order_uid": strings.Repeat("a", 65)}, "orders_order_uid_check"},
		{"empty track_number", "orders", map[string]any{"track_number": ""}, "orders_track_number_check"},
		{"short content hash", "orders", map[string]any{"content_sha256": `\x00`}, "orders_content_sha256_check"},
		{"negative amount", "payment", map[string]any{"amount": -1}, "payment_amount_check"},
		{"negative delivery cost", "payment", map[string]any{"delivery_cost": -1}, "payment_delivery_cost_check"},
		{"lower-case currency", "payment", map[string]any{"currency": "usd"}, "payment_currency_check"},
		{"zero payment_dt", "payment", map[string]any{"payment_dt": 0}, "payment_payment_dt_check"},
		{"sale over 100", "items", map[string]any{"sale": 101}, "items_sale_check"},
		{"position 1000", "items", map[string]any{"position": 1000}, "items_position_check"},
		{"negative price", "items", map[string]any{"price": -5}, "items_price_check"},
		{"empty email", "delivery", map[string]any{"email": ""}, "delivery_email_check"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tx, err := pg.Pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = tx.Rollback(ctx) }()
			uid := "copy" + string(rune('a'+i))
			set := map[string]any{"order_uid": uid}
			if tt.table == "payment" {
				set["transaction"] = uid // unique per payment
			}
			if tt.table != "orders" {
				if err := copyRow(ctx, tx, "orders", sample.OrderUID, set); err != nil {
					t.Fatalf("copy the order: %v", err)
				}
			}
			maps.Copy(set, tt.bad)
			err = copyRow(ctx, tx, tt.table, sample.OrderUID, set)
			if tt.bad == nil {
				if err != nil {
					t.Fatalf("valid copy rejected: %v", err)
				}
				return
			}
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "23514" || pgErr.ConstraintName != tt.constraint {
				t.Fatalf("got %v, want check_violation of %s", err, tt.constraint)
			}
		})
	}
}

func TestRolePrivileges(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	testenv.InsertOrders(t, pg.Pool, testenv.Sample(t))
	ctx := context.Background()
	const insert = `INSERT INTO orders SELECT (jsonb_populate_record(NULL::orders,
		to_jsonb(o) || '{"order_uid": "by-role"}')).* FROM orders o LIMIT 1`
	tests := []struct {
		role      string
		statement string
		allowed   bool
	}{
		{"order_ingestor", "SELECT count(*) FROM items", true},
		{"order_ingestor", insert, true},
		{"order_ingestor", "UPDATE payment SET amount = amount", false},
		{"order_ingestor", "DELETE FROM items", false},
		{"order_reader", "SELECT count(*) FROM items", true},
		{"order_reader", insert, false},
		{"order_reader", "UPDATE payment SET amount = amount", false},
		{"order_reader", "DELETE FROM items", false},
	}
	for _, tt := range tests {
		t.Run(tt.role+" "+strings.Fields(tt.statement)[0], func(t *testing.T) {
			_, err := execAs(ctx, t, pg, tt.role, tt.statement)
			wantPrivilege(t, tt.role, tt.allowed, err)
		})
	}
}

// execAs runs statement as role in a transaction that is rolled back when
// the test ends, and returns the transaction (for checks after it) and the
// statement's error.
func execAs(ctx context.Context, t *testing.T, pg *testenv.PG, role, statement string) (pgx.Tx, error) {
	t.Helper()
	conn, err := pgx.Connect(ctx, pg.URLAs(role))
	if err != nil {
		t.Fatalf("connect as %s: %v", role, err)
	}
	t.Cleanup(func() { _ = conn.Close(ctx) })
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(ctx) }) // runs before the close
	_, err = tx.Exec(ctx, statement)
	return tx, err
}

// wantPrivilege fails the test unless err is what role's privileges
// predict: nil when allowed, insufficient_privilege otherwise.
func wantPrivilege(t *testing.T, role string, allowed bool, err error) {
	t.Helper()
	var pgErr *pgconn.PgError
	switch {
	case allowed && err != nil:
		t.Fatalf("%s: %v", role, err)
	case !allowed && (!errors.As(err, &pgErr) || pgErr.Code != "42501"):
		t.Fatalf("%s: got %v, want insufficient_privilege", role, err)
	}
}

// TestIndexMigrations applies and reverts each index migration while the
// ingestor's kind of traffic goes on: a writer holds a transaction open
// (as a batch in flight does) and new orders keep arriving. A plain CREATE
// or DROP INDEX would queue behind the open transaction for its lock, and
// every later INSERT would queue behind the index build: on a large table,
// ingestion would stop for the whole build. CONCURRENTLY waits for the open
// transaction too, but lets the new writes through.
func TestIndexMigrations(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	ctx := context.Background()
	sample := testenv.Sample(t)
	testenv.InsertOrders(t, pg.Pool, sample)
	if err := migrations.With(pg.URL, func(m *migrate.Migrate) error { return m.Migrate(1) }); err != nil {
		t.Fatalf("migrate to version 1: %v", err)
	}
	if ix := readSchema(t, pg.Pool).indexes; slices.ContainsFunc(searchIndexes, func(s string) bool { return slices.Contains(ix, s) }) {
		t.Fatalf("version 1 has search indexes: %v", ix)
	}

	writers := ingestorPool(t, pg)
	gen := ordergen.New(41)

	step := func(n int, want []string) {
		t.Helper()
		uid := "open" + strconv.Itoa(len(want)) + strconv.Itoa(n+1)
		stepWhileWriting(t, pg, writers, sample.OrderUID, uid, gen.Order(), n)
		var version uint
		if err := pg.Pool.QueryRow(ctx, "SELECT version FROM schema_migrations").Scan(&version); err != nil {
			t.Fatal(err)
		}
		if version != uint(1+len(want)) {
			t.Fatalf("after Steps(%d): version %d, want %d: searchIndexes are versions 2 to %d", n, version, 1+len(want), 1+len(searchIndexes))
		}
		ix := readSchema(t, pg.Pool).indexes
		for _, s := range searchIndexes {
			if slices.Contains(ix, s) != slices.Contains(want, s) {
				t.Fatalf("after Steps(%d): indexes %v, want the search indexes %v", n, ix, want)
			}
		}
	}
	for i := range searchIndexes {
		step(1, searchIndexes[:i+1])
	}
	for i := len(searchIndexes) - 1; i >= 0; i-- {
		step(-1, searchIndexes[:i])
	}
	var orders int
	if err := pg.Pool.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&orders); err != nil {
		t.Fatal(err)
	}
	if want := 1 + 2*2*len(searchIndexes); orders != want {
		t.Errorf("%d orders stored, want %d (the sample, each open and each concurrent write)", orders, want)
	}
}

// ingestorPool connects as the ingestor's role, with writes that fail
// instead of hanging when an index build blocks them.
func ingestorPool(t *testing.T, pg *testenv.PG) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(pg.URLAs("order_ingestor"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["lock_timeout"] = "5s"
	writers, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(writers.Close)
	return writers
}

// stepWhileWriting runs m.Steps(n) (an index migration, each way) while
// the ingestor's kind of traffic goes on: a transaction that wrote a copy
// (uid) of the stored order like is held open, as a batch in flight is,
// and fresh is written meanwhile through writers. The step must wait for
// the open transaction and let the new write through (it fails on
// writers' lock_timeout if blocked).
func stepWhileWriting(t *testing.T, pg *testenv.PG, writers *pgxpool.Pool, like, uid string, fresh *model.Order, n int) {
	t.Helper()
	ctx := context.Background()
	tx, err := pg.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	// The copy has no items (a key a table lacks is ignored).
	set := map[string]any{"order_uid": uid, "transaction": uid, "item_count": 0}
	for _, table := range []string{"orders", "payment"} {
		if err := copyRow(ctx, tx, table, like, set); err != nil {
			t.Fatalf("open write to %s: %v", table, err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- migrations.With(pg.URL, func(m *migrate.Migrate) error { return m.Steps(n) }) }()
	testenv.Await(t, "the index migration to wait for the open transaction", time.Minute, func() bool {
		var waiting bool
		err := pg.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'
			AND query ~ '(CREATE|DROP) INDEX')`).Scan(&waiting)
		return err == nil && waiting
	})
	testenv.InsertOrders(t, writers, fresh) // fails on lock_timeout if blocked
	select {
	case err := <-done:
		t.Fatalf("the migration ended (%v) before the transaction it must wait for", err)
	default:
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Steps(%d): %v", n, err)
	}
}
