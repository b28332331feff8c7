package httpapi

import (
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/orderservice/orders/reader/auth"
)

// orderRoute is the route of GET /order/{order_uid}, the hot path.
const orderRoute = "/order/{order_uid}"

// routes maps the whole public surface (the ops port is NewOps): the
// router, and in front of it the order route's fast path (see
// orderFastPath), which answers the same as the router would.
func routes(d Deps) http.Handler {
	obs := newObserver(d.Logger, d.AccessLog, d.Metrics)
	order := newOrderHandler(d.Logger, d.Orders, d.RequestTimeout, d.Audit, d.Auth)
	mux := router(d, obs, order)
	return &public{
		mux: mux,
		order: secure(obs.handler(orderRoute, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			order.serve(w, r, r.URL.Path[len("/order/"):])
		}))),
	}
}

// public is the public handler: the order route's fast path, then the
// router. It is the router's chi.Routes, for the tests and tools that walk
// the routes.
type public struct {
	mux   chi.Router
	order http.Handler // with the same middleware as the router's
}

func (p *public) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if orderFastPath(r) {
		p.order.ServeHTTP(w, r)
		return
	}
	p.mux.ServeHTTP(w, r)
}

func (p *public) Routes() []chi.Route          { return p.mux.Routes() }
func (p *public) Middlewares() chi.Middlewares { return p.mux.Middlewares() }
func (p *public) Match(rctx *chi.Context, method, path string) bool {
	return p.mux.Match(rctx, method, path)
}
func (p *public) Find(rctx *chi.Context, method, path string) string {
	return p.mux.Find(rctx, method, path)
}

// orderFastPath reports whether r is a GET or HEAD of /order/{order_uid}
// that the router would send to the order handler with the path's last
// segment as the uid: the request is then served without the router. A
// cached order is answered in a few microseconds, and routing it through
// chi (a copy of the request for its context, the route search, a path
// value map) was a measurable part of that. Anything else (another
// method, an escaped path, "/order/", a deeper path) goes to the router.
func orderFastPath(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead || r.URL.RawPath != "" {
		return false
	}
	uid, ok := strings.CutPrefix(r.URL.Path, "/order/")
	return ok && uid != "" && strings.IndexByte(uid, '/') < 0
}

// router is the chi router of every route, the order route included.
func router(d Deps, obs *observer, order *orderHandler) chi.Router {
	r := chi.NewRouter()
	r.Use(secure, obs.middleware)

	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, http.StatusNotFound, "no such resource")
	})
	// chi's own 405 handler sets Allow (RFC 9110 requires it) but a custom
	// one must: it asks the router which methods match the path.
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		allow := allowedMethods(r, routePath(req))
		if allow == "" {
			// chi calls this for any method it does not know (BREW),
			// whatever the path: a path no route serves is 404 all the
			// same, and a 405 would have no Allow to give.
			writeProblem(w, req, http.StatusNotFound, "no such resource")
			return
		}
		w.Header().Set("Allow", allow)
		writeProblem(w, req, http.StatusMethodNotAllowed, "method not allowed")
	})

	// The data endpoints: a credential granted orders:read, checked
	// before anything about the request is (an unauthenticated caller
	// learns nothing, not even whether its order_uid is well-formed).
	// The order handler checks it itself (orderHandler.serve), which
	// spares a copy of the request per answer.
	data := r.With(requireRead(d.Auth))
	r.Method(http.MethodGet, orderRoute, order)
	r.Method(http.MethodHead, orderRoute, order)
	// An empty order_uid is a malformed one, not an unknown route.
	r.Method(http.MethodGet, "/order/", order)
	r.Method(http.MethodHead, "/order/", order)

	timeout := withTimeout(d.RequestTimeout)
	list := timeout(listOrders(d.Logger, d.Summaries))
	data.Method(http.MethodGet, "/orders", list)
	data.Method(http.MethodHead, "/orders", list)

	r.Method(http.MethodGet, "/healthz", healthz())
	r.Method(http.MethodGet, "/readyz", readyz(d.Ready, d.RedisUp))

	r.Method(http.MethodGet, "/openapi.yaml", openAPISpec())
	r.Method(http.MethodGet, "/swagger", http.RedirectHandler("/swagger/", http.StatusMovedPermanently))
	r.Method(http.MethodGet, "/swagger/*", swaggerUI())

	if d.Web != nil {
		r.Handle("/", d.Web)
		r.Handle("/static/*", d.Web)
	}
	return r
}

// routePath is the path chi routes on: the escaped one when it differs
// from the decoded one (/order/a%2Fb), "/" for none (CONNECT host:port).
func routePath(r *http.Request) string {
	switch {
	case r.URL.RawPath != "":
		return r.URL.RawPath
	case r.URL.Path != "":
		return r.URL.Path
	}
	return "/"
}

// allowedMethods lists the methods routes serves for path, for the Allow
// header of a 405. A 405 is rare, so matching each method is cheap enough.
func allowedMethods(routes chi.Routes, path string) string {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
		http.MethodPatch, http.MethodDelete, http.MethodOptions} {
		if routes.Match(chi.NewRouteContext(), m, path) {
			allow = append(allow, m)
		}
	}
	return strings.Join(allow, ", ")
}

// requireRead is the data endpoints' authentication: orders:read, or,
// without an Authenticator, a refusal of everything.
func requireRead(a *auth.Authenticator) func(http.Handler) http.Handler {
	if a == nil {
		return func(http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				notConfigured(w, r)
			})
		}
	}
	return a.Require(auth.ScopeRead)
}

// authorizer is requireRead's check for a handler that takes the
// Principal directly (auth.Authenticator.Authorizer).
func authorizer(a *auth.Authenticator, scope string) func(w http.ResponseWriter, r *http.Request) (*auth.Principal, *http.Request, bool) {
	if a == nil {
		return func(w http.ResponseWriter, r *http.Request) (*auth.Principal, *http.Request, bool) {
			notConfigured(w, r)
			return nil, r, false
		}
	}
	return a.Authorizer(scope)
}

func notConfigured(w http.ResponseWriter, r *http.Request) {
	writeProblem(w, r, http.StatusInternalServerError, "authentication is not configured")
}
