package kafka

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/orderservice/orders/ingestor/ingest"
)

// flight is a batch being committed on a goroutine of its own.
type flight struct {
	batch *ingest.Batch
	done  chan struct{} // closed when Commit returned
	err   error         // Commit's error, read after done
	// failing is true while Commit waits out a transient failure.
	failing atomic.Bool
	// exclusive is set for a batch that must fly alone (it erases).
	exclusive bool
}

// startFlight commits b with h on its own goroutine. Its WaitFunc only
// sleeps and marks the flight failing: the loop goroutine, which alone
// drives the consumer, pauses fetching while any flight is failing and
// keeps polling so that the member stays in the group.
func startFlight(ctx context.Context, h Handler, b *ingest.Batch) *flight {
	f := &flight{batch: b, done: make(chan struct{})}
	go func() {
		defer close(f.done)
		f.err = h.Commit(ctx, b, func(ctx context.Context, d time.Duration) error {
			f.failing.Store(true)
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-t.C:
				return nil
			}
		})
		f.failing.Store(false)
	}()
	return f
}

func (f *flight) isDone() bool {
	select {
	case <-f.done:
		return true
	default:
		return false
	}
}

// inOrder is the in-order offset queue: the flights in consumption order,
// handed over (for their offsets to be stored) only as a prefix of
// finished ones, so that a batch finishing early waits for every earlier
// one. Its methods are called by the loop goroutine only.
type inOrder struct{ flights []*flight }

func (q *inOrder) add(f *flight) { q.flights = append(q.flights, f) }

func (q *inOrder) len() int { return len(q.flights) }

// head is the oldest flight, or nil.
func (q *inOrder) head() *flight {
	if len(q.flights) == 0 {
		return nil
	}
	return q.flights[0]
}

// awaitHead waits until the oldest flight finishes, at most limit (0: no
// limit). It returns at once when there is none.
func (q *inOrder) awaitHead(limit time.Duration) {
	head := q.head()
	if head == nil {
		return
	}
	if limit <= 0 {
		<-head.done
		return
	}
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-head.done:
	case <-t.C:
	}
}

// finished removes and returns the leading flights whose Commit returned,
// oldest first, up to and including the first that failed: a flight that
// finished while an older one is still running stays until that one is done.
func (q *inOrder) finished() []*flight {
	n := 0
	for n < len(q.flights) && q.flights[n].isDone() {
		n++
		if q.flights[n-1].err != nil {
			break
		}
	}
	out := q.flights[:n:n]
	q.flights = q.flights[n:]
	return out
}

// exclusive reports whether a flight that must fly alone is in flight.
func (q *inOrder) exclusive() bool {
	for _, f := range q.flights {
		if f.exclusive {
			return true
		}
	}
	return false
}

// failing reports whether some flight is retrying a transient failure.
func (q *inOrder) failing() bool {
	for _, f := range q.flights {
		if f.failing.Load() {
			return true
		}
	}
	return false
}

// abandon waits for every remaining flight to return (they hold database
// connections; their context is cancelled by then, or they finish) and
// drops them without storing anything. It returns how many there were.
func (q *inOrder) abandon() int {
	n := len(q.flights)
	for _, f := range q.flights {
		<-f.done
	}
	q.flights = nil
	return n
}
