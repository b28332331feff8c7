package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderservice/orders/shared/model"
	"github.com/orderservice/orders/shared/ordergen"
	"github.com/orderservice/orders/shared/testenv"
)

// ledger remembers where every produced order went, for the invariant
// "committed offsets are never ahead of stored data".
type ledger struct {
	mu     sync.Mutex
	sent   []sent
	items  int
	orders []*model.Order
}

func (l *ledger) add(s []sent, orders ...*model.Order) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sent = append(l.sent, s...)
	for _, o := range orders {
		l.items += len(o.Items)
	}
	l.orders = append(l.orders, orders...)
}

// checkCommitted fails the test if a committed offset covers a message
// whose order is not in the database.
func (e *env) checkCommitted(t *testing.T, l *ledger) {
	t.Helper()
	committed := e.committed(t)
	l.mu.Lock()
	var covered []string
	for _, s := range l.sent {
		if s.offset < committed[s.partition] {
			covered = append(covered, s.uid)
		}
	}
	l.mu.Unlock()
	if len(covered) == 0 {
		return
	}
	if n := count(t, e.pg.Pool, `SELECT count(*) FROM orders WHERE order_uid = ANY($1)`, covered); n != len(covered) {
		t.Fatalf("committed offsets %v cover %d messages but only %d of their orders are stored", committed, len(covered), n)
	}
}

// produceStream produces n generated orders in small chunks over the
// partitions, recording them in l; it returns when all are acknowledged.
func (e *env) produceStream(t *testing.T, gen *ordergen.Generator, n, chunk int, partitions int32, l *ledger) {
	for done := 0; done < n; done += chunk {
		recs := make([]*kgo.Record, 0, chunk)
		var orders []*model.Order
		for i := 0; i < chunk && done+i < n; i++ {
			o := gen.Order()
			orders = append(orders, o)
			recs = append(recs, orderRecord(t, o))
		}
		l.add(e.produce(t, partitions, recs...), orders...)
		time.Sleep(5 * time.Millisecond) // pacing the stream, not synchronisation
	}
}

// PostgreSQL goes away mid-stream and comes back, cut (connections reset)
// or stalled (connections held open, nothing answered, so only
// INGESTOR_DB_TIMEOUT ends each attempt): readiness drops, nothing is
// skipped or committed ahead of the data, and every order ends up stored
// exactly once without a restart.
func TestPostgresOutageMidStream(t *testing.T) {
	t.Parallel()
	for _, fault := range proxyFaults {
		t.Run(fault.name, func(t *testing.T) {
			t.Parallel()
			const partitions, total = 3, 600
			e := newEnv(t, partitions)
			dbURL, proxy := testenv.ProxyURL(t, e.pg.URLAs("order_ingestor"))
			cfg := e.config()
			cfg.DatabaseURL = dbURL
			cfg.BatchSize = 50
			// Short, so that a stalled attempt ends soon. The connections in
			// flight when the stall begins have no other bound: without this
			// timeout their batches would wait for ever.
			cfg.DBTimeout = time.Second
			in := start(t, cfg)

			var l ledger
			produced := make(chan struct{})
			go func() {
				defer close(produced)
				e.produceStream(t, ordergen.New(21), total, 10, partitions, &l)
			}()

			stored := func() int { return count(t, e.pg.Pool, `SELECT count(*) FROM orders`) }
			eventually(t, 30*time.Second, func() string {
				if n := stored(); n < 100 {
					return fmt.Sprintf("%d orders stored before the outage", n)
				}
				return ""
			})
			fault.inject(proxy)
			eventually(t, 20*time.Second, func() string {
				e.checkCommitted(t, &l)
				if s := httpStatus("http://" + in.ops + "/readyz"); s != http.StatusServiceUnavailable {
					return fmt.Sprintf("/readyz = %d during the outage, want 503", s)
				}
				if v := metric(t, in.ops, `ingestor_outage{stage="db"}`); v != 1 {
					return fmt.Sprintf("outage gauge = %v", v)
				}
				return ""
			})
			<-produced
			// Let the ingestor retry a few times, checking the invariant meanwhile.
			before := metric(t, in.ops, `ingestor_retries_total{stage="db"}`)
			eventually(t, 20*time.Second, func() string {
				e.checkCommitted(t, &l)
				if v := metric(t, in.ops, `ingestor_retries_total{stage="db"}`); v < before+3 {
					return fmt.Sprintf("%v retries", v)
				}
				return ""
			})
			proxy.Restore()

			eventually(t, 60*time.Second, func() string {
				e.checkCommitted(t, &l)
				if n := stored(); n != total {
					return fmt.Sprintf("%d of %d orders stored after the outage", n, total)
				}
				return ""
			})
			// Each produced order once: the set of uids is the produced one (the
			// primary key forbids a second copy).
			uids := make([]string, len(l.sent))
			for i, s := range l.sent {
				uids[i] = s.uid
			}
			if n := count(t, e.pg.Pool, `SELECT count(*) FROM orders WHERE order_uid = ANY($1)`, uids); n != total || len(uids) != total {
				t.Errorf("%d of the %d produced uids stored, want %d", n, len(uids), total)
			}
			if n, want := count(t, e.pg.Pool, `SELECT count(*) FROM items`), l.items; n != want {
				t.Errorf("%d items stored, want %d", n, want)
			}
			eventually(t, 20*time.Second, func() string {
				if s := httpStatus("http://" + in.ops + "/readyz"); s != http.StatusOK {
					return fmt.Sprintf("/readyz = %d after the outage", s)
				}
				c := e.committed(t)
				var sum int64
				for _, o := range c {
					sum += o
				}
				if sum != total {
					return fmt.Sprintf("committed %v (sum %d), want sum %d", c, sum, total)
				}
				return ""
			})
			if n := e.dlqCount(t); n != 0 {
				t.Errorf("%d dead letters, want 0", n)
			}
			// One log line when the outage starts and one when it ends, however
			// many retries there were.
			logs := in.logs.String()
			for _, msg := range []string{`"msg":"stage failing transiently`, `"msg":"stage recovered`} {
				if n := strings.Count(logs, msg); n != 1 {
					t.Errorf("%d log lines %s, want 1", n, msg)
				}
			}
			checkNoPersonalData(t, logs, l.orders...)
		})
	}
}

// awaitPausedByDBOutage waits until in reports the database outage and has
// retried the failing batch a few times: its loop has seen the failure and
// paused every partition, so nothing produced from now on is consumed.
func awaitPausedByDBOutage(t *testing.T, in *instance) {
	t.Helper()
	before := metric(t, in.ops, `ingestor_retries_total{stage="db"}`)
	eventually(t, 10*time.Second, func() string {
		if v := metric(t, in.ops, `ingestor_outage{stage="db"}`); v != 1 {
			return fmt.Sprintf("outage gauge = %v", v)
		}
		if v := metric(t, in.ops, `ingestor_retries_total{stage="db"}`); v < before+3 {
			return fmt.Sprintf("%v retries", v)
		}
		return ""
	})
}

// wantStored waits until the database holds exactly want orders.
func (e *env) wantStored(t *testing.T, want int, when string) {
	t.Helper()
	eventually(t, 20*time.Second, func() string {
		if n := count(t, e.pg.Pool, `SELECT count(*) FROM orders`); n != want {
			return fmt.Sprintf("%s: %d of %d orders stored", when, n, want)
		}
		return ""
	})
}

// wantLag polls until the lag gauge of each partition p of the env's topic
// is there (a missing gauge is not 0) and equals want[p].
func (e *env) wantLag(t *testing.T, in *instance, limit time.Duration, want []float64, when string) {
	t.Helper()
	eventually(t, limit, func() string {
		body := scrape(t, in.ops)
		for p, w := range want {
			name := fmt.Sprintf(`ingestor_consumer_lag{partition="%d",topic=%q}`, p, e.topic)
			if v, ok := sample(body, name); !ok || v != w {
				return fmt.Sprintf("%s: %s = %v (present %v), want %v", when, name, v, ok, w)
			}
		}
		return ""
	})
}

// ingestor_consumer_lag keeps moving while PostgreSQL is away: the
// partitions are paused, so librdkafka fetches nothing and its cached high
// watermarks go stale, yet every order produced during the outage must show
// as lag (operators watch it precisely then), and the lag must fall back to
// 0 once the backlog is stored.
func TestConsumerLagMovesDuringPostgresOutage(t *testing.T) {
	t.Parallel()
	const partitions, round = 2, 5 // round: orders produced per partition at each step
	e := newEnv(t, partitions)
	dbURL, proxy := testenv.ProxyURL(t, e.pg.URLAs("order_ingestor"))
	cfg := e.config()
	cfg.DatabaseURL = dbURL
	cfg.LagInterval = 100 * time.Millisecond
	in := start(t, cfg)

	gen := ordergen.New(33)
	orders := func(n int) []*kgo.Record { // n per partition, round robin
		recs := make([]*kgo.Record, n*partitions)
		for i := range recs {
			recs[i] = orderRecord(t, gen.Order())
		}
		return recs
	}
	every := func(v float64) []float64 { return slices.Repeat([]float64{v}, partitions) }

	// Caught up before the outage: positions known, lag 0.
	e.produce(t, partitions, orders(1)...)
	e.wantStored(t, partitions, "before the outage")
	e.wantLag(t, in, 10*time.Second, every(0), "before the outage")

	// The outage: the next batch fails and every partition is paused.
	proxy.Cut()
	e.produce(t, partitions, orders(1)...)
	awaitPausedByDBOutage(t, in)

	// Orders keep coming: the lag follows them, step by step, while the
	// writes are still blocked.
	for step := 1; step <= 2; step++ {
		e.produce(t, partitions, orders(round)...)
		e.wantLag(t, in, 5*time.Second, every(float64(step*round)), fmt.Sprintf("outage, after %d orders per partition", step*round))
		if v := metric(t, in.ops, `ingestor_outage{stage="db"}`); v != 1 {
			t.Fatalf("outage gauge = %v while the proxy is cut", v)
		}
		if s := httpStatus("http://" + in.ops + "/readyz"); s != http.StatusServiceUnavailable {
			t.Fatalf("/readyz = %d during the outage, want 503", s)
		}
	}

	// Recovery: the backlog is stored and the lag falls back to 0.
	proxy.Restore()
	e.wantStored(t, partitions*(2+2*round), "after the outage")
	e.wantLag(t, in, 10*time.Second, every(0), "after the outage")
}

// A partition the consumer owns but has not consumed from yet has no
// position in librdkafka (nothing was polled from it), and its lag must
// count all the same: during an outage every partition is paused, so one
// that had nothing new when the outage began is never fetched however much
// arrives, and sum(ingestor_consumer_lag) would miss exactly that backlog.
// Such a partition's consumption starts at the group's committed offset
// (p1 here, consumed by an earlier instance) or, with none, at the earliest
// offset (p2, never consumed by the group).
func TestConsumerLagOfPartitionsNotConsumedYet(t *testing.T) {
	t.Parallel()
	const partitions, earlier, round = 3, 2, 4 // earlier: orders per partition consumed by the first instance
	e := newEnv(t, partitions)
	dbURL, proxy := testenv.ProxyURL(t, e.pg.URLAs("order_ingestor"))
	cfg := e.config()
	cfg.DatabaseURL = dbURL
	cfg.LagInterval = 100 * time.Millisecond

	gen := ordergen.New(34)
	produceTo := func(p int32, n int) {
		t.Helper()
		recs := make([]*kgo.Record, n)
		for i := range recs {
			recs[i] = orderRecord(t, gen.Order())
			recs[i].Partition = p
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := e.kcl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("produce to partition %d: %v", p, err)
		}
	}

	// A first instance consumes p0 and p1, and commits at shutdown; p2
	// stays empty, with no committed offset.
	first := start(t, cfg)
	produceTo(0, earlier)
	produceTo(1, earlier)
	e.wantStored(t, 2*earlier, "first instance")
	if err := first.stop(t); err != nil {
		t.Fatalf("first instance: %v", err)
	}
	if c := e.committed(t); c[0] != earlier || c[1] != earlier || len(c) != 2 {
		t.Fatalf("committed offsets %v after the first instance, want %d on partitions 0 and 1", c, earlier)
	}

	// A second instance owns every partition and has nothing to consume.
	in := start(t, cfg)
	eventually(t, 20*time.Second, func() string {
		if v := metric(t, in.ops, "ingestor_assigned_partitions"); v != partitions {
			return fmt.Sprintf("%v partitions assigned", v)
		}
		return ""
	})

	// The outage: one order on p0 is consumed, its batch fails and every
	// partition is paused; p1 and p2 have still not delivered a message.
	proxy.Cut()
	produceTo(0, 1)
	awaitPausedByDBOutage(t, in)

	// What arrives on the paused, never consumed partitions is lag: from
	// the committed offset on p1 (not from its first offset), from the
	// first offset on p2. p0's one order has been consumed (its batch is
	// retrying), so its lag is 0.
	produceTo(1, round)
	produceTo(2, round)
	e.wantLag(t, in, 5*time.Second, []float64{0, round, round}, "outage")

	// Recovery: the backlog is stored and every lag is 0.
	proxy.Restore()
	e.wantStored(t, 2*earlier+1+2*round, "after the outage")
	e.wantLag(t, in, 5*time.Second, []float64{0, 0, 0}, "after the outage")
}

// A Redis that does not answer, cut or stalled, never stops ingestion:
// orders are stored and their offsets committed (a stalled write is ended
// by INGESTOR_REDIS_TIMEOUT), the failures are counted.
func TestRedisOutageDoesNotStopIngestion(t *testing.T) {
	t.Parallel()
	for _, fault := range proxyFaults {
		t.Run(fault.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, 1)
			redisURL, proxy := testenv.ProxyURL(t, e.redis.URL)
			fault.inject(proxy)
			cfg := e.config()
			cfg.RedisURL = redisURL
			cfg.RedisTimeout = 200 * time.Millisecond
			in := start(t, cfg)

			gen := ordergen.New(5)
			e.produce(t, 1, orderRecord(t, gen.Order()), orderRecord(t, gen.Order()))
			eventually(t, 20*time.Second, func() string {
				if n := count(t, e.pg.Pool, `SELECT count(*) FROM orders`); n != 2 {
					return fmt.Sprintf("%d orders stored", n)
				}
				if v := metric(t, in.ops, `ingestor_redis_errors_total`); v < 2 {
					return fmt.Sprintf("redis errors = %v", v)
				}
				// The readers cannot be told either; that is counted too.
				if v := metric(t, in.ops, `ingestor_events_publish_errors_total`); v < 1 {
					return fmt.Sprintf("event publish errors = %v", v)
				}
				if c := e.committed(t); c[0] != 2 {
					return fmt.Sprintf("committed %v, want 2", c)
				}
				return ""
			})
			if s := httpStatus("http://" + in.ops + "/readyz"); s != http.StatusOK {
				t.Errorf("/readyz = %d with Redis down, want 200 (the cache is optional)", s)
			}
			// Once Redis is back, new orders are cached again (after the pause
			// that follows a failure: keep sending until one is cached).
			proxy.Restore()
			var keys []string
			eventually(t, 30*time.Second, func() string {
				o := gen.Order()
				e.produce(t, 1, orderRecord(t, o))
				keys = append(keys, e.redis.Prefix+"order:"+o.OrderUID)
				time.Sleep(200 * time.Millisecond) // pacing the probes, not synchronisation
				if n := e.redis.Client.Exists(context.Background(), keys...).Val(); n == 0 {
					return fmt.Sprintf("none of %d orders sent after the restore is cached", len(keys))
				}
				return ""
			})
		})
	}
}

// While the dead-letter topic cannot be written, the offset of the message
// to dead-letter does not move (its valid neighbour is stored meanwhile);
// once the topic exists, the dead letter is delivered and the offset moves.
func TestDeadLetterTopicUnavailableHoldsTheOffset(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	cfg := e.config()
	cfg.KafkaDLQTopic = e.dlq + "-late"
	cfg.BatchLinger = 300 * time.Millisecond // both messages in one batch
	in := start(t, cfg)

	good := ordergen.New(9).Order()
	e.produce(t, 1, &kgo.Record{Key: []byte("bad"), Value: []byte("not json")}, orderRecord(t, good))
	eventually(t, 20*time.Second, func() string {
		if n := count(t, e.pg.Pool, `SELECT count(*) FROM orders WHERE order_uid=$1`, good.OrderUID); n != 1 {
			return "valid neighbour not stored"
		}
		return ""
	})
	// The batch is stuck on its dead letter: nothing may be committed.
	for range 10 {
		if c := e.committed(t); c[0] != 0 {
			t.Fatalf("committed %v while the dead letter is not written", c)
		}
		time.Sleep(100 * time.Millisecond) // sampling an invariant over time
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.adm.CreateTopic(ctx, 1, 1, nil, cfg.KafkaDLQTopic); err != nil {
		t.Fatalf("create the dead-letter topic: %v", err)
	}
	eventually(t, 60*time.Second, func() string {
		if c := e.committed(t); c[0] != 2 {
			return fmt.Sprintf("committed %v, want 2 once the dead letter is written", c)
		}
		return ""
	})
	if v := metric(t, in.ops, `ingestor_messages_total{outcome="dead_lettered",reason="malformed"}`); v != 1 {
		t.Errorf("dead_lettered{malformed} = %v, want 1", v)
	}
}
