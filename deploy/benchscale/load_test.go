//go:build benchscale

package benchscale

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"github.com/orderservice/orders/ingestor/ingest"
	"github.com/orderservice/orders/ingestor/postgres"
	"github.com/orderservice/orders/shared/testenv"
)

// bareSchema is the reference: the same four tables and columns as the
// service's schema, with primary keys (items' leads with order_uid, the
// index on order_uid) and foreign keys to orders, and nothing else: no
// CHECK, no unique payment transaction, no index for the recent list or
// for search.
const bareSchema = `
CREATE SCHEMA bare;
CREATE TABLE bare.orders (
    order_uid text PRIMARY KEY, track_number varchar(255) NOT NULL, entry varchar(255) NOT NULL,
    locale varchar(255) NOT NULL, internal_signature varchar(255) NOT NULL, customer_id varchar(255) NOT NULL,
    delivery_service varchar(255) NOT NULL, shardkey varchar(255) NOT NULL, sm_id bigint NOT NULL,
    date_created timestamptz NOT NULL, oof_shard varchar(255) NOT NULL, content_sha256 bytea NOT NULL,
    ingested_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE bare.delivery (
    order_uid text PRIMARY KEY REFERENCES bare.orders, name varchar(255) NOT NULL, phone varchar(255) NOT NULL,
    zip varchar(255) NOT NULL, city varchar(255) NOT NULL, address varchar(255) NOT NULL,
    region varchar(255) NOT NULL, email varchar(255) NOT NULL);
CREATE TABLE bare.payment (
    order_uid text PRIMARY KEY REFERENCES bare.orders, transaction varchar(255) NOT NULL,
    request_id varchar(255) NOT NULL, currency char(3) NOT NULL, provider varchar(255) NOT NULL,
    amount bigint NOT NULL, payment_dt bigint NOT NULL, bank varchar(255) NOT NULL,
    delivery_cost bigint NOT NULL, goods_total bigint NOT NULL, custom_fee bigint NOT NULL);
CREATE TABLE bare.items (
    order_uid text NOT NULL REFERENCES bare.orders, position smallint NOT NULL, chrt_id bigint NOT NULL,
    track_number varchar(255) NOT NULL, price bigint NOT NULL, rid varchar(255) NOT NULL,
    name varchar(255) NOT NULL, sale smallint NOT NULL, size varchar(255) NOT NULL,
    total_price bigint NOT NULL, nm_id bigint NOT NULL, brand varchar(255) NOT NULL, status bigint NOT NULL,
    PRIMARY KEY (order_uid, position));
`

// generate returns the run's next n orders: from ordergen, seeded by
// their position in the run (so that a run is reproducible and no two
// ranges share a generator), dated on the timeline.
func (r *run) generate(n int) []storedOrder {
	out := generateRange(r.seq, n)
	r.seq += int64(n)
	return out
}

// errRollback ends a transaction that must leave nothing behind.
var errRollback = errors.New("rolled back on purpose")

// bulkChunk is the bulk loader's unit: one ingestor batch.
const bulkChunk = 2000

// bulkLoad writes the run's next n orders to both schemas, outside the
// measurement (see loadOrders).
func (r *run) bulkLoad(ctx context.Context, n int) {
	if err := loadOrders(ctx, r.pg, r.seq, n, true); err != nil {
		r.t.Fatalf("bulk load: %v", err)
	}
	r.seq += int64(n)
}

// loadOrders writes the n orders of the timeline from number first into
// pg: the service's tables through the ingestor's writer (two batches in
// flight, as the ingestor has by default) and, with bare, the bare tables
// with one COPY per table per chunk.
func loadOrders(ctx context.Context, pg *testenv.PG, first int64, n int, bare bool) error {
	pool, err := postgres.Connect(ctx, pg.URLAs("order_ingestor"), 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	w := postgres.NewWriter(pool, 10*time.Minute, nil)

	g, ctx := errgroup.WithContext(ctx)
	starts := make(chan int64)
	toService, toBare := make(chan []storedOrder, 2), make(chan []storedOrder, 2)
	outs := []chan []storedOrder{toService}
	if bare {
		outs = append(outs, toBare)
	}
	end := first + int64(n)
	g.Go(func() error {
		defer close(starts)
		for from := first; from < end; from += bulkChunk {
			select {
			case starts <- from:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	gens := errgroup.Group{}
	for range 2 {
		gens.Go(func() error {
			for from := range starts {
				chunk := generateRange(from, int(min(bulkChunk, end-from)))
				for _, ch := range outs {
					select {
					case ch <- chunk:
					case <-ctx.Done():
						return ctx.Err()
					}
				}
			}
			return nil
		})
	}
	g.Go(func() error {
		err := gens.Wait()
		close(toService)
		close(toBare)
		return err
	})
	for range 2 {
		g.Go(func() error { return writeService(ctx, w, toService) })
	}
	g.Go(func() error { return writeBare(ctx, pg.Pool, toBare) })
	return g.Wait()
}

// writeService writes each chunk to the service's tables with w, the
// ingestor's writer; every order must be new.
func writeService(ctx context.Context, w *postgres.Writer, chunks <-chan []storedOrder) error {
	for chunk := range chunks {
		res, err := w.Write(ctx, chunk)
		if err != nil {
			return fmt.Errorf("service tables: %w", err)
		}
		for i, rs := range res {
			if rs.Status != ingest.Inserted {
				return errors.Join(fmt.Errorf("order %s: %v", chunk[i].OrderUID, rs.Status), rs.Err)
			}
		}
	}
	return nil
}

// writeBare writes each chunk to the bare tables, one transaction of one
// COPY per table each.
func writeBare(ctx context.Context, pool *pgxpool.Pool, chunks <-chan []storedOrder) error {
	for chunk := range chunks {
		if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return copyInto(ctx, tx, "bare", chunk) }); err != nil {
			return fmt.Errorf("bare tables: %w", err)
		}
	}
	return nil
}

// leadIn writes orders, unmeasured, to one schema ("bare" or the
// service's, "public") the way bulkLoad does, right before that schema's
// measured write. A measured write that starts at a checkpoint would
// otherwise pay a full-page image for nearly every index page it touches
// first, a cost production spreads over the whole checkpoint interval
// (15 minutes, millions of orders): the lead-in pays it, so the measured
// write sees the table as an ingest in the middle of the interval does.
func (r *run) leadIn(ctx context.Context, schema string, orders []storedOrder) {
	if len(orders) == 0 {
		return
	}
	chunks := make(chan []storedOrder)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(chunks)
		for c := range slices.Chunk(orders, bulkChunk) {
			select {
			case chunks <- c:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	if schema == "bare" {
		g.Go(func() error { return writeBare(gctx, r.pg.Pool, chunks) })
	} else {
		pool, err := postgres.Connect(ctx, r.pg.URLAs("order_ingestor"), 2)
		if err != nil {
			r.t.Fatal(err)
		}
		defer pool.Close()
		w := postgres.NewWriter(pool, 10*time.Minute, nil)
		for range 2 {
			g.Go(func() error { return writeService(gctx, w, chunks) })
		}
	}
	if err := g.Wait(); err != nil {
		r.t.Fatalf("lead-in of %s: %v", schema, err)
	}
}

// bareCopy is the reference measurement: orders written into the bare
// tables with one COPY per table, in one transaction. It returns orders/s.
func (r *run) bareCopy(ctx context.Context, orders []storedOrder) float64 {
	start := time.Now()
	if err := pgx.BeginFunc(ctx, r.pg.Pool, func(tx pgx.Tx) error { return copyInto(ctx, tx, "bare", orders) }); err != nil {
		r.t.Fatalf("bare COPY: %v", err)
	}
	return float64(len(orders)) / time.Since(start).Seconds()
}

// copyInto writes orders into the four tables of schema, one COPY per
// table, the rows and columns the ingestor writes.
func copyInto(ctx context.Context, tx pgx.Tx, schema string, orders []storedOrder) error {
	i := 0
	next := func(row func(o *storedOrder) []any) pgx.CopyFromSource {
		i = 0
		return pgx.CopyFromFunc(func() ([]any, error) {
			if i == len(orders) {
				return nil, nil
			}
			i++
			return row(&orders[i-1]), nil
		})
	}
	tables := []struct {
		name string
		cols []string
		row  func(o *storedOrder) []any
	}{
		{"orders", []string{"order_uid", "track_number", "entry", "locale", "internal_signature", "customer_id",
			"delivery_service", "shardkey", "sm_id", "date_created", "oof_shard", "content_sha256"},
			func(o *storedOrder) []any {
				return []any{o.OrderUID, o.TrackNumber, o.Entry, o.Locale, o.InternalSignature, o.CustomerID,
					o.DeliveryService, o.ShardKey, o.SmID, o.DateCreated, o.OofShard, o.SHA256[:]}
			}},
		{"delivery", []string{"order_uid", "name", "phone", "zip", "city", "address", "region", "email"},
			func(o *storedOrder) []any {
				d := &o.Delivery
				return []any{o.OrderUID, d.Name, d.Phone, d.Zip, d.City, d.Address, d.Region, d.Email}
			}},
		{"payment", []string{"order_uid", "transaction", "request_id", "currency", "provider", "amount",
			"payment_dt", "bank", "delivery_cost", "goods_total", "custom_fee"},
			func(o *storedOrder) []any {
				p := &o.Payment
				return []any{o.OrderUID, p.Transaction, p.RequestID, p.Currency, p.Provider, p.Amount,
					p.PaymentDT, p.Bank, p.DeliveryCost, p.GoodsTotal, p.CustomFee}
			}},
	}
	for _, tb := range tables {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{schema, tb.name}, tb.cols, next(tb.row)); err != nil {
			return fmt.Errorf("copy %s: %w", tb.name, err)
		}
	}
	oi, ii := 0, 0
	_, err := tx.CopyFrom(ctx, pgx.Identifier{schema, "items"}, []string{"order_uid", "position", "chrt_id",
		"track_number", "price", "rid", "name", "sale", "size", "total_price", "nm_id", "brand", "status"},
		pgx.CopyFromFunc(func() ([]any, error) {
			for oi < len(orders) && ii >= len(orders[oi].Items) {
				oi, ii = oi+1, 0
			}
			if oi == len(orders) {
				return nil, nil
			}
			o := &orders[oi]
			it := &o.Items[ii]
			pos := int16(ii)
			ii++
			return []any{o.OrderUID, pos, it.ChrtID, it.TrackNumber, it.Price, it.RID, it.Name,
				int16(it.Sale), it.Size, it.TotalPrice, it.NmID, it.Brand, it.Status}, nil
		}))
	if err != nil {
		return fmt.Errorf("copy items: %w", err)
	}
	return nil
}
