package ingest

import "time"

// Message is one consumed Kafka record, independent of the client library.
// Value is nil for a tombstone (a record whose value is null), and never
// nil for a record with an empty value: the adapter keeps the two apart.
type Message struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   []Header
	Timestamp time.Time
}

// Tombstone reports whether m is a tombstone: a null value, which erases
// the order whose order_uid is the key.
func (m *Message) Tombstone() bool { return m.Value == nil }

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
	ReasonErased      Reason = "erased"       // an order whose uid was erased by a tombstone
)

// DeadLetter is a message to publish on the dead-letter topic.
type DeadLetter struct {
	Msg    *Message
	Reason Reason
	// Error is the full error text (every failing field, the constraint).
	Error string
	// Time is when the message was dead-lettered.
	Time time.Time
	// DropValue, when set, says why the record goes without the original
	// value (the "value_dropped" header): an erased order's content must
	// not outlive its erasure in another topic.
	DropValue string
}
