package auth

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/orderservice/orders/reader/auth/ratelimit"
	"github.com/orderservice/orders/shared/testenv"
)

var defaultRate = ratelimit.PerSecond(50, 100)

func TestParseKeys(t *testing.T) {
	_, h1 := newKey(t)
	_, h2 := newKey(t)
	_, h3 := newKey(t)
	set, err := parseKeys([]byte(strings.Join([]string{
		"# support desk",
		"",
		"support:orders:read:" + h1,
		"  # indented comment",
		"billing.ci-2:orders:read,orders:pii:" + strings.ToUpper(h2) + ":rate=5/10\r",
		"bulk:orders:pii , orders:read,orders:pii:" + h3 + ":rate=0",
	}, "\n")), defaultRate)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		scopes []string
		rate   ratelimit.Rate
	}{
		"support":      {[]string{ScopeRead}, defaultRate},
		"billing.ci-2": {[]string{ScopeRead, ScopePII}, ratelimit.PerSecond(5, 10)},
		"bulk":         {[]string{ScopePII, ScopeRead}, ratelimit.Rate{}},
	}
	if len(set.byHash) != len(want) || !slices.Equal(set.names, []string{"billing.ci-2", "bulk", "support"}) {
		t.Fatalf("loaded %d keys named %v", len(set.byHash), set.names)
	}
	for _, e := range set.byHash {
		p := e.principal
		w, ok := want[p.Name]
		if !ok || !slices.Equal(p.Scopes, w.scopes) || p.RateLimit != w.rate || p.Kind != KindAPIKey ||
			p.limitKey != "cred:api_key:"+p.Name {
			t.Errorf("key %+v, want %+v", p, w)
		}
	}

	for _, tc := range []struct {
		name, file, want string
	}{
		{"two fields", "a:" + h1, "line 1: want name:scope"},
		{"no colon", h1, "line 1: want name:scope"},
		{"empty name", ":orders:read:" + h1, "line 1: the name must be"},
		{"name with space", "a b:orders:read:" + h1, "line 1: the name must be"},
		{"name starting with a dot", ".a:orders:read:" + h1, "line 1: the name must be"},
		{"name too long", strings.Repeat("n", 65) + ":orders:read:" + h1, "line 1: the name must be"},
		{"unknown scope", "a:orders:write:" + h1, "line 1: scope 1 is not one of orders:read, orders:pii"},
		{"second scope unknown", "a:orders:read,admin:" + h1, "line 1: scope 2 is not one of"},
		{"no scope", "a::" + h1, "line 1: scope 1 is not one of"},
		{"short hash", "a:orders:read:" + h1[:63], "line 1: the hash must be 64 hexadecimal digits"},
		{"hash not hex", "a:orders:read:" + strings.Repeat("g", 64), "line 1: the hash must be 64 hexadecimal digits"},
		{"key instead of hash", "a:orders:read:ord_abc", "line 1: the last field must be the key's SHA-256, not the key"},
		{"hash first", h1 + ":orders:read", "line 1: the hash must be 64 hexadecimal digits"},
		{"bad rate", "a:orders:read:" + h1 + ":rate=fast", "line 1: rate: requests per second"},
		{"rate without hash", "a:orders:read:rate=5", "line 1: the hash must be 64 hexadecimal digits"},
		{"duplicate name", "a:orders:read:" + h1 + "\n\nb:orders:read:" + h2 + "\na:orders:pii:" + h3,
			"line 4: the name is already used on line 1"},
		{"duplicate key", "a:orders:read:" + h1 + "\nb:orders:pii:" + h1, "line 2: the same key as on line 1"},
		{"every bad line", "a:x:" + h1 + "\n# ok\nb:orders:read:" + h2 + "\nc:y:" + h3,
			"line 1: scope 1 is not one of orders:read, orders:pii\nline 4: scope 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseKeys([]byte(tc.file), defaultRate)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			for _, secret := range []string{h1, h2, h3, h1[:63], strings.ToUpper(h1), "ord_abc", "fast", "write", "admin"} {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("error %q repeats the file's content %q", err, secret)
				}
			}
		})
	}

	// An empty file is valid: every key revoked.
	if set, err := parseKeys([]byte("# nobody\n\n"), defaultRate); err != nil || len(set.byHash) != 0 {
		t.Fatalf("empty file: %v, %v", set, err)
	}
}

func TestKeyStoreLookup(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys")
	support, h1 := newKey(t)
	pii, h2 := newKey(t)
	revoked, _ := newKey(t)
	writeFile(t, path, "support:orders:read:"+h1, "pii:orders:read,orders:pii:"+h2+":rate=7/9")
	m := newRecMetrics()
	s, err := NewKeyStore(path, defaultRate, nil, m)
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 2 || get(m, func(m *recMetrics) int { return m.keys }) != 2 {
		t.Fatalf("Len %d, metrics %d, want 2", s.Len(), m.keys)
	}
	for _, tc := range []struct {
		token  string
		name   string
		scopes []string
		rate   ratelimit.Rate
	}{
		{support, "support", []string{ScopeRead}, defaultRate},
		{pii, "pii", []string{ScopeRead, ScopePII}, ratelimit.PerSecond(7, 9)},
		{revoked, "", nil, ratelimit.Rate{}},
		{strings.TrimPrefix(support, KeyPrefix), "", nil, ratelimit.Rate{}},
		{support + "x", "", nil, ratelimit.Rate{}},
		{support[:len(support)-1], "", nil, ratelimit.Rate{}},
		{h1, "", nil, ratelimit.Rate{}}, // the hash is not the key
		{"", "", nil, ratelimit.Rate{}},
	} {
		p, ok := s.Lookup(tc.token)
		if tc.name == "" {
			if ok || p != nil {
				t.Errorf("Lookup of a wrong key: %+v", p)
			}
			continue
		}
		if !ok || p.Name != tc.name || !slices.Equal(p.Scopes, tc.scopes) || p.RateLimit != tc.rate || p.Kind != KindAPIKey {
			t.Errorf("Lookup(%s key) = %+v, %v", tc.name, p, ok)
		}
	}
}

func TestNewKeyStoreRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	if _, err := NewKeyStore(filepath.Join(dir, "missing"), defaultRate, nil, nil); err == nil {
		t.Error("a missing keys file was accepted")
	}
	bad := filepath.Join(dir, "bad")
	_, h := newKey(t)
	writeFile(t, bad, "a:orders:read:"+h, "b:orders:everything:"+h)
	_, err := NewKeyStore(bad, defaultRate, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "line 2") || strings.Contains(err.Error(), h) {
		t.Errorf("bad file: %v, want an error naming line 2 and not the hash", err)
	}
	huge := filepath.Join(dir, "huge")
	if err := os.WriteFile(huge, make([]byte, maxKeysFile+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewKeyStore(huge, defaultRate, nil, nil); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("huge file: %v", err)
	}
}

func TestReloadKeepsKeysOfABadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys")
	key, h := newKey(t)
	writeFile(t, path, "a:orders:read:"+h)
	var log testenv.Buffer
	m := newRecMetrics()
	s, err := NewKeyStore(path, defaultRate, logger(&log), m)
	if err != nil {
		t.Fatal(err)
	}
	_, h2 := newKey(t)
	writeFile(t, path, "a:orders:read:"+h, "b:orders:read:"+h2+":rate=x")
	err = s.Reload()
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("Reload of a bad file: %v", err)
	}
	if _, ok := s.Lookup(key); !ok {
		t.Fatal("the key loaded before the bad file was dropped")
	}
	if n := get(m, func(m *recMetrics) int { return m.reloadFailed }); n != 1 {
		t.Fatalf("reload failures counted: %d, want 1", n)
	}
	if !strings.Contains(log.String(), `"level":"ERROR","msg":"api keys: the keys file was not reloaded`) ||
		!strings.Contains(log.String(), "line 2") {
		t.Fatalf("no error log line naming line 2:\n%s", log.String())
	}
	// A missing file also keeps them.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); err == nil {
		t.Fatal("Reload of a missing file succeeded")
	}
	if _, ok := s.Lookup(key); !ok {
		t.Fatal("the key was dropped when the file went missing")
	}
	// A good file replaces them.
	writeFile(t, path, "# nobody")
	if err := s.Reload(); err != nil || s.Len() != 0 {
		t.Fatalf("Reload of an empty file: %v, %d keys", err, s.Len())
	}
	if _, ok := s.Lookup(key); ok {
		t.Fatal("a revoked key still works")
	}
	if !strings.Contains(log.String(), `"removed":["a"]`) {
		t.Fatalf("the reload log line does not name the removed key:\n%s", log.String())
	}
}

// watch runs s.Watch until the test ends.
func watch(t *testing.T, s *KeyStore) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Watch(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch: %v", err)
		}
	})
}

func TestWatchAddsAndRevokesKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys")
	old, h1 := newKey(t)
	writeFile(t, path, "old:orders:read:"+h1)
	m := newRecMetrics()
	s, err := NewKeyStore(path, defaultRate, nil, m)
	if err != nil {
		t.Fatal(err)
	}
	s.debounce = 10 * time.Millisecond
	watch(t, s)

	added, h2 := newKey(t)
	writeFile(t, path, "old:orders:read:"+h1, "new:orders:read,orders:pii:"+h2)
	testenv.Await(t, "the added key to work", 5*time.Second, func() bool { _, ok := s.Lookup(added); return ok })

	writeFile(t, path, "new:orders:read,orders:pii:"+h2)
	testenv.Await(t, "the revoked key to stop working", 5*time.Second, func() bool { _, ok := s.Lookup(old); return !ok })
	if _, ok := s.Lookup(added); !ok {
		t.Fatal("the remaining key stopped working")
	}

	// In place, as `echo >> keys` does.
	_, h3 := newKey(t)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("third:orders:read:" + h3 + "\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	testenv.Await(t, "the appended key to load", 5*time.Second, func() bool { return s.Len() == 2 })

	// A bad file keeps the keys.
	writeFile(t, path, "new:orders:read,orders:pii:"+h2, "broken")
	testenv.Await(t, "the bad file to be refused", 5*time.Second, func() bool {
		return get(m, func(m *recMetrics) int { return m.reloadFailed }) > 0
	})
	if _, ok := s.Lookup(added); !ok || s.Len() != 2 {
		t.Fatal("a bad file changed the keys")
	}
}

// A Kubernetes Secret volume holds the files in a timestamped directory,
// a "..data" symlink to it, and per file a symlink through "..data". An
// update writes a new directory and renames a new symlink over "..data".
func TestWatchFollowsKubernetesSecretUpdates(t *testing.T) {
	dir := t.TempDir()
	version := 0
	publish := func(lines ...string) {
		version++
		ts := filepath.Join(dir, "..2024_01_01_00_00_0"+string(rune('0'+version)))
		if err := os.Mkdir(ts, 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(ts, "api-keys"), lines...)
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	k1, h1 := newKey(t)
	publish("one:orders:read:" + h1)
	path := filepath.Join(dir, "api-keys")
	if err := os.Symlink(filepath.Join("..data", "api-keys"), path); err != nil {
		t.Fatal(err)
	}
	s, err := NewKeyStore(path, defaultRate, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.debounce = 10 * time.Millisecond
	watch(t, s)
	if _, ok := s.Lookup(k1); !ok {
		t.Fatal("the first key does not work")
	}
	k2, h2 := newKey(t)
	publish("two:orders:read:" + h2)
	testenv.Await(t, "the Secret's new key to work", 5*time.Second, func() bool { _, ok := s.Lookup(k2); return ok })
	if _, ok := s.Lookup(k1); ok {
		t.Fatal("the key removed from the Secret still works")
	}
}

func TestWatchFailsWithoutTheDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys")
	writeFile(t, path, "# none")
	s, err := NewKeyStore(path, defaultRate, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.path = filepath.Join(t.TempDir(), "gone", "keys")
	if err := s.Watch(context.Background()); err == nil {
		t.Fatal("Watch of a missing directory returned nil")
	}
}
