package postgres

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/orderservice/orders/ingestor/ingest"
	"github.com/orderservice/orders/shared/model"
	"github.com/orderservice/orders/shared/ordergen"
)

// The binary COPY encoder writes every column of the four tables: each
// order read back with pgx (which decodes on its own) is the order
// written, field for field, with its hash and summary columns. Enough
// orders to take several of the reader's 64 KiB reads.
func TestWriteCopiesEveryColumn(t *testing.T) {
	t.Parallel()
	w, pg := newWriter(t)
	ctx := context.Background()
	gen := ordergen.New(11)
	orders := make([]*model.Order, 300)
	batch := make([]ingest.StoredOrder, len(orders))
	for i := range orders {
		o := gen.Order()
		switch i {
		case 0: // microseconds, another zone, the extremes of the integers
			o.DateCreated = time.Date(1999, 12, 31, 23, 59, 59, 123456000, time.FixedZone("X", -5*3600))
			o.SmID, o.Items[0].NmID = model.MaxID, 0
		case 1: // multi-byte text, an empty optional column
			o.Delivery.Name, o.InternalSignature, o.Payment.RequestID = "Иван Петров 😀", "", ""
		case 2:
			o.DateCreated = time.Date(1, 1, 1, 0, 0, 0, 1000, time.UTC)
		}
		orders[i], batch[i] = o, hashed(t, o)
	}
	res, err := w.Write(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Status != ingest.Inserted {
			t.Fatalf("order %d: %s (%v)", i, r.Status, r.Err)
		}
	}
	for i, want := range orders {
		var got model.Order
		var sum []byte
		var amount int64
		var currency string
		var count int16
		err := pg.Pool.QueryRow(ctx, `SELECT o.order_uid, o.track_number, o.entry, o.locale, o.internal_signature,
			o.customer_id, o.delivery_service, o.shardkey, o.sm_id, o.date_created, o.oof_shard, o.content_sha256,
			o.amount, o.currency, o.item_count,
			d.name, d.phone, d.zip, d.city, d.address, d.region, d.email,
			p.transaction, p.request_id, p.currency, p.provider, p.amount, p.payment_dt, p.bank,
			p.delivery_cost, p.goods_total, p.custom_fee
			FROM orders o JOIN delivery d USING (order_uid) JOIN payment p USING (order_uid) WHERE o.order_uid = $1`,
			want.OrderUID).Scan(&got.OrderUID, &got.TrackNumber, &got.Entry, &got.Locale, &got.InternalSignature,
			&got.CustomerID, &got.DeliveryService, &got.ShardKey, &got.SmID, &got.DateCreated, &got.OofShard, &sum,
			&amount, &currency, &count,
			&got.Delivery.Name, &got.Delivery.Phone, &got.Delivery.Zip, &got.Delivery.City, &got.Delivery.Address,
			&got.Delivery.Region, &got.Delivery.Email,
			&got.Payment.Transaction, &got.Payment.RequestID, &got.Payment.Currency, &got.Payment.Provider,
			&got.Payment.Amount, &got.Payment.PaymentDT, &got.Payment.Bank, &got.Payment.DeliveryCost,
			&got.Payment.GoodsTotal, &got.Payment.CustomFee)
		if err != nil {
			t.Fatalf("order %d: %v", i, err)
		}
		rows, err := pg.Pool.Query(ctx, `SELECT position, chrt_id, track_number, price, rid, name, sale, size,
			total_price, nm_id, brand, status FROM items WHERE order_uid = $1 ORDER BY position`, want.OrderUID)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var it model.Item
			var pos, sale int16
			if err := rows.Scan(&pos, &it.ChrtID, &it.TrackNumber, &it.Price, &it.RID, &it.Name, &sale, &it.Size,
				&it.TotalPrice, &it.NmID, &it.Brand, &it.Status); err != nil {
				t.Fatal(err)
			}
			if int(pos) != len(got.Items) {
				t.Fatalf("order %d: item at position %d, want %d", i, pos, len(got.Items))
			}
			it.Sale = int64(sale)
			got.Items = append(got.Items, it)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		wantJSON, _ := want.Canonical()
		gotJSON, _ := got.Canonical()
		if !bytes.Equal(gotJSON, wantJSON) {
			t.Fatalf("order %d read back as\n%s\nwant\n%s", i, gotJSON, wantJSON)
		}
		if !bytes.Equal(sum, batch[i].SHA256[:]) || amount != want.Payment.Amount || currency != want.Payment.Currency || int(count) != len(want.Items) {
			t.Fatalf("order %d: hash %x, summary %d %s %d; want %x, %d %s %d", i, sum, amount, currency, count,
				batch[i].SHA256, want.Payment.Amount, want.Payment.Currency, len(want.Items))
		}
	}
}

// A column whose type is not the one the encoder writes fails the write
// with a transient error (retried, never dead-lettered), before any row is
// sent.
func TestWriteRefusesAChangedColumnType(t *testing.T) {
	t.Parallel()
	w, pg := newWriter(t)
	ctx := context.Background()
	if _, err := pg.Pool.Exec(ctx, `ALTER TABLE items ALTER COLUMN status TYPE integer`); err != nil {
		t.Fatal(err)
	}
	res, err := w.Write(ctx, []ingest.StoredOrder{hashed(t, ordergen.New(12).Order())})
	if err == nil || isPermanent(err) || !strings.Contains(err.Error(), "items.status") {
		t.Fatalf("Write: %v, want a transient error naming items.status", err)
	}
	if res[0].Status != ingest.Pending {
		t.Errorf("status %s, want pending", res[0].Status)
	}
}
