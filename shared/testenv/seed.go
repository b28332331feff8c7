package testenv

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderservice/orders/shared/model"
)

// sampleJSON is a copy of shared/model/testdata/model.json (embed cannot
// reach another package's directory); a test keeps the two identical.
//
//go:embed testdata/model.json
var sampleJSON []byte

// Sample returns a fresh copy of the canonical sample order.
func Sample(t testing.TB) *model.Order {
	t.Helper()
	o, err := model.Decode(sampleJSON)
	if err != nil {
		t.Fatalf("testenv: sample order: %v", err)
	}
	return o
}

// InsertOrders stores whole orders with plain INSERTs in one transaction,
// as the ingestor would: content_sha256 is the SHA-256 of the canonical
// JSON and items keep their array index in position. It is for seeding a
// database, not for testing the ingestor's own writes.
func InsertOrders(t testing.TB, pool *pgxpool.Pool, orders ...*model.Order) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := insertOrders(ctx, pool, orders); err != nil {
		t.Fatalf("testenv: InsertOrders: %v", err)
	}
}

func insertOrders(ctx context.Context, pool *pgxpool.Pool, orders []*model.Order) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for _, o := range orders {
			canonical, err := o.Canonical()
			if err != nil {
				return err
			}
			sum := sha256.Sum256(canonical)
			b.Queue(`INSERT INTO orders (order_uid, track_number, entry, locale, internal_signature,
				customer_id, delivery_service, shardkey, sm_id, date_created, oof_shard, content_sha256)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
				o.OrderUID, o.TrackNumber, o.Entry, o.Locale, o.InternalSignature,
				o.CustomerID, o.DeliveryService, o.ShardKey, o.SmID, o.DateCreated, o.OofShard, sum[:])
			d := o.Delivery
			b.Queue(`INSERT INTO delivery (order_uid, name, phone, zip, city, address, region, email)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
				o.OrderUID, d.Name, d.Phone, d.Zip, d.City, d.Address, d.Region, d.Email)
			p := o.Payment
			b.Queue(`INSERT INTO payment (order_uid, transaction, request_id, currency, provider, amount,
				payment_dt, bank, delivery_cost, goods_total, custom_fee)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
				o.OrderUID, p.Transaction, p.RequestID, p.Currency, p.Provider, p.Amount,
				p.PaymentDT, p.Bank, p.DeliveryCost, p.GoodsTotal, p.CustomFee)
			for i, it := range o.Items {
				b.Queue(`INSERT INTO items (order_uid, position, chrt_id, track_number, price, rid, name,
					sale, size, total_price, nm_id, brand, status)
					VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
					o.OrderUID, i, it.ChrtID, it.TrackNumber, it.Price, it.RID, it.Name,
					it.Sale, it.Size, it.TotalPrice, it.NmID, it.Brand, it.Status)
			}
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("insert: %w", err)
		}
		return nil
	})
}
