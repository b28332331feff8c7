package auth

import (
	"cmp"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics is told what authentication does. Implementations must be safe
// for concurrent use and cheap: AuthFailure and RateLimited are called on
// request paths.
type Metrics interface {
	// AuthFailure counts a refused request by reason: missing,
	// malformed, unknown_key, jwt_* (expired, not_yet_valid, audience,
	// issuer, unknown_key, header, malformed, signature, claims),
	// insufficient_scope, blocked (the client address is over its
	// failure limit) or unrecognised (neither an API key nor a JWT, or a
	// kind that is not configured).
	AuthFailure(reason string)
	// RateLimited counts a request refused with 429: kind is api_key or
	// jwt with the credential's name (a JWT's OAuth client), or
	// "address" with an empty credential for failed authentications.
	RateLimited(kind, credential string)
	// KeysLoaded is the number of API keys in use after a (re)load.
	KeysLoaded(n int)
	// KeysReloadFailed counts keys files refused on reload.
	KeysReloadFailed()
	// JWKSRefreshed counts fetches of the JWK Set by outcome.
	JWKSRefreshed(ok bool)
}

type nopMetrics struct{}

func (nopMetrics) AuthFailure(string)         {}
func (nopMetrics) RateLimited(string, string) {}
func (nopMetrics) KeysLoaded(int)             {}
func (nopMetrics) KeysReloadFailed()          {}
func (nopMetrics) JWKSRefreshed(bool)         {}
func orNop(m Metrics) Metrics                 { return cmp.Or[Metrics](m, nopMetrics{}) }
func orDiscard(l *slog.Logger) *slog.Logger   { return cmp.Or(l, slog.New(slog.DiscardHandler)) }

// PrometheusMetrics are the Prometheus collectors of Metrics and of
// ratelimit.Metrics.
type PrometheusMetrics struct {
	Failures         *prometheus.CounterVec
	RateLimitedTotal *prometheus.CounterVec
	Keys             prometheus.Gauge
	KeysReloadErrors prometheus.Counter
	JWKSRefreshes    *prometheus.CounterVec
	RedisUp          prometheus.Gauge

	// Resolved series: a flood of refusals costs no label hashing.
	failures sync.Map // reason → prometheus.Counter
	limited  sync.Map // [2]string → prometheus.Counter
}

// NewPrometheusMetrics registers the authentication collectors on reg.
func NewPrometheusMetrics(reg prometheus.Registerer) *PrometheusMetrics {
	m := &PrometheusMetrics{
		Failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reader_auth_failures_total",
			Help: "Requests refused by authentication (401, 403, 429 of a blocked address), by reason.",
		}, []string{"reason"}),
		RateLimitedTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reader_auth_rate_limited_total",
			Help: "Requests refused with 429, by credential kind (api_key, jwt, address) and name.",
		}, []string{"kind", "credential"}),
		Keys: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "reader_auth_api_keys",
			Help: "API keys loaded from the keys file.",
		}),
		KeysReloadErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "reader_auth_api_keys_reload_errors_total",
			Help: "Keys files refused on reload (the keys loaded before stay in use).",
		}),
		JWKSRefreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reader_auth_jwks_refreshes_total",
			Help: "Fetches of the identity provider's JWK Set, by result (ok, error).",
		}, []string{"result"}),
		RedisUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "reader_auth_ratelimit_redis_up",
			Help: "1 while rate limits are shared through Redis, 0 while each instance limits alone.",
		}),
	}
	reg.MustRegister(m.Failures, m.RateLimitedTotal, m.Keys, m.KeysReloadErrors, m.JWKSRefreshes, m.RedisUp)
	return m
}

// AuthFailure implements Metrics.
func (m *PrometheusMetrics) AuthFailure(reason string) {
	c, ok := m.failures.Load(reason)
	if !ok {
		c, _ = m.failures.LoadOrStore(reason, m.Failures.WithLabelValues(reason))
	}
	c.(prometheus.Counter).Inc()
}

// RateLimited implements Metrics.
func (m *PrometheusMetrics) RateLimited(kind, credential string) {
	key := [2]string{kind, credential}
	c, ok := m.limited.Load(key)
	if !ok {
		c, _ = m.limited.LoadOrStore(key, m.RateLimitedTotal.WithLabelValues(kind, credential))
	}
	c.(prometheus.Counter).Inc()
}

// KeysLoaded implements Metrics.
func (m *PrometheusMetrics) KeysLoaded(n int) { m.Keys.Set(float64(n)) }

// KeysReloadFailed implements Metrics.
func (m *PrometheusMetrics) KeysReloadFailed() { m.KeysReloadErrors.Inc() }

// JWKSRefreshed implements Metrics.
func (m *PrometheusMetrics) JWKSRefreshed(ok bool) {
	if ok {
		m.JWKSRefreshes.WithLabelValues("ok").Inc()
	} else {
		m.JWKSRefreshes.WithLabelValues("error").Inc()
	}
}

// RateLimitRedis implements ratelimit.Metrics.
func (m *PrometheusMetrics) RateLimitRedis(up bool) {
	if up {
		m.RedisUp.Set(1)
	} else {
		m.RedisUp.Set(0)
	}
}
