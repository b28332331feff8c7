package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/readyz":
			w.WriteHeader(http.StatusOK)
		case "/slow":
			<-r.Context().Done()
		default:
			http.Error(w, `{"postgres":"down"}`, http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()

	tests := []struct {
		name    string
		args    []string
		wantErr string // "" for success
	}{
		{"ready", []string{srv.URL + "/readyz"}, ""},
		{"not ready", []string{srv.URL + "/other"}, "status 503"},
		{"refused", []string{closed.URL + "/readyz"}, "connect"},
		{"timeout", []string{"-timeout", "100ms", srv.URL + "/slow"}, "deadline exceeded"},
		{"no url", nil, "usage"},
		{"two urls", []string{"a", "b"}, "usage"},
		{"bad flag", []string{"-nope", "x"}, "not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			err := run(context.Background(), append([]string{"healthcheck"}, tt.args...), &out)
			if tt.wantErr == "" {
				if err != nil || !strings.HasPrefix(out.String(), "ok 200") {
					t.Fatalf("run = %v, output %q; want success", err, out.String())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("run = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}
