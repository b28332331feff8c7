package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/orderservice/orders/reader/auth/ratelimit"
)

// maxKeysFile bounds the keys file: about 10,000 keys.
const maxKeysFile = 1 << 20

// KeyStore holds the API keys of a keys file, by the SHA-256 of each key,
// and reloads them when the file changes. Lookups read an immutable
// snapshot through an atomic pointer: no lock on the request path.
type KeyStore struct {
	path        string
	defaultRate ratelimit.Rate
	log         *slog.Logger
	metrics     Metrics
	debounce    time.Duration

	keys     atomic.Pointer[keySet]
	reloadMu sync.Mutex // one reload at a time
}

// keySet is one load of the keys file.
type keySet struct {
	byHash map[[sha256.Size]byte]*keyEntry
	names  []string // sorted, for the reload log line
	digest [sha256.Size]byte
}

type keyEntry struct {
	hash      [sha256.Size]byte
	principal *Principal
}

// NewKeyStore loads the keys file at path; a missing or invalid file is
// an error. Keys without a rate of their own get defaultRate. log and m
// may be nil.
func NewKeyStore(path string, defaultRate ratelimit.Rate, log *slog.Logger, m Metrics) (*KeyStore, error) {
	s := &KeyStore{
		path: path, defaultRate: defaultRate, log: orDiscard(log), metrics: orNop(m),
		debounce: 100 * time.Millisecond,
	}
	set, err := s.read()
	if err != nil {
		return nil, err
	}
	s.keys.Store(set)
	s.metrics.KeysLoaded(len(set.names))
	s.log.Info("api keys loaded", "path", path, "keys", len(set.names))
	return s, nil
}

// Lookup returns the principal of an API key: one SHA-256 and one map
// read. The hash of the presented key is compared in constant time with
// the stored one; the map lookup before it is by the hash, so its timing
// tells nothing about any stored key.
func (s *KeyStore) Lookup(token string) (*Principal, bool) {
	if !strings.HasPrefix(token, KeyPrefix) {
		return nil, false
	}
	sum := hashKey(token)
	e := s.keys.Load().byHash[sum]
	if e == nil || subtle.ConstantTimeCompare(e.hash[:], sum[:]) != 1 {
		return nil, false
	}
	return e.principal, true
}

// hashKey is the SHA-256 of key, through a stack buffer: converting the
// string would allocate on every request.
func hashKey(key string) [sha256.Size]byte {
	var buf [64]byte
	return sha256.Sum256(append(buf[:0], key...))
}

// Len is the number of keys loaded.
func (s *KeyStore) Len() int { return len(s.keys.Load().names) }

// Reload reads the keys file again (the reader calls it on SIGHUP). A
// missing or invalid file keeps the keys loaded before, and the error,
// which names lines but never their content, is logged, counted and
// returned.
func (s *KeyStore) Reload() error {
	_, err := s.reload(true)
	return err
}

// reload replaces the keys with the file's when it changed. Reloads the
// watcher starts are quiet when nothing changed; forced ones say so.
func (s *KeyStore) reload(forced bool) (changed bool, err error) {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	set, err := s.read()
	if err != nil {
		s.metrics.KeysReloadFailed()
		s.log.Error("api keys: the keys file was not reloaded, the keys loaded before stay in use",
			"path", s.path, "err", err)
		return false, err
	}
	old := s.keys.Load()
	if set.digest == old.digest {
		if forced {
			s.log.Info("api keys file unchanged", "path", s.path, "keys", len(old.names))
		}
		return false, nil
	}
	s.keys.Store(set)
	s.metrics.KeysLoaded(len(set.names))
	added, removed := diffNames(old.names, set.names)
	s.log.Info("api keys reloaded", "path", s.path, "keys", len(set.names), "added", added, "removed", removed)
	return true, nil
}

func (s *KeyStore) read() (*keySet, error) {
	f, err := os.Open(s.path)
	if err != nil {
		return nil, fmt.Errorf("api keys file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeysFile+1))
	if err != nil {
		return nil, fmt.Errorf("api keys file %s: %w", s.path, err)
	}
	if len(data) > maxKeysFile {
		return nil, fmt.Errorf("api keys file %s: larger than %d bytes", s.path, maxKeysFile)
	}
	set, err := parseKeys(data, s.defaultRate)
	if err != nil {
		return nil, fmt.Errorf("api keys file %s: %w", s.path, err)
	}
	return set, nil
}

// Watch reloads the keys when the file changes, until ctx ends. It
// watches the file's directory, not the file: editors replace a file by
// renaming another over it, and a Kubernetes Secret volume swaps its
// "..data" symlink, so the file's own inode never changes. Bursts of
// events are taken as one change.
func (s *KeyStore) Watch(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("api keys: watch: %w", err)
	}
	defer w.Close()
	dir := filepath.Dir(s.path)
	if err := w.Add(dir); err != nil {
		return fmt.Errorf("api keys: watch %s: %w", dir, err)
	}
	// A change between the load and the watch would go unseen.
	_, _ = s.reload(false)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case _, ok := <-w.Events:
			if !ok {
				return errors.New("api keys: watcher closed")
			}
			timer.Reset(s.debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("api keys: watcher closed")
			}
			// An overflow loses events: reload in case one was ours.
			s.log.Warn("api keys: watching the keys file", "path", s.path, "err", err)
			timer.Reset(s.debounce)
		case <-timer.C:
			_, _ = s.reload(false)
		}
	}
}

// parseKeys reads a keys file: one key per line,
//
//	name:scope[,scope…]:sha256hex[:rate=R[/B]]
//
// with blank lines and lines starting with "#" ignored. Every bad line is
// reported by number; no error repeats any of the line's content, since a
// misplaced field may be a hash or even a key.
func parseKeys(data []byte, defaultRate ratelimit.Rate) (*keySet, error) {
	set := &keySet{byHash: make(map[[sha256.Size]byte]*keyEntry), digest: sha256.Sum256(data)}
	nameLine := make(map[string]int)
	hashLine := make(map[[sha256.Size]byte]int)
	var errs []error
	for i, line := range strings.Split(string(data), "\n") {
		n := i + 1
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		e, err := parseKeyLine(line, defaultRate)
		switch {
		case err != nil:
			err = fmt.Errorf("line %d: %w", n, err)
		case nameLine[e.principal.Name] != 0:
			err = fmt.Errorf("line %d: the name is already used on line %d", n, nameLine[e.principal.Name])
		case hashLine[e.hash] != 0:
			err = fmt.Errorf("line %d: the same key as on line %d", n, hashLine[e.hash])
		}
		if err != nil {
			if errs = append(errs, err); len(errs) == 20 {
				errs = append(errs, errors.New("more errors not shown"))
				break
			}
			continue
		}
		nameLine[e.principal.Name], hashLine[e.hash] = n, n
		set.byHash[e.hash] = e
		set.names = append(set.names, e.principal.Name)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	slices.Sort(set.names)
	return set, nil
}

var errKeyLine = errors.New("want name:scope[,scope…]:sha256hex, optionally :rate=R/B")

func parseKeyLine(line string, defaultRate ratelimit.Rate) (*keyEntry, error) {
	name, rest, ok := strings.Cut(line, ":")
	if !ok {
		return nil, errKeyLine
	}
	if !validName(name) {
		return nil, errors.New("the name must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	p := &Principal{Name: name, Kind: KindAPIKey, RateLimit: defaultRate, limitKey: "cred:api_key:" + name}
	// Scopes contain colons ("orders:read"), so the fields are taken
	// from both ends: the name has none, nor the hash, nor the rate.
	if i := strings.LastIndexByte(rest, ':'); i >= 0 && strings.HasPrefix(rest[i+1:], "rate=") {
		r, err := ratelimit.ParseRate(strings.TrimPrefix(rest[i+1:], "rate="))
		if err != nil {
			return nil, err
		}
		p.RateLimit, rest = r, rest[:i]
	}
	i := strings.LastIndexByte(rest, ':')
	if i < 0 {
		return nil, errKeyLine
	}
	scopes, hashText := rest[:i], rest[i+1:]
	e := &keyEntry{principal: p}
	if strings.HasPrefix(hashText, KeyPrefix) {
		return nil, errors.New("the last field must be the key's SHA-256, not the key: never put a key in the file")
	}
	if len(hashText) != 2*sha256.Size {
		return nil, errors.New("the hash must be 64 hexadecimal digits (the SHA-256 of the key)")
	}
	if _, err := hex.Decode(e.hash[:], []byte(hashText)); err != nil {
		return nil, errors.New("the hash must be 64 hexadecimal digits (the SHA-256 of the key)")
	}
	for j, sc := range strings.Split(scopes, ",") {
		sc = strings.TrimSpace(sc)
		if !slices.Contains(knownScopes, sc) {
			return nil, fmt.Errorf("scope %d is not one of %s", j+1, strings.Join(knownScopes, ", "))
		}
		if !slices.Contains(p.Scopes, sc) {
			p.Scopes = append(p.Scopes, sc)
		}
	}
	return e, nil
}

// validName accepts the names the reader writes into logs and metric
// labels as they are.
func validName(s string) bool {
	if s == "" || len(s) > 64 || !isAlnum(s[0]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// diffNames returns the names only in b, and only in a (both sorted).
func diffNames(a, b []string) (added, removed []string) {
	for _, n := range b {
		if _, found := slices.BinarySearch(a, n); !found {
			added = append(added, n)
		}
	}
	for _, n := range a {
		if _, found := slices.BinarySearch(b, n); !found {
			removed = append(removed, n)
		}
	}
	return added, removed
}
