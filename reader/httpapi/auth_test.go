package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/orderservice/orders/reader/auth"
	"github.com/orderservice/orders/reader/auth/authtest"
	"github.com/orderservice/orders/reader/auth/ratelimit"
	"github.com/orderservice/orders/reader/cache"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// testAuth is an Authenticator of the keys of an authtest keys file,
// rate-limited locally (package ratelimit without Redis) at the reader's
// defaults.
func testAuth(t testing.TB, extra ...string) (*auth.Authenticator, *authtest.Keys) {
	t.Helper()
	keys := authtest.NewKeys(t, extra...)
	ks, err := auth.NewKeyStore(keys.File, ratelimit.PerSecond(100, 200), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(auth.Config{Keys: ks, Limiter: ratelimit.New(nil, ratelimit.Options{}),
		FailureRate: ratelimit.PerMinute(20, 20)})
	if err != nil {
		t.Fatal(err)
	}
	return a, keys
}

// TestDataRoutesFailClosed: without an Authenticator the data endpoints
// refuse everything; the open ones still answer.
func TestDataRoutesFailClosed(t *testing.T) {
	t.Parallel()
	h := NewServer(Deps{Orders: panicky{}, Summaries: nil})
	for _, tc := range []struct {
		path string
		code int
	}{
		{"/order/abc", http.StatusInternalServerError},
		{"/order/", http.StatusInternalServerError},
		{"/orders", http.StatusInternalServerError},
		{"/healthz", http.StatusOK},
		{"/openapi.yaml", http.StatusOK},
	} {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodGet, tc.path, nil)
		r.Header.Set("Authorization", "Bearer ord_whatever")
		h.ServeHTTP(w, r)
		if w.Code != tc.code {
			t.Errorf("GET %s: %d, want %d", tc.path, w.Code, tc.code)
		}
	}
}

// maskless answers every lookup with an order that has no masked view.
type maskless struct{}

func (maskless) Cached(string) (*cache.Order, error) {
	return cache.NewOrder([]byte(`{"delivery":{"name":"Ivan Petrov"}}`), nil), nil
}

func (m maskless) Get(context.Context, string) (*cache.Order, cache.Source, error) {
	o, _ := m.Cached("")
	return o, cache.Local, nil
}

// TestNoMaskedViewIsNoAnswer: an order without its masked view is refused
// to a caller without orders:pii, never sent whole in its place.
func TestNoMaskedViewIsNoAnswer(t *testing.T) {
	t.Parallel()
	a, keys := testAuth(t)
	h := NewServer(Deps{Orders: maskless{}, Auth: a})
	for _, tc := range []struct {
		token string
		code  int
	}{{keys.Read, http.StatusInternalServerError}, {keys.PII, http.StatusOK}} {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodGet, "/order/abc", nil)
		r.Header.Set("Authorization", authtest.Bearer(tc.token))
		h.ServeHTTP(w, r)
		if w.Code != tc.code || (tc.code != http.StatusOK && strings.Contains(w.Body.String(), "Petrov")) {
			t.Errorf("%d %s, want %d", w.Code, w.Body, tc.code)
		}
	}
}

// TestAuditRecord: a record is one JSON line with the "log":"audit"
// marker and who read which order, its strings escaped (a JWT's sub is
// the identity provider's), and it is counted by credential.
func TestAuditRecord(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	reads := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "reads"}, []string{"credential"})
	a := NewAuditLog(&out, reads)
	at := time.Date(2026, 11, 25, 21, 0, 0, 123, time.FixedZone("MSK", 3*3600))
	a.piiRead(&auth.Principal{Name: "billing", Kind: auth.KindAPIKey}, "b563feb7b2b84b6test", "req-1",
		netip.MustParseAddr("192.0.2.7"), at)
	a.piiRead(&auth.Principal{Name: "alice\"\n@example", Kind: auth.KindJWT, ClientID: "crm"}, "x", "req-2",
		netip.Addr{}, at)
	if out.Len() != 0 {
		t.Fatalf("written before a flush: %q", out.String())
	}
	if err := a.Flush(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	want := []map[string]any{
		{"time": "2026-11-25T18:00:00.000000123Z", "log": "audit", "event": "pii_read", "credential": "billing",
			"kind": "api_key", "order_uid": "b563feb7b2b84b6test", "request_id": "req-1", "client": "192.0.2.7"},
		{"time": "2026-11-25T18:00:00.000000123Z", "log": "audit", "event": "pii_read", "credential": "alice\"\n@example",
			"kind": "jwt", "client_id": "crm", "order_uid": "x", "request_id": "req-2", "client": ""},
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d: %q", len(lines), len(want), out.String())
	}
	for i, line := range lines {
		var got map[string]any
		if err := json.Unmarshal([]byte(line), &got); err != nil {
			t.Fatalf("line %d is not JSON: %v: %s", i, err, line)
		}
		if !reflect.DeepEqual(got, want[i]) {
			t.Errorf("line %d:\n got %v\nwant %v", i, got, want[i])
		}
	}
	for label, n := range map[string]float64{"billing": 1, "jwt:crm": 1} {
		if got := testutil.ToFloat64(reads.WithLabelValues(label)); got != n {
			t.Errorf("reads{credential=%q} = %v, want %v", label, got, n)
		}
	}
}

func BenchmarkAuditRecord(b *testing.B) {
	a := NewAuditLog(io.Discard, prometheus.NewCounterVec(prometheus.CounterOpts{Name: "reads"}, []string{"credential"}))
	p := &auth.Principal{Name: "billing", Kind: auth.KindAPIKey}
	addr := netip.MustParseAddr("192.0.2.7")
	b.ReportAllocs()
	for b.Loop() {
		a.piiRead(p, "b563feb7b2b84b6test", "0123456789ab-1", addr, time.Now())
	}
}
