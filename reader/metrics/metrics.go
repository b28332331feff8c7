// Package metrics holds the reader's Prometheus collectors. The service
// creates one Metrics per process on its own registry (no global default
// registry), and passes it to the packages that record.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics is every collector the reader exports.
type Metrics struct {
	// HTTPRequests counts answered requests by chi route pattern, method
	// and status code.
	HTTPRequests *prometheus.CounterVec
	// HTTPDuration is request latency by route pattern.
	HTTPDuration *prometheus.HistogramVec
	// CacheLookups counts order lookups by tier (local, negative, redis,
	// db) and result (hit, miss, error; and redis "slow": not answered
	// within the hedge delay, so the database was asked as well).
	CacheLookups *prometheus.CounterVec
	// DBQueryDuration is PostgreSQL query latency by query name.
	DBQueryDuration *prometheus.HistogramVec
	// DBLookupBatch is the orders asked for per lookup query (concurrent
	// misses share one query).
	DBLookupBatch prometheus.Histogram
	// DBSearchBatch is the searches answered per PostgreSQL round trip
	// (concurrent searches share one).
	DBSearchBatch prometheus.Histogram
	// DBTargetLookups, DBReplicaRechecks and DBReplicaUp describe the
	// read replicas; they are used (and exported) only when the reader
	// has replicas.
	DBTargetLookups   *prometheus.CounterVec
	DBReplicaRechecks *prometheus.CounterVec
	DBReplicaUp       *prometheus.GaugeVec
	// SingleflightShared counts lookups that joined a load already under way
	// (not counting the lookup that started it).
	SingleflightShared prometheus.Counter
	// RedisUp is 1 while the Redis tier is used, 0 while its circuit is open.
	RedisUp prometheus.Gauge
	// WarmupOrders and WarmupDuration describe the start-up warm-up (of
	// the local tier, which readiness waits for); WarmupRedisDuration is
	// how long its orders' Redis fill took after it.
	WarmupOrders        prometheus.Gauge
	WarmupDuration      prometheus.Gauge
	WarmupRedisDuration prometheus.Gauge
	// LocalCacheBytes is the weighted size of the in-process cache.
	LocalCacheBytes prometheus.GaugeFunc
	// PIIReads counts the answers that carried an order's personal data
	// unmasked (each has its audit record), by credential.
	PIIReads *prometheus.CounterVec
	// InvalidationSubscribed is 1 while the reader listens to the
	// ingestor's events channel, 0 while it does not (new orders are then
	// seen once their negative cache entries expire).
	InvalidationSubscribed prometheus.Gauge
	// Invalidations counts the order_uids the events channel announced, by
	// kind (stored: its negative entry is dropped; erased: every copy is).
	Invalidations *prometheus.CounterVec
	// InvalidationResyncs counts the times the in-process tier was emptied
	// on (re)subscribing: events may have been missed meanwhile.
	InvalidationResyncs prometheus.Counter
}

// New registers the reader's collectors, plus the Go runtime and process
// collectors, on reg.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reader_http_requests_total",
			Help: "HTTP requests answered, by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		HTTPDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "reader_http_request_duration_seconds",
			Help:    "HTTP request latency by route pattern.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route"}),
		CacheLookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reader_cache_lookups_total",
			Help: "Order lookups by tier (local, negative, redis, db) and result (hit, miss, error; redis slow: the database was asked as well).",
		}, []string{"tier", "result"}),
		DBQueryDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "reader_db_query_duration_seconds",
			Help:    "PostgreSQL query latency by query.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"query"}),
		DBLookupBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "reader_db_lookup_batch_orders",
			Help:    "Orders asked for per PostgreSQL lookup query (concurrent cache misses share one query).",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128},
		}),
		DBSearchBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "reader_db_search_batch_searches",
			Help:    "Searches (GET /orders) answered per PostgreSQL round trip (concurrent searches share one).",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128},
		}),
		DBTargetLookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reader_db_target_lookups_total",
			Help: "Orders looked up in PostgreSQL by target (primary, replica1, ...) and result (found, not_found, error); only with read replicas.",
		}, []string{"target", "result"}),
		DBReplicaRechecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reader_db_replica_rechecks_total",
			Help: "Orders a read replica did not hold, asked of the primary, by result: found (the replica lagged) or not_found.",
		}, []string{"result"}),
		DBReplicaUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "reader_db_replica_up",
			Help: "1 while a read replica is used for lookups, 0 while it is skipped after failures.",
		}, []string{"target"}),
		SingleflightShared: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "reader_singleflight_shared_total",
			Help: "Lookups that waited for a load of the same order already under way.",
		}),
		RedisUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "reader_redis_up",
			Help: "1 while the Redis tier is in use, 0 while it is skipped after failures.",
		}),
		WarmupOrders: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "reader_warmup_orders",
			Help: "Orders loaded into the caches by the start-up warm-up.",
		}),
		WarmupDuration: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "reader_warmup_duration_seconds",
			Help: "Duration of the start-up warm-up of the in-process cache (readiness waits for it).",
		}),
		WarmupRedisDuration: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "reader_warmup_redis_duration_seconds",
			Help: "Duration of the Redis fill of the warm-up's orders, which follows the warm-up (set once it has ended).",
		}),
		PIIReads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reader_pii_reads_total",
			Help: "Answers that carried an order's personal data unmasked (each one audited), by credential (an API key's name; jwt:<client_id> for a JWT).",
		}, []string{"credential"}),
		InvalidationSubscribed: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "reader_invalidation_subscribed",
			Help: "1 while subscribed to the ingestor's events channel, 0 while not (new orders wait for the negative TTL).",
		}),
		Invalidations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reader_invalidations_total",
			Help: "Order uids announced on the events channel, by kind (stored, erased).",
		}, []string{"kind"}),
		InvalidationResyncs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "reader_invalidation_resyncs_total",
			Help: "Times the in-process cache was emptied on (re)subscribing to the events channel.",
		}),
	}
	for _, kind := range []string{"stored", "erased"} {
		m.Invalidations.WithLabelValues(kind)
	}
	reg.MustRegister(m.HTTPRequests, m.HTTPDuration, m.CacheLookups, m.DBQueryDuration,
		m.DBLookupBatch, m.DBSearchBatch, m.DBTargetLookups, m.DBReplicaRechecks, m.DBReplicaUp, m.SingleflightShared, m.RedisUp,
		m.WarmupOrders, m.WarmupDuration, m.WarmupRedisDuration, m.PIIReads,
		m.InvalidationSubscribed, m.Invalidations, m.InvalidationResyncs,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.RedisUp.Set(1)
	return m
}

// RegisterLocalCacheBytes exports the in-process cache's weighted size.
func (m *Metrics) RegisterLocalCacheBytes(reg prometheus.Registerer, f func() float64) {
	m.LocalCacheBytes = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "reader_local_cache_bytes",
		Help: "Bytes of encoded orders held by the in-process cache.",
	}, f)
	reg.MustRegister(m.LocalCacheBytes)
}
