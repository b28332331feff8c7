package kafka

import (
	"time"

	"github.com/orderservice/orders/ingestor/ingest"
)

// collector gathers polled messages into batches: the messages it holds
// are a batch once there are size of them, or linger after the first one
// arrived. It is owned by the loop goroutine (and the rebalance callback,
// which runs on it inside Poll).
type collector struct {
	size   int
	linger time.Duration
	msgs   []ingest.Message
	due    time.Time // when the held messages are a batch; zero when none are held
}

func newCollector(size int, linger time.Duration) collector {
	return collector{size: max(size, 1), linger: linger}
}

// presize bounds the room a collector makes for a batch at once.
const presize = 4096

// add appends m; the first message held starts the linger.
func (c *collector) add(m ingest.Message, now time.Time) {
	if len(c.msgs) == 0 {
		c.due = now.Add(c.linger)
	}
	if c.msgs == nil {
		// Room for a batch at once (up to a few thousand messages, so that
		// a large BATCH_SIZE on a trickle does not cost megabytes per
		// message): growing it by appends copied every message about
		// twice, since take hands the whole array over.
		c.msgs = make([]ingest.Message, 0, min(c.size, presize))
	}
	c.msgs = append(c.msgs, m)
}

// full reports whether a whole batch is held: polling for more can wait.
func (c *collector) full() bool { return len(c.msgs) >= c.size }

// ready reports whether the held messages are a batch at now.
func (c *collector) ready(now time.Time) bool {
	return len(c.msgs) > 0 && (c.full() || !now.Before(c.due))
}

// take removes and returns the oldest messages held, at most a batch. The
// messages left over start a linger of their own.
func (c *collector) take(now time.Time) []ingest.Message {
	n := min(len(c.msgs), c.size)
	out := c.msgs[:n:n]
	rest := c.msgs[n:]
	c.msgs = nil
	if len(rest) > 0 {
		c.msgs = append(make([]ingest.Message, 0, max(min(c.size, presize), len(rest))), rest...)
	}
	c.due = time.Time{}
	if len(c.msgs) > 0 {
		c.due = now.Add(c.linger)
	}
	return out
}

// drop removes the messages of the partitions gone reports (revoked: they
// belong to the new owner now).
func (c *collector) drop(gone func(partition int32) bool) {
	kept := c.msgs[:0]
	for _, m := range c.msgs {
		if !gone(m.Partition) {
			kept = append(kept, m)
		}
	}
	c.msgs = kept
	if len(c.msgs) == 0 {
		c.due = time.Time{}
	}
}

// wait is how long a poll at now may block for more messages: at most
// limit, and not past the moment the held messages are due (at least a
// millisecond, since a zero timeout would not wait at all).
func (c *collector) wait(now time.Time, limit time.Duration) time.Duration {
	if c.due.IsZero() {
		return limit
	}
	return min(limit, max(c.due.Sub(now), time.Millisecond))
}
