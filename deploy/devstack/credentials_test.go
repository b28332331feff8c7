package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/orderservice/orders/reader/auth"
	"github.com/orderservice/orders/reader/auth/ratelimit"
)

// checkCredentialFiles asserts what `make run` promises about the two
// files: the credentials file holds both tokens and only its owner reads
// it; the keys file holds no token, and the reader's own parser finds each
// token in it with its name and scopes.
func checkCredentialFiles(t *testing.T, keysFile, credsFile string) map[string]string {
	t.Helper()
	fi, err := os.Stat(credsFile)
	if err != nil {
		t.Fatalf("credentials file: %v", err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("%s has mode %o, want 600", credsFile, mode)
	}
	tokens, err := readCredentials(credsFile)
	if err != nil {
		t.Fatalf("credentials file: %v", err)
	}
	for _, v := range []string{"ORDERS_PII_TOKEN", "ORDERS_SUPPORT_TOKEN"} {
		if !strings.HasPrefix(tokens[v], auth.KeyPrefix) {
			t.Errorf("%s: %s = %.8q…, want an API key (%s…)", credsFile, v, tokens[v], auth.KeyPrefix)
		}
	}
	if tokens["ORDERS_PII_TOKEN"] == tokens["ORDERS_SUPPORT_TOKEN"] {
		t.Error("both views got the same key")
	}
	keys, err := os.ReadFile(keysFile)
	if err != nil {
		t.Fatalf("keys file: %v", err)
	}
	for v, tok := range tokens {
		if strings.Contains(string(keys), tok) || strings.Contains(string(keys), strings.TrimPrefix(tok, auth.KeyPrefix)) {
			t.Errorf("the keys file %s holds %s itself, not only its hash", keysFile, v)
		}
	}
	store, err := auth.NewKeyStore(keysFile, ratelimit.Rate{}, nil, nil)
	if err != nil {
		t.Fatalf("the reader refuses the keys file: %v", err)
	}
	for _, want := range []struct {
		env, name string
		scopes    []string
	}{
		{"ORDERS_PII_TOKEN", "dev-pii", []string{auth.ScopeRead, auth.ScopePII}},
		{"ORDERS_SUPPORT_TOKEN", "dev-support", []string{auth.ScopeRead}},
	} {
		p, ok := store.Lookup(tokens[want.env])
		if !ok {
			t.Errorf("the reader does not know %s", want.env)
			continue
		}
		if p.Name != want.name || !slices.Equal(p.Scopes, want.scopes) {
			t.Errorf("%s is %s with %v, want %s with %v", want.env, p.Name, p.Scopes, want.name, want.scopes)
		}
	}
	if store.Len() != 2 {
		t.Errorf("the keys file holds %d keys, want 2", store.Len())
	}
	return tokens
}

func TestDevCredentialsCreatesBothKeys(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), ".artifacts") // made when missing
	c, err := devCredentials(dir, "http://localhost:8080")
	if err != nil {
		t.Fatal(err)
	}
	if c.reused {
		t.Error("fresh directory, yet the keys count as reused")
	}
	if c.keysFile != filepath.Join(dir, "dev-keys") || c.credsFile != filepath.Join(dir, "dev-credentials.env") {
		t.Errorf("files %s and %s", c.keysFile, c.credsFile)
	}
	tokens := checkCredentialFiles(t, c.keysFile, c.credsFile)
	if c.pii() != tokens["ORDERS_PII_TOKEN"] || c.support() != tokens["ORDERS_SUPPORT_TOKEN"] {
		t.Error("the tokens returned are not the ones written")
	}
	creds, err := os.ReadFile(c.credsFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(creds), `curl -H "Authorization: Bearer $ORDERS_SUPPORT_TOKEN" http://localhost:8080/`) {
		t.Errorf("the credentials file shows no curl example:\n%s", creds)
	}
	// No temporary file is left behind.
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Errorf("%d files in %s, want 2: %v", len(entries), dir, entries)
	}
}

// TestDevCredentialsReuse: a restart keeps the keys while both files
// agree, and makes new ones when they do not.
func TestDevCredentialsReuse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(t *testing.T, keysFile, credsFile string)
		reused bool
	}{
		{"untouched", func(*testing.T, string, string) {}, true},
		{"credentials readable by others", func(t *testing.T, _, creds string) {
			if err := os.Chmod(creds, 0o644); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"credentials file deleted", func(t *testing.T, _, creds string) { remove(t, creds) }, false},
		{"keys file deleted", func(t *testing.T, keys, _ string) { remove(t, keys) }, false},
		{"a key revoked", func(t *testing.T, keys, _ string) {
			edit(t, keys, func(s string) string {
				var kept []string
				for l := range strings.Lines(s) {
					if !strings.HasPrefix(l, "dev-support:") {
						kept = append(kept, l)
					}
				}
				return strings.Join(kept, "")
			})
		}, false},
		{"a scope changed", func(t *testing.T, keys, _ string) {
			edit(t, keys, func(s string) string {
				return strings.Replace(s, "dev-support:orders:read:", "dev-support:orders:read,orders:pii:", 1)
			})
		}, false},
		{"a token changed", func(t *testing.T, _, creds string) {
			edit(t, creds, func(s string) string { return strings.Replace(s, "ORDERS_PII_TOKEN=ord_", "ORDERS_PII_TOKEN=ord_x", 1) })
		}, false},
		{"a token missing", func(t *testing.T, _, creds string) {
			edit(t, creds, func(s string) string { return strings.Replace(s, "ORDERS_SUPPORT_TOKEN=", "OTHER=", 1) })
		}, false},
		{"keys file invalid", func(t *testing.T, keys, _ string) {
			edit(t, keys, func(s string) string { return s + "not a key line\n" })
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			first, err := devCredentials(dir, "http://localhost:8080")
			if err != nil {
				t.Fatal(err)
			}
			tt.change(t, first.keysFile, first.credsFile)
			second, err := devCredentials(dir, "http://localhost:8080")
			if err != nil {
				t.Fatal(err)
			}
			if second.reused != tt.reused {
				t.Errorf("reused = %v, want %v", second.reused, tt.reused)
			}
			same := second.pii() == first.pii() && second.support() == first.support()
			if same != tt.reused {
				t.Errorf("tokens kept = %v, want %v", same, tt.reused)
			}
			if !tt.reused && (second.pii() == first.pii() || second.support() == first.support()) {
				t.Error("a key of the earlier run survived the renewal")
			}
			// Reused or renewed, the files hold what the run uses.
			tokens := checkCredentialFiles(t, second.keysFile, second.credsFile)
			if tokens["ORDERS_PII_TOKEN"] != second.pii() || tokens["ORDERS_SUPPORT_TOKEN"] != second.support() {
				t.Error("the credentials file does not hold the tokens in use")
			}
		})
	}
}

func remove(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}

func edit(t *testing.T, path string, f func(string) string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	after := f(string(b))
	if after == string(b) {
		t.Fatalf("the edit changed nothing in %s", path)
	}
	if err := os.WriteFile(path, []byte(after), 0o600); err != nil {
		t.Fatal(err)
	}
}
