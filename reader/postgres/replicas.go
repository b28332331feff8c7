package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderservice/orders/shared/retry"
)

// Read replicas.
//
// Lookups by order_uid, the reader's hot path, go to the replicas when
// there are any, one replica per lookup query in turn (round robin). A
// replica may lag the primary: an order the ingestor has just committed
// may not have reached it yet. So a replica's "not found" is never the
// answer: the uids a replica did not find are asked of the primary in one
// more query, and only the primary's "not found" becomes a 404. Replication
// lag therefore costs a query, never a wrong answer; an unknown uid costs
// two queries (the negative cache keeps a flood of them off the database).
//
// A replica whose query fails (down, unreachable, refusing connections) is
// left alone for a pause, 1 s doubling to 30 s, while the primary serves
// its share; after the pause the next lookup query probes it, and the
// first success puts it back in the rotation. The search, the warm-up and
// every other query stay on the primary: they cannot tell a lagging answer
// from a complete one.

// replicaPause is how long a failed replica is skipped: 1 s after the first
// failure in a row, doubling to 30 s, jittered so that readers started
// together do not probe in step.
var replicaPause = retry.Policy{Initial: time.Second, Max: 30 * time.Second, Jitter: 0.2}

// replica is one read replica and the state of its circuit.
type replica struct {
	name string // "replica1", ...: the metrics' target label
	host string // for the logs (never the URL, which may hold a password)
	pool *pgxpool.Pool

	mu        sync.Mutex
	downUntil time.Time // zero while in use
	pauses    *backoff.ExponentialBackOff
	probing   bool
}

// ReplicaMetrics are the per-target collectors; each may be nil. They are
// only used when there are replicas: without any, every lookup is the
// primary's and the cache's db tier counts them.
type ReplicaMetrics struct {
	// Lookups counts orders looked up, by target ("primary",
	// "replica1", ...) and result ("found", "not_found", "error").
	Lookups *prometheus.CounterVec
	// Rechecks counts orders a replica did not find that were asked of
	// the primary, by result: "found" (the replica lagged) or
	// "not_found".
	Rechecks *prometheus.CounterVec
	// Up is 1 per replica target while it is in use, 0 while skipped.
	Up *prometheus.GaugeVec
}

// replicas is the set of replicas of a Store and the primary behind them.
type replicas struct {
	all     []*replica
	next    atomic.Uint64
	metrics ReplicaMetrics
	log     *slog.Logger
}

// openReplicas creates a pool per URL, its settings applied by configure
// as the primary's are.
func openReplicas(ctx context.Context, urls []string, configure func(*pgxpool.Config), m ReplicaMetrics, log *slog.Logger) (*replicas, error) {
	rs := &replicas{metrics: m, log: log}
	for i, u := range urls {
		cfg, err := pgxpool.ParseConfig(u)
		if err != nil {
			rs.close()
			// pgx's parse errors may quote the URL, password included.
			return nil, fmt.Errorf("parse DATABASE_REPLICA_URLS entry %d: not a valid PostgreSQL URL", i+1)
		}
		configure(cfg)
		pool, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			rs.close()
			return nil, fmt.Errorf("create pool of replica %d: %w", i+1, err)
		}
		r := &replica{name: "replica" + strconv.Itoa(i+1), host: cfg.ConnConfig.Host + ":" + strconv.Itoa(int(cfg.ConnConfig.Port)),
			pool: pool, pauses: replicaPause.BackOff()}
		rs.all = append(rs.all, r)
		if m.Up != nil {
			m.Up.WithLabelValues(r.name).Set(1)
		}
	}
	return rs, nil
}

func (rs *replicas) close() {
	for _, r := range rs.all {
		r.pool.Close()
	}
}

// pick returns the next replica in turn that may be used now (in use, or
// due a probe), or nil when none may.
func (rs *replicas) pick() *replica {
	n := uint64(len(rs.all))
	start := rs.next.Add(1)
	for i := range n {
		if r := rs.all[(start+i)%n]; r.allow() {
			return r
		}
	}
	return nil
}

// allow reports whether a query may go to r: always while it is in use,
// once per pause while it is skipped (the probe).
func (r *replica) allow() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.downUntil.IsZero() {
		return true
	}
	if r.probing || time.Now().Before(r.downUntil) {
		return false
	}
	r.probing = true
	return true
}

// done records how a query to r went.
func (rs *replicas) done(r *replica, err error) {
	r.mu.Lock()
	r.probing = false
	if err == nil {
		was := !r.downUntil.IsZero()
		r.downUntil = time.Time{}
		r.pauses.Reset()
		r.mu.Unlock()
		if was {
			rs.setUp(r, 1)
			rs.log.Info("read replica back in use", "target", r.name, "host", r.host)
		}
		return
	}
	first := r.downUntil.IsZero()
	pause := r.pauses.NextBackOff()
	r.downUntil = time.Now().Add(pause)
	r.mu.Unlock()
	if first {
		rs.setUp(r, 0)
		rs.log.Warn("read replica failed: the primary serves its lookups", "target", r.name, "host", r.host, "pause", pause, "err", err)
	}
}

func (rs *replicas) setUp(r *replica, v float64) {
	if rs.metrics.Up != nil {
		rs.metrics.Up.WithLabelValues(r.name).Set(v)
	}
}

// count adds a lookup query's outcome for target: n orders asked, found of
// them found, or all failed.
func (rs *replicas) count(target string, n, found int, err error) {
	if rs.metrics.Lookups == nil {
		return
	}
	if err != nil {
		rs.metrics.Lookups.WithLabelValues(target, "error").Add(float64(n))
		return
	}
	rs.metrics.Lookups.WithLabelValues(target, "found").Add(float64(found))
	rs.metrics.Lookups.WithLabelValues(target, "not_found").Add(float64(n - found))
}

func (rs *replicas) recheck(n, found int) {
	if rs.metrics.Rechecks == nil {
		return
	}
	rs.metrics.Rechecks.WithLabelValues("found").Add(float64(found))
	rs.metrics.Rechecks.WithLabelValues("not_found").Add(float64(n - found))
}

// getMany returns the canonical JSON of the orders of uids that exist,
// asking a replica first when there is one in use (see the comment at the
// top of this file). The orders found are returned even when the
// primary's recheck of the others failed; err then says the rest is
// unknown.
func (s *Store) getMany(ctx context.Context, uids []string) (map[string][]byte, error) {
	if s.replicas == nil {
		return s.query(ctx, s.pool, uids)
	}
	rs := s.replicas
	r := rs.pick()
	if r == nil { // every replica skipped after failures
		found, err := s.query(ctx, s.pool, uids)
		rs.count("primary", len(uids), len(found), err)
		return found, err
	}
	found, err := s.query(ctx, r.pool, uids)
	rs.count(r.name, len(uids), len(found), err)
	rs.done(r, err)
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		found, err = s.query(ctx, s.pool, uids)
		rs.count("primary", len(uids), len(found), err)
		return found, err
	}
	var missing []string
	for _, uid := range uids {
		if _, ok := found[uid]; !ok {
			missing = append(missing, uid)
		}
	}
	if len(missing) == 0 {
		return found, nil
	}
	more, err := s.query(ctx, s.pool, missing)
	rs.count("primary", len(missing), len(more), err)
	if err != nil {
		return found, err
	}
	rs.recheck(len(missing), len(more))
	for uid, body := range more {
		found[uid] = body
	}
	return found, nil
}
