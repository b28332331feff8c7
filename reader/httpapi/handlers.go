package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/orderservice/orders/reader/auth"
	"github.com/orderservice/orders/reader/cache"
	"github.com/orderservice/orders/shared/model"
)

var (
	jsonType = []string{"application/json"}
	// Orders are immutable: a cached copy never goes stale. A day rather
	// than a year bounds the harm of serving one that an operator had to
	// correct by hand. Private: the answer depends on the credential (the
	// masked or the full view) and holds personal data, so only the
	// caller's own cache may keep it, never a shared one.
	immutable  = []string{"private, max-age=86400, immutable"}
	noCache    = []string{"private, no-cache"}
	piiMasked  = []string{"masked"}
	piiFull    = []string{"full"}
	xCacheVals = map[cache.Source][]string{
		cache.Local: {"local"}, cache.Redis: {"redis"}, cache.DB: {"db"},
	}
)

// autoLengthMax is the largest body that net/http gives a Content-Length
// of its own (its chunking buffer; "a few KB" in http.ResponseWriter's
// documentation) when the handler returns without a flush. An order's
// answer up to that size (most orders) leaves Content-Length to net/http:
// the answer's header map then holds 8 entries, and a ninth turns Go's
// small map into a table, once when set and once more when net/http
// copies the map to write it, which was the largest part of a cached
// answer's in-process cost (BenchmarkHandlerCached). A HEAD, which writes
// no body, always sets it. TestContentLength checks net/http still does
// its part up to this size.
const autoLengthMax = 2048

// validUID is model.UIDPattern without the regexp engine: this check runs
// on every request. A test keeps the two in agreement.
func validUID(s string) bool {
	if len(s) == 0 || len(s) > model.MaxUIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// orderHandler serves GET and HEAD /order/{order_uid}. A locally cached
// order is answered at once; a miss waits at most timeout. The caller's
// credential picks the view: the order as ingested with orders:pii (and
// an audit record), else its masked view. Both were prepared when the
// order entered the cache, so the choice costs nothing here.
type orderHandler struct {
	log       *slog.Logger
	orders    Orders
	timeout   time.Duration
	audit     *AuditLog
	auth      *auth.Authenticator
	authorize func(w http.ResponseWriter, r *http.Request) (*auth.Principal, *http.Request, bool)
}

func newOrderHandler(log *slog.Logger, orders Orders, timeout time.Duration, audit *AuditLog, a *auth.Authenticator) *orderHandler {
	return &orderHandler{log: log, orders: orders, timeout: timeout, audit: audit, auth: a, authorize: authorizer(a, auth.ScopeRead)}
}

// ServeHTTP serves the order route of the router: the uid is chi's.
func (h *orderHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.serve(w, r, chi.URLParam(r, "order_uid"))
}

// serve answers for the order uid: the credential is checked first (orders:read),
// before anything about the request is (an unauthenticated caller learns
// nothing, not even whether its order_uid is well-formed).
func (h *orderHandler) serve(w http.ResponseWriter, r *http.Request, uid string) {
	p, r, ok := h.authorize(w, r)
	if !ok {
		return
	}
	if !validUID(uid) {
		writeProblem(w, r, http.StatusBadRequest,
			"order_uid must be 1 to 64 characters of A-Z, a-z, 0-9, _ or -")
		return
	}
	o, err := h.orders.Cached(uid)
	src := cache.Local
	if err != nil {
		orderError(h.log, w, r, err)
		return
	}
	if o == nil {
		ctx, cancel := context.WithTimeoutCause(r.Context(), h.timeout, errRequestTimeout)
		defer cancel()
		r = r.WithContext(ctx)
		if o, src, err = h.orders.Get(ctx, uid); err != nil {
			orderError(h.log, w, r, err)
			return
		}
	}
	view, pii, full := o.Full(), piiFull, true
	if !p.Has(auth.ScopePII) {
		masked, ok := o.Masked()
		if !ok {
			// Never the full view in its place.
			h.log.LogAttrs(r.Context(), slog.LevelError, "order has no masked view",
				slog.String("request_id", requestID(w)), slog.String("order_uid", uid))
			writeProblem(w, r, http.StatusInternalServerError, "the order cannot be shown without its personal data")
			return
		}
		view, pii, full = masked, piiMasked, false
	}
	hd := w.Header()
	hd["Etag"] = view.ETagHeader
	hd["Cache-Control"] = immutable
	hd["X-Cache"] = xCacheVals[src]
	hd["X-Pii"] = pii
	if inm := r.Header["If-None-Match"]; len(inm) > 0 && etagMatches(inm[0], view.ETag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hd["Content-Type"] = jsonType
	if view.Len > autoLengthMax || r.Method == http.MethodHead {
		hd["Content-Length"] = view.LengthHeader
	}
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		// The masked view is in three pieces (cache.Order), each its
		// own Write: net/http buffers them as one body, and still sets
		// Content-Length itself up to autoLengthMax, since all of it is
		// written before the handler returns. Copying the pieces into a
		// pooled buffer for one Write measured the same.
		_, _ = view.WriteTo(w)
		if h.audit != nil && full {
			h.audit.piiRead(p, uid, requestID(w), h.auth.ClientAddr(r), time.Now())
		}
	}
}

func orderError(log *slog.Logger, w http.ResponseWriter, r *http.Request, err error) {
	ctx := r.Context()
	switch {
	case errors.Is(err, cache.ErrNotFound):
		writeProblem(w, r, http.StatusNotFound, "no order with this order_uid")
	case timedOut(ctx, err):
		log.LogAttrs(ctx, slog.LevelWarn, "order lookup timed out",
			slog.String("request_id", requestID(w)), slog.Any("err", err))
		w.Header()["Retry-After"] = []string{"1"}
		writeProblem(w, r, http.StatusServiceUnavailable, "the order could not be loaded in time")
	case errors.Is(err, context.Canceled):
		// Usually the client went away and reads nothing; but never let
		// an empty body go out as an implicit 200.
		writeProblem(w, r, http.StatusServiceUnavailable, "the request was canceled")
	default:
		log.LogAttrs(ctx, slog.LevelError, "order lookup failed",
			slog.String("request_id", requestID(w)), slog.Any("err", err))
		w.Header()["Retry-After"] = []string{"1"}
		writeProblem(w, r, http.StatusServiceUnavailable, "the order is not cached and the database is unavailable")
	}
}

// etagMatches applies If-None-Match's weak comparison (RFC 9110 13.1.2).
func etagMatches(header, etag string) bool {
	if header == "" {
		return false
	}
	for part := range strings.SplitSeq(header, ",") {
		part = strings.TrimSpace(part)
		if part == "*" || strings.TrimPrefix(part, "W/") == etag {
			return true
		}
	}
	return false
}

func writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		writeProblem(w, r, http.StatusInternalServerError, "could not encode the answer")
		return
	}
	writeJSONBody(w, r, status, body)
}

// writeJSONBody writes body, already encoded, as the JSON answer.
func writeJSONBody(w http.ResponseWriter, r *http.Request, status int, body []byte) {
	w.Header()["Content-Type"] = jsonType
	w.Header()["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

type health struct {
	Status string `json:"status"`
	Redis  string `json:"redis,omitempty"`
}

// healthz says the process serves HTTP; nothing else.
func healthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Cache-Control"] = []string{"no-store"}
		writeJSON(w, r, http.StatusOK, health{Status: "ok"})
	})
}

// readyz is 503 until the warm-up has ended. PostgreSQL and Redis being
// down does not make the reader unready: its caches still answer, and
// taking every replica out of the load balancer would serve nothing.
func readyz(ready func() bool, redisUp func() bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := health{Status: "ready"}
		if redisUp != nil {
			h.Redis = "up"
			if !redisUp() {
				h.Redis = "skipped"
			}
		}
		w.Header()["Cache-Control"] = []string{"no-store"}
		if !ready() {
			h.Status = "warming up"
			writeJSON(w, r, http.StatusServiceUnavailable, h)
			return
		}
		writeJSON(w, r, http.StatusOK, h)
	})
}
