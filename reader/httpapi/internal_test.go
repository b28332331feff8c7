package httpapi

import (
	"strings"
	"testing"

	"github.com/orderservice/orders/shared/model"
)

// TestValidUIDMatchesModel keeps the hand-written check equal to the
// model's pattern.
func TestValidUIDMatchesModel(t *testing.T) {
	t.Parallel()
	cases := []string{"", "a", "b563feb7b2b84b6test", "A-Z_0-9", strings.Repeat("x", 64), strings.Repeat("x", 65),
		"a.b", "a b", "é", "a/b", "a\x00", "-", "_", "abc\n", "ABC%", "Ж"}
	for c := range 256 {
		cases = append(cases, "a"+string(rune(c)))
	}
	for _, s := range cases {
		if got, want := validUID(s), model.UIDPattern.MatchString(s); got != want {
			t.Errorf("validUID(%q) = %v, model.UIDPattern says %v", s, got, want)
		}
	}
}

func FuzzValidUID(f *testing.F) {
	f.Add("b563feb7b2b84b6test")
	f.Add("a.b")
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := validUID(s), model.UIDPattern.MatchString(s); got != want {
			t.Fatalf("validUID(%q) = %v, model.UIDPattern says %v", s, got, want)
		}
	})
}

func TestETagMatches(t *testing.T) {
	t.Parallel()
	const etag = `"abc"`
	for _, tc := range []struct {
		header string
		want   bool
	}{
		{"", false}, {`"abc"`, true}, {`W/"abc"`, true}, {`"x", "abc"`, true}, {`*`, true},
		{`"abcd"`, false}, {`abc`, false}, {`"x" , W/"abc" `, true},
	} {
		if got := etagMatches(tc.header, etag); got != tc.want {
			t.Errorf("etagMatches(%q) = %v, want %v", tc.header, got, tc.want)
		}
	}
}

func TestValidRequestID(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"abc-123": true, "": false, strings.Repeat("a", 65): false, "a\nb": false, "a b": false, "trace:1.2_x": true,
	} {
		if got := validRequestID(s); got != want {
			t.Errorf("validRequestID(%q) = %v, want %v", s, got, want)
		}
	}
}
