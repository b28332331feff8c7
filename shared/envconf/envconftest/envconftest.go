// Package envconftest fuzzes a service's configuration loader: arbitrary
// values in any of its variables never panic it, and every error it
// returns names the variables at fault without repeating their values.
// The services' FuzzLoad targets call Fuzz with their own variables.
package envconftest

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orderservice/orders/shared/envconf"
)

// Canary is put inside a value when the input asks for it: an error that
// contains it has repeated the value, which may be a password.
const Canary = "S3CR3T-canary"

// Fuzz runs a fuzz target over load. Each input sets two of vars on top of
// base (a valid environment: the required settings), each under one of
// the names it may be given as: the prefixed name, its unprefixed fallback
// or either's _FILE variant, which names a file holding the value. The
// loader must not panic; an error must be an *envconf.Error whose every
// problem names a variable of vars, mention the name of at least one of
// the two set, and never contain Canary.
func Fuzz(f *testing.F, vars []envconf.Var, base map[string]string, load func(getenv func(string) string) error) {
	f.Helper()
	known := map[string]bool{}
	for _, v := range vars {
		for _, n := range v.Names() {
			known[n], known[n+envconf.FileSuffix] = true, true
		}
	}
	if err := load(func(k string) string { return base[k] }); err != nil {
		f.Fatalf("the base environment is not valid: %v", err)
	}
	// Seeds: each variable with a bad value holding the canary, and given
	// twice (as itself and as its _FILE, the file empty).
	for k := range vars {
		i := uint8(k)
		f.Add(i, uint8(0), "bad value://x:@y", uint16(12), true, i, uint8(1), "")
		f.Add(i, uint8(2), "-1", uint16(0), true, uint8(k+1), uint8(0), "0")
	}
	f.Fuzz(func(t *testing.T, i, how uint8, value string, at uint16, secret bool, j, how2 uint8, other string) {
		if secret {
			n := int(at) % (len(value) + 1)
			value = value[:n] + Canary + value[n:]
		}
		env := maps.Clone(base)
		a := set(t, env, vars[int(i)%len(vars)], how, value)
		b := set(t, env, vars[int(j)%len(vars)], how2, other)
		err := load(func(k string) string { return env[k] })
		if err == nil {
			return
		}
		var e *envconf.Error
		if !errors.As(err, &e) || len(e.Problems) == 0 {
			t.Fatalf("%s, %s: the error is not a list of problems: %v", a, b, err)
		}
		for _, p := range e.Problems {
			if !known[p.Var] || p.Reason == "" {
				t.Fatalf("%s, %s: problem %q names no variable of the service", a, b, p)
			}
		}
		msg := err.Error()
		if !strings.Contains(msg, a) && !strings.Contains(msg, b) {
			t.Fatalf("%s, %s: the error names neither: %v", a, b, err)
		}
		if strings.Contains(msg, Canary) {
			t.Fatalf("%s, %s: the error repeats a value: %v", a, b, err)
		}
	})
}

// set gives v the value under the name how picks, and returns that name;
// a _FILE name gets a file holding the value.
func set(t *testing.T, env map[string]string, v envconf.Var, how uint8, value string) string {
	t.Helper()
	names := v.Names()
	name := names[int(how/2)%len(names)]
	if how%2 == 0 {
		env[name] = value
		return name
	}
	path := filepath.Join(t.TempDir(), "value")
	if err := os.WriteFile(path, []byte(value), 0o600); err != nil {
		t.Fatal(err)
	}
	env[name+envconf.FileSuffix] = path
	return name + envconf.FileSuffix
}
