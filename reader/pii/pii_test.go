package pii

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/orderservice/orders/shared/model"
	"github.com/orderservice/orders/shared/testenv"
)

// fieldCases are the inputs of every masking rule with the output each must
// give. Each rule must also be idempotent and give valid UTF-8 (checked for
// every case).
var fieldCases = []struct {
	rule, in, want string
}{
	{"name", "Иван Петров", "И*** П***"},
	{"name", "Test Testov", "T*** T***"},
	{"name", "И", "И***"},
	{"name", "A B", "A*** B***"},
	{"name", "  Anna \t  Maria  ", "A*** M***"},
	{"name", "Анна-Мария", "А***"},
	{"name", "O'Brien", "O***"},
	{"name", "Zoë Ångström", "Z*** Å***"},
	{"name", "山田 太郎", "山*** 太***"},
	{"name", "😀 Anna", "*** A***"},
	{"name", "👩‍👩‍👧", "***"},
	{"name", "\u0301Anna", "***"}, // starts with a combining accent
	{"name", "1st Person", "*** P***"},
	{"name", "", ""},
	{"name", "   ", ""},
	{"name", "И*** П***", "И*** П***"},
	{"name", "Ivan\u00a0Petrov", "I*** P***"}, // no-break space separates words too

	{"address", "Ploshad Mira 15", "*** *** ***"},
	{"address", "ул. Ленина, д. 5, кв. 12", "*** *** *** *** *** ***"},
	{"address", "1", "***"},
	{"address", "", ""},
	{"address", "*** ***", "*** ***"},

	{"zip", "2639809", "***"},
	{"zip", "SW1A 1AA", "***"},
	{"zip", "1", "***"},
	{"zip", "", ""},
	{"zip", " ", ""},
	{"zip", "***", "***"},

	{"email", "test@gmail.com", "t***@gmail.com"},
	{"email", "иван.петров@почта.рф", "и***@почта.рф"},
	{"email", "t@x.io", "t***@x.io"},
	{"email", "a@b@example.com", "a***@example.com"},
	{"email", "@example.com", "@example.com"},
	{"email", "😀@example.com", "***@example.com"},
	{"email", "1234@example.com", "***@example.com"},
	{"email", "no-at-sign", "n***"},
	{"email", "", ""},
	{"email", "t***@gmail.com", "t***@gmail.com"},

	{"phone", "+79161234567", "+7******4567"},
	{"phone", "+7 (916) 123-45-67", "+7******4567"},
	{"phone", "89161234567", "******4567"},
	{"phone", "+12025550123", "+1******0123"},
	{"phone", "+441632960961", "+44******0961"},
	{"phone", "+972501234567", "+972******4567"},
	{"phone", "+9720000000", "+972******"}, // the sample: a 7-digit national number shows no digits
	{"phone", "9161234", "******"},
	{"phone", "+0123456789", "+******6789"}, // no calling code starts with 0
	{"phone", "+", "+******"},
	{"phone", "+٧٩١٦١٢٣٤٥٦٧", "+******"}, // only ASCII digits are kept
	{"phone", "n/a", "******"},
	{"phone", "", ""},
	{"phone", "  ", ""},
	{"phone", "+7******4567", "+7******4567"},
	{"phone", "******4567", "******4567"},
	{"phone", "+972******", "+972******"},
}

var rules = map[string]func(string) string{
	"name":    maskName,
	"address": maskAddress,
	"zip":     maskZip,
	"email":   maskEmail,
	"phone":   maskPhone,
}

func TestFieldRules(t *testing.T) {
	for _, tc := range fieldCases {
		t.Run(tc.rule+"/"+tc.in, func(t *testing.T) {
			mask := rules[tc.rule]
			got := mask(tc.in)
			if got != tc.want {
				t.Errorf("%s(%q) = %q, want %q", tc.rule, tc.in, got, tc.want)
			}
			if !utf8.ValidString(got) {
				t.Errorf("%s(%q) = %q is not valid UTF-8", tc.rule, tc.in, got)
			}
			if again := mask(got); again != got {
				t.Errorf("%s is not idempotent: %q masks to %q", tc.rule, got, again)
			}
		})
	}
}

// Masks have a fixed width: a long value and a short one give masks of the
// same length, so the masked view does not tell the original's length.
func TestMasksHideLength(t *testing.T) {
	pairs := []struct{ rule, short, long string }{
		{"name", "Al", "Alexandrina"},
		{"address", "5", "Verkhnyaya-Krasnoselskaya"},
		{"zip", "1", "123456789"},
		{"email", "al@example.com", "alexandrina.konstantinopolskaya@example.com"},
		{"phone", "+79161234567", "+7916123456789012"},
	}
	for _, p := range pairs {
		short, long := rules[p.rule](p.short), rules[p.rule](p.long)
		if utf8.RuneCountInString(short) != utf8.RuneCountInString(long) {
			t.Errorf("%s: %q masks to %q but %q to %q: the length shows", p.rule, p.short, short, p.long, long)
		}
	}
}

func TestMaskLeavesInputAndOtherFields(t *testing.T) {
	in := *testenv.Sample(t)
	in.Delivery.Name = "Иван Петров"
	in.Delivery.Phone = "+79161234567"
	before := deepCopy(t, in)

	got := Mask(in)

	if !reflect.DeepEqual(in, before) {
		t.Fatal("Mask changed its input")
	}
	want := before
	want.Delivery.Name = "И*** П***"
	want.Delivery.Phone = "+7******4567"
	want.Delivery.Zip = "***"
	want.Delivery.Address = "*** *** ***"
	want.Delivery.Email = "t***@gmail.com"
	// City, region and everything outside the delivery are kept.
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Mask(sample) =\n%+v\nwant\n%+v", got, want)
	}

	// The result has items of its own.
	got.Items[0].Name = "changed"
	if in.Items[0].Name != before.Items[0].Name {
		t.Error("changing the masked order's items changed the input's")
	}
}

func TestMaskJSON(t *testing.T) {
	sample := testenv.Sample(t)
	full, err := sample.Canonical()
	if err != nil {
		t.Fatal(err)
	}

	masked, err := MaskJSON(full)
	if err != nil {
		t.Fatalf("MaskJSON(sample): %v", err)
	}
	want := `"delivery":{"name":"T*** T***","phone":"+972******","zip":"***","city":"Kiryat Mozkin",` +
		`"address":"*** *** ***","region":"Kraiot","email":"t***@gmail.com"}`
	if !bytes.Contains(masked, []byte(want)) {
		t.Errorf("MaskJSON(sample) = %s\nwant it to contain %s", masked, want)
	}

	// The bytes are the canonical encoding of the masked order: the same as
	// Mask then Canonical, and stable when masked again.
	m := Mask(*sample)
	canonical, err := m.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(masked, canonical) {
		t.Errorf("MaskJSON(sample) =\n%s\nCanonical(Mask(sample)) =\n%s", masked, canonical)
	}
	again, err := MaskJSON(masked)
	if err != nil {
		t.Fatalf("MaskJSON(masked): %v", err)
	}
	if !bytes.Equal(again, masked) {
		t.Errorf("MaskJSON is not idempotent:\n%s\n%s", masked, again)
	}

	// Same keys, in the same places, with the same JSON types.
	if a, b := shape(t, full), shape(t, masked); !reflect.DeepEqual(a, b) {
		t.Errorf("masking changed the JSON shape:\n%v\n%v", a, b)
	}
	for _, secret := range []string{"Test Testov", "+9720000000", "2639809", "Ploshad", "Mira 15", "test@"} {
		if bytes.Contains(masked, []byte(secret)) {
			t.Errorf("masked order still holds %q: %s", secret, masked)
		}
	}
}

func TestMaskJSONErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"empty", "", model.ErrEmpty},
		{"not JSON", "Secret Person", model.ErrMalformed},
		{"wrong type", `{"delivery":{"name":"Secret Person","phone":79161234567}}`, model.ErrMalformed},
		{"truncated", `{"delivery":{"name":"Secret Person"`, model.ErrMalformed},
		{"trailing data", `{"delivery":{"name":"Secret Person"}} {}`, model.ErrMalformed},
		{"too large", `{"delivery":{"name":"Secret Person","address":"` + strings.Repeat("x", model.DefaultMaxSize) + `"}}`, model.ErrTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := MaskJSON([]byte(tc.in))
			if !errors.Is(err, tc.want) {
				t.Fatalf("MaskJSON error = %v, want %v", err, tc.want)
			}
			if out != nil {
				t.Errorf("MaskJSON returned %d bytes with its error", len(out))
			}
			if strings.Contains(err.Error(), "Secret") {
				t.Errorf("error %q quotes personal data", err)
			}
		})
	}
}

func deepCopy(t *testing.T, o model.Order) model.Order {
	t.Helper()
	b, err := o.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	c, err := model.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return *c
}

// shape is the JSON document with every string replaced by "" and every
// number by 0: what must not change when values are masked.
func shape(t testing.TB, doc []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	var walk func(any) any
	walk = func(v any) any {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				v[k] = walk(e)
			}
			return v
		case []any:
			for i, e := range v {
				v[i] = walk(e)
			}
			return v
		case string:
			return ""
		case float64:
			return 0.0
		default:
			return v
		}
	}
	return walk(v)
}
