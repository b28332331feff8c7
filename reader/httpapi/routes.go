package httpapi

import (
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/orderservice/orders/reader/auth"
)

// routes maps the whole public surface (the ops port is NewOps).
func routes(d Deps) http.Handler {
	r := chi.NewRouter()
	r.Use(secure, observe(d.Logger, d.AccessLog, d.Metrics))

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
	data := r.With(requireRead(d.Auth))
	order := getOrder(d.Logger, d.Orders, d.RequestTimeout, d.Audit, d.Auth)
	data.Method(http.MethodGet, "/order/{order_uid}", order)
	data.Method(http.MethodHead, "/order/{order_uid}", order)
	// An empty order_uid is a malformed one, not an unknown route.
	data.Method(http.MethodGet, "/order/", order)
	data.Method(http.MethodHead, "/order/", order)

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
				writeProblem(w, r, http.StatusInternalServerError, "authentication is not configured")
			})
		}
	}
	return a.Require(auth.ScopeRead)
}
