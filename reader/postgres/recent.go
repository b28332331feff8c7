package postgres

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderservice/orders/reader/cache"
	"github.com/orderservice/orders/shared/model"
)

// The warm-up reads the n most recent orders in pages of a keyset over
// orders_recent_idx (date_created, order_uid), never an OFFSET, which
// would read and throw away every order before its page (quadratic in n).
// recentBoundsQuery walks the index once for the first key of every page;
// each page is then one bounded range of the index, from its first key
// down to the next page's (exclusive; the last page: its size), so that
// pages can be read in any order and at once, and the thousandth costs
// what the first does. The order_uid in the key keeps orders with equal
// timestamps from being skipped or repeated at a page boundary; an order
// stored meanwhile with a key inside a page not read yet is read with it
// (recentPageSQL's LIMIT is one more than the page, so that the page is
// seen to be longer and read on), one newer than the newest at the start
// is not, and none shifts the pages as it would shift an OFFSET.
// recentOrdersPage is the single page of a small warm-up. Row
// comparisons, not "date < x OR date = x AND uid < y", so that PostgreSQL
// turns each bound into an index range bound; and a LIMIT written in the
// text, which makes the planner walk the index and look each order's rows
// up by key whatever its estimate of the range (without one, a poor
// estimate of a row comparison's selectivity made it hash-join a scan of
// the whole payment table).
const (
	recentBoundsQuery = `SELECT date_created, order_uid FROM (
	SELECT date_created, order_uid, row_number() OVER (ORDER BY date_created DESC, order_uid DESC) - 1 AS rank
	FROM (SELECT date_created, order_uid FROM orders ORDER BY date_created DESC, order_uid DESC LIMIT $1) newest) ranked
WHERE rank % $2 = 0 ORDER BY rank`
)

// recentOrdersPage is the single page of a small warm-up.
var recentOrdersPage = recentPageOf(`ORDER BY date_created DESC, order_uid DESC LIMIT $1`)

// recentJoins joins a page's orders (o) to their delivery and payment
// (recentPageOf reads the items). The delivery and the payment are LATERAL subqueries with a LIMIT,
// which PostgreSQL does not flatten into plain joins: each is one lookup
// of its primary key per order. As plain joins, the planner hash-joined a
// sequential scan of the whole payment table to every page (50 ms a page
// of 500 among 100,000 orders, against under 20 ms), since its estimate
// of a page's index lookups came out dearer; the warm-up is one page
// query after another, so that scan, repeated per page, was most of its
// time and grew with the table. The LIMIT 1 changes nothing else:
// order_uid is each table's primary key, and an order without a delivery
// or a payment row still has no row here, as with a JOIN.
const recentJoins = `JOIN LATERAL (SELECT * FROM delivery WHERE delivery.order_uid = o.order_uid LIMIT 1) d ON true
JOIN LATERAL (SELECT * FROM payment WHERE payment.order_uid = o.order_uid LIMIT 1) p ON true`

// recentPageSQL is the page of up to limit orders from key ($1, $2)
// (inclusive when from is "<=", exclusive with "<") down to key ($3, $4),
// exclusive, or without a lower bound when bounded is false.
func recentPageSQL(from string, bounded bool, limit int) pageSQL {
	lower := ""
	if bounded {
		lower = ` AND (date_created, order_uid) > ($3, $4)`
	}
	return recentPageOf(`WHERE (date_created, order_uid) ` + from + ` ($1, $2)` + lower + `
	ORDER BY date_created DESC, order_uid DESC LIMIT ` + strconv.Itoa(limit))
}

// pageSQL is a warm-up page: two statements of the same arguments, run in
// one REPEATABLE READ transaction (one snapshot, so that they read the
// same orders): the orders' rows (orderRowColumns, newest first) and their
// items' (recentItemColumns, in no particular order).
//
// The items were an aggregate per order, eleven arrays, in the orders'
// statement, as the lookups still read them (getFrom). For the warm-up's
// pages that aggregate was most of PostgreSQL's time and half the bytes
// it sent: the arrays, their building (a memory context per aggregate per
// order) and their sending, element by element, with a header and a
// length each. The same items as plain rows cost PostgreSQL less than
// half of that (100,000 orders among 1,000,000, backend CPU: 3.4 s for
// the statement with the aggregate, 1.5 s without it plus 1.0 s for the
// items' rows; 94 MB sent against 24 + 40), and decode with no arrays.
type pageSQL struct{ orders, items string }

// recentItemColumns are the columns of a warm-up page's items: the order,
// the position, then the columns of itemDests.
const recentItemColumns = `o.order_uid, i.position, i.chrt_id, i.track_number, i.price, i.rid, i.name,
	i.sale::bigint, i.size, i.total_price, i.nm_id, i.brand, i.status`

// recentPageOf is the page of the orders that selection (the WHERE,
// ORDER BY and LIMIT of a query of orders) selects. The items' statement
// selects the same orders (from orders_recent_idx alone: an index-only
// scan) and looks each one's items up by key: a LATERAL subquery with a
// LIMIT, which the planner does not flatten into a join it might plan as a
// scan of the whole table (see recentJoins); the LIMIT cuts nothing, as
// an order has at most 1,000 items (items.position is below 1000 and part
// of the primary key).
func recentPageOf(selection string) pageSQL {
	return pageSQL{
		orders: `SELECT ` + orderRowColumns + `
FROM (SELECT * FROM orders ` + selection + `) o
` + recentJoins + `
ORDER BY o.date_created DESC, o.order_uid DESC`,
		items: `SELECT ` + recentItemColumns + `
FROM (SELECT order_uid FROM orders ` + selection + `) o
JOIN LATERAL (SELECT * FROM items WHERE items.order_uid = o.order_uid LIMIT 1000) i ON true`,
	}
}

// recentFetchers is how many warm-up pages are read at once, each on its
// own connection: on two cores, the database works on one page while the
// reader scans another and encodes a third.
const recentFetchers = 2

// Recent returns the canonical JSON of the n most recent orders, newest
// first, in pages of batch orders, calling fn per page so that memory
// stays bounded whatever n is (see recentBoundsQuery for the pages).
//
// Pages are read ahead while fn handles the current one: recentFetchers
// goroutines run the page queries, scan the rows and encode the orders,
// and the caller's goroutine calls fn with each page, in order. The
// database's time, the scanning and encoding and the caller's work
// (filling the caches) overlap instead of adding up; at most
// recentFetchers pages wait in memory besides the one fn holds.
func (s *Store) Recent(ctx context.Context, n, batch int, fn func([]cache.Entry) error) error {
	if batch <= 0 {
		batch = 500
	}
	if n <= 0 {
		return nil
	}
	if n <= batch {
		page, err := s.recentPage(ctx, recentOrdersPage, n, n)
		if err != nil || len(page) == 0 {
			return err
		}
		return encodePage(page, fn)
	}
	bounds, err := s.recentBounds(ctx, n, batch)
	if err != nil {
		return err
	}
	// Deferred in this order, so that on an early return the fetchers
	// are cancelled before they are waited for.
	var fetchers sync.WaitGroup
	defer fetchers.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type fetched struct {
		page []cache.Entry
		err  error
	}
	results := make([]chan fetched, len(bounds))
	for i := range results {
		results[i] = make(chan fetched, 1)
	}
	slots := make(chan struct{}, recentFetchers) // pages being read or read and not yet handed to fn
	fetchers.Go(func() {
		for i := range bounds {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			fetchers.Go(func() {
				var (
					r    fetched
					page []*model.Order
				)
				if i+1 < len(bounds) {
					page, r.err = s.recentRange(ctx, bounds[i], bounds[i+1], batch)
				} else {
					hi := bounds[i]
					page, r.err = s.recentPage(ctx, recentPageSQL("<=", false, n-i*batch), n-i*batch, hi.created, hi.uid)
				}
				if r.err == nil {
					// Encoded here, so that the pages' encodings run
					// in parallel rather than in fn's goroutine.
					r.page, r.err = encodeEntries(page)
				}
				results[i] <- r
			})
		}
	})
	for i := range results {
		var r fetched
		select {
		case r = <-results[i]:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		<-slots
		if r.err != nil {
			return r.err
		}
		if len(r.page) == 0 {
			continue // its orders were deleted since the bounds were read
		}
		if err := fn(r.page); err != nil {
			return err
		}
	}
	return nil
}

// recentKey is an order's position in orders_recent_idx.
type recentKey struct {
	created time.Time
	uid     string
}

// recentBounds returns the key of the first order of each page of batch
// among the n most recent orders (fewer pages when fewer are stored).
func (s *Store) recentBounds(ctx context.Context, n, batch int) ([]recentKey, error) {
	defer s.observe("recent_bounds", time.Now())
	rows, err := s.pool.Query(ctx, recentBoundsQuery, n, batch)
	if err != nil {
		return nil, fmt.Errorf("load recent orders: page bounds: %w", err)
	}
	bounds, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (recentKey, error) {
		var k recentKey
		return k, r.Scan(&k.created, &k.uid)
	})
	if err != nil {
		return nil, fmt.Errorf("load recent orders: page bounds: %w", err)
	}
	return bounds, nil
}

// recentRange reads the orders from key hi (inclusive) down to key lo
// (exclusive): batch of them, unless orders were stored in the range
// since the bounds were read, which the next queries read on.
func (s *Store) recentRange(ctx context.Context, hi, lo recentKey, batch int) ([]*model.Order, error) {
	var out []*model.Order
	from, after := "<=", hi
	for {
		page, err := s.recentPage(ctx, recentPageSQL(from, true, batch+1), batch+1, after.created, after.uid, lo.created, lo.uid)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if len(page) <= batch {
			return out, nil
		}
		last := page[len(page)-1]
		from, after = "<", recentKey{created: last.DateCreated, uid: last.OrderUID}
	}
}

// recentPage reads one page (see pageSQL), of up to limit orders.
func (s *Store) recentPage(ctx context.Context, q pageSQL, limit int, args ...any) ([]*model.Order, error) {
	defer s.observe("recent_orders", time.Now())
	p := page{orders: make([]model.Order, 0, limit)}
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var b pgx.Batch
		b.Queue(q.orders, args...).Query(p.readOrders)
		b.Queue(q.items, args...).Query(p.readItems)
		return tx.SendBatch(ctx, &b).Close()
	})
	if err != nil {
		return nil, fmt.Errorf("load recent orders: %w", err)
	}
	out := make([]*model.Order, len(p.orders))
	for i := range p.orders {
		out[i] = &p.orders[i]
	}
	return out, nil
}

// page is a warm-up page being read: its orders, then their items.
type page struct {
	orders []model.Order
	byUID  map[string]int32 // the orders' positions
}

// The sizes a page's allocations start at, per order of its LIMIT: a
// generated order's texts take about 170 bytes, its items' about 65 each,
// and it has three items on average. A page that needs more grows.
const (
	textBytesPerOrder = 192
	itemsPerOrder     = 4
	textBytesPerItem  = 80
	// The text columns of orderRowColumns and of an item.
	textsPerOrder = 20
	textsPerItem  = 5
)

// orderDests are the fields of o in the order of orderRowColumns.
func orderDests(o *model.Order) [28]any {
	d, p := &o.Delivery, &o.Payment
	return [...]any{&o.OrderUID, &o.TrackNumber, &o.Entry, &o.Locale, &o.InternalSignature,
		&o.CustomerID, &o.DeliveryService, &o.ShardKey, &o.SmID, &o.DateCreated, &o.OofShard,
		&d.Name, &d.Phone, &d.Zip, &d.City, &d.Address, &d.Region, &d.Email,
		&p.Transaction, &p.RequestID, &p.Currency, &p.Provider, &p.Amount, &p.PaymentDT, &p.Bank,
		&p.DeliveryCost, &p.GoodsTotal, &p.CustomFee}
}

// itemDests are the fields of a row of recentItemColumns after the
// order's uid: the position and the item's.
func itemDests(pos *int16, it *model.Item) [12]any {
	return [...]any{pos, &it.ChrtID, &it.TrackNumber, &it.Price, &it.RID, &it.Name,
		&it.Sale, &it.Size, &it.TotalPrice, &it.NmID, &it.Brand, &it.Status}
}

// orderColumnTypes and itemColumnTypes are the column types the page's
// statements are decoded raw for (see decodable).
var (
	orderColumnTypes = func() []uint32 {
		d := orderDests(new(model.Order))
		return columnTypes(d[:])
	}()
	itemColumnTypes = func() []uint32 {
		d := itemDests(new(int16), new(model.Item))
		return append([]uint32{textOID}, columnTypes(d[:])...)
	}()
)

// readOrders reads the rows of the orders' statement. Their texts share
// one allocation, the page's (see texts): the orders are encoded and
// released together (the cache keeps their encodings and a copy of each
// uid, see encodeEntries).
func (p *page) readOrders(rows pgx.Rows) error {
	fields, err := columns(rows)
	if err != nil {
		return err
	}
	raw := decodable(fields, orderColumnTypes)
	tx := newTexts(cap(p.orders)*textBytesPerOrder, cap(p.orders)*textsPerOrder)
	for rows.Next() {
		p.orders = append(p.orders, model.Order{})
		o := &p.orders[len(p.orders)-1]
		if !raw {
			if err := scanOrderRow(rows, o); err != nil {
				return fmt.Errorf("scan: %w", err)
			}
			continue
		}
		d := orderDests(o)
		if err := decodeRow(rows.RawValues(), d[:], &tx); err != nil {
			return fmt.Errorf("decode: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if raw {
		tx.done()
		for i := range p.orders {
			d := orderDests(&p.orders[i])
			tx.set(d[:])
		}
	}
	p.byUID = make(map[string]int32, len(p.orders))
	for i := range p.orders {
		p.byUID[p.orders[i].OrderUID] = int32(i)
	}
	return nil
}

// scanOrderRow is readOrders's Scan of one row, for columns it does not
// decode raw.
func scanOrderRow(rows pgx.Rows, o *model.Order) error {
	d := orderDests(o)
	return rows.Scan(d[:]...)
}

// readItems reads the rows of the items' statement into the page's
// orders, each order's in position order, as the arrays of the lookups
// have them; an order without items gets an empty list, as there. An item
// of an order the orders' statement did not return (one without a delivery
// or a payment row) is left out.
func (p *page) readItems(rows pgx.Rows) error {
	fields, err := columns(rows)
	if err != nil {
		return err
	}
	raw := decodable(fields, itemColumnTypes)
	type key struct {
		order int32 // in p.orders
		pos   int16
	}
	var (
		n     = itemsPerOrder * len(p.orders)
		tx    = newTexts(n*textBytesPerItem, n*textsPerItem)
		items = make([]model.Item, 0, n)
		keys  = make([]key, 0, n)
		k     key
		it    model.Item
	)
	for rows.Next() {
		d := itemDests(&k.pos, &it)
		if raw {
			v := rows.RawValues()
			i, ok := p.byUID[string(v[0])]
			if !ok {
				continue
			}
			k.order = i
			if err := decodeRow(v[1:], d[:], &tx); err != nil {
				return fmt.Errorf("decode: %w", err)
			}
		} else {
			var uid string
			if err := rows.Scan(append([]any{&uid}, d[:]...)...); err != nil {
				return fmt.Errorf("scan: %w", err)
			}
			i, ok := p.byUID[uid]
			if !ok {
				continue
			}
			k.order = i
		}
		items, keys = append(items, it), append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if raw {
		tx.done()
		for i := range items {
			d := itemDests(new(int16), &items[i])
			tx.set(d[:])
		}
	}
	// The nested loop sends each order's items together and in index
	// order, so this is rarely more than a check.
	byPosition := func(a, b key) int {
		if a.order != b.order {
			return int(a.order) - int(b.order)
		}
		return int(a.pos) - int(b.pos)
	}
	if !slices.IsSortedFunc(keys, byPosition) {
		perm := make([]int, len(keys))
		for i := range perm {
			perm[i] = i
		}
		slices.SortFunc(perm, func(a, b int) int { return byPosition(keys[a], keys[b]) })
		sorted, sortedKeys := make([]model.Item, len(items)), make([]key, len(keys))
		for i, j := range perm {
			sorted[i], sortedKeys[i] = items[j], keys[j]
		}
		items, keys = sorted, sortedKeys
	}
	j := 0
	for i := range p.orders {
		start := j
		for j < len(keys) && keys[j].order == int32(i) {
			j++
		}
		p.orders[i].Items = items[start:j:j]
	}
	return nil
}

// encodePage encodes a page of orders and calls fn with it.
func encodePage(page []*model.Order, fn func([]cache.Entry) error) error {
	entries, err := encodeEntries(page)
	if err != nil {
		return err
	}
	return fn(entries)
}

// encodeEntries encodes a page of orders.
func encodeEntries(page []*model.Order) ([]cache.Entry, error) {
	entries := make([]cache.Entry, len(page))
	var scratch []byte
	for i, o := range page {
		var (
			body []byte
			err  error
		)
		if body, scratch, err = encodeExact(o, scratch); err != nil {
			return nil, fmt.Errorf("load recent orders: encode: %w", err)
		}
		// The uid a copy: the caches keep it, as the key, and o's texts
		// share the page's allocation (see page.readOrders).
		entries[i] = cache.Entry{UID: strings.Clone(o.OrderUID), JSON: body, Order: o}
	}
	return entries, nil
}
