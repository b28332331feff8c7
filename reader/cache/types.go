package cache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/orderservice/orders/shared/model"
)

// What the tiers say about an order. The adapters return these (wrapped
// or not) in place of their drivers' errors, so that the cache never sees
// a pgx or go-redis error value it would have to know about.
var (
	// ErrNotFound means no tier holds the order. Store.Get returns it for an
	// order_uid the database does not hold, and Tiered.Get then remembers
	// the uid in the negative cache.
	ErrNotFound = errors.New("order not found")
	// ErrUnavailable means the order is not cached and the database failed.
	ErrUnavailable = errors.New("order store unavailable")
	// ErrMiss means the shared tier answered and does not hold the order.
	ErrMiss = errors.New("order not cached")
	// ErrSkipped means the shared tier was not asked: it failed recently
	// (and is left alone until its pause ends) or cannot keep up. It is
	// neither a hit nor a miss.
	ErrSkipped = errors.New("skipped after recent failures")
)

// Source names the tier an answer came from.
type Source string

// The tiers, as reported in the X-Cache header and the metrics.
const (
	Local Source = "local"
	Redis Source = "redis"
	DB    Source = "db"
)

// View is one representation of an order as a response sends it: its
// body, in at most three pieces written one after the other, and its
// header values. Order makes one per request without copying bytes or
// allocating; the slices are the cache's own, never to be modified.
type View struct {
	// Parts are the body's bytes in order; a piece may be empty.
	Parts [3][]byte
	// Len is the body's length, the sum of the parts'.
	Len int
	// ETag is the strong validator: quoted, the hex SHA-256 of the body.
	ETag string
	// ETagHeader and LengthHeader are http.Header values ([]string),
	// computed once per cached order rather than per response.
	ETagHeader, LengthHeader []string
}

// WriteTo writes the body to w, piece by piece.
func (v View) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for _, p := range v.Parts {
		if len(p) == 0 {
			continue
		}
		k, err := w.Write(p)
		n += int64(k)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// Append appends the body to dst (for callers off the hot path, and
// tests, that want it in one slice).
func (v View) Append(dst []byte) []byte {
	for _, p := range v.Parts {
		dst = append(dst, p...)
	}
	return dst
}

// Order is an order as the cache holds it: the canonical JSON as ingested
// (Body, the full view, whose ETag is orders.content_sha256) and the
// masked view for callers that may not see personal data, both prepared
// once when the order enters the cache, so that a request only picks one.
//
// The masked view is not a second copy of the order. Masking changes the
// delivery's name, phone, zip, address and e-mail, which the canonical
// encoding writes within a few dozen bytes of each other (only the city
// and the region come between), and nothing else; so the masked
// JSON is kept as the one run of bytes where it differs from the full
// JSON, found by comparing the two encodings (their longest common prefix
// and suffix): the masked body is Body up to the run, the run's masked
// bytes, and Body after it. That is byte for byte the masker's output,
// whatever it changes (a masker that changed a field elsewhere would only
// make the run longer), at about a tenth of a copy's memory. Serving it
// writes the three slices: nothing is masked, and nothing copied, per
// request.
type Order struct {
	// Body is the canonical JSON (model.Order.Canonical), the full view.
	Body []byte
	// patch replaces Body[start:end] in the masked view.
	patch []byte
	// etag and maskedETag are the views' ETag header values, each made by
	// the first response that sends it: most orders a warm-up loads are
	// never asked for before they leave the cache, and hashing both views
	// of each was a sixth of the reader's CPU in a warm-up. Two
	// responses that make one at once make the same value; the first
	// stored is kept.
	etag, maskedETag atomic.Pointer[[1]string]
	length           [1]string // Content-Length header values
	maskedLen        [1]string
	start, end       int32
	hasMasked        bool
}

// NewOrder prepares the cache entry of an order: full is its canonical
// JSON, kept as it is; masked is the canonical JSON of its masked view, or
// nil for none. masked is not kept (only where it differs from full), so
// the caller may reuse it.
func NewOrder(full, masked []byte) *Order {
	o := &Order{Body: full}
	o.length[0] = strconv.Itoa(len(full))
	if masked != nil && len(full) <= math.MaxInt32 {
		start, end, patch := diff(full, masked)
		o.patch, o.start, o.end, o.hasMasked = bytes.Clone(patch), int32(start), int32(end), true //nolint:gosec // len(full) fits, checked above
		o.maskedLen[0] = strconv.Itoa(len(masked))
	}
	return o
}

// etagLen is the length of a quoted hex SHA-256.
const etagLen = 2 + 2*sha256.Size

// etagOf returns the header value *p holds, making it first from the
// SHA-256 of parts, the body's pieces, when it holds none.
func etagOf(p *atomic.Pointer[[1]string], parts ...[]byte) *[1]string {
	if v := p.Load(); v != nil {
		return v
	}
	h := sha256.New()
	for _, part := range parts {
		h.Write(part)
	}
	b := make([]byte, 0, etagLen)
	b = append(b, '"')
	b = hex.AppendEncode(b, h.Sum(nil))
	v := &[1]string{string(append(b, '"'))}
	if p.CompareAndSwap(nil, v) {
		return v
	}
	return p.Load()
}

// diff returns the run where b differs from a: a[:start] and a[end:] are
// b's first and last bytes, and patch is what b has in between. The
// common prefix and suffix do not overlap, in a or in b. Blocks of
// diffChunk bytes are compared first (bytes.Equal is vectorised), then
// single bytes: a byte loop was a tenth of the warm-up's CPU.
func diff(a, b []byte) (start, end int, patch []byte) {
	n := min(len(a), len(b))
	for start+diffChunk <= n && bytes.Equal(a[start:start+diffChunk], b[start:start+diffChunk]) {
		start += diffChunk
	}
	for start < n && a[start] == b[start] {
		start++
	}
	m, suffix := n-start, 0 // at most m bytes may be common to both ends
	for suffix+diffChunk <= m &&
		bytes.Equal(a[len(a)-suffix-diffChunk:len(a)-suffix], b[len(b)-suffix-diffChunk:len(b)-suffix]) {
		suffix += diffChunk
	}
	for suffix < m && a[len(a)-1-suffix] == b[len(b)-1-suffix] {
		suffix++
	}
	return start, len(a) - suffix, b[start : len(b)-suffix]
}

// diffChunk is the block diff compares at once.
const diffChunk = 32

// Full is the order as ingested.
func (o *Order) Full() View {
	etag := etagOf(&o.etag, o.Body)
	return View{Parts: [3][]byte{o.Body}, Len: len(o.Body), ETag: etag[0],
		ETagHeader: etag[:], LengthHeader: o.length[:]}
}

// Masked is the order with its personal data masked; false when the cache
// was built without a Mask.
func (o *Order) Masked() (View, bool) {
	if !o.hasMasked {
		return View{}, false
	}
	parts := [3][]byte{o.Body[:o.start], o.patch, o.Body[o.end:]}
	etag := etagOf(&o.maskedETag, parts[:]...)
	v := View{Parts: parts, ETag: etag[0], ETagHeader: etag[:], LengthHeader: o.maskedLen[:]}
	v.Len = int(o.start) + len(o.patch) + len(o.Body) - int(o.end)
	return v, true
}

// weight is what the order costs the local tier, in bytes: its bytes and
// the ETags (counted as made, whether a response has made them yet or
// not), plus the objects around them (the Order, the cache's node,
// the key, the header values, the allocator's rounding): with
// entryOverhead, within a few percent of the heap a warm-up of 100,000
// generated orders was measured to hold per order (1,974 bytes).
func (o *Order) weight(uid string) uint32 {
	n := len(o.Body) + len(o.patch) + len(uid) + 2*etagLen + entryOverhead
	return uint32(min(n, math.MaxUint32)) //nolint:gosec // bounded by min
}

// entryOverhead is the heap an entry costs besides its bytes.
const entryOverhead = 384

// Entry is one order as the tiers exchange it: its order_uid and its
// canonical JSON (model.Order.Canonical), the bytes served and cached.
type Entry struct {
	UID  string
	JSON []byte
	// Order is JSON decoded, when the store has it at hand (the warm-up's
	// pages are scanned from rows): the masked view is then made from it
	// (Options.MaskOrder) instead of decoding JSON again. May be nil.
	Order *model.Order
}

// Summary is one line of an order list (GET /orders): what identifies an
// order and what it cost, and nothing about the person who placed it.
type Summary struct {
	OrderUID    string    `json:"order_uid"`
	TrackNumber string    `json:"track_number"`
	DateCreated time.Time `json:"date_created"`
	Amount      int64     `json:"amount"`
	Currency    string    `json:"currency"`
	ItemCount   int       `json:"item_count"`
}

// Key returns the summary's place in the newest-first order.
func (s *Summary) Key() Key { return Key{DateCreated: s.DateCreated, OrderUID: s.OrderUID} }

// Filter selects orders by what people look them up with. A zero field
// does not filter; the set fields must all match.
type Filter struct {
	TrackNumber string // orders.track_number, exactly
	CustomerID  string // orders.customer_id, exactly
	Currency    string // payment.currency, exactly
	// CreatedFrom and CreatedTo bound date_created, half-open:
	// CreatedFrom <= date_created < CreatedTo. The zero time leaves that
	// side open.
	CreatedFrom, CreatedTo time.Time
}

// Key is an order's place in the newest-first order of a list:
// date_created, then order_uid (which is unique), both descending. A page
// resumes after the key of the previous page's last order, so orders
// stored meanwhile neither repeat nor push others off a page, as an offset
// would.
type Key struct {
	DateCreated time.Time
	OrderUID    string
}

// Query asks for one page of a list: the orders that match Filter, newest
// first, that come after After (nil: from the newest), at most Limit.
type Query struct {
	Filter
	After *Key
	Limit int
}

// Store is the database tier, the source of truth (package postgres).
type Store interface {
	// Get returns an order's canonical JSON, or an error wrapping
	// ErrNotFound when the database does not hold it.
	Get(ctx context.Context, uid string) ([]byte, error)
	// Recent calls fn with pages of at most batch of the n most recent
	// orders, newest first.
	Recent(ctx context.Context, n, batch int, fn func([]Entry) error) error
	// Search returns the summaries of the orders q selects, newest first:
	// at most q.Limit, each after q.After.
	Search(ctx context.Context, q Query) ([]Summary, error)
}

// Remote is the shared cache tier (package redis). Its errors are never
// fatal: the database answers instead.
type Remote interface {
	// Get returns an order's JSON; ErrMiss when the tier does not hold it,
	// ErrSkipped when it was not asked.
	Get(ctx context.Context, uid string) ([]byte, error)
	// SetMany stores orders, keeping any value already stored (both are
	// the canonical encoding). It may return ErrSkipped.
	SetMany(ctx context.Context, entries []Entry) error
	// Delete removes orders (erased ones). It may return ErrSkipped.
	Delete(ctx context.Context, uids []string) error
}

// Changes is what a batch the ingestor committed changed, as announced on
// its events channel: the order_uids now stored, and those erased.
type Changes struct {
	Stored []string
	Erased []string
}

// Invalidator is what the events channel drives (Tiered implements it;
// package redis subscribes and calls it).
type Invalidator interface {
	// Invalidate drops what the tiers remember about the changed orders:
	// the negative entries of stored ones, every copy of erased ones.
	Invalidate(ctx context.Context, c Changes)
	// Resync empties the in-process tiers: called on every (re)subscription,
	// since changes announced while not subscribed were missed.
	Resync()
}
