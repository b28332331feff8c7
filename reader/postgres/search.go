package postgres

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/orderservice/orders/reader/batch"
	"github.com/orderservice/orders/reader/cache"
)

// Search returns the summaries of the orders q selects, newest first (see
// cache.Store). It reads orders alone: the row carries its payment's amount
// and currency and its item count (migration 000021), and an order whose
// row has none (no payment row stored) is not listed, as Get does not find
// it. Each filter has an index of orders that yields its orders in this
// order (migrations/sql): orders_track_number_idx,
// orders_customer_summary_idx and orders_currency_idx lead with the
// equality column, orders_recent_idx serves the dates alone, and the
// planner walks one of them from the keyset and stops after q.Limit rows,
// so that a page deep in a list costs what the first does. The customer's
// index holds every column of a summary, so that a customer's page, the
// longest lists, is an index-only scan.
//
// Searches are batched as lookups are (see Get), without waiting: a
// searcher takes the first queued search and every other queued at that
// moment, up to MaxSearchBatch, and answers them in one round trip (see
// searchBatch). A lone search is one query, as it would be unbatched.
// Under load most of the cost of a search of a few index entries is the
// query around them, on both sides: its protocol messages, system calls
// and wake-ups, and PostgreSQL's executor start-up per statement. A batch
// pays them once.
func (s *Store) Search(ctx context.Context, q cache.Query) ([]cache.Summary, error) {
	req := searchRequest{ctx: ctx, q: q, reply: make(chan searchResult, 1)}
	r, err := ask(ctx, s, s.searches, req, req.reply)
	if errors.Is(err, ErrClosed) {
		return nil, ErrClosed
	}
	if err != nil {
		return nil, fmt.Errorf("search orders: %w", err)
	}
	if r.err != nil && !errors.Is(r.err, ErrClosed) {
		return nil, fmt.Errorf("search orders: %w", r.err)
	}
	return r.list, r.err
}

// searchQueue bounds the searches waiting for a searcher, as getQueue
// does the lookups.
const searchQueue = 4096

type searchRequest struct {
	ctx   context.Context
	q     cache.Query
	reply chan searchResult // buffered: a searcher never blocks on a reply
}

type searchResult struct {
	list []cache.Summary
	err  error
}

// serveSearches is one searcher: it runs until Close, then fails what is
// still queued.
func (s *Store) serveSearches() {
	batch.Serve(s.stop, s.searches, s.maxSearchBatch, s.searchBatch,
		func(r searchRequest) { r.reply <- searchResult{err: ErrClosed} })
}

// searchBatch answers every search of b in one round trip. Searches by
// track number or customer of one shape (the same filters set, see
// shapeOf) share one query, the batched form of searchSQL; any other
// search is a query of its own (see lateral); the queries go out together
// as a pipeline (pgx.Batch). Searches whose caller gave up are left out;
// the deadline is the latest of the callers' (none if one has none), so
// that no caller is cut short by another's.
func (s *Store) searchBatch(b []searchRequest) {
	var (
		deadline time.Time
		bounded  = true
		byShape  [shapes][]searchRequest
		used     []shape
		stmts    []searchStmt
	)
	for i, r := range b {
		if r.ctx.Err() != nil {
			r.reply <- searchResult{err: context.Cause(r.ctx)}
			continue
		}
		if d, ok := r.ctx.Deadline(); !ok {
			bounded = false
		} else if d.After(deadline) {
			deadline = d
		}
		sh := shapeOf(r.q)
		if !sh.lateral() {
			stmts = append(stmts, searchStmt{sh: sh, reqs: b[i : i+1 : i+1]})
			continue
		}
		if byShape[sh] == nil {
			used = append(used, sh)
		}
		byShape[sh] = append(byShape[sh], r)
	}
	for _, sh := range used {
		stmts = append(stmts, searchStmt{sh: sh, reqs: byShape[sh]})
	}
	if len(stmts) == 0 {
		return
	}
	ctx := context.Background()
	if bounded {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	if s.searchBatches != nil {
		live := 0
		for _, st := range stmts {
			live += len(st.reqs)
		}
		s.searchBatches.Observe(float64(live))
	}
	defer s.observe("search", time.Now())
	if len(stmts) == 1 {
		st := stmts[0]
		sql, args := searchArgs(st.sh, st.reqs)
		rows, err := s.pool.Query(ctx, sql, args...)
		if err == nil {
			err = scanSearches(rows, st.reqs)
		}
		if err != nil {
			fail(st.reqs, err)
		}
		return
	}
	var pb pgx.Batch
	for _, st := range stmts {
		sql, args := searchArgs(st.sh, st.reqs)
		pb.Queue(sql, args...).Query(func(rows pgx.Rows) error {
			return scanSearches(rows, st.reqs)
		})
	}
	if err := s.pool.SendBatch(ctx, &pb).Close(); err != nil {
		// The requests answered before the error have their replies (a
		// reply channel holds one); the others get the error.
		for _, st := range stmts {
			fail(st.reqs, err)
		}
	}
}

// searchStmt is one query of a batch: the searches of reqs, of shape sh.
type searchStmt struct {
	sh   shape
	reqs []searchRequest
}

// fail sends err to each request not answered yet.
func fail(reqs []searchRequest, err error) {
	for _, r := range reqs {
		select {
		case r.reply <- searchResult{err: err}:
		default:
		}
	}
}

// scanSearches reads the rows of searchSQL (the search's position in
// reqs, then a summary) and answers each search of reqs with its
// summaries; it closes rows. The rows must come grouped by search, in the
// order of reqs, and each search's newest first (see buildSearchSQL); rows
// out of that order fail the statement rather than answer a page out of
// order. The texts of all rows share one allocation, as the summaries of
// a batch are answered and released together.
func scanSearches(rows pgx.Rows, reqs []searchRequest) error {
	defer rows.Close()
	type row struct {
		i                int32
		sm               cache.Summary
		uid, track, curr [2]int // the texts' bounds in arena, with decodeSummary
	}
	rowsWanted := 0
	for _, r := range reqs {
		rowsWanted += min(r.q.Limit, 128)
	}
	var (
		pending = make([]row, 0, rowsWanted)
		arena   = make([]byte, 0, rowsWanted*textBytesPerRow)
		last    = int32(-1)
	)
	fields, err := columns(rows)
	if err != nil {
		return err
	}
	decode := summaryDecoder(fields)
	text := func(b []byte) [2]int {
		arena = append(arena, b...)
		return [2]int{len(arena) - len(b), len(arena)}
	}
	for rows.Next() {
		var r row
		if decode {
			v := rows.RawValues()
			var err error
			if r.i, err = decodeSummary(v, &r.sm); err != nil {
				return err
			}
			r.uid, r.track, r.curr = text(v[1]), text(v[2]), text(v[5])
		} else if err := rows.Scan(&r.i, &r.sm.OrderUID, &r.sm.TrackNumber, &r.sm.DateCreated,
			&r.sm.Amount, &r.sm.Currency, &r.sm.ItemCount); err != nil {
			return err
		}
		switch {
		case r.i < last || int(r.i) >= len(reqs):
			return fmt.Errorf("search row of request %d after request %d's, of %d", r.i, last, len(reqs))
		case r.i == last && r.sm.DateCreated.After(pending[len(pending)-1].sm.DateCreated):
			return fmt.Errorf("search rows of request %d not newest first", r.i)
		}
		last = r.i
		r.sm.DateCreated = r.sm.DateCreated.UTC()
		pending = append(pending, r)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	texts := string(arena)
	lists := make([][]cache.Summary, len(reqs))
	for k := 0; k < len(pending); {
		i := pending[k].i
		n := 0
		for k+n < len(pending) && pending[k+n].i == i {
			n++
		}
		list := make([]cache.Summary, n)
		for j := range list {
			r := &pending[k+j]
			list[j] = r.sm
			if decode {
				list[j].OrderUID = texts[r.uid[0]:r.uid[1]]
				list[j].TrackNumber = texts[r.track[0]:r.track[1]]
				list[j].Currency = texts[r.curr[0]:r.curr[1]]
			}
		}
		lists[i] = list
		k += n
	}
	for i, r := range reqs {
		r.reply <- searchResult{list: lists[i]}
	}
	return nil
}

// textBytesPerRow sizes the texts' allocation of a statement: a generated
// order's uid, track number and currency take about 40 bytes.
const textBytesPerRow = 48

// summaryColumns are the types of searchSQL's columns: the position,
// order_uid, track_number, date_created, amount, currency and item_count
// (see decodable).
var summaryColumns = []uint32{pgtype.Int4OID, textOID, textOID, pgtype.TimestamptzOID, pgtype.Int8OID, textOID, pgtype.Int2OID}

// summaryDecoder reports whether decodeSummary reads rows of fields.
// Anything else (a schema changed under the reader) goes through pgx's
// Scan.
func summaryDecoder(fields []pgconn.FieldDescription) bool {
	return decodable(fields, summaryColumns)
}

// decodeSummary reads the numbers and the date of one row of
// summaryColumns into sm and returns the position; the texts, the bytes
// as sent, are the caller's (see raw.go).
func decodeSummary(v [][]byte, sm *cache.Summary) (int32, error) {
	for _, b := range v {
		if b == nil {
			return 0, errRawValue
		}
	}
	if len(v[0]) != 4 || len(v[4]) != 8 || len(v[6]) != 2 {
		return 0, errRawValue
	}
	var err error
	if sm.DateCreated, err = decodeTimestamptz(v[3]); err != nil {
		return 0, err
	}
	sm.Amount = int64(binary.BigEndian.Uint64(v[4]))
	sm.ItemCount = int(int16(binary.BigEndian.Uint16(v[6])))
	return int32(binary.BigEndian.Uint32(v[0])), nil
}

// shape is the set of a query's conditions: which filters are set and
// whether it resumes after a key. Queries of a shape share one SQL text.
type shape uint8

const (
	hasTrack shape = 1 << iota
	hasCustomer
	hasCurrency
	hasFrom
	hasTo
	hasAfter
	shapes = 1 << iota
)

func shapeOf(q cache.Query) shape {
	var sh shape
	if q.TrackNumber != "" {
		sh |= hasTrack
	}
	if q.CustomerID != "" {
		sh |= hasCustomer
	}
	if q.Currency != "" {
		sh |= hasCurrency
	}
	if !q.CreatedFrom.IsZero() {
		sh |= hasFrom
	}
	if !q.CreatedTo.IsZero() {
		sh |= hasTo
	}
	if q.After != nil {
		sh |= hasAfter
	}
	return sh
}

// lateral reports whether the searches of shape sh are batched into one
// query (searchSQL's LATERAL form). They are when a track number or a
// customer leads: the planner picks that column's index whatever the
// value, since it is nearly unique. Without one, the index that serves a
// search depends on its values (a rare currency is read from
// orders_currency_idx, a common one as fast from orders_recent_idx within
// dates), which the planner sees only in a query of its own; the LATERAL
// form hides them in the rows of q.
func (sh shape) lateral() bool { return sh&(hasTrack|hasCustomer) != 0 }

// searchSQL holds the SQL text of each shape, built once: a request
// builds only its arguments.
var searchSQL = func() (sql [shapes]string) {
	for sh := range shape(shapes) {
		sql[sh] = buildSearchSQL(sh)
	}
	return sql
}()

// searchColumns are the conditions of a shape, in the order of its bits
// and of the query's arguments. Each condition's columns are written @name
// in cond.
var searchColumns = []struct {
	bit   shape
	names []string // the arguments, one array of each in the LATERAL form
	types []string // their SQL types
	cond  string
}{
	{hasTrack, []string{"track_number"}, []string{"text"}, "o.track_number = @track_number"},
	{hasCustomer, []string{"customer_id"}, []string{"text"}, "o.customer_id = @customer_id"},
	{hasCurrency, []string{"currency"}, []string{"text"}, "o.currency = @currency"},
	{hasFrom, []string{"created_from"}, []string{"timestamptz"}, "o.date_created >= @created_from"},
	{hasTo, []string{"created_to"}, []string{"timestamptz"}, "o.date_created < @created_to"},
	// A row comparison, which PostgreSQL turns into one index range bound;
	// two separate conditions (date < x OR date = x AND uid < y) would not
	// be.
	{hasAfter, []string{"after_date", "after_uid"}, []string{"timestamptz", "text"},
		"(o.date_created, o.order_uid) < (@after_date, @after_uid)"},
}

// buildSearchSQL writes the query of a shape. Only the conditions of the
// set filters are written, so that the planner sees each combination as
// it is (a "$1 IS NULL OR ..." condition would hide which index applies).
// Every form returns the search's position in the batch, then a summary.
//
// The LATERAL form (see lateral) answers many searches: they are the rows
// of q, unnested from one array per argument with their position i, and
// each is a LATERAL subquery, planned once and run per row of q as the
// walk of one index from its key for at most its limit, as a search alone
// would be. Such a subquery can only be the inner side of a nested loop,
// which emits the rows of each row of q together, in q's order and the
// subquery's: each search's rows come in its list's order without an
// ORDER BY around the join, whose sort of every row was a quarter of
// PostgreSQL's time for a batch (EXPLAIN ANALYZE, 32 customers' pages).
// scanSearches checks the order it relies on. The other form is one
// search, its values parameters.
func buildSearchSQL(sh shape) string {
	const summary = "o.order_uid, o.track_number, o.date_created, o.amount, o.currency, o.item_count"
	var (
		b     strings.Builder
		arrs  = []string{"$1::int4[]"}
		names = []string{"lim"}
		conds strings.Builder
		refs  []string // old, new pairs for strings.NewReplacer
	)
	n := 1
	for _, c := range searchColumns {
		if sh&c.bit == 0 {
			continue
		}
		for k, name := range c.names {
			n++
			arg := "$" + strconv.Itoa(n)
			arrs = append(arrs, arg+"::"+c.types[k]+"[]")
			names = append(names, name)
			if sh.lateral() {
				refs = append(refs, "@"+name, "q."+name)
			} else {
				refs = append(refs, "@"+name, arg)
			}
		}
		conds.WriteString(" AND ")
		conds.WriteString(c.cond)
	}
	where := "o.amount IS NOT NULL" + conds.String()
	if len(refs) > 0 {
		where = strings.NewReplacer(refs...).Replace(where)
	}
	order := "ORDER BY o.date_created DESC, o.order_uid DESC"
	if !sh.lateral() {
		return "SELECT 0::int4, " + summary + "\nFROM orders o WHERE " + where + "\n" + order + " LIMIT $1"
	}
	b.WriteString("SELECT (q.i - 1)::int4, s.order_uid, s.track_number, s.date_created, s.amount, s.currency, s.item_count\nFROM unnest(")
	b.WriteString(strings.Join(arrs, ", "))
	b.WriteString(") WITH ORDINALITY AS q(")
	b.WriteString(strings.Join(names, ", "))
	b.WriteString(", i)\nCROSS JOIN LATERAL (SELECT " + summary + "\n\tFROM orders o WHERE " + where)
	b.WriteString("\n\t" + order + " LIMIT q.lim) s")
	return b.String()
}

// searchArgs returns the query of shape sh for reqs and its arguments:
// the limit, then each condition's values; arrays of them, one element
// per search, in the LATERAL form, else those of reqs[0].
func searchArgs(sh shape, reqs []searchRequest) (string, []any) {
	if !sh.lateral() {
		q := &reqs[0].q
		args := []any{int32(min(q.Limit, 1<<30))}
		if sh&hasCurrency != 0 {
			args = append(args, q.Currency)
		}
		if sh&hasFrom != 0 {
			args = append(args, q.CreatedFrom)
		}
		if sh&hasTo != 0 {
			args = append(args, q.CreatedTo)
		}
		if sh&hasAfter != 0 {
			args = append(args, q.After.DateCreated, q.After.OrderUID)
		}
		return searchSQL[sh], args
	}
	n := len(reqs)
	limits := make([]int32, n)
	for i, r := range reqs {
		limits[i] = int32(min(r.q.Limit, 1<<30))
	}
	args := []any{limits}
	text := func(get func(q *cache.Query) string) {
		v := make([]string, n)
		for i := range reqs {
			v[i] = get(&reqs[i].q)
		}
		args = append(args, v)
	}
	date := func(get func(q *cache.Query) time.Time) {
		v := make([]time.Time, n)
		for i := range reqs {
			v[i] = get(&reqs[i].q)
		}
		args = append(args, v)
	}
	if sh&hasTrack != 0 {
		text(func(q *cache.Query) string { return q.TrackNumber })
	}
	if sh&hasCustomer != 0 {
		text(func(q *cache.Query) string { return q.CustomerID })
	}
	if sh&hasCurrency != 0 {
		text(func(q *cache.Query) string { return q.Currency })
	}
	if sh&hasFrom != 0 {
		date(func(q *cache.Query) time.Time { return q.CreatedFrom })
	}
	if sh&hasTo != 0 {
		date(func(q *cache.Query) time.Time { return q.CreatedTo })
	}
	if sh&hasAfter != 0 {
		date(func(q *cache.Query) time.Time { return q.After.DateCreated })
		text(func(q *cache.Query) string { return q.After.OrderUID })
	}
	return searchSQL[sh], args
}

// searchQuery is the query Search sends for q alone and its arguments.
func searchQuery(q cache.Query) (string, []any) {
	return searchArgs(shapeOf(q), []searchRequest{{q: q}})
}
