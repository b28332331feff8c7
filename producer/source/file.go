package source

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/orderservice/orders/shared/model"
)

// maxReported caps how many invalid elements one error lists.
const maxReported = 10

// element is one value of the input and where it starts.
type element struct {
	data []byte
	line int
}

// File reads the whole of r (named name in errors) and yields one message per
// order. The input may be a JSON array of orders, a single order object, or
// a stream of objects (NDJSON, or objects one after the other).
//
// Unless raw is set, every element is decoded and validated with the model's
// rules before File returns, so that an invalid element stops the run before
// the first message is sent instead of leaving a half-sent file. Valid
// elements are sent as the bytes they were in the file.
//
// With raw, elements are sent as they are, keyed by their order_uid when one
// can be read; input that does not parse as JSON is split into lines.
func File(r io.Reader, name string, raw bool) (Source, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	elems, err := split(data)
	if err != nil {
		if !raw {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		elems = lines(data)
	}
	if len(elems) == 0 {
		return nil, fmt.Errorf("%s: no orders in the input", name)
	}

	msgs := make([]Message, 0, len(elems))
	var problems []string
	for i, e := range elems {
		if raw {
			msgs = append(msgs, Message{Key: rawKey(e.data), Value: e.data})
			continue
		}
		o, err := decodeValid(e.data)
		if err != nil {
			if len(problems) < maxReported {
				problems = append(problems, fmt.Sprintf("order #%d (line %d%s): %v", i+1, e.line, uidNote(e.data), err))
			} else if len(problems) == maxReported {
				problems = append(problems, "…")
			}
			continue
		}
		msgs = append(msgs, Message{Key: []byte(o.OrderUID), Value: e.data, Order: o})
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%s: %d of %d orders are invalid (nothing was sent; use --raw to send them anyway):\n  %s",
			name, len(elems)-len(msgs), len(elems), strings.Join(problems, "\n  "))
	}
	return &slice{msgs: msgs}, nil
}

// decodeValid applies the ingestor's checks: strict decoding, then validation.
func decodeValid(data []byte) (*model.Order, error) {
	o, err := model.Decode(data)
	if err != nil {
		return nil, err
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	return o, nil
}

// split cuts data into its JSON values: the elements of a top-level array,
// or the top-level values themselves.
func split(data []byte) ([]element, error) {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	dec := json.NewDecoder(bytes.NewReader(data))
	lc := &lineCounter{data: data, line: 1}
	var out []element
	if len(trimmed) > 0 && trimmed[0] == '[' {
		if _, err := dec.Token(); err != nil {
			return nil, err
		}
		for dec.More() {
			start := dec.InputOffset()
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				return nil, fmt.Errorf("array element #%d (line %d): invalid JSON: %w", len(out)+1, lc.at(start), err)
			}
			out = append(out, element{data: v, line: lc.at(start)})
		}
		if _, err := dec.Token(); err != nil {
			return nil, fmt.Errorf("after element #%d: invalid JSON: %w", len(out), err)
		}
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("unexpected data after the JSON array")
		}
		return out, nil
	}
	for {
		start := dec.InputOffset()
		var v json.RawMessage
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("order #%d (line %d): invalid JSON: %w", len(out)+1, lc.at(start), err)
		}
		out = append(out, element{data: v, line: lc.at(start)})
	}
}

// lines splits data into its non-blank lines, for --raw input that is not
// JSON at all.
func lines(data []byte) []element {
	var out []element
	for i, l := range bytes.Split(data, []byte("\n")) {
		l = bytes.TrimSuffix(l, []byte("\r"))
		if len(bytes.TrimSpace(l)) == 0 {
			continue
		}
		out = append(out, element{data: l, line: i + 1})
	}
	return out
}

// lineCounter finds the lines of increasing offsets into data, counting
// each newline once: counting from the start for every element made
// reading a file quadratic in its size.
type lineCounter struct {
	data []byte
	pos  int // data[:pos] holds line-1 newlines
	line int
}

// at returns the 1-based line of the first value byte at or after off (the
// decoder's offset points before separators and white space). Offsets must
// not decrease from one call to the next.
func (c *lineCounter) at(off int64) int {
	i := int(off)
	for i < len(c.data) && strings.IndexByte(" \t\r\n,", c.data[i]) >= 0 {
		i++
	}
	i = min(i, len(c.data))
	if i > c.pos {
		c.line += bytes.Count(c.data[c.pos:i], []byte("\n"))
		c.pos = i
	}
	return c.line
}

// rawKey returns the element's order_uid if it is an object with a string
// one, else nil (Kafka then spreads the messages over partitions).
func rawKey(data []byte) []byte {
	var v struct {
		OrderUID any `json:"order_uid"`
	}
	if json.Unmarshal(data, &v) != nil {
		return nil
	}
	if s, ok := v.OrderUID.(string); ok && s != "" {
		return []byte(s)
	}
	return nil
}

// uidNote names the element's order_uid in an error, when it has one.
func uidNote(data []byte) string {
	if k := rawKey(data); k != nil {
		return fmt.Sprintf(", order_uid %q", k)
	}
	return ""
}
