// Package postgres is the reader's read-only access to the order database.
//
// An order is loaded in one round trip: one query returns the order's,
// delivery's and payment's columns and its items as arrays (in position
// order, so the items keep their order), scanned in pgx's
// binary format straight into model.Order, then encoded with
// model.Order.Canonical, so that the bytes equal what the ingestor wrote to
// Redis. (An earlier design had PostgreSQL build the JSON document with
// json_build_object; decoding that JSON again was a third of the reader's
// CPU per uncached request.) Concurrent lookups share queries (see Get),
// and go to read replicas when there are any, with the primary answering
// what a lagging replica does not hold yet (see replicas.go). Concurrent
// searches share round trips to the primary (see Search, search.go). The
// warm-up reads the most recent orders in pages of two statements, the
// orders' rows and their items' (see Recent, recent.go). pgx caches the
// prepared statements per connection.
package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/orderservice/orders/reader/batch"
	"github.com/orderservice/orders/reader/cache"
	"github.com/orderservice/orders/shared/model"
	"github.com/prometheus/client_golang/prometheus"
)

// Store is the cache's database tier.
var _ cache.Store = (*Store)(nil)

// orderColumns are the columns scanOrder reads, in its order; the query
// that uses them names the tables o (orders), d (delivery), p (payment) and
// i (the items aggregate of itemsLateral). The warm-up reads the first
// ones, orderRowColumns, and the items as rows of their own (recent.go).
const orderColumns = orderRowColumns + `,
	i.chrt_id, i.track_number, i.price, i.rid, i.name, i.sale, i.size, i.total_price,
	i.nm_id, i.brand, i.status`

// orderRowColumns are an order's columns, its delivery's and its
// payment's, in the order of orderDests.
const orderRowColumns = `o.order_uid, o.track_number, o.entry, o.locale, o.internal_signature,
	o.customer_id, o.delivery_service, o.shardkey, o.sm_id, o.date_created, o.oof_shard,
	d.name, d.phone, d.zip, d.city, d.address, d.region, d.email,
	p.transaction, p.request_id, p.currency, p.provider, p.amount, p.payment_dt, p.bank,
	p.delivery_cost, p.goods_total, p.custom_fee`

// itemsLateral aggregates an order's items into one array per column, in
// position order (NULL arrays for an order without items). The rows are
// sorted once in the subquery and aggregated in that order, which
// PostgreSQL documents as the way to feed an aggregate sorted input; eleven
// array_agg(... ORDER BY position) would sort the items eleven times
// (PostgreSQL before 16 does not share the sort), which measured 17% fewer
// queries per second under pgbench.
const itemsLateral = `LEFT JOIN LATERAL (SELECT
	array_agg(chrt_id) AS chrt_id, array_agg(track_number) AS track_number,
	array_agg(price) AS price, array_agg(rid) AS rid, array_agg(name) AS name,
	array_agg(sale::bigint) AS sale, array_agg(size) AS size,
	array_agg(total_price) AS total_price, array_agg(nm_id) AS nm_id,
	array_agg(brand) AS brand, array_agg(status) AS status
	FROM (SELECT * FROM items WHERE items.order_uid = o.order_uid ORDER BY position) s) i ON true`

// getFrom is the lookup's joins, which every lookup statement shares.
const getFrom = `SELECT ` + orderColumns + `
FROM orders o JOIN delivery d ON d.order_uid = o.order_uid JOIN payment p ON p.order_uid = o.order_uid
` + itemsLateral + `
WHERE o.order_uid IN (`

// lookups are the lookup statements: lookup i asks for up to 1<<i orders
// by uid, one argument each. A batch of n uids takes the smallest that
// holds it, its last uid repeated in the places left (an order is one row
// however often its uid is named).
//
// Why a fixed number of arguments rather than one array (= ANY($1)): a
// prepared statement is planned again at every execution while its custom
// plans look cheaper than its generic plan, and the generic plan of an
// array argument is costed for ten elements, so a lookup of one to four
// uids was always planned again. That planning took 0.4-0.5 ms a query, for
// 0.2 ms of execution (EXPLAIN ANALYZE at 200,000 orders), and was two
// thirds of PostgreSQL's CPU per uncached GET: TestGets at 1,000 GETs/s
// measured 0.75 cores of PostgreSQL before and 0.25 after (BENCHMARKS.md).
// With n arguments the generic plan is costed for n rows, as the custom
// plans are, and PostgreSQL keeps it after its first five custom plans;
// TestLookupsUseGenericPlans holds them to that.
type lookups []string

func newLookups(maxBatch int) lookups {
	var l lookups
	for n := 1; ; n *= 2 {
		var b strings.Builder
		b.WriteString(getFrom)
		for i := range n {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("$" + strconv.Itoa(i+1))
		}
		b.WriteString(")")
		l = append(l, b.String())
		if n >= maxBatch {
			return l
		}
	}
}

// most is how many uids the largest statement asks for.
func (l lookups) most() int { return 1 << (len(l) - 1) }

// statement returns the statement and the arguments that look uids up:
// 1 to l.most() of them.
func (l lookups) statement(uids []string) (string, []any) {
	i := bits.Len(uint(len(uids) - 1))
	args := make([]any, 1<<i)
	for k := range args {
		args[k] = uids[min(k, len(uids)-1)]
	}
	return l[i], args
}

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

// Store reads orders. It never writes: the reader connects as order_reader.
type Store struct {
	pool     *pgxpool.Pool
	latency  *prometheus.HistogramVec
	batches  prometheus.Observer
	maxBatch int
	lookups  lookups

	replicas *replicas // nil without read replicas (see replicas.go)

	gets chan getRequest

	searches       chan searchRequest
	maxSearchBatch int
	searchBatches  prometheus.Observer

	stop    chan struct{} // closed by Close: loaders and searchers fail what is queued and exit
	loaders sync.WaitGroup
	done    chan struct{} // closed once every loader and searcher has exited
	once    sync.Once
}

// Options configure a Store.
type Options struct {
	URL string
	// ReplicaURLs are read replicas of URL's database (streaming
	// standbys), for the lookups by order_uid (see replicas.go); each gets
	// a pool of MaxConns.
	ReplicaURLs []string
	MaxConns    int32
	// Loaders is how many lookup queries run at once, each on its own
	// connection (default and at most MaxConns).
	Loaders int
	// MaxBatch is the most orders one lookup query asks for (default 64).
	MaxBatch int
	// Latency observes each query's duration by query name; may be nil.
	Latency *prometheus.HistogramVec
	// BatchSize observes the orders asked for per lookup query; may be nil.
	BatchSize prometheus.Observer
	// Searchers is how many search batches run at once, each on its own
	// connection (default 2, at most MaxConns).
	Searchers int
	// MaxSearchBatch is the most searches one round trip answers
	// (default 64).
	MaxSearchBatch int
	// SearchBatchSize observes the searches answered per round trip; may
	// be nil.
	SearchBatchSize prometheus.Observer
	// Replica counts the lookups per target; used only with ReplicaURLs.
	Replica ReplicaMetrics
	// Logger receives a line when a replica fails and when it is back;
	// nil discards them.
	Logger *slog.Logger
}

// Stat reports the connection pool's use (for the pool metrics).
func (s *Store) Stat() *pgxpool.Stat { return s.pool.Stat() }

// Open creates a connection pool; it does not connect until first use, so
// the reader starts (and serves from its caches) while PostgreSQL is down.
func Open(ctx context.Context, o Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(o.URL)
	if err != nil {
		return nil, fmt.Errorf("parse DATABASE_URL: %w", err)
	}
	configure := func(cfg *pgxpool.Config) {
		if o.MaxConns > 0 {
			cfg.MaxConns = o.MaxConns
		}
		// A dead server must fail requests quickly (503, or the primary
		// for a replica), not hang them.
		if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > 2*time.Second {
			cfg.ConnConfig.ConnectTimeout = 2 * time.Second
		}
		cfg.ConnConfig.RuntimeParams["application_name"] = "reader"
	}
	configure(cfg)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("create pool: %w", err)
	}
	var rs *replicas
	if len(o.ReplicaURLs) > 0 {
		if o.Logger == nil {
			o.Logger = slog.New(slog.DiscardHandler)
		}
		if rs, err = openReplicas(ctx, o.ReplicaURLs, configure, o.Replica, o.Logger); err != nil {
			pool.Close()
			return nil, err
		}
	}
	if o.Loaders <= 0 || o.Loaders > int(cfg.MaxConns) {
		o.Loaders = int(cfg.MaxConns)
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 64
	}
	if o.Searchers <= 0 {
		o.Searchers = 2
	}
	o.Searchers = min(o.Searchers, int(cfg.MaxConns))
	if o.MaxSearchBatch <= 0 {
		o.MaxSearchBatch = 64
	}
	s := &Store{pool: pool, replicas: rs, latency: o.Latency, batches: o.BatchSize, maxBatch: o.MaxBatch,
		lookups:  newLookups(o.MaxBatch),
		gets:     make(chan getRequest, getQueue),
		searches: make(chan searchRequest, searchQueue), maxSearchBatch: o.MaxSearchBatch, searchBatches: o.SearchBatchSize,
		stop: make(chan struct{}), done: make(chan struct{})}
	for range o.Loaders {
		s.loaders.Go(s.serveGets)
	}
	for range o.Searchers {
		s.loaders.Go(s.serveSearches)
	}
	return s, nil
}

// Close stops the loaders and closes the pool. Gets waiting in the queue
// fail with ErrClosed.
func (s *Store) Close() {
	s.once.Do(func() {
		close(s.stop)
		s.loaders.Wait()
		close(s.done)
		s.pool.Close()
		if s.replicas != nil {
			s.replicas.close()
		}
	})
}

func (s *Store) observe(query string, start time.Time) {
	if s.latency != nil {
		s.latency.WithLabelValues(query).Observe(time.Since(start).Seconds())
	}
}

// ErrClosed is returned by Get after Close.
var ErrClosed = errors.New("order store closed")

// ask queues req for the store's workers (the loaders or the searchers)
// and waits for their answer on reply: it fails with ErrClosed once the
// store is closed, and with the context's cause when the caller gives up.
func ask[Q, R any](ctx context.Context, s *Store, queue chan<- Q, req Q, reply <-chan R) (R, error) {
	var none R
	select {
	case <-s.stop:
		return none, ErrClosed
	default:
	}
	select {
	case queue <- req:
	case <-s.stop:
		return none, ErrClosed
	case <-ctx.Done():
		return none, context.Cause(ctx)
	}
	select {
	case r := <-reply:
		return r, nil
	case <-ctx.Done():
		return none, context.Cause(ctx)
	case <-s.done:
		// Queued after the workers drained the queue, or answered just
		// before they exited.
		select {
		case r := <-reply:
			return r, nil
		default:
			return none, ErrClosed
		}
	}
}

// getQueue bounds the lookups waiting for a loader. Past it Get waits to
// enqueue (or for its context): the database is the bottleneck then, and a
// bounded queue keeps the wait visible in the request latency.
const getQueue = 4096

type getRequest struct {
	ctx   context.Context
	uid   string
	reply chan getResult // buffered: a loader never blocks on a reply
}

type getResult struct {
	body []byte
	err  error
}

// Get returns the canonical JSON of one order, or cache.ErrNotFound.
//
// Lookups are batched without waiting ("smart batching"): a loader takes
// the first queued lookup at once, plus every other lookup queued at that
// moment (up to MaxBatch), and asks for them all in one query. A lone
// lookup therefore goes out as soon as a loader is free, as an unbatched
// design would send it; under a burst of misses, the lookups that queued
// while the loaders were busy share one round trip. On the 2-core machine
// this was measured at about four times the orders per second of one
// query per order, with PostgreSQL as the bottleneck (pgbench: 8 orders a
// query against 1).
func (s *Store) Get(ctx context.Context, uid string) ([]byte, error) {
	req := getRequest{ctx: ctx, uid: uid, reply: make(chan getResult, 1)}
	r, err := ask(ctx, s, s.gets, req, req.reply)
	if errors.Is(err, ErrClosed) {
		return nil, ErrClosed
	}
	if err != nil {
		return nil, fmt.Errorf("load order %q: %w", uid, err)
	}
	if r.err != nil && !errors.Is(r.err, cache.ErrNotFound) && !errors.Is(r.err, ErrClosed) {
		return nil, fmt.Errorf("load order %q: %w", uid, r.err)
	}
	return r.body, r.err
}

// serveGets is one loader: it runs until Close, then fails what is still
// queued.
func (s *Store) serveGets() {
	batch.Serve(s.stop, s.gets, s.maxBatch, s.getBatch,
		func(r getRequest) { r.reply <- getResult{err: ErrClosed} })
}

// getBatch answers every request of batch with one query. Requests whose
// caller gave up are left out. The query's deadline is the latest of the
// callers' (none if one has none), so that no caller is cut short by
// another's.
func (s *Store) getBatch(batch []getRequest) {
	uids := make([]string, 0, len(batch))
	var deadline time.Time
	bounded := true
	live := batch[:0]
	for _, r := range batch {
		if r.ctx.Err() != nil {
			r.reply <- getResult{err: context.Cause(r.ctx)}
			continue
		}
		live = append(live, r)
		uids = append(uids, r.uid)
		if d, ok := r.ctx.Deadline(); !ok {
			bounded = false
		} else if d.After(deadline) {
			deadline = d
		}
	}
	if len(live) == 0 {
		return
	}
	ctx := context.Background()
	if bounded {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	if s.batches != nil {
		s.batches.Observe(float64(len(uids)))
	}
	found, err := s.getMany(ctx, uids)
	for _, r := range live {
		switch body, ok := found[r.uid]; {
		case ok: // found, even if others could not be looked up
			r.reply <- getResult{body: body}
		case err != nil:
			r.reply <- getResult{err: err}
		default:
			r.reply <- getResult{err: cache.ErrNotFound}
		}
	}
}

// query returns the canonical JSON of the orders of uids that pool's
// database holds.
func (s *Store) query(ctx context.Context, pool *pgxpool.Pool, uids []string) (map[string][]byte, error) {
	defer s.observe("get", time.Now())
	found := make(map[string][]byte, len(uids))
	for chunk := range slices.Chunk(uids, s.lookups.most()) { // one, unless a caller asks for more than MaxBatch
		sql, args := s.lookups.statement(chunk)
		rows, err := pool.Query(ctx, sql, args...)
		if err != nil {
			return nil, err
		}
		if err := eachCanonical(rows, func(uid string, body []byte) { found[uid] = body }); err != nil {
			return nil, err
		}
	}
	return found, nil
}

// columns returns the columns of rows' result, or the error rows hold:
// a batch that failed before a statement's result (a cancelled context, a
// broken connection) hands that statement's callback rows with the error
// and no result, whose FieldDescriptions would dereference nil.
func columns(rows pgx.Rows) ([]pgconn.FieldDescription, error) {
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return rows.FieldDescriptions(), nil
}

// eachCanonical scans every row of orderColumns and calls fn with the
// order's uid and canonical JSON; it closes rows.
func eachCanonical(rows pgx.Rows, fn func(uid string, body []byte)) error {
	defer rows.Close()
	var scratch []byte
	for rows.Next() {
		o, err := scanOrder(rows)
		if err != nil {
			return fmt.Errorf("scan: %w", err)
		}
		body, buf, err := encodeExact(o, scratch)
		if err != nil {
			return fmt.Errorf("encode: %w", err)
		}
		scratch = buf
		fn(o.OrderUID, body)
	}
	return rows.Err()
}

// encodeExact returns the canonical JSON of o in a slice of its own exact
// size, encoding it in scratch (returned, grown as needed, for the next
// order). The caches keep these bytes for as long as the order stays: an
// encoding grown by append would keep a third more capacity than bytes on
// average, and leave the intermediate buffers of its growth as garbage.
func encodeExact(o *model.Order, scratch []byte) (body, buf []byte, err error) {
	buf, err = o.AppendCanonical(scratch[:0])
	if err != nil {
		return nil, scratch, err
	}
	return bytes.Clone(buf), buf, nil
}
