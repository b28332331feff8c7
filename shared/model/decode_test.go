package model_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/orderservice/orders/shared/model"
	"github.com/orderservice/orders/shared/ordergen"
)

// patch returns the sample with the value at path replaced by raw JSON.
// Path segments are object keys or array indexes: "items.0.price".
func patch(t testing.TB, path, raw string) []byte {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(sampleJSON(t)))
	dec.UseNumber()
	var root any
	if err := dec.Decode(&root); err != nil {
		t.Fatal(err)
	}
	segs := strings.Split(path, ".")
	cur := root
	for i, seg := range segs {
		last := i == len(segs)-1
		switch c := cur.(type) {
		case map[string]any:
			if last {
				c[seg] = json.RawMessage(raw)
			} else {
				cur = c[seg]
			}
		case []any:
			n, err := strconv.Atoi(seg)
			if err != nil {
				t.Fatalf("patch %s: %q is not an index", path, seg)
			}
			if last {
				c[n] = json.RawMessage(raw)
			} else {
				cur = c[n]
			}
		default:
			t.Fatalf("patch %s: cannot descend into %T", path, cur)
		}
	}
	b, err := json.Marshal(root)
	if err != nil {
		t.Fatalf("patch %s = %s: %v", path, raw, err)
	}
	return b
}

// replace returns the compacted sample with the first old replaced by new.
func replace(t testing.TB, old, new string) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, sampleJSON(t)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b.Bytes(), []byte(old)) {
		t.Fatalf("sample has no %s", old)
	}
	return bytes.Replace(b.Bytes(), []byte(old), []byte(new), 1)
}

func TestDecodeErrors(t *testing.T) {
	s := sampleJSON(t)
	cases := []struct {
		name  string
		in    []byte
		want  error
		msgIn []string // substrings the message must contain
	}{
		{"nil", nil, model.ErrEmpty, []string{"empty"}},
		{"empty", []byte{}, model.ErrEmpty, []string{"empty"}},
		{"whitespace only", []byte(" \n\t\r  "), model.ErrEmpty, []string{"empty"}},

		{"bad syntax", []byte(`{"order_uid":}`), model.ErrMalformed, []string{"invalid JSON at byte 14"}},
		{"unquoted key", []byte(`{order_uid:"x"}`), model.ErrMalformed, []string{"invalid JSON at byte"}},
		{"single quotes", []byte(`{'order_uid':'x'}`), model.ErrMalformed, []string{"invalid JSON"}},
		{"trailing comma", []byte(`{"order_uid":"x",}`), model.ErrMalformed, []string{"invalid JSON"}},
		{"bad escape", []byte(`{"order_uid":"\x"}`), model.ErrMalformed, []string{"invalid JSON"}},
		{"NaN", []byte(`{"sm_id":NaN}`), model.ErrMalformed, []string{"invalid JSON"}},
		{"comment", []byte(`{/* c */"order_uid":"x"}`), model.ErrMalformed, []string{"invalid JSON"}},

		{"truncated half", s[:len(s)/2], model.ErrMalformed, []string{"truncated"}},
		{"truncated brace only", []byte(`{`), model.ErrMalformed, []string{"truncated"}},
		{"truncated in string", []byte(`{"order_uid":"abc`), model.ErrMalformed, []string{"truncated"}},
		{"missing last brace", bytes.TrimSpace(s)[:len(bytes.TrimSpace(s))-1], model.ErrMalformed, []string{"truncated"}},

		{"trailing object", append(bytes.Clone(s), `{}`...), model.ErrMalformed, []string{"after the order object"}},
		{"two orders", append(bytes.Clone(s), s...), model.ErrMalformed, []string{"after the order object"}},
		{"trailing garbage", append(bytes.Clone(s), `x`...), model.ErrMalformed, []string{"after the order object"}},
		{"trailing brace", append(bytes.Clone(s), `}`...), model.ErrMalformed, []string{"after the order object"}},
		{"trailing number", []byte(`{} 1`), model.ErrMalformed, []string{"after the order object"}},

		{"string field gets number", patch(t, "order_uid", `5`), model.ErrMalformed, []string{"order_uid", "number", "string"}},
		{"nested string gets bool", patch(t, "delivery.email", `true`), model.ErrMalformed, []string{"delivery.email", "bool"}},
		{"string gets object", patch(t, "payment.currency", `{"code":"USD"}`), model.ErrMalformed, []string{"payment.currency", "object"}},
		{"int gets string", patch(t, "payment.amount", `"1817"`), model.ErrMalformed, []string{"payment.amount", "string", "int64"}},
		{"item int gets string", patch(t, "items.0.price", `"453"`), model.ErrMalformed, []string{"items.price", "string", "int64"}},
		{"int gets bool", patch(t, "sm_id", `true`), model.ErrMalformed, []string{"sm_id", "bool"}},
		{"int gets array", patch(t, "items.0.status", `[202]`), model.ErrMalformed, []string{"items.status", "array"}},
		{"object gets array", patch(t, "delivery", `[]`), model.ErrMalformed, []string{"delivery", "array"}},
		{"object gets string", patch(t, "payment", `"paid"`), model.ErrMalformed, []string{"payment", "string"}},
		{"items gets object", patch(t, "items", `{"0":{}}`), model.ErrMalformed, []string{"items", "object"}},
		{"item gets string", patch(t, "items.0", `"Mascaras"`), model.ErrMalformed, []string{"items", "string"}},
		{"date gets number", patch(t, "date_created", `1637907739`), model.ErrMalformed, []string{"date_created", "RFC 3339"}},
		{"date gets free text", patch(t, "date_created", `"yesterday"`), model.ErrMalformed, []string{"date_created", "RFC 3339", "yesterday"}},
		{"date without T", patch(t, "date_created", `"2021-11-26 06:22:19Z"`), model.ErrMalformed, []string{"date_created"}},
		{"date without zone", patch(t, "date_created", `"2021-11-26T06:22:19"`), model.ErrMalformed, []string{"date_created"}},
		{"date out of range day", patch(t, "date_created", `"2021-02-30T06:22:19Z"`), model.ErrMalformed, []string{"date_created"}},
		{"date bad offset", patch(t, "date_created", `"2021-11-26T06:22:19+2:00"`), model.ErrMalformed, []string{"date_created"}},

		{"float into int", patch(t, "payment.amount", `1817.5`), model.ErrMalformed, []string{"payment.amount", "1817.5"}},
		{"integral float into int", patch(t, "payment.amount", `1817.0`), model.ErrMalformed, []string{"payment.amount", "1817.0"}},
		{"exponent into int", patch(t, "items.0.price", `4.53e2`), model.ErrMalformed, []string{"items.price", "4.53e2"}},
		{"int above int64", patch(t, "sm_id", `9223372036854775808`), model.ErrMalformed, []string{"sm_id", "9223372036854775808"}},
		{"int below int64", patch(t, "payment.payment_dt", `-9223372036854775809`), model.ErrMalformed, []string{"payment.payment_dt"}},
		{"huge exponent", patch(t, "items.0.chrt_id", `1e400`), model.ErrMalformed, []string{"items.chrt_id"}},

		{"top-level array", []byte(`[` + string(s) + `]`), model.ErrMalformed, []string{"expected a JSON object"}},
		{"top-level string", []byte(`"order"`), model.ErrMalformed, []string{"expected a JSON object"}},
		{"top-level number", []byte(`42`), model.ErrMalformed, []string{"expected a JSON object"}},
		{"top-level null", []byte(`null`), model.ErrMalformed, []string{"expected a JSON object"}},
		{"top-level true", []byte(` true `), model.ErrMalformed, []string{"expected a JSON object"}},
		{"byte order mark", append([]byte("\xef\xbb\xbf"), s...), model.ErrMalformed, []string{"expected a JSON object"}},

		{"invalid UTF-8 in a value", bytes.Replace(s, []byte("Mascaras"), []byte("Masc\xffaras"), 1), model.ErrMalformed, []string{"UTF-8"}},
		{"overlong UTF-8", bytes.Replace(s, []byte("Kraiot"), []byte("Kr\xc0\xafiot"), 1), model.ErrMalformed, []string{"UTF-8"}},
		{"UTF-16 surrogate bytes", bytes.Replace(s, []byte("alpha"), []byte("al\xed\xa0\x80pha"), 1), model.ErrMalformed, []string{"UTF-8"}},
		{"invalid UTF-8 in unknown key", []byte("{\"x\xfe\":1}"), model.ErrMalformed, []string{"UTF-8"}},

		{"null string", patch(t, "order_uid", `null`), model.ErrMalformed, []string{"order_uid: must not be null"}},
		{"null optional string", patch(t, "payment.request_id", `null`), model.ErrMalformed, []string{"payment.request_id: must not be null"}},
		{"null int", patch(t, "payment.custom_fee", `null`), model.ErrMalformed, []string{"payment.custom_fee: must not be null"}},
		{"null item int", patch(t, "items.0.sale", `null`), model.ErrMalformed, []string{"items[0].sale: must not be null"}},
		{"null object", patch(t, "delivery", `null`), model.ErrMalformed, []string{"delivery: must not be null"}},
		{"null items", patch(t, "items", `null`), model.ErrMalformed, []string{"items: must not be null"}},
		{"null item", patch(t, "items.0", `null`), model.ErrMalformed, []string{"items[0]: must not be null"}},
		{"null date", patch(t, "date_created", `null`), model.ErrMalformed, []string{"date_created: must not be null"}},

		{"upper-case key", replace(t, `"order_uid"`, `"ORDER_UID"`), model.ErrMalformed, []string{`"ORDER_UID": field names are case-sensitive; want "order_uid"`}},
		{"title-case object key", replace(t, `"payment"`, `"Payment"`), model.ErrMalformed, []string{`"Payment": field names are case-sensitive`}},
		{"nested case variant", replace(t, `"amount"`, `"Amount"`), model.ErrMalformed, []string{`payment."Amount": field names are case-sensitive; want "amount"`}},
		{"item case variant", replace(t, `"price"`, `"PRICE"`), model.ErrMalformed, []string{`items[0]."PRICE"`}},
		{"kelvin sign folds to k", replace(t, `"track_number":"WBILMTESTTRACK","entry"`, `"track_number":"WBILMTESTTRACK","trac\u212a_number":"X","entry"`), model.ErrMalformed, []string{"case-sensitive"}},
		{"case variant next to the real key", replace(t, `"locale":"en"`, `"locale":"en","LOCALE":"ru"`), model.ErrMalformed, []string{`"LOCALE"`}},
		{"duplicate key", replace(t, `"locale":"en"`, `"locale":"en","locale":"ru"`), model.ErrMalformed, []string{"locale: duplicate field"}},
		{"duplicate nested key", replace(t, `"price":453`, `"price":453,"price":1`), model.ErrMalformed, []string{"items[0].price: duplicate field"}},
		{"duplicate object", replace(t, `"locale":"en"`, `"locale":"en","delivery":{}`), model.ErrMalformed, []string{"delivery: duplicate field"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkFastAgrees(t, tc.in)
			o, err := model.Decode(tc.in)
			if err == nil {
				t.Fatalf("Decode(%.80q) = %+v, want an error", tc.in, o)
			}
			if o != nil {
				t.Errorf("Decode returned an order with its error: %+v", o)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %q does not wrap %q", err, tc.want)
			}
			for _, other := range []error{model.ErrEmpty, model.ErrTooLarge, model.ErrMalformed, model.ErrInvalid} {
				if !errors.Is(tc.want, other) && errors.Is(err, other) {
					t.Errorf("error %q also wraps %q; each error must have one class", err, other)
				}
			}
			for _, sub := range tc.msgIn {
				if !strings.Contains(err.Error(), sub) {
					t.Errorf("error %q does not mention %q", err, sub)
				}
			}
		})
	}
}

func TestDecodeSizeLimit(t *testing.T) {
	// pad returns the sample grown to exactly n bytes with an unknown field.
	pad := func(n int) []byte {
		s := bytes.TrimSpace(sampleJSON(t))
		head := append(bytes.Clone(s[:len(s)-1]), `,"padding":"`...)
		fill := n - len(head) - len(`"}`)
		if fill < 0 {
			t.Fatalf("cannot pad to %d bytes", n)
		}
		b := append(head, bytes.Repeat([]byte("x"), fill)...)
		b = append(b, `"}`...)
		if len(b) != n {
			t.Fatalf("padded to %d bytes, want %d", len(b), n)
		}
		return b
	}
	cases := []struct {
		name    string
		dec     model.Decoder
		in      []byte
		wantErr bool
	}{
		{"default limit, exactly 1 MiB", model.Decoder{}, pad(model.DefaultMaxSize), false},
		{"default limit, 1 MiB + 1", model.Decoder{}, pad(model.DefaultMaxSize + 1), true},
		{"default limit counts whitespace", model.Decoder{}, append(sampleJSON(t), bytes.Repeat([]byte(" "), model.DefaultMaxSize)...), true},
		{"negative MaxSize means default", model.Decoder{MaxSize: -1}, pad(model.DefaultMaxSize), false},
		{"custom limit, at the limit", model.Decoder{MaxSize: 4096}, pad(4096), false},
		{"custom limit, one over", model.Decoder{MaxSize: 4096}, pad(4097), true},
		{"custom limit above default", model.Decoder{MaxSize: 2 << 20}, pad(2 << 20), false},
		{"custom limit smaller than the sample", model.Decoder{MaxSize: 100}, sampleJSON(t), true},
		{"limit beats emptiness check", model.Decoder{MaxSize: 3}, []byte("    "), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o, err := tc.dec.Decode(tc.in)
			if !tc.wantErr {
				if err != nil {
					t.Fatalf("Decode(%d bytes): %v", len(tc.in), err)
				}
				if !reflect.DeepEqual(o, wantSample()) {
					t.Fatalf("padded sample decoded to %+v", o)
				}
				return
			}
			if !errors.Is(err, model.ErrTooLarge) {
				t.Fatalf("Decode(%d bytes) error = %v, want ErrTooLarge", len(tc.in), err)
			}
			if !strings.Contains(err.Error(), strconv.Itoa(len(tc.in))+" bytes") || !strings.Contains(err.Error(), "limit") {
				t.Errorf("error %q should give the size and the limit", err)
			}
		})
	}
	// The package-level Decode applies the default limit.
	if _, err := model.Decode(pad(model.DefaultMaxSize + 1)); !errors.Is(err, model.ErrTooLarge) {
		t.Fatalf("model.Decode over 1 MiB: %v, want ErrTooLarge", err)
	}
}

func TestDecodeAccepts(t *testing.T) {
	s := sampleJSON(t)
	cases := []struct {
		name string
		in   []byte
		want func(o *model.Order) // adjusts the expected sample; nil = unchanged
	}{
		{"surrounding whitespace", append(append([]byte("\n\t "), s...), "\r\n  "...), nil},
		{"unknown top-level field", patch(t, "loyalty", `{"tier":"gold","points":[1,2,{"x":null}]}`), nil},
		{"unknown nested fields", patch(t, "delivery.floor", `7`), nil},
		{"unknown payment field", patch(t, "payment.installments", `null`), nil},
		{"unknown item field", patch(t, "items.0.color", `"red"`), nil},
		{"compact", func() []byte { var b bytes.Buffer; _ = json.Compact(&b, s); return b.Bytes() }(), nil},
		{"int64 max still decodes", patch(t, "sm_id", `9223372036854775807`), func(o *model.Order) { o.SmID = 1<<63 - 1 }},
		{"negative numbers decode", patch(t, "items.0.price", `-453`), func(o *model.Order) { o.Items[0].Price = -453 }},
		{"minus zero", patch(t, "payment.custom_fee", `-0`), nil},
		{"escaped unicode", patch(t, "delivery.city", `"Kiryat \u004dozkin"`), nil},
		{"escaped HTML", patch(t, "items.0.brand", `"\u003cb\u003e"`), func(o *model.Order) { o.Items[0].Brand = "<b>" }},
		{"empty items", patch(t, "items", `[]`), func(o *model.Order) { o.Items = []model.Item{} }},
		{"null in unknown fields", patch(t, "payment.installments", `[null,{"a":null}]`), nil},
		{"duplicate unknown keys", replace(t, `"locale":"en"`, `"x":1,"locale":"en","x":2`), nil},
		{"unknown key that only resembles a field", replace(t, `"locale":"en"`, `"locale":"en","order_uid_v2":"x","orderuid":"y"`), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := model.Decode(tc.in)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			want := wantSample()
			if tc.want != nil {
				tc.want(want)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("decoded\n%+v\nwant\n%+v", got, want)
			}
			// Every one of these is an order the fast path must take.
			if fast, _, ok := model.DecodeFast(bytes.TrimSpace(tc.in)); !ok || !reflect.DeepEqual(fast, want) {
				t.Fatalf("fast path: %v\n%+v\nwant\n%+v", ok, fast, want)
			}
		})
	}
}

// checkFastAgrees checks that the fast decoding path returns no order that
// the strict path (encoding/json and checkKeys) would not return, equal
// field for field, for data that passes Decode's first checks.
func checkFastAgrees(t *testing.T, data []byte) {
	t.Helper()
	trimmed := bytes.TrimSpace(data)
	if len(data) > model.DefaultMaxSize || len(trimmed) == 0 || !utf8.Valid(trimmed) || trimmed[0] != '{' {
		return
	}
	fast, canonical, ok := model.DecodeFast(trimmed)
	if !ok {
		return
	}
	if canonical {
		// The claim must hold byte for byte.
		if c, err := fast.Canonical(); err != nil || !bytes.Equal(c, trimmed) {
			t.Fatalf("fast path calls %.200q canonical; Canonical gives %.200q (%v)", trimmed, c, err)
		}
	}
	strict, err := model.DecodeStrict(trimmed)
	if err != nil {
		t.Fatalf("fast path decoded %.200q, which the strict path refuses: %v", trimmed, err)
	}
	if !reflect.DeepEqual(fast, strict) {
		t.Fatalf("fast and strict paths disagree on %.200q:\n%+v\n%+v", trimmed, fast, strict)
	}
}

// TestDecodeFastTakes checks that generated orders, as the producer and the
// tests encode them, take the fast path (a silent fall back to the strict
// one would cost the ingestor most of its decoding time), and that inputs
// near its edges agree with the strict path.
func TestDecodeFastTakes(t *testing.T) {
	g := ordergen.New(7)
	for i := range 200 {
		o := g.Order()
		canon, err := o.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		marshalled, err := json.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range [][]byte{canon, marshalled} {
			got, _, ok := model.DecodeFast(in)
			if !ok || !equalOrders(got, o) {
				t.Fatalf("order %d: fast path %v, %+v, want %+v", i, ok, got, o)
			}
			checkFastAgrees(t, in)
		}
		// The producer's encoding is recognised as canonical, surrounding
		// whitespace or not; one space inside is enough to make it not.
		for _, in := range [][]byte{canon, append(append([]byte(" \n"), canon...), '\n')} {
			if _, got, err := (model.Decoder{}).DecodeCanonical(in); err != nil || !bytes.Equal(got, canon) {
				t.Fatalf("order %d: DecodeCanonical(%.80q) = %.80q, %v; want the input", i, in, got, err)
			}
		}
		spaced := bytes.Replace(canon, []byte(`":`), []byte(`": `), 1)
		if _, got, err := (model.Decoder{}).DecodeCanonical(spaced); err != nil || got != nil {
			t.Fatalf("order %d: DecodeCanonical of a spaced encoding = %.80q, %v; want nil", i, got, err)
		}
	}
	for _, in := range []string{
		`{}`, `{ }`, `{"items":[]}`, `{"items":[{}]}`, `{"items":[{},]}`, `{"items":[,{}]}`, `{"items":[{}`,
		`{"sm_id":-0}`, `{"sm_id":01}`, `{"sm_id":-}`, `{"sm_id":1.}`, `{"sm_id":1e1}`, `{"sm_id":1E1}`,
		`{"sm_id":9223372036854775807}`, `{"sm_id":9223372036854775808}`, `{"sm_id":-9223372036854775808}`,
		`{"sm_id":-9223372036854775809}`, `{"sm_id":99999999999999999999}`, `{"sm_id":1x}`,
		`{"x":[1,-0.5e+3,true,false,null,"a\u00e9\n",{"y":{}}]}`, `{"x":tru}`, `{"x":nulll}`, `{"x":-}`,
		`{"x":01}`, `{"x":1.e3}`, `{"x":"\x"}`, `{"x":"\u12G4"}`, `{"x":"\u12"}`, `{"x":"a` + "	" + `"}`,
		`{"x":[1,]}`, `{"x":{"a":1,}}`, `{"x":{,}}`, `{"x":{"a"}}`, `{"x":1 "y":2}`,
		`{"order_uid":"a\"b\\c\/\u00e9\ud800"}`, `{"order_uid":"\u0000"}`, `{"ORDER_UID":"a"}`,
		`{"order_uid":"a","order_uid":"b"}`, `{"order\u005fuid":"a"}`, `{"x\u0041":1}`,
		`{"order_uid":null}`, `{"order_uid":1}`, `{"delivery":null}`, `{"delivery":[]}`, `{"items":{}}`,
		`{"items":[null]}`, `{"date_created":"2021-11-26T06:22:19.123456789+03:00"}`,
		`{"date_created":"2021-11-26 06:22:19Z"}`, `{"date_created":1}`, `{"date_created":"\u0032021-11-26T06:22:19Z"}`,
		`{"payment":{"amount":1,"amount":2}}`, `{"payment":{"AMOUNT":1}}`, `{"items":[{"price":"1"}]}`,
		`{"tracK_number":"x"}`, `{"ſhardkey":"x"}`, `{} `, `{}x`, `{"a":1}}`,
		`{"x":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}`,
	} {
		checkFastAgrees(t, []byte(in))
	}
}

// DecodeCanonical returns the input only when it is byte for byte what
// Canonical writes: variants of a canonical encoding, each one change away.
func TestDecodeCanonicalVariants(t *testing.T) {
	canon, err := wantSample().Canonical()
	if err != nil {
		t.Fatal(err)
	}
	c := string(canon)
	cases := []struct {
		name      string
		in        string
		canonical bool
	}{
		{"as encoded", c, true},
		{"escaped ampersand", strings.Replace(c, `"Vivienne Sabo"`, `"Vivienne \u0026 Sabo"`, 1), true},
		{"raw ampersand", strings.Replace(c, `"Vivienne Sabo"`, `"Vivienne & Sabo"`, 1), false},
		{"raw <", strings.Replace(c, `"Mascaras"`, `"<b>"`, 1), false},
		{"escaped < in upper case", strings.Replace(c, `"Mascaras"`, `"\u003Cb"`, 1), false},
		{"needless escape", strings.Replace(c, `"Mascaras"`, `"Masc\u0061ras"`, 1), false},
		{"escaped slash", strings.Replace(c, `"Mascaras"`, `"a\/b"`, 1), false},
		{"escaped newline", strings.Replace(c, `"Mascaras"`, `"a\nb"`, 1), true},
		{"raw U+2028", strings.Replace(c, `"Mascaras"`, "\"a\u2028b\"", 1), false},
		{"escaped U+2028", strings.Replace(c, `"Mascaras"`, `"a\u2028b"`, 1), true},
		{"non-ASCII", strings.Replace(c, `"Mascaras"`, `"Тушь"`, 1), true},
		{"minus zero", strings.Replace(c, `"custom_fee":0`, `"custom_fee":-0`, 1), false},
		{"space after a colon", strings.Replace(c, `"sm_id":99`, `"sm_id": 99`, 1), false},
		{"space between members", strings.Replace(c, `,"sm_id"`, `, "sm_id"`, 1), false},
		{"two fields swapped", strings.Replace(c, `"locale":"en","internal_signature":""`, `"internal_signature":"","locale":"en"`, 1), false},
		{"a field missing", strings.Replace(c, `"locale":"en",`, ``, 1), false},
		{"an item field missing", strings.Replace(c, `,"status":202`, ``, 1), false},
		{"an unknown field", strings.Replace(c, `"locale":"en"`, `"locale":"en","x":1`, 1), false},
		{"date with zero offset", strings.Replace(c, `06:22:19Z`, `06:22:19+00:00`, 1), false},
		{"date with a zero fraction", strings.Replace(c, `06:22:19Z`, `06:22:19.000Z`, 1), false},
		{"date with microseconds", strings.Replace(c, `06:22:19Z`, `06:22:19.123456Z`, 1), true},
		{"date with nanoseconds", strings.Replace(c, `06:22:19Z`, `06:22:19.123456789Z`, 1), false},
		{"date in another zone", strings.Replace(c, `06:22:19Z`, `09:22:19+03:00`, 1), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkFastAgrees(t, []byte(tc.in))
			o, got, err := model.Decoder{}.DecodeCanonical([]byte(tc.in))
			if err != nil {
				t.Fatalf("DecodeCanonical: %v", err)
			}
			if (got != nil) != tc.canonical {
				t.Fatalf("canonical %q, want %v", got, tc.canonical)
			}
			if want, _ := o.Canonical(); got != nil && !bytes.Equal(got, want) {
				t.Fatalf("canonical %s, Canonical %s", got, want)
			}
		})
	}
}
