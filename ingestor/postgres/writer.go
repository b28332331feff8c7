// Package postgres writes batches of orders to PostgreSQL idempotently.
//
// One batch is one transaction, written in one of two ways:
//
//   - fast: the four tables are loaded with COPY, as fast as PostgreSQL
//     takes rows. This is the steady state, where every order is new.
//   - careful, when the fast way hits a unique violation (an order
//     redelivered after a crash or a rebalance) or any other data error: the
//     orders rows go in with one INSERT ... SELECT FROM unnest(...) ON
//     CONFLICT (order_uid) DO NOTHING RETURNING order_uid, and only the
//     orders really inserted get their delivery, payment and items rows
//     (COPY). An order whose uid was already stored is a duplicate when its
//     content hash (orders.content_sha256) matches and a conflict when it
//     does not; either way the stored copy is left untouched.
//
// Errors are classified: a data or constraint error (SQLSTATE classes 22 and
// 23, e.g. a payment transaction id already used by another order) is
// permanent for the orders involved, and the batch is bisected until the
// offending orders are isolated and reported as Rejected while the others
// commit. Everything else (no connection, timeouts, serialization failures,
// a server shutting down, even missing privileges) is transient: the caller
// retries later and nothing is lost.
package postgres

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderservice/orders/shared/model"
)

// Order is an order to store with the SHA-256 of its canonical JSON.
type Order struct {
	*model.Order
	SHA256 [sha256.Size]byte
}

// Status is what became of one order of a batch.
type Status int

const (
	// Pending means the order was not resolved: a transient failure
	// interrupted the batch. Write it again later.
	Pending Status = iota
	// Inserted means the order was stored by this call.
	Inserted
	// Duplicate means an identical order (same content hash) was already
	// stored.
	Duplicate
	// Conflict means an order with the same uid but other content was
	// already stored; it was left unchanged.
	Conflict
	// Rejected means the database refused the order for a permanent reason
	// (Result.Err says which); the other orders of the batch were stored.
	Rejected
)

func (s Status) String() string {
	return [...]string{"pending", "inserted", "duplicate", "conflict", "rejected"}[s]
}

// Result is the outcome of one order.
type Result struct {
	Status Status
	// Err is the database error of a Rejected order.
	Err error
}

// Writer stores batches of orders through a connection pool.
type Writer struct {
	pool    *pgxpool.Pool
	timeout time.Duration
	// observe, if set, receives the duration of every transaction attempt.
	observe func(time.Duration)
}

// NewWriter returns a Writer that bounds every transaction attempt by
// timeout (0: no bound other than the caller's context) and reports each
// attempt's duration to observe (may be nil).
func NewWriter(pool *pgxpool.Pool, timeout time.Duration, observe func(time.Duration)) *Writer {
	return &Writer{pool: pool, timeout: timeout, observe: observe}
}

// Connect builds a pool for databaseURL without contacting the server: the
// ingestor must start (and report not ready) while PostgreSQL is down.
func Connect(ctx context.Context, databaseURL string, maxConns int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		// pgx's message may quote the URL, password included.
		return nil, errors.New("parse DATABASE_URL: invalid PostgreSQL URL")
	}
	cfg.MaxConns = maxConns
	if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > 5*time.Second {
		// A black-holed server must not hold a batch for minutes.
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "order-ingestor"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("create PostgreSQL pool: %w", err)
	}
	return pool, nil
}

// Ping checks that the database answers.
func (w *Writer) Ping(ctx context.Context) error { return w.pool.Ping(ctx) }

// Write stores orders and returns one Result per order, in order. The uids
// must be distinct (the caller resolves duplicates within a batch). A nil
// error means every order is resolved. A non-nil error is transient (or the
// context's): the orders left Pending must be written again; the others are
// resolved and durable.
func (w *Writer) Write(ctx context.Context, orders []Order) ([]Result, error) {
	res := make([]Result, len(orders))
	err := w.tx(ctx, orders, res, true)
	if err == nil || !IsPermanent(err) {
		return res, err
	}
	// A stored uid or a bad row: let the careful path sort it out.
	return res, w.write(ctx, orders, res)
}

// write stores orders the careful way, bisecting on permanent errors.
// Each half commits on its own: it is still all-or-nothing per order, and
// the caller stores no offset before the whole batch is resolved.
func (w *Writer) write(ctx context.Context, orders []Order, res []Result) error {
	if len(orders) == 0 {
		return nil
	}
	err := w.tx(ctx, orders, res, false)
	switch {
	case err == nil:
		return nil
	case !IsPermanent(err):
		return err
	case len(orders) == 1:
		res[0] = Result{Status: Rejected, Err: err}
		return nil
	}
	mid := len(orders) / 2
	if err := w.write(ctx, orders[:mid], res[:mid]); err != nil {
		return err
	}
	return w.write(ctx, orders[mid:], res[mid:])
}

const insertOrders = `
INSERT INTO orders (order_uid, track_number, entry, locale, internal_signature, customer_id,
                    delivery_service, shardkey, sm_id, date_created, oof_shard, content_sha256)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::text[], $8::text[], $9::bigint[], $10::timestamptz[], $11::text[], $12::bytea[])
ON CONFLICT (order_uid) DO NOTHING
RETURNING order_uid`

const storedHashes = `SELECT order_uid, content_sha256 FROM orders WHERE order_uid = ANY($1::text[])`

var (
	orderCols = []string{"order_uid", "track_number", "entry", "locale", "internal_signature", "customer_id",
		"delivery_service", "shardkey", "sm_id", "date_created", "oof_shard", "content_sha256"}
	deliveryCols = []string{"order_uid", "name", "phone", "zip", "city", "address", "region", "email"}
	paymentCols  = []string{"order_uid", "transaction", "request_id", "currency", "provider", "amount",
		"payment_dt", "bank", "delivery_cost", "goods_total", "custom_fee"}
	itemCols = []string{"order_uid", "position", "chrt_id", "track_number", "price", "rid", "name",
		"sale", "size", "total_price", "nm_id", "brand", "status"}
)

// tx runs one transaction for orders, the fast or the careful way, and
// fills res only if it commits.
func (w *Writer) tx(ctx context.Context, orders []Order, res []Result, fast bool) (err error) {
	if w.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, w.timeout)
		defer cancel()
	}
	if w.observe != nil {
		start := time.Now()
		defer func() { w.observe(time.Since(start)) }()
	}

	tx, err := w.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	// Rollback after Commit is a no-op; it must not depend on ctx, which
	// may be what failed.
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	if fast {
		all := make([]*Order, len(orders))
		for i := range orders {
			all[i] = &orders[i]
		}
		if err := copyOrders(ctx, tx, all); err != nil {
			return err
		}
		if err := copyChildren(ctx, tx, all); err != nil {
			return err
		}
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		for i := range res {
			res[i] = Result{Status: Inserted}
		}
		return nil
	}

	n := len(orders)
	uids, tracks, entries, locales, sigs := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	customers, services, shards, oofs := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	smIDs, created, hashes := make([]int64, n), make([]time.Time, n), make([][]byte, n)
	for i, o := range orders {
		uids[i], tracks[i], entries[i], locales[i], sigs[i] = o.OrderUID, o.TrackNumber, o.Entry, o.Locale, o.InternalSignature
		customers[i], services[i], shards[i], oofs[i] = o.CustomerID, o.DeliveryService, o.ShardKey, o.OofShard
		smIDs[i], created[i], hashes[i] = o.SmID, o.DateCreated, o.SHA256[:]
	}
	rows, err := tx.Query(ctx, insertOrders, uids, tracks, entries, locales, sigs, customers,
		services, shards, smIDs, created, oofs, hashes)
	if err != nil {
		return fmt.Errorf("insert orders: %w", err)
	}
	inserted := make(map[string]bool, n)
	var uid string
	if _, err := pgx.ForEachRow(rows, []any{&uid}, func() error { inserted[uid] = true; return nil }); err != nil {
		return fmt.Errorf("insert orders: %w", err)
	}

	fresh := make([]*Order, 0, len(inserted))
	var seen []string
	for i := range orders {
		if inserted[orders[i].OrderUID] {
			fresh = append(fresh, &orders[i])
		} else {
			seen = append(seen, orders[i].OrderUID)
		}
	}
	if err := copyChildren(ctx, tx, fresh); err != nil {
		return err
	}

	stored := make(map[string][]byte, len(seen))
	if len(seen) > 0 {
		rows, err := tx.Query(ctx, storedHashes, seen)
		if err != nil {
			return fmt.Errorf("read stored hashes: %w", err)
		}
		var sum []byte
		if _, err := pgx.ForEachRow(rows, []any{&uid, &sum}, func() error {
			stored[uid] = append([]byte(nil), sum...)
			return nil
		}); err != nil {
			return fmt.Errorf("read stored hashes: %w", err)
		}
	}

	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	for i := range orders {
		o := &orders[i]
		switch sum, ok := stored[o.OrderUID]; {
		case inserted[o.OrderUID]:
			res[i] = Result{Status: Inserted}
		case ok && string(sum) == string(o.SHA256[:]):
			res[i] = Result{Status: Duplicate}
		case ok:
			res[i] = Result{Status: Conflict}
		default:
			// Not inserted and not found: impossible unless the row was
			// deleted concurrently. Retrying is the safe answer.
			return fmt.Errorf("order %q neither inserted nor found", o.OrderUID)
		}
	}
	return nil
}

// copyOrders streams the orders rows; a stored uid makes it fail with a
// unique violation.
func copyOrders(ctx context.Context, tx pgx.Tx, orders []*Order) error {
	i := 0
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"orders"}, orderCols, pgx.CopyFromFunc(func() ([]any, error) {
		if i == len(orders) {
			return nil, nil
		}
		o := orders[i]
		i++
		return []any{o.OrderUID, o.TrackNumber, o.Entry, o.Locale, o.InternalSignature, o.CustomerID,
			o.DeliveryService, o.ShardKey, o.SmID, o.DateCreated, o.OofShard, o.SHA256[:]}, nil
	}))
	if err != nil {
		return fmt.Errorf("copy orders: %w", err)
	}
	return nil
}

// copyChildren streams the delivery, payment and items rows of orders that
// were just inserted. No ON CONFLICT here: the parent row is new, so any
// conflict is a real error (payment.transaction is unique across orders).
func copyChildren(ctx context.Context, tx pgx.Tx, orders []*Order) error {
	if len(orders) == 0 {
		return nil
	}
	i := 0
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"delivery"}, deliveryCols, pgx.CopyFromFunc(func() ([]any, error) {
		if i == len(orders) {
			return nil, nil
		}
		o := orders[i]
		d := &o.Delivery
		i++
		return []any{o.OrderUID, d.Name, d.Phone, d.Zip, d.City, d.Address, d.Region, d.Email}, nil
	}))
	if err != nil {
		return fmt.Errorf("copy delivery: %w", err)
	}
	i = 0
	_, err = tx.CopyFrom(ctx, pgx.Identifier{"payment"}, paymentCols, pgx.CopyFromFunc(func() ([]any, error) {
		if i == len(orders) {
			return nil, nil
		}
		o := orders[i]
		p := &o.Payment
		i++
		return []any{o.OrderUID, p.Transaction, p.RequestID, p.Currency, p.Provider, p.Amount,
			p.PaymentDT, p.Bank, p.DeliveryCost, p.GoodsTotal, p.CustomFee}, nil
	}))
	if err != nil {
		return fmt.Errorf("copy payment: %w", err)
	}
	oi, ii := 0, 0
	_, err = tx.CopyFrom(ctx, pgx.Identifier{"items"}, itemCols, pgx.CopyFromFunc(func() ([]any, error) {
		for oi < len(orders) && ii >= len(orders[oi].Items) {
			oi, ii = oi+1, 0
		}
		if oi == len(orders) {
			return nil, nil
		}
		o := orders[oi]
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

// IsPermanent reports whether err is a database error that retrying cannot
// fix for the same rows: SQLSTATE class 22 (data exception) or 23
// (integrity constraint violation). Everything else is treated as
// transient on purpose: when in doubt, wait rather than dead-letter good
// orders (a missing privilege, for instance, is fixed by an operator, and
// the orders must still be there when it is).
func IsPermanent(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || len(pgErr.Code) < 2 {
		return false
	}
	switch pgErr.Code[:2] {
	case "22", "23":
		return true
	}
	return false
}
