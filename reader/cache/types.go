package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
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

// View is one encoding of an order as it is served: its JSON and its
// strong ETag (quoted, the hex SHA-256 of the bytes).
type View struct {
	Body []byte
	ETag string
	// Header values computed once per cached order rather than per
	// response: an http.Header value each ([]string), never modified.
	ETagHeader, LengthHeader []string
}

// NewView computes the ETag of body.
func NewView(body []byte) View {
	sum := sha256.Sum256(body)
	etag := `"` + hex.EncodeToString(sum[:]) + `"`
	return View{Body: body, ETag: etag, ETagHeader: []string{etag}, LengthHeader: []string{strconv.Itoa(len(body))}}
}

// Order is an order as the cache holds it: the canonical JSON as ingested
// (the embedded View; its ETag is orders.content_sha256) and the masked
// view for callers that may not see personal data, both prepared once
// when the order enters the cache.
type Order struct {
	View
	// Masked is the order with its personal data masked (Options.Mask);
	// nil when the cache was built without a Mask.
	Masked *View
}

// NewOrder is an order of body alone, without a masked view.
func NewOrder(body []byte) *Order { return &Order{View: NewView(body)} }

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
