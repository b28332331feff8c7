package httpapi_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/orderservice/orders/reader/cache"
	"github.com/orderservice/orders/reader/httpapi"
	"github.com/orderservice/orders/reader/metrics"
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

type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}

// BenchmarkHandlerCached is the in-process cost of the middleware, the
// router and the handler for a locally cached order (no network), with the
// JSON access log formatted into io.Discard.
func BenchmarkHandlerCached(b *testing.B) {
	body, err := testenv.Sample(b).Canonical()
	if err != nil {
		b.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	h := httpapi.NewServer(httpapi.Deps{
		Logger:  slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Orders:  fixedOrders{cache.NewOrder(body)},
		Metrics: metrics.New(reg), Gatherer: reg,
	})
	req := httptest.NewRequest(http.MethodGet, "/order/b563feb7b2b84b6test", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := &discardWriter{h: make(http.Header, 8)}
		h.ServeHTTP(w, req)
	}
}
