package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestServiceLogKeepsRequestsOffTheConsole(t *testing.T) {
	accessTo := func(path, route, status string) string {
		return `{"time":"2026-01-02T03:04:05.123Z","level":"INFO","msg":"request","service":"reader","request_id":"r1","method":"GET","path":"` + path + `","route":"` + route + `","status":` + status + `,"bytes":10,"duration":1000,"remote":"127.0.0.1","x_cache":"HIT"}` + "\n"
	}
	access := func(status string) string { return accessTo("/order/x", "/order/{uid}", status) }
	tests := []struct {
		name         string
		writes       []string
		wantConsole  []string // substrings, in this order
		notOnConsole []string
		requests     int64
		errors       int64
		audited      int64
	}{
		{
			name:         "requests counted, not printed",
			writes:       []string{access("200"), access("404"), access("503")},
			notOnConsole: []string{"request_id", "/order/x"},
			requests:     3, errors: 1,
		},
		{
			// The stack's own readiness polls answer 503 until the reader
			// has warmed up: not traffic, and not an error to report.
			name:         "probes neither counted nor printed",
			writes:       []string{accessTo("/readyz", "/readyz", "503"), accessTo("/healthz", "/healthz", "200"), access("200")},
			notOnConsole: []string{"request_id", "/readyz"},
			requests:     1,
		},
		{
			name:         "audit records counted, not printed",
			writes:       []string{`{"time":"2026-01-02T03:04:05Z","log":"audit","event":"pii_read","credential":"dev-pii","kind":"api_key","order_uid":"u1","request_id":"r1","client":"127.0.0.1"}` + "\n"},
			notOnConsole: []string{"pii_read", "u1"},
			audited:      1,
		},
		{
			name:         "lifecycle and warnings printed in order, service dropped",
			writes:       []string{`{"time":"2026-01-02T03:04:05Z","level":"INFO","msg":"reader started","service":"reader","addr":":8080","warm":100}` + "\n", `{"time":"2026-01-02T03:04:06Z","level":"WARN","msg":"redis down","err":"dial tcp: refused"}` + "\n"},
			wantConsole:  []string{"03:04:05 INF reader started addr=:8080 warm=100", "03:04:06 WRN redis down err=", "refused"},
			notOnConsole: []string{"service="},
		},
		{
			name:        "a line split across writes",
			writes:      []string{`{"time":"2026-01-02T03:04:05Z","level":"ERROR","msg":"sto`, `pped","err":"boom"}` + "\n" + access("200")[:40], access("200")[40:]},
			wantConsole: []string{"ERR stopped err=boom"},
			requests:    1,
		},
		{
			name:        "not JSON: as is",
			writes:      []string{"panic: runtime error\n", "goroutine 1 [running]:\n"},
			wantConsole: []string{"panic: runtime error", "goroutine 1 [running]:"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var con bytes.Buffer
			dir := filepath.Join(t.TempDir(), "logs")
			l, err := newServiceLog(newConsole(&con, false), dir, "reader")
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.writes {
				if n, err := l.Write([]byte(w)); err != nil || n != len(w) {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			got := con.String()
			rest := got
			for _, want := range tt.wantConsole {
				i := strings.Index(rest, want)
				if i < 0 {
					t.Fatalf("console lacks %q (in order):\n%s", want, got)
				}
				rest = rest[i+len(want):]
			}
			for _, bad := range tt.notOnConsole {
				if strings.Contains(got, bad) {
					t.Errorf("console has %q:\n%s", bad, got)
				}
			}
			if req, errs, aud := l.traffic(); req != tt.requests || errs != tt.errors || aud != tt.audited {
				t.Errorf("traffic = %d requests, %d errors, %d audited; want %d, %d, %d", req, errs, aud, tt.requests, tt.errors, tt.audited)
			}
			file, err := os.ReadFile(filepath.Join(dir, "reader.log"))
			if err != nil {
				t.Fatal(err)
			}
			if want := strings.Join(tt.writes, ""); string(file) != want {
				t.Errorf("log file %q, want every byte written %q", file, want)
			}
		})
	}
}

func TestTrafficSummaryLines(t *testing.T) {
	var con bytes.Buffer
	l, err := newServiceLog(newConsole(&con, false), t.TempDir(), "reader")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got := trafficLine("reader", l, 5*time.Second); got != "" {
		t.Errorf("idle interval printed %q", got)
	}
	l.requests.Store(12345)
	l.errors.Store(2)
	if got, want := trafficLine("reader", l, 5*time.Second), "reader: 12,345 req in 5s (2,469/s), 2 errors"; got != want {
		t.Errorf("trafficLine = %q, want %q", got, want)
	}
	l.requests.Store(10)
	l.audited.Store(3)
	if got, want := trafficLine("reader", l, 5*time.Second), "reader: 10 req in 5s (2/s), 0 errors, 3 personal-data reads audited"; got != want {
		t.Errorf("trafficLine = %q, want %q", got, want)
	}
	if req, _, _ := l.traffic(); req != 0 {
		t.Errorf("the counts were not reset: %d", req)
	}

	for _, tt := range []struct {
		before, now map[string]float64
		want        string
	}{
		{map[string]float64{"stored": 10}, map[string]float64{"stored": 10}, ""},
		{nil, map[string]float64{"stored": 5000}, "ingestor: 5,000 orders stored"},
		{map[string]float64{"stored": 1}, map[string]float64{"stored": 3, "duplicate": 1, "dead_lettered": 2}, "ingestor: 2 orders stored, 1 duplicates, 2 dead-lettered"},
	} {
		if got := ingestLine(tt.before, tt.now); got != tt.want {
			t.Errorf("ingestLine(%v, %v) = %q, want %q", tt.before, tt.now, got, tt.want)
		}
	}
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -4200: "-4,200"} {
		if got := formatCount(n); got != want {
			t.Errorf("formatCount(%d) = %q, want %q", n, got, want)
		}
	}
}
