// Package metrics defines the ingestor's Prometheus metrics. Each process
// (and each test) builds its own Metrics on its own registry: there is no
// global state.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/orderservice/orders/shared/model"
)

// Outcomes of a consumed message, the values of the "outcome" label.
const (
	OutcomeStored     = "stored"
	OutcomeDuplicate  = "duplicate"
	OutcomeDeadLetter = "dead_lettered"
	// OutcomeErased is a tombstone, or an order a later tombstone of its
	// batch erases: its uid is erased, nothing is stored.
	OutcomeErased = "erased"
)

// Results of an erasure, the values of ingestor_erasures_total's "result"
// label.
const (
	ErasureDeleted  = "deleted"  // an order was stored and is deleted
	ErasureUnknown  = "unknown"  // no order was stored; the uid is recorded as erased
	ErasureRepeated = "repeated" // the uid was erased already
)

// Metrics are the ingestor's instruments.
type Metrics struct {
	Registry *prometheus.Registry

	// Messages counts consumed messages by outcome and, for dead letters,
	// reason (malformed, invalid, too_large, conflict, db_permanent,
	// erased).
	Messages *prometheus.CounterVec
	// BatchSize is the number of messages handled per batch.
	BatchSize prometheus.Histogram
	// DBWrite is the duration of one batch transaction (successful or not).
	DBWrite prometheus.Histogram
	// EndToEnd is the time from a message's Kafka timestamp to the commit of
	// its order.
	EndToEnd prometheus.Histogram
	// Lag is the consumer lag per assigned partition (high watermark minus
	// position), refreshed every few seconds. The high watermarks are
	// queried from the broker, so the lag keeps growing while partitions
	// are paused by an outage. A partition not consumed from yet (no
	// position) counts from the group's committed offset, or from its
	// first offset when there is none.
	Lag *prometheus.GaugeVec
	// RedisErrors counts failed cache writes (orders, not pipelines).
	RedisErrors prometheus.Counter
	// Retries counts retries after transient failures, by stage (db, dlq,
	// redis: the removal of erased orders from the cache).
	Retries *prometheus.CounterVec
	// Outage is 1 while a stage (db, dlq, redis) is failing and being
	// retried.
	Outage *prometheus.GaugeVec
	// AssignedPartitions is the number of partitions this process owns.
	AssignedPartitions prometheus.Gauge
	// InconsistentOrders counts orders stored although they break a
	// consistency rule (INGESTOR_CONSISTENCY=accept), by rule.
	InconsistentOrders *prometheus.CounterVec
	// Erasures counts erased uids by result (deleted, unknown, repeated).
	Erasures *prometheus.CounterVec
	// EventsPublished counts the batch events published to the readers;
	// EventsPublishErrors those that could not be (the readers then see
	// new orders once their negative cache entries expire).
	EventsPublished, EventsPublishErrors prometheus.Counter
}

// New registers every metric, plus the Go runtime and process collectors,
// on a new registry.
func New() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		Messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ingestor_messages_total",
			Help: "Consumed messages by outcome (stored, duplicate, erased, dead_lettered) and dead-letter reason.",
		}, []string{"outcome", "reason"}),
		BatchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ingestor_batch_size",
			Help:    "Messages per handled batch.",
			Buckets: []float64{1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000},
		}),
		DBWrite: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ingestor_db_write_seconds",
			Help:    "Duration of one batch write transaction.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}),
		EndToEnd: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ingestor_end_to_end_seconds",
			Help:    "Time from the message timestamp to the commit of its order.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 16),
		}),
		Lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ingestor_consumer_lag",
			Help: "Messages behind the high watermark, per assigned partition.",
		}, []string{"topic", "partition"}),
		RedisErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ingestor_redis_errors_total",
			Help: "Orders whose cache write failed (ingestion went on).",
		}),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ingestor_retries_total",
			Help: "Retries after transient failures, by stage.",
		}, []string{"stage"}),
		Outage: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ingestor_outage",
			Help: "1 while a stage (db, dlq, redis) fails transiently and is retried.",
		}, []string{"stage"}),
		AssignedPartitions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ingestor_assigned_partitions",
			Help: "Partitions currently assigned to this consumer.",
		}),
		InconsistentOrders: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ingestor_inconsistent_orders_total",
			Help: "Orders stored although they break a consistency rule (INGESTOR_CONSISTENCY=accept), by rule.",
		}, []string{"rule"}),
		Erasures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ingestor_erasures_total",
			Help: "Order uids erased by a tombstone, by result (deleted, unknown, repeated).",
		}, []string{"result"}),
		EventsPublished: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ingestor_events_published_total",
			Help: "Batch events (stored and erased uids) published on the readers' channel.",
		}),
		EventsPublishErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ingestor_events_publish_errors_total",
			Help: "Batch events that could not be published (readers see those orders after their negative TTL).",
		}),
	}
	// Every series exists from the start, so that rate() and alerts see a 0
	// rather than nothing.
	for _, r := range model.ConsistencyRules() {
		m.InconsistentOrders.WithLabelValues(string(r))
	}
	for _, r := range []string{ErasureDeleted, ErasureUnknown, ErasureRepeated} {
		m.Erasures.WithLabelValues(r)
	}
	r.MustRegister(m.Messages, m.BatchSize, m.DBWrite, m.EndToEnd, m.Lag, m.RedisErrors,
		m.Retries, m.Outage, m.AssignedPartitions, m.InconsistentOrders, m.Erasures,
		m.EventsPublished, m.EventsPublishErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// RegisterReady exports readiness as a gauge (1 ready, 0 not), evaluated at
// scrape time with the same checks as /readyz, so that an alert can say
// "not ready" exactly rather than inferring it from other series.
func (m *Metrics) RegisterReady(ready func() bool) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ingestor_ready",
		Help: "1 when /readyz answers 200 (subscribed, PostgreSQL reachable, writes not failing), else 0.",
	}, func() float64 {
		if ready() {
			return 1
		}
		return 0
	}))
}
