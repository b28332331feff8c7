package config

import (
	"fmt"
	"maps"
	"regexp"
	"strings"
	"testing"

	"github.com/orderservice/orders/shared/envconf/envconftest"
)

// FuzzLoad: arbitrary values in any two variables never panic Load, and
// its error names the variables at fault without repeating a value.
func FuzzLoad(f *testing.F) {
	base := map[string]string{"DATABASE_URL": "postgres://order_ingestor@db:5432/orders", "REDIS_URL": "redis://cache:6379/0"}
	envconftest.Fuzz(f, Vars(), base, func(getenv func(string) string) error {
		_, err := Load(getenv)
		return err
	})
}

// propertiesError is every error Parse may return: it names the entry by
// its number, never its text (a value may be a secret).
var propertiesError = regexp.MustCompile(`^entry ([1-9][0-9]*): want key=value$`)

// FuzzPropertiesParse: any text parses into trimmed key=value pairs that
// print and parse back to the same map, or fails naming the first bad
// entry by its number.
func FuzzPropertiesParse(f *testing.F) {
	f.Add("security.protocol=SASL_SSL;sasl.mechanisms=PLAIN\nsasl.jaas.config=a=b")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := Properties(s).Parse()
		if bad := firstBadEntry(s); bad > 0 {
			if err == nil || !propertiesError.MatchString(err.Error()) || err.Error() != fmt.Sprintf("entry %d: want key=value", bad) {
				t.Fatalf("Parse(%q): error %v, want entry %d named", s, err, bad)
			}
			return
		}
		if err != nil {
			t.Fatalf("Parse(%q): %v", s, err)
		}
		var b strings.Builder
		for k, v := range m {
			if k == "" || k != strings.TrimSpace(k) || strings.ContainsAny(k, ";\n=") ||
				v != strings.TrimSpace(v) || strings.ContainsAny(v, ";\n") {
				t.Fatalf("Parse(%q): pair %q=%q", s, k, v)
			}
			b.WriteString(k + "=" + v + ";")
		}
		again, err := Properties(b.String()).Parse()
		if err != nil || !maps.Equal(again, m) {
			t.Fatalf("Parse(%q) = %v, which prints as %q and parses back to %v (%v)", s, m, b.String(), again, err)
		}
	})
}

// firstBadEntry returns the number (from 1, blank entries not counted) of
// the first entry of s that is not key=value with a key, or 0.
func firstBadEntry(s string) int {
	n := 0
	for _, entry := range strings.FieldsFunc(s, func(r rune) bool { return r == ';' || r == '\n' }) {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		n++
		if k, _, ok := strings.Cut(entry, "="); !ok || strings.TrimSpace(k) == "" {
			return n
		}
	}
	return 0
}
