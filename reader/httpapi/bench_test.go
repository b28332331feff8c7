package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/orderservice/orders/reader/auth"
	"github.com/orderservice/orders/reader/auth/authtest"
	"github.com/orderservice/orders/reader/auth/ratelimit"
	"github.com/orderservice/orders/reader/cache"
	"github.com/orderservice/orders/reader/httpapi"
	"github.com/orderservice/orders/reader/metrics"
	"github.com/orderservice/orders/reader/pii"
	"github.com/orderservice/orders/shared/testenv"
	"github.com/prometheus/client_golang/prometheus"
)

// fixedOrders answers every lookup with one order, as the local tier does:
// the benchmark measures the HTTP stack alone.
type fixedOrders struct{ o *cache.Order }

func (f fixedOrders) Cached(string) (*cache.Order, error) { return f.o, nil }

func (f fixedOrders) Get(context.Context, string) (*cache.Order, cache.Source, error) {
	return f.o, cache.Local, nil
}

// discardWriter is a ResponseWriter that sends nothing but costs what
// net/http's does for the headers: a fresh map per request and a copy of
// it when the header is written (net/http clones the handler's map then).
type discardWriter struct {
	h, sent http.Header
	status  int
}

func (d *discardWriter) Header() http.Header { return d.h }

func (d *discardWriter) Write(b []byte) (int, error) {
	if d.status == 0 {
		d.WriteHeader(http.StatusOK)
	}
	return len(b), nil
}

func (d *discardWriter) WriteHeader(code int) {
	if d.status == 0 {
		d.status, d.sent = code, d.h.Clone()
	}
}

// cpuTime is the CPU time (user and system) this process has used: with
// -cpu 1 the benchmark's own and its garbage collection's, whatever else
// runs on the machine.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// fixedSummaries answers every search with the same page, as a database
// would for a customer's first page: the benchmark measures the HTTP stack
// alone.
type fixedSummaries []cache.Summary

func (f fixedSummaries) Search(_ context.Context, q cache.Query) ([]cache.Summary, error) {
	return f[:min(len(f), q.Limit)], nil
}

// BenchmarkHandlerCached is the in-process cost of the middleware, the
// router and the handler for a locally cached order (no network), with the
// reader's JSON access log (buffered, as in production) written to
// io.Discard, authenticated with an API key
// under a local rate limit: "masked" with orders:read, "full" with
// orders:pii (and its audit record, into io.Discard). cpu-ns/op is the
// process's CPU time per request, garbage collection included: run it
// with -cpu 1 for a figure that other work on the machine moves little.
func BenchmarkHandlerCached(b *testing.B) {
	body, err := testenv.Sample(b).Canonical()
	if err != nil {
		b.Fatal(err)
	}
	masked, err := pii.MaskJSON(body)
	if err != nil {
		b.Fatal(err)
	}
	o := cache.NewOrder(body, masked)
	read, readLine := authtest.NewKey(b, "bench-read", "1000000/1000000", auth.ScopeRead)
	full, fullLine := authtest.NewKey(b, "bench-pii", "1000000/1000000", auth.ScopeRead, auth.ScopePII)
	keys := authtest.NewKeys(b, readLine, fullLine)
	ks, err := auth.NewKeyStore(keys.File, ratelimit.Rate{}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	a, err := auth.New(auth.Config{Keys: ks, Limiter: ratelimit.New(nil, ratelimit.Options{})})
	if err != nil {
		b.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	access := httpapi.NewBufferedAccessLog(io.Discard, 200*time.Millisecond, "service", "reader")
	b.Cleanup(func() { _ = access.Close() })
	h := httpapi.NewServer(httpapi.Deps{
		Logger:    slog.New(slog.NewJSONHandler(io.Discard, nil)),
		AccessLog: access,
		Orders:    fixedOrders{o},
		Metrics:   m, Gatherer: reg, Auth: a, Audit: httpapi.NewAuditLog(io.Discard, m.PIIReads),
	})
	// The floor: the benchmark's ceiling handler, as little as net/http
	// allows (a content type and the body).
	ceiling := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = []string{"application/json"}
		_, _ = w.Write(masked)
	})
	for _, bc := range []struct {
		name, token string
		h           http.Handler
	}{{"ceiling", read, ceiling}, {"masked", read, h}, {"full", full, h}} {
		b.Run(bc.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, "/order/b563feb7b2b84b6test", nil)
			req.Header.Set("Authorization", authtest.Bearer(bc.token))
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				w := &discardWriter{h: make(http.Header)}
				bc.h.ServeHTTP(w, req)
				if w.status != http.StatusOK {
					b.Fatalf("status %d", w.status)
				}
			}
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
		})
	}
}

// BenchmarkHandlerSearch is the in-process cost of GET /orders for a page
// of 20 summaries (and the 21st that tells a next page exists): parsing,
// the handler, the cursor and the Link header, and encoding the page, with
// the middleware of BenchmarkHandlerCached.
func BenchmarkHandlerSearch(b *testing.B) {
	read, readLine := authtest.NewKey(b, "bench-read", "1000000/1000000", auth.ScopeRead)
	ks, err := auth.NewKeyStore(authtest.NewKeys(b, readLine).File, ratelimit.Rate{}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	a, err := auth.New(auth.Config{Keys: ks, Limiter: ratelimit.New(nil, ratelimit.Options{})})
	if err != nil {
		b.Fatal(err)
	}
	page := make(fixedSummaries, 21)
	at := time.Date(2026, time.November, 30, 12, 0, 0, 123456000, time.UTC)
	for i := range page {
		page[i] = cache.Summary{OrderUID: fmt.Sprintf("b563feb7b2b84b6test%04d", i), TrackNumber: "WBILMTESTTRACK",
			DateCreated: at.Add(-time.Duration(i) * time.Hour), Amount: 1817 + int64(i), Currency: "USD", ItemCount: 1 + i%3}
	}
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	h := httpapi.NewServer(httpapi.Deps{
		Logger:    slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Orders:    fixedOrders{},
		Summaries: page,
		Metrics:   m, Gatherer: reg, Auth: a, Audit: httpapi.NewAuditLog(io.Discard, m.PIIReads),
	})
	req := httptest.NewRequest(http.MethodGet, "/orders?customer_id=customer-42", nil)
	req.Header.Set("Authorization", authtest.Bearer(read))
	b.ReportAllocs()
	for b.Loop() {
		w := &discardWriter{h: make(http.Header, 8)}
		h.ServeHTTP(w, req)
	}
}
