package auth

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"testing"

	"github.com/orderservice/orders/reader/auth/ratelimit"
)

func TestGenerateKey(t *testing.T) {
	seen := make(map[string]bool)
	for range 200 {
		key, hash := newKey(t)
		if !strings.HasPrefix(key, KeyPrefix) || len(key) != len(KeyPrefix)+keyDigits {
			t.Fatalf("key of %d bytes, want %q and %d digits", len(key), KeyPrefix, keyDigits)
		}
		for _, c := range key[len(KeyPrefix):] {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
				t.Fatalf("key digit %q is not base 62", c)
			}
		}
		sum := sha256.Sum256([]byte(key))
		if hash != hex.EncodeToString(sum[:]) {
			t.Fatal("the hash is not the key's SHA-256")
		}
		if seen[key] {
			t.Fatal("the same key twice")
		}
		seen[key] = true
		if tok, err := ParseAuthorization([]string{"Bearer " + key}); err != nil || tok != key {
			t.Fatalf("a generated key does not go through the header parser: %v", err)
		}
	}
}

func TestKeysNew(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		scopes []string
		rate   ratelimit.Rate
	}{
		{"support", []string{"--name", "support", "--scopes", "orders:read"}, []string{ScopeRead}, defaultRate},
		{"pii", []string{"--name=pii-1", "--scopes=orders:read,orders:pii"}, []string{ScopeRead, ScopePII}, defaultRate},
		{"own rate", []string{"-name", "bulk", "-scopes", "orders:read", "-rate", "5/20"}, []string{ScopeRead}, ratelimit.PerSecond(5, 20)},
		{"no limit", []string{"--name", "x", "--scopes", "orders:read, orders:read", "--rate", "0"}, []string{ScopeRead}, ratelimit.Rate{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if err := KeysNew(tc.args, &stdout, &stderr); err != nil {
				t.Fatal(err)
			}
			out := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
			key := out[len(out)-1]
			if !strings.HasPrefix(key, KeyPrefix) || len(key) != len(KeyPrefix)+keyDigits {
				t.Fatalf("stdout %q: the last line is not a key", stdout.String())
			}
			if strings.Contains(stderr.String(), key) {
				t.Fatal("the key is on stderr too")
			}
			// stderr appended to a keys file is a valid entry for the key.
			set, err := parseKeys(stderr.Bytes(), defaultRate)
			if err != nil {
				t.Fatalf("stderr %q is not a keys file: %v", stderr.String(), err)
			}
			e := set.byHash[hashKey(key)]
			if e == nil {
				t.Fatalf("stderr %q has no line for the key", stderr.String())
			}
			if p := e.principal; !slices.Equal(p.Scopes, tc.scopes) || p.RateLimit != tc.rate {
				t.Fatalf("the line grants %v at %v, want %v at %v", p.Scopes, p.RateLimit, tc.scopes, tc.rate)
			}
		})
	}
	for _, args := range [][]string{
		nil,
		{"--name", "x"},
		{"--scopes", "orders:read"},
		{"--name", "x y", "--scopes", "orders:read"},
		{"--name", "x", "--scopes", "orders:write"},
		{"--name", "x", "--scopes", "orders:read,"},
		{"--name", "x", "--scopes", "orders:read", "--rate", "fast"},
		{"--name", "x", "--scopes", "orders:read", "extra"},
		{"--unknown-flag", "x"},
	} {
		var stdout, stderr bytes.Buffer
		if err := KeysNew(args, &stdout, &stderr); err == nil {
			t.Errorf("KeysNew(%q) succeeded", args)
		}
		if stdout.Len() > 0 {
			t.Errorf("KeysNew(%q) failed but wrote %q to stdout", args, stdout.String())
		}
	}
}
