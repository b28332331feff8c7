// Package httpapi is the reader's HTTP API: GET /order/{order_uid}, the
// order search GET /orders (search.go, cursor.go), the OpenAPI spec and
// Swagger UI, and /healthz and /readyz; /metrics and pprof are on the ops
// port (NewOps). Every public route is mapped in routes.go; handlers are
// maker functions; errors are RFC 9457 problem details
// (application/problem+json).
//
// The data endpoints need a bearer credential (package auth) granted
// orders:read; an order's personal data is served unmasked only to a
// credential granted orders:pii, and each such answer is audited
// (AuditLog).
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/orderservice/orders/reader/auth"
	"github.com/orderservice/orders/reader/cache"
	"github.com/orderservice/orders/reader/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// Orders looks orders up (cache.Tiered).
type Orders interface {
	// Cached answers from memory alone: the order, cache.ErrNotFound for a
	// uid known to be unknown, or (nil, nil) when only Get can tell.
	Cached(uid string) (*cache.Order, error)
	// Get looks the order up in every tier.
	Get(ctx context.Context, uid string) (*cache.Order, cache.Source, error)
}

// Summaries lists orders: the pages of GET /orders (cache.Tiered).
type Summaries interface {
	// Search returns the summaries of the orders q selects, newest first,
	// at most q.Limit, each after q.After.
	Search(ctx context.Context, q cache.Query) ([]cache.Summary, error)
}

// Deps are everything the API needs.
type Deps struct {
	Logger    *slog.Logger
	Orders    Orders
	Summaries Summaries
	Metrics   *metrics.Metrics
	Gatherer  prometheus.Gatherer // served at /metrics by NewOps
	// Ready reports whether the warm-up has ended (/readyz).
	Ready func() bool
	// RedisUp reports whether the Redis tier is in use; may be nil.
	RedisUp func() bool
	// Web serves the UI at / and /static/*; may be nil.
	Web http.Handler
	// AccessLog, when set, writes the access log lines (JSON) in place of
	// Logger; nil logs them through Logger at level info.
	AccessLog *AccessLog
	// RequestTimeout bounds one request's handling; 0 means 5s.
	RequestTimeout time.Duration
	// Auth authenticates the data endpoints (/order/{order_uid},
	// /orders). nil refuses every request to them: the API never serves
	// orders to anyone for want of a configuration.
	Auth *auth.Authenticator
	// Audit receives a record for each response carrying unmasked
	// personal data; nil writes none.
	Audit *AuditLog
}

// NewServer returns the reader's public HTTP handler.
func NewServer(d Deps) http.Handler {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.RequestTimeout <= 0 {
		d.RequestTimeout = 5 * time.Second
	}
	if d.Ready == nil {
		d.Ready = func() bool { return true }
	}
	return routes(d)
}
