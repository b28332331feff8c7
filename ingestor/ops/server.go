// Package ops serves the ingestor's operational HTTP endpoints: /healthz
// (the process is alive), /readyz (it can do its job), /metrics and
// /debug/pprof.
package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check is one readiness condition: nil when satisfied.
type Check func(ctx context.Context) error

// NewHandler maps the ops endpoints. /readyz runs every check (each bounded
// by one second) and answers 503 with the failing ones.
func NewHandler(reg *prometheus.Registry, checks map[string]Check) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	// Profiling on the ops port (never exposed publicly) is how a slow
	// ingestor is diagnosed in place.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		status := http.StatusOK
		ready, body := Evaluate(r.Context(), checks)
		if !ready {
			status = http.StatusServiceUnavailable
		}
		writeJSON(w, status, body)
	})
	return mux
}

// Server serves the ops endpoints on a listener of its own.
type Server struct {
	srv    *http.Server
	ln     net.Listener
	served chan error // Serve's error, once it returned
}

// Start listens on addr and serves NewHandler(reg, checks) on a goroutine
// of its own until Stop.
func Start(addr string, reg *prometheus.Registry, checks map[string]Check) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("ops listener: %w", err)
	}
	s := &Server{
		srv:    &http.Server{Handler: NewHandler(reg, checks), ReadHeaderTimeout: 5 * time.Second},
		ln:     ln,
		served: make(chan error, 1),
	}
	go func() { s.served <- s.srv.Serve(ln) }()
	return s, nil
}

// Addr is the address the server listens on (the port chosen for ":0").
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Stop stops accepting requests and waits for those in progress until ctx
// ends. It returns what went wrong while shutting down or serving.
func (s *Server) Stop(ctx context.Context) error {
	var errs []error
	if err := s.srv.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("ops server shutdown: %w", err))
	}
	if err := <-s.served; !errors.Is(err, http.ErrServerClosed) {
		errs = append(errs, fmt.Errorf("ops server: %w", err))
	}
	return errors.Join(errs...)
}

// Evaluate runs every check, each bounded by one second, and reports
// whether all passed with each check's result ("ok" or the error). /readyz
// and the ingestor_ready gauge both use it, so they cannot disagree.
func Evaluate(ctx context.Context, checks map[string]Check) (ready bool, results map[string]string) {
	ready, results = true, make(map[string]string, len(checks))
	for name, check := range checks {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		err := check(cctx)
		cancel()
		if err != nil {
			ready, results[name] = false, err.Error()
		} else {
			results[name] = "ok"
		}
	}
	return ready, results
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
