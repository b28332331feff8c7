package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/orderservice/orders/ingestor/ingest"
	"github.com/orderservice/orders/shared/model"
	"github.com/orderservice/orders/shared/ordergen"
)

// Two batches in flight at once may carry the same uid (a redelivery
// racing its first delivery). The second transaction waits on the first's
// uncommitted unique index entry; once the first ends, the writer's careful
// path classifies the order from what was committed: a duplicate of the
// same content, a conflict with other content, and a plain insert when the
// first batch rolled back. The other orders of the batch are inserted.
func TestWriteRacesAnUncommittedBatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		other    func(o *model.Order) // how the in-flight batch's copy differs
		rollback bool                 // the in-flight batch fails
		want     ingest.WriteStatus
	}{
		{"same content, first batch commits", func(*model.Order) {}, false, ingest.Duplicate},
		{"other content, first batch commits", func(o *model.Order) { o.Locale = "fr" }, false, ingest.Conflict},
		{"first batch rolls back", func(*model.Order) {}, true, ingest.Inserted},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w, pg := newWriter(t)
			ctx := context.Background()
			gen := ordergen.New(int64(100 + i))
			shared, neighbour := gen.Order(), gen.Order()
			first := *shared
			tt.other(&first)
			firstRow := hashed(t, &first)

			// The in-flight batch: the orders row of the shared uid,
			// inserted and not committed yet.
			tx, err := pg.Pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = tx.Rollback(ctx) }()
			o := firstRow
			if _, err := tx.Exec(ctx, `INSERT INTO orders (order_uid, track_number, entry, locale, internal_signature,
				customer_id, delivery_service, shardkey, sm_id, date_created, oof_shard, content_sha256)
				VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)`,
				o.OrderUID, o.TrackNumber, o.Entry, o.Locale, o.InternalSignature, o.CustomerID,
				o.DeliveryService, o.ShardKey, o.SmID, o.DateCreated, o.OofShard, o.SHA256[:]); err != nil {
				t.Fatal(err)
			}

			type outcome struct {
				res []ingest.WriteResult
				err error
			}
			done := make(chan outcome, 1)
			go func() {
				res, err := w.Write(ctx, []ingest.StoredOrder{hashed(t, neighbour), hashed(t, shared)})
				done <- outcome{res, err}
			}()
			// The second batch must be waiting for the first one's lock.
			deadline := time.Now().Add(10 * time.Second)
			for {
				if pg.LockWaiters(t, "") > 0 {
					break
				}
				select {
				case got := <-done:
					t.Fatalf("Write returned %v, %v while the first batch was uncommitted", got.res, got.err)
				default:
				}
				if time.Now().After(deadline) {
					t.Fatal("the second batch never waited for the first")
				}
				time.Sleep(10 * time.Millisecond) // polling an observable condition
			}
			if tt.rollback {
				err = tx.Rollback(ctx)
			} else {
				err = tx.Commit(ctx)
			}
			if err != nil {
				t.Fatal(err)
			}

			got := <-done
			if got.err != nil {
				t.Fatalf("Write: %v", got.err)
			}
			if s := got.res[0].Status; s != ingest.Inserted {
				t.Errorf("neighbour: %s, want inserted", s)
			}
			if s := got.res[1].Status; s != tt.want {
				t.Errorf("shared uid: %s (%v), want %s", s, got.res[1].Err, tt.want)
			}
			var items int
			wantItems := len(neighbour.Items)
			if tt.want == ingest.Inserted {
				wantItems += len(shared.Items)
			}
			if err := pg.Pool.QueryRow(ctx, `SELECT count(*) FROM items`).Scan(&items); err != nil {
				t.Fatal(err)
			}
			if items != wantItems {
				t.Errorf("%d items stored, want %d", items, wantItems)
			}
			var sum []byte
			if err := pg.Pool.QueryRow(ctx, `SELECT content_sha256 FROM orders WHERE order_uid = $1`, shared.OrderUID).Scan(&sum); err != nil {
				t.Fatal(err)
			}
			want := firstRow.SHA256
			if tt.rollback {
				want = hashed(t, shared).SHA256
			}
			if string(sum) != string(want[:]) {
				t.Errorf("stored content hash %x, want %x (rolled back first batch: %v)", sum, want, tt.rollback)
			}
		})
	}
}
