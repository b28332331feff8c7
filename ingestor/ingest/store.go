package ingest

import (
	"context"
	"crypto/sha256"
	"errors"

	"github.com/orderservice/orders/shared/model"
)

// Store writes orders durably. Write returns one WriteResult per order, in
// order; the uids are distinct (the pipeline resolves repeats within a
// batch). A nil error means every order is resolved. A non-nil error is
// transient (or the context's): the orders left Pending are written again
// later; the others are resolved and durable.
type Store interface {
	Write(ctx context.Context, orders []StoredOrder) ([]WriteResult, error)
}

// StoredOrder is an order as the Store keeps it: the order and the SHA-256
// of its canonical JSON, which tells a redelivered copy (a duplicate) from
// another order stored under the same uid (a conflict).
type StoredOrder struct {
	*model.Order
	SHA256 [sha256.Size]byte
}

// WriteStatus is what became of one order of a Write.
type WriteStatus int

const (
	// Pending means the order was not resolved: a transient failure
	// interrupted the write. Write it again later.
	Pending WriteStatus = iota
	// Inserted means the order was stored by this write.
	Inserted
	// Duplicate means an identical order (same content hash) was already
	// stored.
	Duplicate
	// Conflict means an order with the same uid but other content was
	// already stored; it was left unchanged.
	Conflict
	// Rejected means the store refused the order for a permanent reason
	// (WriteResult.Err says which); the other orders were stored.
	Rejected
)

func (s WriteStatus) String() string {
	return [...]string{"pending", "inserted", "duplicate", "conflict", "rejected"}[s]
}

// WriteResult is the outcome of one order of a Write.
type WriteResult struct {
	Status WriteStatus
	// Err is why a Rejected order was refused: it wraps ErrPermanent.
	Err error
}

// ErrPermanent is wrapped by the error of an order the store refused for a
// reason that retrying cannot fix (a constraint it violates). Its text
// becomes the dead letter's "error" header, so an adapter writes it from
// what names the rule (the constraint, the table), never from the refused
// values: they may be personal data.
var ErrPermanent = errors.New("refused permanently by the store")

// Cache writes stored orders to the cache the reader serves from. Set
// returns how many entries failed and why; failures never fail a batch.
type Cache interface {
	Set(ctx context.Context, entries []CacheEntry) (failed int, err error)
}

// CacheEntry is one stored order to cache: its uid and canonical JSON.
type CacheEntry struct {
	UID       string
	Canonical []byte
}

// DeadLetters publishes dead letters and waits for their acknowledgement.
// delivered[i] reports whether letters[i] is durably written; err is
// non-nil when some are not.
type DeadLetters interface {
	Send(ctx context.Context, letters []DeadLetter) (delivered []bool, err error)
}
