package httpapi

import (
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"
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
		if allow := allowedMethods(r, req.URL.Path); allow != "" {
			w.Header().Set("Allow", allow)
		}
		writeProblem(w, req, http.StatusMethodNotAllowed, "method not allowed")
	})

	order := getOrder(d.Logger, d.Orders, d.RequestTimeout)
	r.Method(http.MethodGet, "/order/{order_uid}", order)
	r.Method(http.MethodHead, "/order/{order_uid}", order)
	// An empty order_uid is a malformed one, not an unknown route.
	r.Method(http.MethodGet, "/order/", order)
	r.Method(http.MethodHead, "/order/", order)

	timeout := withTimeout(d.RequestTimeout)
	list := timeout(listOrders(d.Logger, d.Summaries))
	r.Method(http.MethodGet, "/orders", list)
	r.Method(http.MethodHead, "/orders", list)

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
