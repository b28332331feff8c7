package source

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/orderservice/orders/shared/model"
	"github.com/orderservice/orders/shared/ordergen"
)

// Class is one kind of bad message and the dead-letter reason the ingestor
// gives it.
type Class struct {
	Name   string
	Reason string
}

// Classes lists every kind of bad message, in the order Bad cycles through
// them. Empty input is dead-lettered as malformed: the ingestor's reasons
// have no separate class for it.
var Classes = []Class{
	{"malformed", "malformed"},       // JSON syntax error
	{"truncated", "malformed"},       // a valid order cut in half
	{"wrong_types", "malformed"},     // payment.amount as a string
	{"missing_fields", "invalid"},    // no delivery, items or date_created
	{"invalid_values", "invalid"},    // bad e-mail, currency and sale
	{"inconsistent_sums", "invalid"}, // amount != goods_total + delivery + fee
	{"too_large", "too_large"},       // over model.DefaultMaxSize
	{"empty", "malformed"},           // zero bytes
	{"conflict", "conflict"},         // a sent order_uid with other content
}

// TooLargeSize is the size of the too_large message: just over the decoder's
// limit (1 KiB over, not more, so that the ingestor's dead-letter producer,
// whose message.max.bytes leaves 64 KiB above the limit for key and headers,
// can still forward it). Sending it needs the producer's message.max.bytes
// above it (the producer sets that) and, unless compression shrinks it, the
// broker's and topic's max.message.bytes too.
const TooLargeSize = model.DefaultMaxSize + 1<<10

// Corrupter makes bad messages, one class after another. It builds them
// from fresh generated orders and remembers the last valid order sent, whose
// order_uid a conflicting duplicate reuses.
type Corrupter struct {
	gen  *ordergen.Generator
	next int
	last *model.Order
}

// NewCorrupter returns a Corrupter that takes its orders from gen.
func NewCorrupter(gen *ordergen.Generator) *Corrupter {
	return &Corrupter{gen: gen}
}

// Seen records a message that is about to be sent, so that a later conflict
// can reuse its order_uid.
func (c *Corrupter) Seen(m Message) {
	if m.Order != nil && m.Header(HeaderBadClass) == "" {
		c.last = m.Order
	}
}

// Make returns the next bad message. For a conflict when no valid order has
// been sent yet, it returns a valid original first and the conflicting
// duplicate second: both have the same key, so they land in one partition in
// that order.
func (c *Corrupter) Make() ([]Message, error) {
	class := Classes[c.next%len(Classes)]
	c.next++
	if class.Name == "conflict" {
		var out []Message
		if c.last == nil {
			orig, err := orderMessage(c.gen.Order())
			if err != nil {
				return nil, err
			}
			c.last = orig.Order
			out = append(out, orig)
		}
		m, err := conflicting(c.last)
		if err != nil {
			return nil, err
		}
		return append(out, mark(m, class)), nil
	}
	m, err := damaged(class.Name, c.gen.Order())
	if err != nil {
		return nil, err
	}
	return []Message{mark(m, class)}, nil
}

func mark(m Message, c Class) Message {
	m.Headers = append(m.Headers,
		Header{Key: HeaderBadClass, Value: []byte(c.Name)},
		Header{Key: HeaderExpectedReason, Value: []byte(c.Reason)})
	m.Order = nil
	return m
}

// damaged returns o broken in the way class names, keyed by o's uid.
func damaged(class string, o *model.Order) (Message, error) {
	canon, err := o.Canonical()
	if err != nil {
		return Message{}, err
	}
	var value []byte
	switch class {
	case "malformed":
		// {"order_uid":"…",,"track_number":… : a doubled comma.
		value = bytes.Replace(canon, []byte(`","`), []byte(`",,"`), 1)
	case "truncated":
		value = canon[:len(canon)/2]
	case "wrong_types":
		value, err = editJSON(canon, func(m map[string]any) {
			pay := m["payment"].(map[string]any)
			pay["amount"] = pay["amount"].(json.Number).String()
		})
	case "missing_fields":
		value, err = editJSON(canon, func(m map[string]any) {
			delete(m, "delivery")
			delete(m, "items")
			delete(m, "date_created")
		})
	case "invalid_values":
		bad := *o
		bad.Items = append([]model.Item(nil), o.Items...)
		bad.Delivery.Email = "not-an-email"
		bad.Payment.Currency = "DOLLARS"
		bad.Items[0].Sale = 150
		value, err = bad.Canonical()
	case "inconsistent_sums":
		bad := *o
		bad.Payment.Amount += 100
		value, err = bad.Canonical()
	case "too_large":
		// An unknown field (the decoder ignores those) pads a valid order
		// past the limit, so that only its size is wrong.
		pad := TooLargeSize - len(canon) - len(`,"padding":""`)
		value = make([]byte, 0, TooLargeSize)
		value = append(value, canon[:len(canon)-1]...)
		value = append(value, `,"padding":"`...)
		value = append(value, strings.Repeat("x", max(pad, 0))...)
		value = append(value, `"}`...)
	case "empty":
		value = []byte{}
	default:
		return Message{}, fmt.Errorf("unknown bad-message class %q", class)
	}
	if err != nil {
		return Message{}, fmt.Errorf("make %s message: %w", class, err)
	}
	return Message{Key: []byte(o.OrderUID), Value: value}, nil
}

// conflicting returns a valid order with orig's uid and different content.
func conflicting(orig *model.Order) (Message, error) {
	c := *orig
	c.Items = append([]model.Item(nil), orig.Items...)
	addr := c.Delivery.Address
	if len(addr) > model.MaxStringLen-len(" (amended)") {
		addr = addr[:model.MaxStringLen/2]
	}
	c.Delivery.Address = addr + " (amended)"
	c.CustomerID = "conflict-" + strconv.Itoa(len(orig.CustomerID))
	return orderMessage(&c)
}

// editJSON decodes an object, lets edit change it, and encodes it again.
func editJSON(data []byte, edit func(map[string]any)) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	edit(m)
	return json.Marshal(m)
}

// BadSource yields k bad messages (plus the valid original a conflict
// needs when no order was sent before it).
type BadSource struct {
	c       *Corrupter
	k, made int
	pending []Message
}

// Bad yields k bad messages cycling through Classes; k >= len(Classes)
// covers every class.
func Bad(c *Corrupter, k int) *BadSource { return &BadSource{c: c, k: k} }

// Next returns the next message, or io.EOF after the k-th bad one.
func (b *BadSource) Next() (Message, error) {
	if len(b.pending) == 0 {
		if b.made >= b.k {
			return Message{}, io.EOF
		}
		msgs, err := b.c.Make()
		if err != nil {
			return Message{}, err
		}
		b.made++
		b.pending = msgs
	}
	m := b.pending[0]
	b.pending = b.pending[1:]
	b.c.Seen(m)
	return m, nil
}

// Len counts the k bad messages and, when a conflict is among them and no
// valid order was sent before, its original.
func (b *BadSource) Len() int {
	n := b.k
	if b.c.last == nil && b.c.next == 0 && b.k >= len(Classes) {
		n++
	}
	return n
}

// Mixed interleaves bad messages into another source's stream.
type Mixed struct {
	good    Source
	c       *Corrupter
	rate    float64
	rng     *rand.Rand
	pending []Message
}

// Mix yields good's messages with bad ones mixed in: before each good
// message, with probability rate, a bad one comes instead, so that about
// that fraction of the stream is bad. Every good message is still sent.
func Mix(good Source, c *Corrupter, rate float64, rng *rand.Rand) *Mixed {
	return &Mixed{good: good, c: c, rate: rate, rng: rng}
}

// Next returns the next message, or io.EOF when good is exhausted.
func (m *Mixed) Next() (Message, error) {
	if len(m.pending) == 0 && m.rng.Float64() < m.rate {
		msgs, err := m.c.Make()
		if err != nil {
			return Message{}, err
		}
		m.pending = msgs
	}
	var msg Message
	if len(m.pending) > 0 {
		msg = m.pending[0]
		m.pending = m.pending[1:]
	} else {
		var err error
		if msg, err = m.good.Next(); err != nil {
			return Message{}, err
		}
	}
	m.c.Seen(msg)
	return msg, nil
}
