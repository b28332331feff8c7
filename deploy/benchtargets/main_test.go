package main

import (
	"bytes"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestTableFromSampleOutput(t *testing.T) {
	var out bytes.Buffer
	code, err := run([]string{filepath.Join("testdata", "bench.txt")}, nil, &out)
	if err != nil || code != 0 {
		t.Fatalf("run = %d, %v", code, err)
	}
	rows := map[string]string{}
	for _, l := range strings.Split(out.String(), "\n") {
		for _, tg := range targets {
			if strings.HasPrefix(l, tg.Name+"  ") {
				rows[tg.Name] = regexp.MustCompile(` {2,}`).ReplaceAllString(l, " | ")
			}
		}
	}
	for _, tt := range []struct{ target, want string }{
		// orders/s of BenchmarkIngest, not of BenchmarkWrite in another package.
		{"ingest (broker to committed rows)", "BenchmarkIngest | 12,345 orders/s | ≥ 10,000 orders/s | 1.23 | PASS"},
		{"producer (generated orders)", "BenchmarkProduceGenerate | 40,150 msgs/s | ≥ 50,000 msgs/s | 0.80 | FAIL"},
		// Three runs: the median (0.70 of req/s, 1.20 of p99).
		{"reader cached: req/s of the ceiling's", "BenchmarkGetCached | 0.70 rps-ratio | ≥ 0.70 rps-ratio | 1.00 | PASS"},
		{"reader cached: p99 of the ceiling's", "BenchmarkGetCached | 1.20 p99-ratio | ≤ 1.50 p99-ratio | 0.80 | PASS"},
		{"reader unknown flood: req/s of the ceiling's", "BenchmarkGetUnknownFlood | — | ≥ 0.50 rps-ratio | — | MISSING"},
		{"reader uncached (PostgreSQL lookups)", "BenchmarkGetUncached | 12,000 req/s | ≥ 8,000 req/s | 1.50 | PASS"},
	} {
		if got := rows[tt.target]; got != tt.target+" | "+tt.want {
			t.Errorf("row %q\n got %q\nwant %q", tt.target, got, tt.target+" | "+tt.want)
		}
	}
	if !strings.Contains(out.String(), "4 of 6 targets met") {
		t.Errorf("no count of targets met:\n%s", out.String())
	}

	code, err = run([]string{"-strict", filepath.Join("testdata", "bench.txt")}, nil, &out)
	if err != nil || code != 1 {
		t.Errorf("-strict with a failed target: %d, %v; want 1", code, err)
	}
	code, err = run([]string{"-strict"}, strings.NewReader(""), &out)
	if err != nil || code != 1 {
		t.Errorf("-strict on empty output (every target missing): %d, %v; want 1", code, err)
	}
}

func TestEveryTargetIsWellFormed(t *testing.T) {
	seen := map[string]bool{}
	for _, tg := range targets {
		if tg.Name == "" || !strings.HasPrefix(tg.Pkg, "github.com/orderservice/orders/") || tg.Bench == "" ||
			strings.HasPrefix(tg.Bench, "Benchmark") || tg.Unit == "" || tg.Limit <= 0 {
			t.Errorf("malformed target %+v", tg)
		}
		if seen[tg.Name] {
			t.Errorf("target %q twice", tg.Name)
		}
		seen[tg.Name] = true
	}
}
