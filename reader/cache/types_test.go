package cache

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"

	"github.com/orderservice/orders/reader/pii"
	"github.com/orderservice/orders/shared/ordergen"
	"github.com/orderservice/orders/shared/testenv"
)

// checkOrder checks every header value and byte of both views of o, made
// of full and masked.
func checkOrder(t *testing.T, o *Order, full, masked []byte) {
	t.Helper()
	etag := func(b []byte) string {
		sum := sha256.Sum256(b)
		return `"` + hex.EncodeToString(sum[:]) + `"`
	}
	f := o.Full()
	if got := f.Append(nil); !bytes.Equal(got, full) || f.Len != len(full) {
		t.Fatalf("full view %q (Len %d), want %q", got, f.Len, full)
	}
	if f.ETag != etag(full) || len(f.ETagHeader) != 1 || f.ETagHeader[0] != f.ETag ||
		len(f.LengthHeader) != 1 || f.LengthHeader[0] != strconv.Itoa(len(full)) {
		t.Fatalf("full view's headers: ETag %s %v, Content-Length %v", f.ETag, f.ETagHeader, f.LengthHeader)
	}
	m, ok := o.Masked()
	if masked == nil {
		if ok {
			t.Fatalf("a masked view %q without a mask", m.Append(nil))
		}
		return
	}
	if !ok {
		t.Fatal("no masked view")
	}
	var w bytes.Buffer
	if n, err := m.WriteTo(&w); err != nil || n != int64(len(masked)) {
		t.Fatalf("WriteTo: %d, %v", n, err)
	}
	if got := m.Append(nil); !bytes.Equal(got, masked) || !bytes.Equal(w.Bytes(), masked) || m.Len != len(masked) {
		t.Fatalf("masked view %q, written %q (Len %d), want %q", got, w.Bytes(), m.Len, masked)
	}
	if m.ETag != etag(masked) || len(m.ETagHeader) != 1 || m.ETagHeader[0] != m.ETag ||
		len(m.LengthHeader) != 1 || m.LengthHeader[0] != strconv.Itoa(len(masked)) {
		t.Fatalf("masked view's headers: ETag %s %v, Content-Length %v", m.ETag, m.ETagHeader, m.LengthHeader)
	}
}

// TestNewOrderPatch: the masked view, kept as the run of bytes where it
// differs from the full one, is byte for byte the masked JSON, whatever
// the two have in common; the run is no longer than it must be.
func TestNewOrderPatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, full, masked string
		noMask             bool
		start, end         int
		patch              string
	}{
		{name: "no masked view", full: `{"a":1}`, noMask: true},
		{name: "a run in the middle", full: `{"name":"Ivan Petrov","city":"Moscow"}`, masked: `{"name":"I*** P***","city":"Moscow"}`,
			start: 10, end: 20, patch: `*** P***`},
		{name: "masked longer", full: `{"zip":"1"}`, masked: `{"zip":"***"}`, start: 8, end: 9, patch: `***`},
		{name: "masked shorter", full: `{"zip":"2639809"}`, masked: `{"zip":"***"}`, start: 8, end: 15, patch: `***`},
		{name: "identical", full: `{"a":1}`, masked: `{"a":1}`, start: 7, end: 7},
		{name: "at the start", full: `ab{}`, masked: `**{}`, start: 0, end: 2, patch: `**`},
		{name: "at the end", full: `{}ab`, masked: `{}**`, start: 2, end: 4, patch: `**`},
		{name: "everything differs", full: `abc`, masked: `xyz`, start: 0, end: 3, patch: `xyz`},
		// The prefix and the suffix must not overlap: "aaa" is a prefix
		// of "aaaa" and a suffix too.
		{name: "a prefix of the other", full: `aaa`, masked: `aaaa`, start: 3, end: 3, patch: `a`},
		{name: "the other a prefix", full: `aaaa`, masked: `aaa`, start: 3, end: 4},
		{name: "repeated bytes around the run", full: `"**x**"`, masked: `"*****"`, start: 3, end: 4, patch: `*`},
		// Longer than the blocks diff compares at once.
		{name: "long runs around one byte", full: strings.Repeat("a", 70) + "x" + strings.Repeat("a", 70), masked: strings.Repeat("a", 140),
			start: 70, end: 71},
		{name: "long prefix of the other", full: strings.Repeat("a", 100), masked: strings.Repeat("a", 64), start: 64, end: 100},
		{name: "long, a run at each end", full: "x" + strings.Repeat("ab", 50) + "y", masked: "z" + strings.Repeat("ab", 50) + "w",
			start: 0, end: 102, patch: "z" + strings.Repeat("ab", 50) + "w"},
		{name: "empty full", full: ``, masked: `{}`, start: 0, end: 0, patch: `{}`},
		{name: "empty masked", full: `{}`, masked: ``, start: 0, end: 2},
		{name: "both empty", full: ``, masked: ``},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var masked []byte
			if !tc.noMask {
				masked = []byte(tc.masked)
			}
			o := NewOrder([]byte(tc.full), masked)
			checkOrder(t, o, []byte(tc.full), masked)
			if tc.noMask {
				return
			}
			if int(o.start) != tc.start || int(o.end) != tc.end || string(o.patch) != tc.patch {
				t.Fatalf("run [%d:%d] %q, want [%d:%d] %q", o.start, o.end, o.patch, tc.start, tc.end, tc.patch)
			}
		})
	}
}

// TestNewOrderKeepsNoMaskedBuffer: the caller may reuse the masked
// encoding's buffer (the warm-up does) without changing the view.
func TestNewOrderKeepsNoMaskedBuffer(t *testing.T) {
	t.Parallel()
	full, masked := []byte(`{"name":"Ivan","zip":"123"}`), []byte(`{"name":"I***","zip":"***"}`)
	want := bytes.Clone(masked)
	o := NewOrder(full, masked)
	for i := range masked {
		masked[i] = 'X'
	}
	checkOrder(t, o, full, want)
}

// TestNewOrderRealMasks: for generated orders and the upstream sample, the
// masked view is pii.MaskJSON's output, and what it keeps besides the full
// view is the delivery's masked fields alone, a small part of the order.
func TestNewOrderRealMasks(t *testing.T) {
	t.Parallel()
	orders := append(ordergen.New(91).Orders(500), testenv.Sample(t))
	for _, mo := range orders {
		full, err := mo.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		masked, err := pii.MaskJSON(full)
		if err != nil {
			t.Fatal(err)
		}
		o := NewOrder(full, masked)
		checkOrder(t, o, full, masked)
		if delivery := bytes.Index(full, []byte(`"delivery":`)); int(o.start) < delivery || len(o.patch) > 200 {
			t.Fatalf("%s: the masked run [%d:%d] %q is not within the delivery (at %d)", mo.OrderUID, o.start, o.end, o.patch, delivery)
		}
	}
}

// FuzzNewOrder: any two encodings give back the masked one exactly.
func FuzzNewOrder(f *testing.F) {
	f.Add([]byte(`{"name":"Ivan Petrov"}`), []byte(`{"name":"I*** P***"}`))
	f.Add([]byte(`aaa`), []byte(`aaaa`))
	f.Add([]byte(`aaaa`), []byte(`aaa`))
	f.Add([]byte(``), []byte(`x`))
	f.Fuzz(func(t *testing.T, full, masked []byte) {
		if masked == nil {
			masked = []byte{}
		}
		checkOrder(t, NewOrder(full, masked), full, masked)
	})
}

// TestViewsETagsConcurrent: the views' ETags are made by the first
// responses that ask for them, possibly at once; every caller gets the
// same, right value (run with -race, as make test does).
func TestViewsETagsConcurrent(t *testing.T) {
	t.Parallel()
	full := []byte(`{"order_uid":"a","delivery":{"name":"Test Testov","phone":"+9720000000"}}`)
	masked := []byte(`{"order_uid":"a","delivery":{"name":"T***","phone":"+97*****000"}}`)
	for round := range 20 {
		o := NewOrder(full, masked)
		const callers = 8
		fulls, maskeds := make([]View, callers), make([]View, callers)
		done := make(chan struct{})
		for i := range callers {
			go func() {
				defer func() { done <- struct{}{} }()
				fulls[i] = o.Full()
				maskeds[i], _ = o.Masked()
			}()
		}
		for range callers {
			<-done
		}
		for i := range callers {
			if fulls[i].ETag != fulls[0].ETag || maskeds[i].ETag != maskeds[0].ETag {
				t.Fatalf("round %d: caller %d got ETags %s, %s; caller 0 %s, %s",
					round, i, fulls[i].ETag, maskeds[i].ETag, fulls[0].ETag, maskeds[0].ETag)
			}
		}
		checkOrder(t, o, full, masked)
	}
}
