package httpapi

import (
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewOps returns the handler of the ops port: /metrics, /healthz,
// /readyz and /debug/pprof/. They are kept off the public port: metrics
// and profiles describe the service's internals (and a profile costs CPU),
// which is for the operators' network, not for the clients of the API.
// The health endpoints are on both ports: a load balancer checks the port
// it sends traffic to, a monitoring system may only reach this one.
func NewOps(d Deps) http.Handler {
	if d.Ready == nil {
		d.Ready = func() bool { return true }
	}
	mux := http.NewServeMux()
	if d.Gatherer != nil {
		// A scrape must not hang a connection forever if a collector does.
		mux.Handle("GET /metrics", http.TimeoutHandler(
			promhttp.HandlerFor(d.Gatherer, promhttp.HandlerOpts{}), 10*time.Second, "metrics timed out"))
	}
	mux.Handle("GET /healthz", healthz())
	mux.Handle("GET /readyz", readyz(d.Ready, d.RedisUp))
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return secure(mux)
}
