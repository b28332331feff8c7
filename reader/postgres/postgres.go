// Package postgres is the reader's read-only access to the order database.
//
// An order is loaded in one round trip: PostgreSQL assembles the whole JSON
// document (json_build_object, items by json_agg ORDER BY position), and the
// store re-encodes it with model.Order.Canonical, so that the bytes equal
// what the ingestor wrote to Redis (PostgreSQL's own timestamp formatting
// differs from Go's). pgx caches the prepared statements per connection.
package postgres

import (
	"context"
	"encoding/json"
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

// orderJSON builds one order's document; the FROM clause is appended by each
// query. The keys are those of model.Order.
const orderJSON = `json_build_object(
	'order_uid', o.order_uid, 'track_number', o.track_number, 'entry', o.entry,
	'delivery', json_build_object('name', d.name, 'phone', d.phone, 'zip', d.zip,
		'city', d.city, 'address', d.address, 'region', d.region, 'email', d.email),
	'payment', json_build_object('transaction', p.transaction, 'request_id', p.request_id,
		'currency', p.currency, 'provider', p.provider, 'amount', p.amount,
		'payment_dt', p.payment_dt, 'bank', p.bank, 'delivery_cost', p.delivery_cost,
		'goods_total', p.goods_total, 'custom_fee', p.custom_fee),
	'items', COALESCE((SELECT json_agg(json_build_object('chrt_id', i.chrt_id,
		'track_number', i.track_number, 'price', i.price, 'rid', i.rid, 'name', i.name,
		'sale', i.sale, 'size', i.size, 'total_price', i.total_price, 'nm_id', i.nm_id,
		'brand', i.brand, 'status', i.status) ORDER BY i.position)
		FROM items i WHERE i.order_uid = o.order_uid), '[]'::json),
	'locale', o.locale, 'internal_signature', o.internal_signature,
	'customer_id', o.customer_id, 'delivery_service', o.delivery_service,
	'shardkey', o.shardkey, 'sm_id', o.sm_id, 'date_created', o.date_created,
	'oof_shard', o.oof_shard)`

const getQuery = `SELECT ` + orderJSON + `
FROM orders o JOIN delivery d ON d.order_uid = o.order_uid JOIN payment p ON p.order_uid = o.order_uid
WHERE o.order_uid = $1`

// recentOrdersQuery serves the warm-up: the orders_recent_idx scan bounds it.
const recentOrdersQuery = `SELECT o.order_uid, ` + orderJSON + `
FROM (SELECT * FROM orders ORDER BY date_created DESC, order_uid DESC LIMIT $1 OFFSET $2) o
JOIN delivery d ON d.order_uid = o.order_uid JOIN payment p ON p.order_uid = o.order_uid
ORDER BY o.date_created DESC, o.order_uid DESC`

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
	var raw []byte
	err := s.pool.QueryRow(ctx, getQuery, uid).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("load order %q: %w", uid, err)
	}
	return canonical(raw)
}

func canonical(raw []byte) ([]byte, error) {
	var o model.Order
	if err := json.Unmarshal(raw, &o); err != nil {
		return nil, fmt.Errorf("decode order from database: %w", err)
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
		var e Entry
		var raw []byte
		if err := rows.Scan(&e.UID, &raw); err != nil {
			return nil, fmt.Errorf("scan recent order: %w", err)
		}
		if e.JSON, err = canonical(raw); err != nil {
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
