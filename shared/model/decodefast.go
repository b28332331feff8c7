package model

import (
	"bytes"
	"encoding/json"
	"time"
)

// decodeFast decodes the common order without reflection: one pass over
// data that fills the struct directly, every string a substring of one copy
// of the input (one allocation for all of them). It is a shortcut, not a
// second definition of the format: it handles only what it can decode
// exactly as the strict path (encoding/json, then checkKeys) would, and
// reports false on anything else, which the caller then hands to the
// strict path to accept or to explain. So when it returns an order, the
// strict path would have returned an equal one, and every error still comes
// from the strict path, with its texts.
//
// What makes it give up: any syntax error, a wrong JSON type or null for a
// known field, a number that is not an int64 integer for an int64 field, a
// date_created that time.Time refuses, a known key repeated, an unknown key
// equal to a known one but for case, a key with escapes, or nesting deeper
// than maxFastDepth in an unknown value. Escaped string values are
// unescaped by encoding/json itself. data is what Decode checks first:
// trimmed, valid UTF-8, starting with '{'. The tests check the
// equivalence (checkFastAgrees) on every decoding test's input and on
// FuzzDecode's.
//
// Before it, decoding was about half of the ingestor's CPU per order
// (encoding/json's reflection and its allocation of every field, and
// checkKeys' second pass over the input).
//
// canonical reports whether data is already the order's canonical encoding
// (Order.Canonical), as the producer sends it: no whitespace, every field
// in its place and no other, strings and numbers written as Canonical
// writes them. The decoder notices as it goes, for the cost of a few
// comparisons, where encoding again would cost a quarter of the work.
func decodeFast(data []byte) (o *Order, canonical, ok bool) {
	d := fastDecoder{data: data, s: string(data), canonical: true}
	o = new(Order)
	if !d.order(o) {
		return nil, false, false
	}
	d.ws()
	if d.pos != len(d.data) {
		return nil, false, false
	}
	o.DateCreated = o.DateCreated.Truncate(TimePrecision)
	return o, d.canonical, true
}

// maxFastDepth bounds the nesting of unknown values that decodeFast
// skips; deeper ones go to the strict path (encoding/json's own limit is
// 10,000).
const maxFastDepth = 64

type fastDecoder struct {
	data []byte
	s    string // data as a string: decoded strings are substrings of it
	pos  int
	// canonical is cleared by anything Canonical would write otherwise.
	canonical bool
}

func (d *fastDecoder) ws() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
			d.canonical = false
		default:
			return
		}
	}
}

// member reads up to the value of an object's next member: the separator
// (none before the first), the key and the colon. more is false at the
// object's closing brace, which it consumes. The opening brace must have
// been consumed. A key with escapes is refused.
func (d *fastDecoder) member(first bool) (key []byte, more, ok bool) {
	d.ws()
	if d.pos >= len(d.data) {
		return nil, false, false
	}
	switch c := d.data[d.pos]; {
	case c == '}':
		d.pos++
		return nil, false, true
	case !first && c == ',':
		d.pos++
		d.ws()
	case !first:
		return nil, false, false
	}
	if d.pos >= len(d.data) || d.data[d.pos] != '"' {
		return nil, false, false
	}
	start := d.pos + 1
	i := start
	for ; i < len(d.data); i++ {
		c := d.data[i]
		if c == '"' {
			break
		}
		if c == '\\' || c < 0x20 {
			return nil, false, false
		}
	}
	if i >= len(d.data) {
		return nil, false, false
	}
	key = d.data[start:i]
	d.pos = i + 1
	d.ws()
	if d.pos >= len(d.data) || d.data[d.pos] != ':' {
		return nil, false, false
	}
	d.pos++
	d.ws()
	return key, true, true
}

// open consumes c (the value's first byte) or fails.
func (d *fastDecoder) open(c byte) bool {
	if d.pos < len(d.data) && d.data[d.pos] == c {
		d.pos++
		return true
	}
	return false
}

// fields tracks the known fields of one object: which were seen, and
// whether they came in Canonical's order.
type fields struct {
	seen uint64
	next uint // the field Canonical writes next
}

// once records field i as seen; false if it was already.
func (d *fastDecoder) once(f *fields, i uint) bool {
	if f.seen&(1<<i) != 0 {
		return false
	}
	f.seen |= 1 << i
	if i != f.next {
		d.canonical = false
	}
	f.next = i + 1
	return true
}

// closed notes the end of an object of n known fields: Canonical writes
// every one.
func (d *fastDecoder) closed(f *fields, n uint) {
	if f.next != n {
		d.canonical = false
	}
}

// strEnd returns the index of the closing quote of the string whose
// opening quote is at pos, checking its escapes, and whether it has any.
func (d *fastDecoder) strEnd() (end int, escaped, ok bool) {
	if d.pos >= len(d.data) || d.data[d.pos] != '"' {
		return 0, false, false
	}
	for i := d.pos + 1; i < len(d.data); i++ {
		c := d.data[i]
		if plainByte[c] {
			continue // most bytes of most strings: one lookup each
		}
		switch {
		case c == '"':
			return i, escaped, true
		case c < 0x20:
			return 0, false, false
		case c == '<' || c == '>' || c == '&':
			d.canonical = false // Canonical escapes them, as encoding/json does
		case c == 0xe2 && i+2 < len(d.data) && d.data[i+1] == 0x80 && d.data[i+2]&^1 == 0xa8:
			d.canonical = false // U+2028, U+2029: the same
		case c == '\\':
			escaped = true
			if i+1 >= len(d.data) {
				return 0, false, false
			}
			i++
			switch d.data[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(d.data) {
					return 0, false, false
				}
				for _, h := range d.data[i+1 : i+5] {
					if !isHex(h) {
						return 0, false, false
					}
				}
				i += 4
			default:
				return 0, false, false
			}
		}
	}
	return 0, false, false
}

// plainByte is true for the bytes strEnd has nothing to do about.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < len(t); c++ {
		switch c {
		case '"', '\\', '<', '>', '&', 0xe2:
		default:
			t[c] = true
		}
	}
	return t
}()

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// str decodes a string value into dst.
func (d *fastDecoder) str(dst *string) bool {
	end, escaped, ok := d.strEnd()
	if !ok {
		return false
	}
	if escaped {
		// encoding/json's own unquoting, so that escapes (surrogates
		// included) decode exactly as on the strict path.
		if err := json.Unmarshal(d.data[d.pos:end+1], dst); err != nil {
			return false
		}
		// Canonical escapes some characters too (&, <, >, controls):
		// canonical if it would write the same escapes.
		if d.canonical && !bytes.Equal(AppendJSONString(nil, *dst), d.data[d.pos:end+1]) {
			d.canonical = false
		}
	} else {
		*dst = d.s[d.pos+1 : end]
	}
	d.pos = end + 1
	return true
}

// int decodes an integer value into dst: what strconv.ParseInt accepts of
// a JSON number, which is what encoding/json stores in an int64.
func (d *fastDecoder) int(dst *int64) bool {
	i := d.pos
	neg := i < len(d.data) && d.data[i] == '-'
	if neg {
		i++
	}
	start := i
	var n uint64
	for ; i < len(d.data); i++ {
		c := d.data[i]
		if c < '0' || c > '9' {
			break
		}
		if n > (1<<63)/10 {
			return false
		}
		n = n*10 + uint64(c-'0')
	}
	switch {
	case i == start, // no digit
		d.data[start] == '0' && i-start > 1,                                           // a leading zero: not JSON
		i < len(d.data) && (d.data[i] == '.' || d.data[i] == 'e' || d.data[i] == 'E'): // not an integer
		return false
	case neg && n > 1<<63, !neg && n > 1<<63-1:
		return false
	case neg:
		*dst = -int64(n) // -(1<<63) wraps to itself, the minimum
		if n == 0 {
			d.canonical = false // -0
		}
	default:
		*dst = int64(n)
	}
	d.pos = i
	return true
}

// skip checks and skips a value of any shape (an unknown field's).
func (d *fastDecoder) skip(depth int) bool {
	if d.pos >= len(d.data) || depth > maxFastDepth {
		return false
	}
	switch c := d.data[d.pos]; {
	case c == '"':
		end, _, ok := d.strEnd()
		d.pos = end + 1
		return ok
	case c == '{':
		d.pos++
		for first := true; ; first = false {
			_, more, ok := d.member(first)
			if !ok {
				return false
			}
			if !more {
				return true
			}
			if !d.skip(depth + 1) {
				return false
			}
		}
	case c == '[':
		d.pos++
		for first := true; ; first = false {
			more, ok := d.element(first)
			if !ok {
				return false
			}
			if !more {
				return true
			}
			if !d.skip(depth + 1) {
				return false
			}
		}
	case c == 't':
		return d.literal("true")
	case c == 'f':
		return d.literal("false")
	case c == 'n':
		return d.literal("null")
	case c == '-' || '0' <= c && c <= '9':
		return d.number()
	}
	return false
}

// element reads up to an array's next element: the separator (none before
// the first). more is false at the closing bracket, which it consumes.
func (d *fastDecoder) element(first bool) (more, ok bool) {
	d.ws()
	if d.pos >= len(d.data) {
		return false, false
	}
	switch c := d.data[d.pos]; {
	case c == ']':
		d.pos++
		return false, true
	case !first && c == ',':
		d.pos++
		d.ws()
	case !first:
		return false, false
	}
	return true, true
}

func (d *fastDecoder) literal(lit string) bool {
	if !bytes.HasPrefix(d.data[d.pos:], []byte(lit)) {
		return false
	}
	d.pos += len(lit)
	return true
}

// number skips a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (d *fastDecoder) number() bool {
	digits := func() int {
		n := 0
		for d.pos < len(d.data) && '0' <= d.data[d.pos] && d.data[d.pos] <= '9' {
			d.pos++
			n++
		}
		return n
	}
	if d.data[d.pos] == '-' {
		d.pos++
	}
	if d.pos < len(d.data) && d.data[d.pos] == '0' {
		d.pos++
	} else if digits() == 0 {
		return false
	}
	if d.pos < len(d.data) && d.data[d.pos] == '.' {
		d.pos++
		if digits() == 0 {
			return false
		}
	}
	if d.pos < len(d.data) && (d.data[d.pos] == 'e' || d.data[d.pos] == 'E') {
		d.pos++
		if d.pos < len(d.data) && (d.data[d.pos] == '+' || d.data[d.pos] == '-') {
			d.pos++
		}
		if digits() == 0 {
			return false
		}
	}
	return true
}

// unknown skips the value of a key that is none of names, unless it is one
// of them but for case: the strict path refuses that.
func (d *fastDecoder) unknown(key []byte, names []string) bool {
	d.canonical = false
	for _, name := range names {
		if bytes.EqualFold(key, []byte(name)) {
			return false
		}
	}
	return d.skip(1)
}

// The known keys of each object, for unknown: from the struct tags, as the
// strict path's.
var (
	orderNames    = orderShape.names
	deliveryNames = orderShape.fields[orderShape.index["delivery"]].names
	paymentNames  = orderShape.fields[orderShape.index["payment"]].names
	itemNames     = orderShape.fields[orderShape.index["items"]].elem.names
)

// object decodes one JSON object of the order's shape, whose known member
// names are names, in Canonical's order: value decodes the value of the
// member key into v and returns its index in names (decoded), or
// memberUnknown for a key that is not one of them. Every member is taken
// at most once.
func object[T any](d *fastDecoder, v *T, names []string, value func(d *fastDecoder, v *T, key []byte) int) bool {
	if !d.open('{') {
		return false
	}
	var f fields
	for first := true; ; first = false {
		key, more, ok := d.member(first)
		if !ok {
			return false
		}
		if !more {
			d.closed(&f, uint(len(names)))
			return true
		}
		switch i := value(d, v, key); i {
		case memberUnknown:
			ok = d.unknown(key, names)
		case memberFailed:
			ok = false
		default:
			ok = d.once(&f, uint(i))
		}
		if !ok {
			return false
		}
	}
}

// What a member's value function returns besides the member's index.
const (
	memberFailed  = -1 // the value could not be decoded here
	memberUnknown = -2 // the key is none of the object's names
)

// decoded is the result of a member's value function: the member's
// index i if its value was decoded.
func decoded(i int, ok bool) int {
	if ok {
		return i
	}
	return memberFailed
}

func (d *fastDecoder) order(o *Order) bool { return object(d, o, orderNames, orderMember) }

func orderMember(d *fastDecoder, o *Order, key []byte) int {
	switch string(key) {
	case "order_uid":
		return decoded(0, d.str(&o.OrderUID))
	case "track_number":
		return decoded(1, d.str(&o.TrackNumber))
	case "entry":
		return decoded(2, d.str(&o.Entry))
	case "delivery":
		return decoded(3, d.delivery(&o.Delivery))
	case "payment":
		return decoded(4, d.payment(&o.Payment))
	case "items":
		return decoded(5, d.items(o))
	case "locale":
		return decoded(6, d.str(&o.Locale))
	case "internal_signature":
		return decoded(7, d.str(&o.InternalSignature))
	case "customer_id":
		return decoded(8, d.str(&o.CustomerID))
	case "delivery_service":
		return decoded(9, d.str(&o.DeliveryService))
	case "shardkey":
		return decoded(10, d.str(&o.ShardKey))
	case "sm_id":
		return decoded(11, d.int(&o.SmID))
	case "date_created":
		return decoded(12, d.date(o))
	case "oof_shard":
		return decoded(13, d.str(&o.OofShard))
	}
	return memberUnknown
}

// date decodes date_created with time.Time's own UnmarshalJSON, given the
// raw string as encoding/json gives it.
func (d *fastDecoder) date(o *Order) bool {
	end, _, ok := d.strEnd()
	if !ok || o.DateCreated.UnmarshalJSON(d.data[d.pos:end+1]) != nil {
		return false
	}
	if d.canonical {
		// Canonical's form: UTC, microseconds, RFC 3339 with trailing zeros
		// of the fraction left out.
		t := o.DateCreated.UTC().Truncate(TimePrecision)
		var buf [40]byte
		if y := t.Year(); y < 1 || y > 9999 || !bytes.Equal(t.AppendFormat(buf[:0], time.RFC3339Nano), d.data[d.pos+1:end]) {
			d.canonical = false
		}
	}
	d.pos = end + 1
	return true
}

func (d *fastDecoder) delivery(v *Delivery) bool { return object(d, v, deliveryNames, deliveryMember) }

func deliveryMember(d *fastDecoder, v *Delivery, key []byte) int {
	switch string(key) {
	case "name":
		return decoded(0, d.str(&v.Name))
	case "phone":
		return decoded(1, d.str(&v.Phone))
	case "zip":
		return decoded(2, d.str(&v.Zip))
	case "city":
		return decoded(3, d.str(&v.City))
	case "address":
		return decoded(4, d.str(&v.Address))
	case "region":
		return decoded(5, d.str(&v.Region))
	case "email":
		return decoded(6, d.str(&v.Email))
	}
	return memberUnknown
}

func (d *fastDecoder) payment(v *Payment) bool { return object(d, v, paymentNames, paymentMember) }

func paymentMember(d *fastDecoder, v *Payment, key []byte) int {
	switch string(key) {
	case "transaction":
		return decoded(0, d.str(&v.Transaction))
	case "request_id":
		return decoded(1, d.str(&v.RequestID))
	case "currency":
		return decoded(2, d.str(&v.Currency))
	case "provider":
		return decoded(3, d.str(&v.Provider))
	case "amount":
		return decoded(4, d.int(&v.Amount))
	case "payment_dt":
		return decoded(5, d.int(&v.PaymentDT))
	case "bank":
		return decoded(6, d.str(&v.Bank))
	case "delivery_cost":
		return decoded(7, d.int(&v.DeliveryCost))
	case "goods_total":
		return decoded(8, d.int(&v.GoodsTotal))
	case "custom_fee":
		return decoded(9, d.int(&v.CustomFee))
	}
	return memberUnknown
}

// items decodes the items array; [] is an empty, non-nil slice, as
// encoding/json makes it.
func (d *fastDecoder) items(o *Order) bool {
	if !d.open('[') {
		return false
	}
	o.Items = make([]Item, 0, 4)
	for first := true; ; first = false {
		more, ok := d.element(first)
		if !ok {
			return false
		}
		if !more {
			return true
		}
		o.Items = append(o.Items, Item{})
		if !d.item(&o.Items[len(o.Items)-1]) {
			return false
		}
	}
}

func (d *fastDecoder) item(v *Item) bool { return object(d, v, itemNames, itemMember) }

func itemMember(d *fastDecoder, v *Item, key []byte) int {
	switch string(key) {
	case "chrt_id":
		return decoded(0, d.int(&v.ChrtID))
	case "track_number":
		return decoded(1, d.str(&v.TrackNumber))
	case "price":
		return decoded(2, d.int(&v.Price))
	case "rid":
		return decoded(3, d.str(&v.RID))
	case "name":
		return decoded(4, d.str(&v.Name))
	case "sale":
		return decoded(5, d.int(&v.Sale))
	case "size":
		return decoded(6, d.str(&v.Size))
	case "total_price":
		return decoded(7, d.int(&v.TotalPrice))
	case "nm_id":
		return decoded(8, d.int(&v.NmID))
	case "brand":
		return decoded(9, d.str(&v.Brand))
	case "status":
		return decoded(10, d.int(&v.Status))
	}
	return memberUnknown
}
