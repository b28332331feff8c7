package ops

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestEndpoints(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "probe_total", Help: "x"})
	reg.MustRegister(c)
	c.Inc()
	dbErr := errors.New("connection refused")
	healthy := func(context.Context) error { return nil }
	failing := func(context.Context) error { return dbErr }

	tests := []struct {
		name   string
		checks map[string]Check
		path   string
		status int
		body   string
	}{
		{"alive", nil, "/healthz", 200, `"ok"`},
		{"ready", map[string]Check{"kafka": healthy, "postgres": healthy}, "/readyz", 200, `"postgres":"ok"`},
		{"not ready", map[string]Check{"kafka": healthy, "postgres": failing}, "/readyz", 503, "connection refused"},
		{"alive while not ready", map[string]Check{"postgres": failing}, "/healthz", 200, `"ok"`},
		{"metrics", nil, "/metrics", 200, "probe_total 1"},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		NewHandler(reg, tt.checks).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.path, nil))
		if rec.Code != tt.status || !strings.Contains(rec.Body.String(), tt.body) {
			t.Errorf("%s: GET %s = %d %q, want %d containing %q", tt.name, tt.path, rec.Code, rec.Body, tt.status, tt.body)
		}
	}
}

// Start serves the endpoints on its own listener until Stop, which ends
// cleanly; an address already taken is an error at Start.
func TestStartStop(t *testing.T) {
	t.Parallel()
	s, err := Start("127.0.0.1:0", prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	get := func() (int, error) {
		req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://"+s.Addr()+"/healthz", nil)
		if err != nil {
			return 0, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if code, err := get(); err != nil || code != http.StatusOK {
		t.Fatalf("GET /healthz: %d, %v; want 200", code, err)
	}
	if _, err := Start(s.Addr(), prometheus.NewRegistry(), nil); err == nil {
		t.Error("Start on an address in use succeeded")
	}
	if err := s.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if code, err := get(); err == nil {
		t.Errorf("GET /healthz after Stop: %d, want no answer", code)
	}
}
