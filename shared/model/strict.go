package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// shape is the JSON shape of a known value: an object with known fields, an
// array of elements, or (neither) a scalar.
type shape struct {
	names  []string       // object: field names, in struct order
	index  map[string]int // object: name -> position in names and fields
	fields []*shape
	elem   *shape // array: the element shape
}

// orderShape mirrors Order's JSON keys, built once from the struct tags so
// that it cannot drift from the type.
var orderShape = shapeOf(reflect.TypeFor[Order]())

func shapeOf(t reflect.Type) *shape {
	switch {
	case t == reflect.TypeFor[time.Time]():
		return &shape{}
	case t.Kind() == reflect.Struct:
		s := &shape{index: map[string]int{}}
		for f := range t.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			s.index[name] = len(s.names)
			s.names = append(s.names, name)
			s.fields = append(s.fields, shapeOf(f.Type))
		}
		if len(s.names) > 64 {
			panic("model: more than 64 fields in " + t.String())
		}
		return s
	case t.Kind() == reflect.Slice:
		return &shape{elem: shapeOf(t.Elem())}
	default:
		return &shape{}
	}
}

// errScan means checkKeys met something a successful json.Unmarshal cannot
// have accepted; it guards the scanner, not the input.
var errScan = errors.New("unexpected JSON structure")

// checkKeys closes three gaps encoding/json leaves open. It matches keys
// case-insensitively ("ORDER_UID" would fill order_uid), lets the last of
// duplicate keys win, and treats null as "leave the zero value" (so
// "amount": null would read as 0). Each makes the stored order differ from
// what the sender meant, so each is an error here.
//
// data must already have decoded without error, so it is one well-formed
// JSON value; the scanner relies on that and allocates nothing on the
// common path.
func checkKeys(data []byte) error {
	s := scanner{data: data}
	return s.value(orderShape)
}

type scanner struct {
	data []byte
	pos  int
	// path is where the scanner is inside known fields; it is rendered
	// only for an error, so that a good order costs no allocations.
	path []segment
}

// segment is one step of a path: a field name or, if name is "", an index.
type segment struct {
	name  string
	index int
}

func (s *scanner) fail(last, format string, args ...any) error {
	var b strings.Builder
	for _, seg := range s.path {
		if seg.name == "" {
			b.WriteString("[" + strconv.Itoa(seg.index) + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(seg.name)
	}
	if last != "" {
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(last)
	}
	return fmt.Errorf("%s: "+format, append([]any{b.String()}, args...)...)
}

func (s *scanner) ws() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// value checks the value at pos against sh (nil: unknown, anything goes).
func (s *scanner) value(sh *shape) error {
	s.ws()
	if s.pos >= len(s.data) {
		return errScan
	}
	switch c := s.data[s.pos]; c {
	case '{':
		return s.object(sh)
	case '[':
		return s.array(sh)
	case '"':
		_, _, err := s.str()
		return err
	case 'n':
		if sh != nil {
			return s.fail("", "must not be null")
		}
		s.pos += len("null")
	default: // true, false, a number
		for s.pos < len(s.data) && !strings.ContainsRune(",}] \t\n\r", rune(s.data[s.pos])) {
			s.pos++
		}
	}
	return nil
}

func (s *scanner) object(sh *shape) error {
	s.pos++ // {
	if sh != nil && sh.index == nil {
		sh = nil // an object where a scalar belongs: json.Unmarshal would have failed
	}
	var seen uint64
	for {
		s.ws()
		if s.pos >= len(s.data) {
			return errScan
		}
		switch s.data[s.pos] {
		case '}':
			s.pos++
			return nil
		case ',':
			s.pos++
			continue
		}
		raw, escaped, err := s.str()
		if err != nil {
			return err
		}
		s.ws()
		if s.pos >= len(s.data) || s.data[s.pos] != ':' {
			return errScan
		}
		s.pos++
		if sh == nil {
			if err := s.value(nil); err != nil {
				return err
			}
			continue
		}
		i, known := sh.index[string(raw)] // no allocation
		if escaped {
			i, known = sh.index[unescape(raw)]
		}
		if !known {
			key := string(raw)
			if escaped {
				key = unescape(raw)
			}
			for _, name := range sh.names {
				if strings.EqualFold(name, key) {
					return s.fail(strconv.Quote(key), "field names are case-sensitive; want %q", name)
				}
			}
			if err := s.value(nil); err != nil {
				return err
			}
			continue
		}
		if seen&(1<<i) != 0 {
			return s.fail(sh.names[i], "duplicate field")
		}
		seen |= 1 << i
		s.path = append(s.path, segment{name: sh.names[i]})
		if err := s.value(sh.fields[i]); err != nil {
			return err
		}
		s.path = s.path[:len(s.path)-1]
	}
}

func (s *scanner) array(sh *shape) error {
	s.pos++ // [
	var elem *shape
	if sh != nil {
		elem = sh.elem
	}
	for i := 0; ; {
		s.ws()
		if s.pos >= len(s.data) {
			return errScan
		}
		switch s.data[s.pos] {
		case ']':
			s.pos++
			return nil
		case ',':
			s.pos++
			continue
		}
		if elem == nil {
			if err := s.value(nil); err != nil {
				return err
			}
			continue
		}
		s.path = append(s.path, segment{index: i})
		if err := s.value(elem); err != nil {
			return err
		}
		s.path = s.path[:len(s.path)-1]
		i++
	}
}

// str scans the string at pos and returns its raw contents (between the
// quotes) and whether they contain escapes.
func (s *scanner) str() (raw []byte, escaped bool, err error) {
	if s.pos >= len(s.data) || s.data[s.pos] != '"' {
		return nil, false, errScan
	}
	start := s.pos + 1
	for i := start; i < len(s.data); i++ {
		switch s.data[i] {
		case '\\':
			escaped = true
			i++
		case '"':
			s.pos = i + 1
			return s.data[start:i], escaped, nil
		}
	}
	return nil, false, errScan
}

// unescape decodes the contents of a JSON string that has escapes; it is
// only called for such keys, which real feeds do not send.
func unescape(raw []byte) string {
	var key string
	if err := json.Unmarshal(append(append([]byte{'"'}, raw...), '"'), &key); err != nil {
		return string(raw) // cannot happen: json.Unmarshal has accepted it
	}
	return key
}
