package ingest

import "time"

// Message is one consumed Kafka record, independent of the client library.
type Message struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   []Header
	Timestamp time.Time
}

// Header is a Kafka record header.
type Header struct {
	Key   string
	Value []byte
}

// Reason is why a message was dead-lettered: the value of the DLQ record's
// "reason" header and of the metrics' "reason" label.
type Reason string

// Dead-letter reasons.
const (
	ReasonMalformed   Reason = "malformed"    // not a JSON order (or empty)
	ReasonInvalid     Reason = "invalid"      // an order that fails validation
	ReasonTooLarge    Reason = "too_large"    // above the configured size limit
	ReasonConflict    Reason = "conflict"     // uid already stored with other content
	ReasonDBPermanent Reason = "db_permanent" // refused by a database constraint
)

// DeadLetter is a message to publish on the dead-letter topic.
type DeadLetter struct {
	Msg    *Message
	Reason Reason
	// Error is the full error text (every failing field, the constraint).
	Error string
	// Time is when the message was dead-lettered.
	Time time.Time
}
