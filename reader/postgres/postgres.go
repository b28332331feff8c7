// Package postgres is the reader's read-only access to the order database.
//
// An order is loaded in one round trip: one query returns the order's,
// delivery's and payment's columns and its items as arrays (array_agg
// ORDER BY position, so the items keep their order), scanned in pgx's
// binary format straight into model.Order, then encoded with
// model.Order.Canonical, so that the bytes equal what the ingestor wrote to
// Redis. (An earlier design had PostgreSQL build the JSON document with
// json_build_object; decoding that JSON again was a third of the reader's
// CPU per uncached request.) pgx caches the prepared statements per
// connection.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/orderservice/orders/shared/model"
	"github.com/prometheus/client_golang/prometheus"
)

// ErrNotFound is returned by Get for an order_uid the database does not hold.
var ErrNotFound = errors.New("order not found")

// orderColumns are the columns scanOrder reads, in its order; the query
// that uses them names the tables o (orders), d (delivery), p (payment) and
// i (the items aggregate of itemsLateral).
const orderColumns = `o.order_uid, o.track_number, o.entry, o.locale, o.internal_signature,
	o.customer_id, o.delivery_service, o.shardkey, o.sm_id, o.date_created, o.oof_shard,
	d.name, d.phone, d.zip, d.city, d.address, d.region, d.email,
	p.transaction, p.request_id, p.currency, p.provider, p.amount, p.payment_dt, p.bank,
	p.delivery_cost, p.goods_total, p.custom_fee,
	i.chrt_id, i.track_number, i.price, i.rid, i.name, i.sale, i.size, i.total_price,
	i.nm_id, i.brand, i.status`

// itemsLateral aggregates an order's items into one array per column, in
// position order (NULL arrays for an order without items).
const itemsLateral = `LEFT JOIN LATERAL (SELECT
	array_agg(chrt_id ORDER BY position) AS chrt_id,
	array_agg(track_number ORDER BY position) AS track_number,
	array_agg(price ORDER BY position) AS price,
	array_agg(rid ORDER BY position) AS rid,
	array_agg(name ORDER BY position) AS name,
	array_agg(sale::bigint ORDER BY position) AS sale,
	array_agg(size ORDER BY position) AS size,
	array_agg(total_price ORDER BY position) AS total_price,
	array_agg(nm_id ORDER BY position) AS nm_id,
	array_agg(brand ORDER BY position) AS brand,
	array_agg(status ORDER BY position) AS status
	FROM items WHERE items.order_uid = o.order_uid) i ON true`

const getQuery = `SELECT ` + orderColumns + `
FROM orders o JOIN delivery d ON d.order_uid = o.order_uid JOIN payment p ON p.order_uid = o.order_uid
` + itemsLateral + `
WHERE o.order_uid = $1`

// recentOrdersQuery serves the warm-up: the orders_recent_idx scan bounds it.
const recentOrdersQuery = `SELECT ` + orderColumns + `
FROM (SELECT * FROM orders ORDER BY date_created DESC, order_uid DESC LIMIT $1 OFFSET $2) o
JOIN delivery d ON d.order_uid = o.order_uid JOIN payment p ON p.order_uid = o.order_uid
` + itemsLateral + `
ORDER BY o.date_created DESC, o.order_uid DESC`

// scanOrder reads one row of orderColumns.
func scanOrder(row pgx.Row) (*model.Order, error) {
	var (
		o     model.Order
		d     = &o.Delivery
		p     = &o.Payment
		chrt  []int64
		track []string
		price []int64
		rid   []string
		name  []string
		sale  []int64
		size  []string
		total []int64
		nm    []int64
		brand []string
		stat  []int64
	)
	err := row.Scan(&o.OrderUID, &o.TrackNumber, &o.Entry, &o.Locale, &o.InternalSignature,
		&o.CustomerID, &o.DeliveryService, &o.ShardKey, &o.SmID, &o.DateCreated, &o.OofShard,
		&d.Name, &d.Phone, &d.Zip, &d.City, &d.Address, &d.Region, &d.Email,
		&p.Transaction, &p.RequestID, &p.Currency, &p.Provider, &p.Amount, &p.PaymentDT, &p.Bank,
		&p.DeliveryCost, &p.GoodsTotal, &p.CustomFee,
		&chrt, &track, &price, &rid, &name, &sale, &size, &total, &nm, &brand, &stat)
	if err != nil {
		return nil, err
	}
	o.Items = make([]model.Item, len(chrt))
	for k := range o.Items {
		o.Items[k] = model.Item{
			ChrtID: chrt[k], TrackNumber: track[k], Price: price[k], RID: rid[k], Name: name[k],
			Sale: sale[k], Size: size[k], TotalPrice: total[k], NmID: nm[k], Brand: brand[k], Status: stat[k],
		}
	}
	return &o, nil
}

const recentSummariesQuery = `SELECT o.order_uid, o.track_number, o.date_created, p.amount, p.currency,
	(SELECT count(*) FROM items i WHERE i.order_uid = o.order_uid)
FROM (SELECT order_uid, track_number, date_created FROM orders
	ORDER BY date_created DESC, order_uid DESC LIMIT $1) o
JOIN payment p ON p.order_uid = o.order_uid
ORDER BY o.date_created DESC, o.order_uid DESC`

// Store reads orders. It never writes: the reader connects as order_reader.
type Store struct {
	pool    *pgxpool.Pool
	latency *prometheus.HistogramVec
}

// Stat reports the connection pool's use (for the pool metrics).
func (s *Store) Stat() *pgxpool.Stat { return s.pool.Stat() }

// Open creates a connection pool; it does not connect until first use, so
// the reader starts (and serves from its caches) while PostgreSQL is down.
// latency may be nil.
func Open(ctx context.Context, url string, maxConns int32, latency *prometheus.HistogramVec) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse DATABASE_URL: %w", err)
	}
	cfg.MaxConns = maxConns
	// A dead server must fail requests quickly (503), not hang them.
	if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > 2*time.Second {
		cfg.ConnConfig.ConnectTimeout = 2 * time.Second
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "reader"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("create pool: %w", err)
	}
	return &Store{pool: pool, latency: latency}, nil
}

// Close closes the pool.
func (s *Store) Close() { s.pool.Close() }

// Ping checks that PostgreSQL answers.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

func (s *Store) observe(query string, start time.Time) {
	if s.latency != nil {
		s.latency.WithLabelValues(query).Observe(time.Since(start).Seconds())
	}
}

// Get returns the canonical JSON of one order, or ErrNotFound.
func (s *Store) Get(ctx context.Context, uid string) ([]byte, error) {
	defer s.observe("get", time.Now())
	o, err := scanOrder(s.pool.QueryRow(ctx, getQuery, uid))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("load order %q: %w", uid, err)
	}
	return o.Canonical()
}

// Entry is one order of the warm-up.
type Entry struct {
	UID  string
	JSON []byte
}

// Recent returns the canonical JSON of the n most recent orders, newest
// first, in pages of batch orders (one query each), calling fn per page so
// that memory stays bounded whatever n is.
func (s *Store) Recent(ctx context.Context, n, batch int, fn func([]Entry) error) error {
	if batch <= 0 {
		batch = 500
	}
	for offset := 0; offset < n; offset += batch {
		size := min(batch, n-offset)
		page, err := s.recentPage(ctx, size, offset)
		if err != nil {
			return err
		}
		if len(page) > 0 {
			if err := fn(page); err != nil {
				return err
			}
		}
		if len(page) < size {
			return nil
		}
	}
	return nil
}

func (s *Store) recentPage(ctx context.Context, limit, offset int) ([]Entry, error) {
	defer s.observe("recent_orders", time.Now())
	rows, err := s.pool.Query(ctx, recentOrdersQuery, limit, offset)
	if err != nil {
		return nil, fmt.Errorf("load recent orders: %w", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		o, err := scanOrder(rows)
		if err != nil {
			return nil, fmt.Errorf("scan recent order: %w", err)
		}
		e := Entry{UID: o.OrderUID}
		if e.JSON, err = o.Canonical(); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load recent orders: %w", err)
	}
	return out, nil
}

// Summary is one line of the recent orders list.
type Summary struct {
	OrderUID    string    `json:"order_uid"`
	TrackNumber string    `json:"track_number"`
	DateCreated time.Time `json:"date_created"`
	Amount      int64     `json:"amount"`
	Currency    string    `json:"currency"`
	ItemCount   int       `json:"item_count"`
}

// Summaries returns the limit most recent orders, newest first.
func (s *Store) Summaries(ctx context.Context, limit int) ([]Summary, error) {
	defer s.observe("summaries", time.Now())
	rows, err := s.pool.Query(ctx, recentSummariesQuery, limit)
	if err != nil {
		return nil, fmt.Errorf("load order summaries: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Summary, error) {
		var sm Summary
		err := r.Scan(&sm.OrderUID, &sm.TrackNumber, &sm.DateCreated, &sm.Amount, &sm.Currency, &sm.ItemCount)
		sm.DateCreated = sm.DateCreated.UTC()
		return sm, err
	})
	if err != nil {
		return nil, fmt.Errorf("load order summaries: %w", err)
	}
	return out, nil
}
