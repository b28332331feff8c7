package pii

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/orderservice/orders/shared/model"
	"github.com/orderservice/orders/shared/ordergen"
	"github.com/orderservice/orders/shared/testenv"
)

// FuzzMaskJSON feeds arbitrary bytes to MaskJSON. It must never panic; an
// error must carry the model's class; an accepted order must come out as a
// decodable order that masks to itself, with every field but the personal
// ones unchanged and no personal value left readable.
func FuzzMaskJSON(f *testing.F) {
	sample, err := testenv.Sample(f).Canonical()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sample)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"delivery":{"name":"Иван Петров","phone":"+7 916 123-45-67","email":"ivan@почта.рф"}}`))
	f.Add([]byte(`{"delivery":{"name":"\u00e9\u0301 😀","zip":"\u2028","address":"<b>&amp;</b>","email":"@@"}}`))
	f.Add([]byte(`{"delivery":{"name":"x","phone":"+","email":"*@*"}}`))
	g := ordergen.New(7)
	for range 3 {
		b, err := g.Order().Canonical()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := MaskJSON(data)
		if err != nil {
			if !errors.Is(err, model.ErrEmpty) && !errors.Is(err, model.ErrMalformed) && !errors.Is(err, model.ErrTooLarge) {
				t.Fatalf("MaskJSON error %q has no model class", err)
			}
			return
		}
		in, err := model.Decode(data)
		if err != nil {
			t.Fatalf("MaskJSON accepted what Decode refuses: %v", err)
		}
		checkMasked(t, in, out)
	})
}

// FuzzMaskFields puts arbitrary strings in the personal fields of the sample
// order, so that the rules themselves get fuzzed rather than the JSON
// decoder, and checks the same properties through MaskJSON.
func FuzzMaskFields(f *testing.F) {
	for _, tc := range fieldCases {
		f.Add(tc.in, tc.in, tc.in, tc.in, tc.in)
	}
	f.Add("Иван Петров", "+79161234567", "123456", "ул. Ленина, д. 5", "ivan@mail.ru")
	base := testenv.Sample(f)
	f.Fuzz(func(t *testing.T, name, phone, zip, address, email string) {
		o := *base
		o.Delivery.Name, o.Delivery.Phone, o.Delivery.Zip, o.Delivery.Address, o.Delivery.Email =
			name, phone, zip, address, email
		data, err := o.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		// Canonical replaces invalid UTF-8 as encoding/json does; compare
		// with what the reader would hold.
		in, err := model.Decode(data)
		if err != nil {
			t.Fatalf("canonical order does not decode: %v", err)
		}
		out, err := MaskJSON(data)
		if err != nil {
			t.Fatalf("MaskJSON of a canonical order: %v", err)
		}
		checkMasked(t, in, out)
	})
}

func checkMasked(t *testing.T, in *model.Order, out []byte) {
	t.Helper()
	m, err := model.Decode(out)
	if err != nil {
		t.Fatalf("masked order does not decode: %v\n%s", err, out)
	}
	again, err := MaskJSON(out)
	if err != nil {
		t.Fatalf("masked order does not mask: %v", err)
	}
	if !bytes.Equal(again, out) {
		t.Fatalf("MaskJSON is not idempotent:\n%s\n%s", out, again)
	}

	// Everything but the masked fields is as it was.
	a, b := *in, *m
	for _, d := range []*model.Delivery{&a.Delivery, &b.Delivery} {
		d.Name, d.Phone, d.Zip, d.Address, d.Email = "", "", "", "", ""
	}
	ac, err := a.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	bc, err := b.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ac, bc) {
		t.Fatalf("masking changed other fields:\n%s\n%s", ac, bc)
	}

	d, md := in.Delivery, m.Delivery
	for _, v := range []string{md.Name, md.Phone, md.Zip, md.Address, md.Email} {
		if !utf8.ValidString(v) {
			t.Errorf("masked value %q is not valid UTF-8", v)
		}
	}
	hidden(t, "name", d.Name, md.Name)
	hidden(t, "address", d.Address, md.Address)
	local, mlocal := d.Email, md.Email
	if i := strings.LastIndexByte(local, '@'); i >= 0 {
		local = local[:i]
	}
	if i := strings.LastIndexByte(mlocal, '@'); i >= 0 {
		mlocal = mlocal[:i]
	}
	hidden(t, "email local part", local, mlocal)
	if md.Zip != "" && md.Zip != zipMask {
		t.Errorf("zip %q masks to %q", d.Zip, md.Zip)
	}
	if md.Address != "" && strings.Trim(md.Address, "* ") != "" {
		t.Errorf("address %q masks to %q, which shows more than asterisks", d.Address, md.Address)
	}
	if !strings.ContainsRune(d.Phone, MaskRune) {
		digits, mdigits := asciiDigits(d.Phone), asciiDigits(md.Phone)
		if len(digits) >= 8 && len(digits)-len(mdigits) < phoneHidden {
			t.Errorf("phone %q masks to %q: fewer than %d digits hidden", d.Phone, md.Phone, phoneHidden)
		}
	}
}

// hidden fails when a personal value of two runes or more (and not already
// masked) can still be read in its masked form.
func hidden(t *testing.T, field, orig, masked string) {
	t.Helper()
	v := strings.TrimSpace(orig)
	if utf8.RuneCountInString(v) < 2 || strings.ContainsRune(v, MaskRune) {
		return
	}
	if strings.Contains(masked, v) {
		t.Errorf("%s %q masks to %q, which still holds it", field, orig, masked)
	}
}

func asciiDigits(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}
