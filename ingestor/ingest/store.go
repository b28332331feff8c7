package ingest

import (
	"context"
	"crypto/sha256"
	"errors"

	"github.com/orderservice/orders/shared/model"
)

// Store writes orders durably and erases them.
//
// Write returns one WriteResult per order, in order; the uids are distinct
// (the pipeline resolves repeats within a batch). An order whose uid was
// erased is not stored: it is reported Erased. A nil error means every
// order is resolved. A non-nil error is transient (or the context's): the
// orders left Pending are written again later; the others are resolved and
// durable.
//
// Erase deletes the orders of erasures (distinct uids) and records each
// uid as erased (its HashUID, with where the tombstone was), so that Write
// refuses it from then on, in this process and every other one; erasing a
// uid that is not stored, or erased already, is harmless and recorded all
// the same. It is all or nothing: a non-nil error is transient and nothing
// was erased. Writes and erasures of the same uid in concurrent calls take
// effect one after the other, never interleaved.
type Store interface {
	Write(ctx context.Context, orders []StoredOrder) ([]WriteResult, error)
	Erase(ctx context.Context, erasures []Erasure) ([]EraseResult, error)
}

// Erasure is one order to erase, named by a tombstone: the order_uid and
// where the tombstone was (the audit record keeps it).
type Erasure struct {
	UID       string
	Topic     string
	Partition int32
	Offset    int64
}

// EraseResult is what one Erasure found.
type EraseResult struct {
	// Deleted reports that an order was stored and is now deleted.
	Deleted bool
	// Repeated reports that the uid was erased already.
	Repeated bool
}

// HashUID is how an erased uid is remembered and logged: the SHA-256 of
// its bytes. The uid alone identifies nobody, but whoever holds the erased
// orders' uids (a shop's records) should not find them in the ingestor's
// logs and tables next to the fact that they were erased.
func HashUID(uid string) [sha256.Size]byte { return sha256.Sum256([]byte(uid)) }

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
	// Erased means the order's uid was erased: the order is not stored.
	Erased
)

func (s WriteStatus) String() string {
	return [...]string{"pending", "inserted", "duplicate", "conflict", "rejected", "erased"}[s]
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

// Cache is the cache the readers serve from, and the channel on which
// they hear what changed.
//
// Set writes stored orders; it returns how many entries failed and why.
// Its failures never fail a batch: the readers fall back to the database.
// Delete removes erased orders. Announce tells every reader what a batch
// changed, so that each drops what it remembers about those uids (a "not
// found" answer, an erased order's copy).
type Cache interface {
	Set(ctx context.Context, entries []CacheEntry) (failed int, err error)
	Delete(ctx context.Context, uids []string) error
	Announce(ctx context.Context, c Changes) error
}

// Changes is what a committed batch changed: the uids now stored (new or
// already there) and those erased.
type Changes struct {
	Stored []string
	Erased []string
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
