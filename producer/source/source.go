package source

import (
	"io"

	"github.com/orderservice/orders/shared/model"
)

// Header is one Kafka record header.
type Header struct {
	Key   string
	Value []byte
}

// Headers that mark a deliberately bad message, so that tests and demos can
// match what lands in the dead-letter topic with what was sent.
const (
	// HeaderBadClass names the kind of damage (see Classes).
	HeaderBadClass = "bad-class"
	// HeaderExpectedReason is the dead-letter reason the ingestor should
	// give the message: malformed, invalid, too_large or conflict.
	HeaderExpectedReason = "expected-reason"
)

// Message is one record to send: its key (the order_uid where there is one),
// its value and headers.
type Message struct {
	Key     []byte
	Value   []byte
	Headers []Header
	// Order is the decoded, valid order the value encodes, or nil when the
	// value is not a valid order (bad messages, --raw input). It never
	// leaves the process; the bad-message maker uses it to build conflicting
	// duplicates of orders already sent.
	Order *model.Order
}

// Header returns the value of the header named key, or "" if there is none.
func (m Message) Header(key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// Source yields messages until it returns io.EOF.
type Source interface {
	Next() (Message, error)
}

// Sized is implemented by sources that know how many messages they will
// yield, for the progress bar.
type Sized interface {
	Len() int
}

// Len returns how many messages src will yield, or -1 when unknown.
func Len(src Source) int {
	if s, ok := src.(Sized); ok {
		return s.Len()
	}
	return -1
}

// slice yields a fixed list of messages.
type slice struct {
	msgs []Message
	i    int
}

func (s *slice) Next() (Message, error) {
	if s.i >= len(s.msgs) {
		return Message{}, io.EOF
	}
	m := s.msgs[s.i]
	s.msgs[s.i] = Message{} // let sent messages be collected
	s.i++
	return m, nil
}

func (s *slice) Len() int { return len(s.msgs) }

// orderMessage encodes a valid order as a message keyed by its uid.
func orderMessage(o *model.Order) (Message, error) {
	b, err := o.Canonical()
	if err != nil {
		return Message{}, err
	}
	return Message{Key: []byte(o.OrderUID), Value: b, Order: o}, nil
}
