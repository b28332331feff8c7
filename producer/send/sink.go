package send

import (
	"context"
	"time"

	"github.com/orderservice/orders/producer/source"
)

// Stats counts messages: handed to the sink, confirmed delivered, failed.
// Queued - Delivered - Failed are still in flight.
type Stats struct {
	Queued    int64
	Delivered int64
	Failed    int64
	// Errors holds the distinct delivery errors seen (at most a few), with
	// how many messages each failed.
	Errors []ErrorCount
}

// ErrorCount is one distinct delivery error and how often it occurred.
type ErrorCount struct {
	Err   string
	Count int64
	// Key is the key of the first message that failed with Err, to find
	// it again.
	Key string
}

// Sink is where messages go.
type Sink interface {
	// Send hands over one message. It blocks while the sink's buffer is
	// full and returns early when ctx ends.
	Send(ctx context.Context, m source.Message) error
	// Stats returns the counts so far; safe to call concurrently with Send.
	Stats() Stats
	// Close waits up to timeout for messages in flight, counts those still
	// undelivered as failed, releases resources and returns the final counts.
	Close(timeout time.Duration) Stats
}
