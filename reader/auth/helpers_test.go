package auth

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/orderservice/orders/shared/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// recMetrics records what Metrics is told.
type recMetrics struct {
	mu            sync.Mutex
	failures      map[string]int
	limited       map[string]int // kind + "/" + credential
	keys          int
	reloadFailed  int
	jwksOK, jwksE int
	redisUp       []bool
}

func newRecMetrics() *recMetrics {
	return &recMetrics{failures: map[string]int{}, limited: map[string]int{}}
}

func (m *recMetrics) AuthFailure(reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.failures[reason]++
}

func (m *recMetrics) RateLimited(kind, credential string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.limited[kind+"/"+credential]++
}

func (m *recMetrics) KeysLoaded(n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.keys = n
}

func (m *recMetrics) KeysReloadFailed() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reloadFailed++
}

func (m *recMetrics) JWKSRefreshed(ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ok {
		m.jwksOK++
	} else {
		m.jwksE++
	}
}

func (m *recMetrics) RateLimitRedis(up bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.redisUp = append(m.redisUp, up)
}

// get reads a field under the lock.
func get[T any](m *recMetrics, f func(*recMetrics) T) T {
	m.mu.Lock()
	defer m.mu.Unlock()
	return f(m)
}

// logger writes JSON at debug level to w, as production would at its
// most talkative.
func logger(w *testenv.Buffer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newKey generates an API key and its hash.
func newKey(t testing.TB) (key, hash string) {
	t.Helper()
	key, hash, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return key, hash
}

// writeFile replaces path with lines the way an editor or a deploy tool
// does: a new file renamed over the old one.
func writeFile(t testing.TB, path string, lines ...string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
