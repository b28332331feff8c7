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
// Every orders row also carries its payment's amount and currency and its
// number of items (what the reader lists; see orderCols).
//
// Erasures. Erase deletes orders (ON DELETE CASCADE takes their delivery,
// payment and items rows) and records each uid's SHA-256 in erased_orders,
// with the tombstone's position; every write transaction first looks its
// uids up there and reports the erased ones ingest.Erased instead of
// storing them. A transaction-level advisory lock orders the two across
// every ingestor process: a write holds it shared, an erasure exclusively,
// so an erasure waits for the writes in progress and the writes that start
// meanwhile wait for it; each then sees what the other committed. Without
// it a write could insert an order that an erasure, committing at the same
// moment, had not seen to delete.
//
// Errors are classified: a data or constraint error (SQLSTATE classes 22 and
// 23, e.g. a payment transaction id already used by another order) is
// permanent for the orders involved, and the batch is bisected until the
// offending orders are isolated and reported as ingest.Rejected, with an
// error wrapping ingest.ErrPermanent, while the others commit. Everything
// else (no connection, timeouts, serialization failures, a server shutting
// down, even missing privileges) is transient: the caller retries later and
// nothing is lost.
package postgres

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderservice/orders/ingestor/ingest"
)

// Writer is the ingest pipeline's Store: it writes batches of orders
// through a connection pool.
type Writer struct {
	pool    *pgxpool.Pool
	timeout time.Duration
	// observe, if set, receives the duration of every transaction attempt.
	observe func(time.Duration)
}

var _ ingest.Store = (*Writer)(nil)

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

// Write implements ingest.Store: one transaction that COPYs every order
// whose uid is not erased (copyAll) and, when a uid is already stored or a
// row is refused, the careful path (writeCareful).
func (w *Writer) Write(ctx context.Context, orders []ingest.StoredOrder) ([]ingest.WriteResult, error) {
	res := make([]ingest.WriteResult, len(orders))
	var erased []bool
	err := w.withTx(ctx, func(ctx context.Context, tx pgx.Tx) (err error) {
		var keep []ingest.StoredOrder
		if keep, erased, err = notErased(ctx, tx, orders); err != nil {
			return err
		}
		return copyAll(ctx, tx, keep)
	})
	if err == nil {
		for i := range res {
			res[i] = ingest.WriteResult{Status: ingest.Inserted}
			if erased[i] {
				res[i].Status = ingest.Erased
			}
		}
		return res, nil
	}
	if !isPermanent(err) {
		return res, err
	}
	// A stored uid or a bad row: let the careful path sort it out.
	return res, w.writeCareful(ctx, orders, res)
}

// writeCareful stores orders with insertCareful, bisecting on permanent
// errors until the refused orders are isolated. Each half commits on its
// own: it is still all-or-nothing per order, and the caller stores no
// offset before the whole batch is resolved. res is filled only for what
// committed.
func (w *Writer) writeCareful(ctx context.Context, orders []ingest.StoredOrder, res []ingest.WriteResult) error {
	if len(orders) == 0 {
		return nil
	}
	var got []ingest.WriteResult
	var erased []bool
	err := w.withTx(ctx, func(ctx context.Context, tx pgx.Tx) (err error) {
		var keep []ingest.StoredOrder
		if keep, erased, err = notErased(ctx, tx, orders); err != nil {
			return err
		}
		got, err = insertCareful(ctx, tx, keep)
		return err
	})
	switch {
	case err == nil:
		k := 0
		for i := range res {
			if erased[i] {
				res[i] = ingest.WriteResult{Status: ingest.Erased}
				continue
			}
			res[i] = got[k]
			k++
		}
		return nil
	case !isPermanent(err):
		return err
	case len(orders) == 1:
		res[0] = ingest.WriteResult{Status: ingest.Rejected, Err: rejection(err)}
		return nil
	}
	mid := len(orders) / 2
	if err := w.writeCareful(ctx, orders[:mid], res[:mid]); err != nil {
		return err
	}
	return w.writeCareful(ctx, orders[mid:], res[mid:])
}

// withTx runs fn in one transaction and commits it if fn succeeds. The
// attempt is bounded by the writer's timeout and its duration reported to
// observe.
func (w *Writer) withTx(ctx context.Context, fn func(ctx context.Context, tx pgx.Tx) error) error {
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
	if err := fn(ctx, tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// erasureLock is the key of the advisory lock that orders writes and
// erasures (see the package documentation). Advisory locks are scoped to
// the database; the value only has to be one no other code of the order
// database uses.
const erasureLock int64 = 0x6f72646572617365 // "orderase"

const (
	lockShared   = `SELECT pg_advisory_xact_lock_shared($1)`
	lockErasure  = `SELECT pg_advisory_xact_lock($1)`
	erasedOf     = `SELECT uid_sha256 FROM erased_orders WHERE uid_sha256 = ANY($1::bytea[])`
	recordErased = `
INSERT INTO erased_orders (uid_sha256, source_topic, source_partition, source_offset)
SELECT * FROM unnest($1::bytea[], $2::text[], $3::int[], $4::bigint[])
ON CONFLICT (uid_sha256) DO NOTHING
RETURNING uid_sha256`
	deleteOrders = `DELETE FROM orders WHERE order_uid = ANY($1::text[]) RETURNING order_uid`
)

// notErased takes the shared erasure lock and returns the orders whose
// uid is not erased, and which of orders are. Both statements go in one
// round trip; the lookup runs after the lock is granted, so it sees every
// erasure committed before.
func notErased(ctx context.Context, tx pgx.Tx, orders []ingest.StoredOrder) ([]ingest.StoredOrder, []bool, error) {
	hashes := make([][]byte, len(orders))
	flat := make([]byte, 0, len(orders)*sha256.Size) // one allocation for every hash
	for i := range orders {
		h := ingest.HashUID(orders[i].OrderUID)
		flat = append(flat, h[:]...)
		hashes[i] = flat[len(flat)-len(h):]
	}
	b := &pgx.Batch{}
	b.Queue(lockShared, erasureLock)
	found := map[string]bool{}
	b.Queue(erasedOf, hashes).Query(func(rows pgx.Rows) error {
		var h []byte
		_, err := pgx.ForEachRow(rows, []any{&h}, func() error { found[string(h)] = true; return nil })
		return err
	})
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, nil, fmt.Errorf("look up erased uids: %w", err)
	}
	erased := make([]bool, len(orders))
	if len(found) == 0 {
		return orders, erased, nil
	}
	keep := make([]ingest.StoredOrder, 0, len(orders))
	for i := range orders {
		if found[string(hashes[i])] {
			erased[i] = true
		} else {
			keep = append(keep, orders[i])
		}
	}
	return keep, erased, nil
}

// Erase implements ingest.Store: in one transaction holding the erasure
// lock exclusively, it records every uid in erased_orders (a uid erased
// already keeps its first record) and deletes their orders.
func (w *Writer) Erase(ctx context.Context, erasures []ingest.Erasure) ([]ingest.EraseResult, error) {
	n := len(erasures)
	hashes, topics, partitions, offsets, uids := make([][]byte, n), make([]string, n), make([]int32, n), make([]int64, n), make([]string, n)
	for i, e := range erasures {
		h := ingest.HashUID(e.UID)
		hashes[i], topics[i], partitions[i], offsets[i], uids[i] = h[:], e.Topic, e.Partition, e.Offset, e.UID
	}
	recorded, deleted := map[string]bool{}, map[string]bool{}
	err := w.withTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		clear(recorded)
		clear(deleted)
		b := &pgx.Batch{}
		b.Queue(lockErasure, erasureLock)
		b.Queue(recordErased, hashes, topics, partitions, offsets).Query(func(rows pgx.Rows) error {
			var h []byte
			_, err := pgx.ForEachRow(rows, []any{&h}, func() error { recorded[string(h)] = true; return nil })
			return err
		})
		b.Queue(deleteOrders, uids).Query(func(rows pgx.Rows) error {
			var uid string
			_, err := pgx.ForEachRow(rows, []any{&uid}, func() error { deleted[uid] = true; return nil })
			return err
		})
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("erase orders: %w", err)
		}
		return nil
	})
	if err != nil {
		// Every error is transient here: the rows are the pipeline's own
		// (a hash, a topic, a partition and an offset), which no constraint
		// refuses.
		return nil, err
	}
	res := make([]ingest.EraseResult, n)
	for i := range erasures {
		res[i] = ingest.EraseResult{Deleted: deleted[uids[i]], Repeated: !recorded[string(hashes[i])]}
	}
	return res, nil
}

const insertOrders = `
INSERT INTO orders (order_uid, track_number, entry, locale, internal_signature, customer_id,
                    delivery_service, shardkey, sm_id, date_created, oof_shard, content_sha256,
                    amount, currency, item_count)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::text[], $8::text[], $9::bigint[], $10::timestamptz[], $11::text[], $12::bytea[],
                     $13::bigint[], $14::text[], $15::smallint[])
ON CONFLICT (order_uid) DO NOTHING
RETURNING order_uid`

const storedHashes = `SELECT order_uid, content_sha256 FROM orders WHERE order_uid = ANY($1::text[])`

// The orders row carries a copy of what a line of an order list shows:
// the payment's amount and currency and the number of items (migration
// 000021), written with the rows they copy, so that the reader's search
// reads nothing but an index of orders. Each table's columns are listed in
// the order its row encoder below writes them.
var (
	ordersTable = newCopyTable("orders",
		column{"order_uid", colText}, column{"track_number", colText}, column{"entry", colText},
		column{"locale", colText}, column{"internal_signature", colText}, column{"customer_id", colText},
		column{"delivery_service", colText}, column{"shardkey", colText}, column{"sm_id", colInt8},
		column{"date_created", colTimestamptz}, column{"oof_shard", colText}, column{"content_sha256", colBytea},
		column{"amount", colInt8}, column{"currency", colText}, column{"item_count", colInt2})
	deliveryTable = newCopyTable("delivery",
		column{"order_uid", colText}, column{"name", colText}, column{"phone", colText}, column{"zip", colText},
		column{"city", colText}, column{"address", colText}, column{"region", colText}, column{"email", colText})
	paymentTable = newCopyTable("payment",
		column{"order_uid", colText}, column{"transaction", colText}, column{"request_id", colText},
		column{"currency", colText}, column{"provider", colText}, column{"amount", colInt8},
		column{"payment_dt", colInt8}, column{"bank", colText}, column{"delivery_cost", colInt8},
		column{"goods_total", colInt8}, column{"custom_fee", colInt8})
	itemsTable = newCopyTable("items",
		column{"order_uid", colText}, column{"position", colInt2}, column{"chrt_id", colInt8},
		column{"track_number", colText}, column{"price", colInt8}, column{"rid", colText}, column{"name", colText},
		column{"sale", colInt2}, column{"size", colText}, column{"total_price", colInt8}, column{"nm_id", colInt8},
		column{"brand", colText}, column{"status", colInt8})
)

// copyAll streams every order and its children: the fast path, for a batch
// of new orders. A stored uid makes it fail with a unique violation.
func copyAll(ctx context.Context, tx pgx.Tx, orders []ingest.StoredOrder) error {
	all := make([]*ingest.StoredOrder, len(orders))
	for i := range orders {
		all[i] = &orders[i]
	}
	if err := copyOrders(ctx, tx, all); err != nil {
		return err
	}
	return copyChildren(ctx, tx, all)
}

// insertCareful inserts the orders rows that are not stored yet (ON CONFLICT
// DO NOTHING), then the children of those only, and tells every other order
// a duplicate or a conflict from its stored content hash. The results hold
// only once the transaction commits.
func insertCareful(ctx context.Context, tx pgx.Tx, orders []ingest.StoredOrder) ([]ingest.WriteResult, error) {
	n := len(orders)
	uids, tracks, entries, locales, sigs := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	customers, services, shards, oofs := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	smIDs, created, hashes := make([]int64, n), make([]time.Time, n), make([][]byte, n)
	amounts, currencies, itemCounts := make([]int64, n), make([]string, n), make([]int16, n)
	for i, o := range orders {
		uids[i], tracks[i], entries[i], locales[i], sigs[i] = o.OrderUID, o.TrackNumber, o.Entry, o.Locale, o.InternalSignature
		customers[i], services[i], shards[i], oofs[i] = o.CustomerID, o.DeliveryService, o.ShardKey, o.OofShard
		smIDs[i], created[i], hashes[i] = o.SmID, o.DateCreated, o.SHA256[:]
		amounts[i], currencies[i], itemCounts[i] = o.Payment.Amount, o.Payment.Currency, int16(len(o.Items))
	}
	rows, err := tx.Query(ctx, insertOrders, uids, tracks, entries, locales, sigs, customers,
		services, shards, smIDs, created, oofs, hashes, amounts, currencies, itemCounts)
	if err != nil {
		return nil, fmt.Errorf("insert orders: %w", err)
	}
	inserted := make(map[string]bool, n)
	var uid string
	if _, err := pgx.ForEachRow(rows, []any{&uid}, func() error { inserted[uid] = true; return nil }); err != nil {
		return nil, fmt.Errorf("insert orders: %w", err)
	}

	fresh := make([]*ingest.StoredOrder, 0, len(inserted))
	var seen []string
	for i := range orders {
		if inserted[orders[i].OrderUID] {
			fresh = append(fresh, &orders[i])
		} else {
			seen = append(seen, orders[i].OrderUID)
		}
	}
	if err := copyChildren(ctx, tx, fresh); err != nil {
		return nil, err
	}

	stored := make(map[string][]byte, len(seen))
	if len(seen) > 0 {
		rows, err := tx.Query(ctx, storedHashes, seen)
		if err != nil {
			return nil, fmt.Errorf("read stored hashes: %w", err)
		}
		var sum []byte
		if _, err := pgx.ForEachRow(rows, []any{&uid, &sum}, func() error {
			stored[uid] = append([]byte(nil), sum...)
			return nil
		}); err != nil {
			return nil, fmt.Errorf("read stored hashes: %w", err)
		}
	}

	res := make([]ingest.WriteResult, n)
	for i := range orders {
		o := &orders[i]
		switch sum, ok := stored[o.OrderUID]; {
		case inserted[o.OrderUID]:
			res[i] = ingest.WriteResult{Status: ingest.Inserted}
		case ok && string(sum) == string(o.SHA256[:]):
			res[i] = ingest.WriteResult{Status: ingest.Duplicate}
		case ok:
			res[i] = ingest.WriteResult{Status: ingest.Conflict}
		default:
			// Not inserted and not found: impossible unless the row was
			// deleted concurrently. Retrying is the safe answer.
			return nil, fmt.Errorf("order %q neither inserted nor found", o.OrderUID)
		}
	}
	return res, nil
}

// copyOrders streams the orders rows; a stored uid makes it fail with a
// unique violation.
func copyOrders(ctx context.Context, tx pgx.Tx, orders []*ingest.StoredOrder) error {
	err := ordersTable.copy(ctx, tx, eachOrder(orders, func(b []byte, o *ingest.StoredOrder) []byte {
		b = appendText(b, o.OrderUID)
		b = appendText(b, o.TrackNumber)
		b = appendText(b, o.Entry)
		b = appendText(b, o.Locale)
		b = appendText(b, o.InternalSignature)
		b = appendText(b, o.CustomerID)
		b = appendText(b, o.DeliveryService)
		b = appendText(b, o.ShardKey)
		b = appendInt8(b, o.SmID)
		b = appendTimestamptz(b, o.DateCreated)
		b = appendText(b, o.OofShard)
		b = appendBytea(b, o.SHA256[:])
		b = appendInt8(b, o.Payment.Amount)
		b = appendText(b, o.Payment.Currency)
		return appendInt2(b, int16(len(o.Items)))
	}))
	if err != nil {
		return fmt.Errorf("copy orders: %w", err)
	}
	return nil
}

// copyChildren streams the delivery, payment and items rows of orders that
// were just inserted. No ON CONFLICT here: the parent row is new, so any
// conflict is a real error (payment.transaction is unique across orders).
func copyChildren(ctx context.Context, tx pgx.Tx, orders []*ingest.StoredOrder) error {
	if len(orders) == 0 {
		return nil
	}
	err := deliveryTable.copy(ctx, tx, eachOrder(orders, func(b []byte, o *ingest.StoredOrder) []byte {
		d := &o.Delivery
		b = appendText(b, o.OrderUID)
		b = appendText(b, d.Name)
		b = appendText(b, d.Phone)
		b = appendText(b, d.Zip)
		b = appendText(b, d.City)
		b = appendText(b, d.Address)
		b = appendText(b, d.Region)
		return appendText(b, d.Email)
	}))
	if err != nil {
		return fmt.Errorf("copy delivery: %w", err)
	}
	err = paymentTable.copy(ctx, tx, eachOrder(orders, func(b []byte, o *ingest.StoredOrder) []byte {
		p := &o.Payment
		b = appendText(b, o.OrderUID)
		b = appendText(b, p.Transaction)
		b = appendText(b, p.RequestID)
		b = appendText(b, p.Currency)
		b = appendText(b, p.Provider)
		b = appendInt8(b, p.Amount)
		b = appendInt8(b, p.PaymentDT)
		b = appendText(b, p.Bank)
		b = appendInt8(b, p.DeliveryCost)
		b = appendInt8(b, p.GoodsTotal)
		return appendInt8(b, p.CustomFee)
	}))
	if err != nil {
		return fmt.Errorf("copy payment: %w", err)
	}
	oi, ii := 0, 0
	err = itemsTable.copy(ctx, tx, func(b []byte) ([]byte, bool) {
		for oi < len(orders) && ii >= len(orders[oi].Items) {
			oi, ii = oi+1, 0
		}
		if oi == len(orders) {
			return b, false
		}
		o := orders[oi]
		it := &o.Items[ii]
		b = appendText(b, o.OrderUID)
		b = appendInt2(b, int16(ii))
		ii++
		b = appendInt8(b, it.ChrtID)
		b = appendText(b, it.TrackNumber)
		b = appendInt8(b, it.Price)
		b = appendText(b, it.RID)
		b = appendText(b, it.Name)
		b = appendInt2(b, int16(it.Sale))
		b = appendText(b, it.Size)
		b = appendInt8(b, it.TotalPrice)
		b = appendInt8(b, it.NmID)
		b = appendText(b, it.Brand)
		return appendInt8(b, it.Status), true
	})
	if err != nil {
		return fmt.Errorf("copy items: %w", err)
	}
	return nil
}

// eachOrder is the row source of a table with one row per order: row
// appends o's row to b.
func eachOrder(orders []*ingest.StoredOrder, row func(b []byte, o *ingest.StoredOrder) []byte) rowSource {
	i := 0
	return func(b []byte) ([]byte, bool) {
		if i == len(orders) {
			return b, false
		}
		i++
		return row(b, orders[i-1]), true
	}
}

// isPermanent reports whether err is a database error that retrying cannot
// fix for the same rows: SQLSTATE class 22 (data exception) or 23
// (integrity constraint violation). Everything else is treated as
// transient on purpose: when in doubt, wait rather than dead-letter good
// orders (a missing privilege, for instance, is fixed by an operator, and
// the orders must still be there when it is).
func isPermanent(err error) bool {
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

// rejection turns the permanent error of one order into the ingest
// pipeline's: ingest.ErrPermanent with the SQLSTATE and the names of what
// the order broke (constraint, table, column). PostgreSQL's message and
// detail are left out: they may quote the refused values (a unique
// violation's detail quotes the key, a check violation's the whole row,
// a data exception's message the bad input), which may be personal data,
// and the text ends up in a dead-letter header.
func rejection(err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return ingest.ErrPermanent
	}
	what := "data exception"
	if strings.HasPrefix(pgErr.Code, "23") {
		what = "integrity constraint violation"
	}
	s := fmt.Sprintf("PostgreSQL %s (SQLSTATE %s)", what, pgErr.Code)
	for _, name := range []struct{ kind, value string }{
		{"constraint", pgErr.ConstraintName}, {"table", pgErr.TableName}, {"column", pgErr.ColumnName},
	} {
		if name.value != "" {
			s += "; " + name.kind + " " + name.value
		}
	}
	return fmt.Errorf("%w: %s", ingest.ErrPermanent, s)
}
