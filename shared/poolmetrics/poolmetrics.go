// Package poolmetrics exports the state of a pgx connection pool as
// Prometheus metrics, the same four for every service that owns a pool.
// Open connections against the pool's size, and the time spent waiting to
// acquire one, tell a saturated pool (queries queue for a connection) from
// a slow database.
package poolmetrics

import (
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// Collector reads the pool's state at scrape time, once per scrape. Its
// metrics are named after the service that owns the pool, e.g.
// ingestor_db_pool_open_connections: dashboards and alerts know them by
// these names.
type Collector struct {
	stat                             func() *pgxpool.Stat
	open, size, acquires, acquireDur *prometheus.Desc
}

// New returns the collector of the pool whose Stat is stat (pool.Stat), its
// metrics named <service>_db_pool_*. Register it on the service's registry.
func New(service string, stat func() *pgxpool.Stat) *Collector {
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(service+"_db_pool_"+name, help, nil, nil)
	}
	return &Collector{
		stat:     stat,
		open:     desc("open_connections", "PostgreSQL connections open (idle or in use)."),
		size:     desc("max_connections", "Size of the PostgreSQL connection pool."),
		acquires: desc("acquires_total", "Connections acquired from the pool."),
		acquireDur: desc("acquire_wait_seconds_total",
			"Time spent acquiring connections from the pool; it grows fast when the pool is exhausted."),
	}
}

// Describe sends the descriptors of the four metrics.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.open
	ch <- c.size
	ch <- c.acquires
	ch <- c.acquireDur
}

// Collect sends the pool's current state.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.stat()
	ch <- prometheus.MustNewConstMetric(c.open, prometheus.GaugeValue, float64(s.TotalConns()))
	ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, float64(s.MaxConns()))
	ch <- prometheus.MustNewConstMetric(c.acquires, prometheus.CounterValue, float64(s.AcquireCount()))
	ch <- prometheus.MustNewConstMetric(c.acquireDur, prometheus.CounterValue, s.AcquireDuration().Seconds())
}
