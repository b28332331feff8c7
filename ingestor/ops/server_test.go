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
