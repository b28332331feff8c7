package postgres

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderservice/orders/ingestor/ingest"
	"github.com/orderservice/orders/shared/model"
	"github.com/orderservice/orders/shared/ordergen"
	"github.com/orderservice/orders/shared/testenv"
)

func storedCount(t *testing.T, pg *testenv.PG, table, uid string) int {
	t.Helper()
	var n int
	if err := pg.Pool.QueryRow(context.Background(), `SELECT count(*) FROM `+pgx.Identifier{table}.Sanitize()+` WHERE order_uid = $1`, uid).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

type auditRow struct {
	topic     string
	partition int32
	offset    int64
	at        time.Time
}

func audit(t *testing.T, pg *testenv.PG, uid string) (auditRow, bool) {
	t.Helper()
	h := ingest.HashUID(uid)
	var r auditRow
	err := pg.Pool.QueryRow(context.Background(), `SELECT source_topic, source_partition, source_offset, erased_at
		FROM erased_orders WHERE uid_sha256 = $1`, h[:]).Scan(&r.topic, &r.partition, &r.offset, &r.at)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return r, true
}

// Erase deletes a stored order from every table and records its uid; a uid
// never stored is recorded too; erasing again changes nothing but says so.
// Writes then refuse every recorded uid, on the fast and the careful path.
func TestEraseThenWriteRefuses(t *testing.T) {
	t.Parallel()
	w, pg := newWriter(t)
	ctx := context.Background()
	gen := ordergen.New(21)
	stored, other, unknown, fresh := gen.Order(), gen.Order(), gen.Order(), gen.Order()
	testenv.InsertOrders(t, pg.Pool, stored, other)

	res, err := w.Erase(ctx, []ingest.Erasure{
		{UID: stored.OrderUID, Topic: "orders", Partition: 2, Offset: 40},
		{UID: unknown.OrderUID, Topic: "orders", Partition: 3, Offset: 41},
	})
	if err != nil {
		t.Fatalf("Erase: %v", err)
	}
	if want := []ingest.EraseResult{{Deleted: true}, {}}; res[0] != want[0] || res[1] != want[1] {
		t.Errorf("Erase = %+v, want %+v", res, want)
	}
	for _, table := range []string{"orders", "delivery", "payment", "items"} {
		if n := storedCount(t, pg, table, stored.OrderUID); n != 0 {
			t.Errorf("%s still holds %d rows of the erased order", table, n)
		}
		if n := storedCount(t, pg, table, other.OrderUID); n == 0 {
			t.Errorf("%s lost the other order's rows", table)
		}
	}
	for _, c := range []struct {
		uid  string
		want auditRow
	}{{stored.OrderUID, auditRow{topic: "orders", partition: 2, offset: 40}}, {unknown.OrderUID, auditRow{topic: "orders", partition: 3, offset: 41}}} {
		got, ok := audit(t, pg, c.uid)
		if !ok || got.topic != c.want.topic || got.partition != c.want.partition || got.offset != c.want.offset || time.Since(got.at) > time.Minute {
			t.Errorf("audit row of %s = %+v (found %v), want %+v erased just now", c.uid, got, ok, c.want)
		}
	}
	// The audit keeps hashes, never the uids.
	var leaked int
	if err := pg.Pool.QueryRow(ctx, `SELECT count(*) FROM erased_orders WHERE position(convert_to($1, 'UTF8') in uid_sha256) > 0
		OR source_topic LIKE '%' || $1 || '%'`, stored.OrderUID).Scan(&leaked); err != nil || leaked != 0 {
		t.Errorf("erased_orders holds the uid in clear: %d rows, %v", leaked, err)
	}

	// Again: nothing is deleted, the first record stays.
	res, err = w.Erase(ctx, []ingest.Erasure{{UID: stored.OrderUID, Topic: "orders", Partition: 2, Offset: 90}})
	if err != nil {
		t.Fatal(err)
	}
	if res[0] != (ingest.EraseResult{Repeated: true}) {
		t.Errorf("second Erase = %+v, want repeated, nothing deleted", res[0])
	}
	if got, _ := audit(t, pg, stored.OrderUID); got.offset != 40 {
		t.Errorf("a repeated erasure replaced the first record: offset %d", got.offset)
	}

	tests := []struct {
		name  string
		batch []*model.Order
		want  []ingest.WriteStatus
	}{
		{"fast path", []*model.Order{stored, fresh, unknown}, []ingest.WriteStatus{ingest.Erased, ingest.Inserted, ingest.Erased}},
		// other is stored: the COPY fails and the careful path decides.
		{"careful path", []*model.Order{other, unknown}, []ingest.WriteStatus{ingest.Duplicate, ingest.Erased}},
	}
	for _, tt := range tests {
		batch := make([]ingest.StoredOrder, len(tt.batch))
		for i, o := range tt.batch {
			batch[i] = hashed(t, o)
		}
		res, err := w.Write(ctx, batch)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		for i, r := range res {
			if r.Status != tt.want[i] {
				t.Errorf("%s: order %d: %s, want %s", tt.name, i, r.Status, tt.want[i])
			}
		}
	}
	for _, uid := range []string{stored.OrderUID, unknown.OrderUID} {
		if n := storedCount(t, pg, "orders", uid); n != 0 {
			t.Errorf("erased uid %s stored again", uid)
		}
	}
	if n := storedCount(t, pg, "orders", fresh.OrderUID); n != 1 {
		t.Errorf("the fresh neighbour of erased orders was not stored")
	}
}

// holdLock runs, in a transaction of its own, what a writer or an eraser
// does before it commits: take the erasure lock (shared or exclusive) and
// change a row. It returns the transaction, for the test to commit.
func holdLock(t *testing.T, pg *testenv.PG, exclusive bool, stmt string, args ...any) pgx.Tx {
	t.Helper()
	ctx := context.Background()
	tx, err := pg.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(ctx) })
	lock := lockShared
	if exclusive {
		lock = lockErasure
	}
	if _, err := tx.Exec(ctx, lock, erasureLock); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, stmt, args...); err != nil {
		t.Fatal(err)
	}
	return tx
}

// A write and an erasure of the same uid in concurrent transactions (two
// ingestors, say) take effect one after the other: whichever comes second
// waits for the first to commit and sees what it did. Without the lock the
// erasure would miss the uncommitted order (and leave it stored), and the
// write would miss the uncommitted erasure (and store the order).
func TestWriteAndEraseDoNotInterleave(t *testing.T) {
	t.Parallel()
	const insertRow = `INSERT INTO orders (order_uid, track_number, entry, locale, internal_signature,
		customer_id, delivery_service, shardkey, sm_id, date_created, oof_shard, content_sha256)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)`
	tests := []struct {
		name string
		// first is the transaction in progress; second the Writer's call.
		first  func(t *testing.T, pg *testenv.PG, o ingest.StoredOrder) pgx.Tx
		second func(w *Writer, o ingest.StoredOrder) (string, error)
		want   string
		stored int
	}{
		{
			"an erasure waits for the write in progress, then deletes its order",
			func(t *testing.T, pg *testenv.PG, o ingest.StoredOrder) pgx.Tx {
				return holdLock(t, pg, false, insertRow, o.OrderUID, o.TrackNumber, o.Entry, o.Locale, o.InternalSignature,
					o.CustomerID, o.DeliveryService, o.ShardKey, o.SmID, o.DateCreated, o.OofShard, o.SHA256[:])
			},
			func(w *Writer, o ingest.StoredOrder) (string, error) {
				res, err := w.Erase(context.Background(), []ingest.Erasure{{UID: o.OrderUID, Topic: "orders", Offset: 1}})
				if err != nil {
					return "", err
				}
				if res[0].Deleted {
					return "deleted", nil
				}
				return "not found", nil
			},
			"deleted", 0,
		},
		{
			"a write waits for the erasure in progress, then refuses the order",
			func(t *testing.T, pg *testenv.PG, o ingest.StoredOrder) pgx.Tx {
				h := ingest.HashUID(o.OrderUID)
				return holdLock(t, pg, true, `INSERT INTO erased_orders (uid_sha256, source_topic, source_partition, source_offset)
					VALUES ($1, 'orders', 0, 1)`, h[:])
			},
			func(w *Writer, o ingest.StoredOrder) (string, error) {
				res, err := w.Write(context.Background(), []ingest.StoredOrder{o})
				if err != nil {
					return "", err
				}
				return res[0].Status.String(), nil
			},
			ingest.Erased.String(), 0,
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w, pg := newWriter(t)
			o := hashed(t, ordergen.New(int64(300+i)).Order())
			tx := tt.first(t, pg, o)
			type outcome struct {
				got string
				err error
			}
			done := make(chan outcome, 1)
			go func() {
				got, err := tt.second(w, o)
				done <- outcome{got, err}
			}()
			testenv.Await(t, "the second transaction waiting for the first", 10*time.Second, func() bool {
				select {
				case got := <-done:
					t.Fatalf("returned %q, %v while the first transaction was in progress", got.got, got.err)
				default:
				}
				return pg.LockWaiters(t, "order_ingestor") > 0
			})
			if err := tx.Commit(context.Background()); err != nil {
				t.Fatal(err)
			}
			got := <-done
			if got.err != nil || got.got != tt.want {
				t.Fatalf("got %q, %v; want %q", got.got, got.err, tt.want)
			}
			if n := storedCount(t, pg, "orders", o.OrderUID); n != tt.stored {
				t.Errorf("%d orders rows, want %d", n, tt.stored)
			}
		})
	}
}
