package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/orderservice/orders/reader/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// Header values shared by every response: assigning a ready slice skips
// the canonicalisation and allocation of Header.Set on the hot path.
var (
	nosniff = []string{"nosniff"}
)

// secure sets X-Content-Type-Options on every response, so that no
// browser guesses a content type (an order's strings are user data).
func secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["X-Content-Type-Options"] = nosniff
		next.ServeHTTP(w, r)
	})
}

// requestIDs makes request ids: a random per-process prefix and a counter,
// unique without the cost of randomness per request.
type requestIDs struct {
	prefix string
	n      atomic.Uint64
}

func newRequestIDs() *requestIDs {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return &requestIDs{prefix: hex.EncodeToString(b) + "-"}
}

func (g *requestIDs) next() string {
	var buf [40]byte
	b := append(buf[:0], g.prefix...)
	return string(strconv.AppendUint(b, g.n.Add(1), 10))
}

// validRequestID accepts a caller's X-Request-Id only when it is short and
// plain, so that it cannot forge log lines or bloat them.
func validRequestID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

// requestID returns the id observe gave the request: handlers read it
// from the response header, which spares a context value (and a copy of
// the request) on every request.
func requestID(w http.ResponseWriter) string {
	if v := w.Header()["X-Request-Id"]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// requestState is what observe allocates per request.
type requestState struct {
	rec recorder
	id  [1]string
}

// recorder captures the status and size of a response for the access log
// and the metrics.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += n
	return n, err
}

// Unwrap lets http.ResponseController reach the connection.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// methodLabel bounds the method label: a client may send any token as
// its method, and each new one would be a new series kept forever.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "OTHER"
}

// probeRoutes are the routes of health checks and metric scrapes.
var probeRoutes = map[string]bool{"/healthz": true, "/readyz": true}

// counterKey identifies one series of reader_http_requests_total.
type counterKey struct {
	route, method string
	code          int
}

// observer is the outermost middleware: it gives the request an id,
// recovers panics, and records the access log line and the metrics. One
// middleware instead of four keeps the hot path close to a bare net/http
// server: no context value, no copy of the request. One observer serves
// both the router (middleware: the route is chi's) and the handlers
// served ahead of it (handler: a fixed route), so that they share the
// request ids and the resolved series.
type observer struct {
	log    *slog.Logger
	access *AccessLog
	m      *metrics.Metrics
	ids    *requestIDs
	// logProbes is fixed at start: the level does not change.
	logProbes bool
	// Resolved series, so that a request costs no label hashing.
	counters, durations sync.Map
}

func newObserver(log *slog.Logger, access *AccessLog, m *metrics.Metrics) *observer {
	return &observer{
		log: log, access: access, m: m, ids: newRequestIDs(),
		logProbes: log.Enabled(context.Background(), slog.LevelDebug),
	}
}

func (o *observer) count(route, method string, code int, elapsed time.Duration) {
	key := counterKey{route, method, code}
	c, ok := o.counters.Load(key)
	if !ok {
		c, _ = o.counters.LoadOrStore(key, o.m.HTTPRequests.WithLabelValues(route, method, strconv.Itoa(code)))
	}
	c.(prometheus.Counter).Inc()
	d, ok := o.durations.Load(route)
	if !ok {
		d, _ = o.durations.LoadOrStore(route, o.m.HTTPDuration.WithLabelValues(route))
	}
	d.(prometheus.Observer).Observe(elapsed.Seconds())
}

// middleware observes the requests of a chi router: the route is the
// pattern chi matched, "unmatched" for none.
func (o *observer) middleware(next http.Handler) http.Handler {
	return o.handler("", next)
}

// handler observes the requests of next as route; "" takes the route
// from chi (middleware).
func (o *observer) handler(route string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.serve(w, r, route, next)
	})
}

func (o *observer) serve(w http.ResponseWriter, r *http.Request, fixedRoute string, next http.Handler) {
	start := time.Now()
	// The map read by the canonical key is Header.Get without its
	// canonicalisation of the key (here and for If-None-Match).
	var id string
	if v := r.Header["X-Request-Id"]; len(v) > 0 {
		id = v[0]
	}
	if !validRequestID(id) {
		id = o.ids.next()
	}
	// One allocation for the recorder and the header value.
	st := &requestState{rec: recorder{ResponseWriter: w}}
	st.id[0] = id
	w.Header()["X-Request-Id"] = st.id[:]
	rec := &st.rec

	defer func() {
		if v := recover(); v != nil {
			// net/http's own sentinel, panicked unwrapped by
			// design: re-panic so the server aborts the response.
			if v == http.ErrAbortHandler { //nolint:errorlint // a recovered value, not a returned error
				panic(v)
			}
			o.log.LogAttrs(r.Context(), slog.LevelError, "panic serving request",
				slog.String("request_id", id), slog.Any("panic", v),
				slog.String("stack", string(debug.Stack())))
			if rec.status == 0 {
				writeProblem(rec, r, http.StatusInternalServerError, "internal error")
			}
		}
		status := rec.status
		if status == 0 {
			status = http.StatusOK
		}
		elapsed := time.Since(start)
		route := fixedRoute
		if route == "" {
			route = "unmatched"
			if rc := chi.RouteContext(r.Context()); rc != nil {
				if p := rc.RoutePattern(); p != "" {
					route = p
				}
			}
		}
		if o.m != nil {
			o.count(route, methodLabel(r.Method), status, elapsed)
		}
		// Probes arrive every few seconds from every kubelet and
		// load balancer: logged only when they fail, or at level
		// debug, so that the access log shows traffic.
		if !o.logProbes && status < 400 && probeRoutes[route] {
			return
		}
		var xCache string
		if v := rec.Header()["X-Cache"]; len(v) > 0 {
			xCache = v[0]
		}
		if o.access != nil {
			o.access.write(&accessEntry{
				time: start.Add(elapsed), requestID: id, method: r.Method, path: r.URL.Path, route: route,
				status: status, bytes: rec.bytes, duration: elapsed, remote: r.RemoteAddr, xCache: xCache,
			})
			return
		}
		if !o.log.Enabled(r.Context(), slog.LevelInfo) {
			return
		}
		o.log.LogAttrs(r.Context(), slog.LevelInfo, "request",
			slog.String("request_id", id),
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.String("route", route),
			slog.Int("status", status),
			slog.Int("bytes", rec.bytes),
			slog.Duration("duration", elapsed),
			slog.String("remote", r.RemoteAddr),
			slog.String("x_cache", xCache))
	}()
	next.ServeHTTP(rec, r)
}

// errRequestTimeout is the cause of a request's context ending at its limit.
var errRequestTimeout = errors.New("request timeout")

// withTimeout bounds a request that waits on I/O. It is applied per route
// and, for /order, only on a cache miss: a local hit has nothing to wait
// for, and a timer per request would be a measurable part of its cost.
func withTimeout(d time.Duration) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithTimeoutCause(r.Context(), d, errRequestTimeout)
			defer cancel()
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

// timedOut reports whether err comes from the request's own limit.
func timedOut(ctx context.Context, err error) bool {
	return errors.Is(err, errRequestTimeout) || errors.Is(context.Cause(ctx), errRequestTimeout)
}
