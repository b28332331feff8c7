package testenv

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/orderservice/orders/shared/model"
)

func TestMain(m *testing.M) {
	if os.Getenv("TESTENV_HELPER") == "1" {
		helperProcess()
	}
	Main(m)
}

func TestPostgresIsMigratedIsolatedAndDropped(t *testing.T) {
	t.Parallel()
	var names []string
	t.Run("use", func(t *testing.T) {
		a, b := Postgres(t), Postgres(t)
		names = []string{a.Name, b.Name}
		if a.Name == b.Name {
			t.Fatalf("two calls gave the same database %s", a.Name)
		}
		ctx := context.Background()
		for _, pg := range []*PG{a, b} {
			var n int
			err := pg.Pool.QueryRow(ctx, `SELECT count(*) FROM information_schema.tables
				WHERE table_schema = 'public' AND table_name IN ('orders', 'delivery', 'payment', 'items')`).Scan(&n)
			if err != nil {
				t.Fatal(err)
			}
			if n != 4 {
				t.Errorf("%s: %d of the 4 order tables exist", pg.Name, n)
			}
			var db string
			if err := pg.Pool.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
				t.Fatal(err)
			}
			if db != pg.Name {
				t.Errorf("Pool is connected to %s, want %s", db, pg.Name)
			}
		}
		InsertOrders(t, a.Pool, Sample(t))
		var n int
		if err := b.Pool.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("an order inserted into %s shows in %s", a.Name, b.Name)
		}
	})
	srv, err := pgServerOnce()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		var exists bool
		err := srv.admin.QueryRow(context.Background(),
			"SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", name).Scan(&exists)
		if err != nil {
			t.Fatal(err)
		}
		if exists {
			t.Errorf("database %s still exists after its test ended", name)
		}
	}
}

func TestPostgresRoles(t *testing.T) {
	t.Parallel()
	pg := Postgres(t)
	InsertOrders(t, pg.Pool, Sample(t))
	ctx := context.Background()
	tests := []struct {
		role      string
		canInsert bool
	}{
		{"order_ingestor", true},
		{"order_reader", false},
	}
	for _, tt := range tests {
		t.Run(tt.role, func(t *testing.T) {
			conn, err := pgx.Connect(ctx, pg.URLAs(tt.role))
			if err != nil {
				t.Fatalf("connect as %s: %v", tt.role, err)
			}
			defer conn.Close(ctx)
			var user string
			var n int
			if err := conn.QueryRow(ctx, "SELECT current_user, (SELECT count(*) FROM orders)").Scan(&user, &n); err != nil {
				t.Fatalf("select as %s: %v", tt.role, err)
			}
			if user != tt.role || n != 1 {
				t.Errorf("got user %s seeing %d orders, want %s seeing 1", user, n, tt.role)
			}
			_, err = conn.Exec(ctx, "INSERT INTO delivery SELECT * FROM delivery WHERE false")
			var pgErr *pgconn.PgError
			switch {
			case tt.canInsert && err != nil:
				t.Errorf("%s cannot insert: %v", tt.role, err)
			case !tt.canInsert && (!errors.As(err, &pgErr) || pgErr.Code != "42501"):
				t.Errorf("%s insert: got %v, want insufficient_privilege", tt.role, err)
			}
		})
	}
}

func TestPGURLRewrites(t *testing.T) {
	pg := &PG{URL: "postgres://postgres:secret@127.0.0.1:5432/t_abc?sslmode=disable"}
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"as ingestor", pg.URLAs("order_ingestor"), "postgres://order_ingestor@127.0.0.1:5432/t_abc?sslmode=disable"},
		{"as reader", pg.URLAs("order_reader"), "postgres://order_reader@127.0.0.1:5432/t_abc?sslmode=disable"},
		{"via proxy", pg.URLVia("127.0.0.1:40000"), "postgres://postgres:secret@127.0.0.1:40000/t_abc?sslmode=disable"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %s, want %s", tt.name, tt.got, tt.want)
		}
	}
}

// TestLockTable: a query of a locked table waits (and LockWaiters sees
// it, as that role and as anyone) until the lock is released.
func TestLockTable(t *testing.T) {
	t.Parallel()
	pg := Postgres(t)
	release := pg.LockTable(t, "items")
	reader, err := pgx.Connect(context.Background(), pg.URLAs("order_reader"))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close(context.Background())
	done := make(chan error, 1)
	go func() {
		var n int
		done <- reader.QueryRow(context.Background(), "SELECT count(*) FROM items").Scan(&n)
	}()
	Await(t, "the query to wait for the lock", 10*time.Second, func() bool { return pg.LockWaiters(t, "order_reader") == 1 })
	if n := pg.LockWaiters(t, ""); n != 1 {
		t.Fatalf("LockWaiters(any role) = %d, want 1", n)
	}
	if n := pg.LockWaiters(t, "order_ingestor"); n != 0 {
		t.Fatalf("LockWaiters(order_ingestor) = %d, want 0", n)
	}
	select {
	case err := <-done:
		t.Fatalf("query of a locked table returned (%v)", err)
	default:
	}
	release()
	if err := <-done; err != nil {
		t.Fatalf("query after release: %v", err)
	}
	release() // a second call does nothing
}

func TestInsertOrdersStoresWholeOrders(t *testing.T) {
	t.Parallel()
	pg := Postgres(t)
	o := Sample(t)
	second := Sample(t)
	second.OrderUID, second.Payment.Transaction = "second", "second-tx"
	second.Items = append(second.Items, second.Items[0])
	second.Items[1].RID = "second-rid"
	InsertOrders(t, pg.Pool, o, second)

	canonical, err := second.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(canonical)
	ctx := context.Background()
	var sum []byte
	var amount int64
	err = pg.Pool.QueryRow(ctx, `SELECT o.content_sha256, p.amount FROM orders o
		JOIN payment p USING (order_uid) WHERE o.order_uid = $1`, second.OrderUID).Scan(&sum, &amount)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sum, want[:]) || amount != second.Payment.Amount {
		t.Errorf("stored sha %x amount %d, want %x %d", sum, amount, want, second.Payment.Amount)
	}
	rows, err := pg.Pool.Query(ctx, "SELECT rid FROM items WHERE order_uid = $1 ORDER BY position", second.OrderUID)
	if err != nil {
		t.Fatal(err)
	}
	rids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(rids, ",") != second.Items[0].RID+",second-rid" {
		t.Errorf("items by position: %v", rids)
	}
}

func TestInsertOrdersIsAtomic(t *testing.T) {
	t.Parallel()
	pg := Postgres(t)
	good, bad := Sample(t), Sample(t)
	bad.OrderUID = "bad"
	bad.Payment.Amount = -1 // rejected by a CHECK constraint
	if err := insertOrders(context.Background(), pg.Pool, []*model.Order{good, bad}); err == nil {
		t.Fatal("inserting an order with a negative amount succeeded")
	}
	var n int
	if err := pg.Pool.QueryRow(context.Background(), "SELECT count(*) FROM orders").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d orders stored after a failed batch, want 0", n)
	}
}

func TestSampleMatchesModelTestdata(t *testing.T) {
	orig, err := os.ReadFile("../model/testdata/model.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(orig, sampleJSON) {
		t.Fatal("testdata/model.json differs from shared/model/testdata/model.json: copy it again")
	}
	o := Sample(t)
	if err := o.Validate(); err != nil {
		t.Errorf("sample is invalid: %v", err)
	}
	o.OrderUID = "changed"
	if Sample(t).OrderUID == "changed" {
		t.Error("Sample returns a shared order")
	}
}

func TestRedisPrefixIsPrivateAndCleaned(t *testing.T) {
	t.Parallel()
	var prefix, url string
	t.Run("use", func(t *testing.T) {
		a, b := Redis(t), Redis(t)
		if a.Prefix == b.Prefix || !strings.HasPrefix(a.Prefix, "t") || !strings.HasSuffix(a.Prefix, ":") {
			t.Fatalf("prefixes %q and %q: want distinct t<hex>:", a.Prefix, b.Prefix)
		}
		ctx := context.Background()
		for i := range 2500 { // more than one SCAN/UNLINK batch
			if err := a.Client.Set(ctx, a.Prefix+"k"+string(rune('a'+i%26))+strings.Repeat("x", i/26), "v", time.Hour).Err(); err != nil {
				t.Fatal(err)
			}
		}
		prefix, url = a.Prefix, a.URL
	})
	env := Redis(t)
	if env.URL != url {
		t.Fatalf("second call got server %s, first %s", env.URL, url)
	}
	ctx := context.Background()
	left := 0
	iter := env.Client.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		left++
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("%d keys under %s left after cleanup", left, prefix)
	}
}

func TestFreeAddrIsListenable(t *testing.T) {
	addr := FreeAddr(t)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	ln.Close()
}

// TestFreeAddrNeverRepeats: the kernel hands ports just closed to later
// listeners on port 0, so without its record FreeAddr returned the same
// address twice (a reader's listen and ops ports, in CI); 2,000 calls,
// more than a run of the suite makes, must give 2,000 addresses.
func TestFreeAddrNeverRepeats(t *testing.T) {
	seen := map[string]int{}
	for i := range 2000 {
		addr := FreeAddr(t)
		if j, ok := seen[addr]; ok {
			t.Fatalf("call %d returned %s, which call %d returned", i, addr, j)
		}
		seen[addr] = i
	}
}
