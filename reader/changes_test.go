package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderservice/orders/shared/model"
	"github.com/orderservice/orders/shared/ordergen"
	"github.com/orderservice/orders/shared/testenv"
)

// These tests run the real ingestor (its binary, built from ../ingestor)
// on an in-process Kafka cluster, writing to the reader's database and
// Redis, in front of two readers: what the ingestor announces reaches
// both.

var ingestorBuild struct {
	once sync.Once
	path string
	err  error
}

// ingestorBinary builds the ingestor once per test process.
func ingestorBinary(t testing.TB) string {
	t.Helper()
	ingestorBuild.once.Do(func() {
		dir, err := os.MkdirTemp("", "reader-test-ingestor-")
		if err != nil {
			ingestorBuild.err = err
			return
		}
		ingestorBuild.path = filepath.Join(dir, "ingestor")
		if out, err := exec.Command("go", "build", "-o", ingestorBuild.path, "../ingestor").CombinedOutput(); err != nil {
			ingestorBuild.err = fmt.Errorf("go build ../ingestor: %w\n%s", err, out)
		}
	})
	if ingestorBuild.err != nil {
		t.Fatal(ingestorBuild.err)
	}
	return ingestorBuild.path
}

// ingestor is an ingestor process feeding e's database and Redis from a
// topic of its own.
type ingestor struct {
	cl    *kgo.Client
	topic string
	ops   string
	out   *testenv.Buffer
}

// startIngestor runs the ingestor on a topic of partitions until the test
// ends; extra overrides its environment.
func (e *env) startIngestor(t testing.TB, partitions int32, extra map[string]string) *ingestor {
	t.Helper()
	k := testenv.Kafka(t)
	in := &ingestor{topic: k.Topic(t, "orders", partitions), ops: testenv.FreeAddr(t), out: &testenv.Buffer{}}
	vars := map[string]string{
		"INGESTOR_KAFKA_BROKERS": k.Brokers, "INGESTOR_KAFKA_TOPIC": in.topic,
		"INGESTOR_KAFKA_DLQ_TOPIC": k.Topic(t, "orders.dlq", 1), "INGESTOR_KAFKA_GROUP": "ingestor-" + in.topic,
		"INGESTOR_DATABASE_URL": e.pg.URLAs("order_ingestor"), "INGESTOR_REDIS_URL": e.redis.URL,
		"INGESTOR_REDIS_KEY_PREFIX": e.redis.Prefix, "INGESTOR_OPS_ADDR": in.ops,
		"INGESTOR_BATCH_LINGER": "10ms", "INGESTOR_RETRY_MAX": "500ms", "INGESTOR_SHUTDOWN_TIMEOUT": "5s",
		"INGESTOR_KAFKA_PROPERTIES": "session.timeout.ms=6000",
	}
	maps.Copy(vars, extra)
	cmd := exec.Command(ingestorBinary(t))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = in.out, in.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the ingestor: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if err := <-done; err != nil {
			t.Logf("ingestor: %v", err) // killed by this cleanup: expected
		}
		if t.Failed() {
			t.Logf("ingestor output:\n%s", in.out)
		}
	})
	testenv.Await(t, "the ingestor's /readyz", 30*time.Second, func() bool {
		resp, err := http.Get("http://" + in.ops + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(k.Brokers, ",")...), kgo.DefaultProduceTopic(in.topic),
		kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	in.cl = cl
	return in
}

// produce sends orders (a nil value: a tombstone for the uid) and waits for
// the broker's acknowledgement.
func (in *ingestor) produce(t testing.TB, uid string, o *model.Order) {
	t.Helper()
	r := &kgo.Record{Key: []byte(uid)}
	if o != nil {
		b, err := json.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		r.Value = b
	}
	if err := in.cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// twin is a second reader's environment: the same database, Redis and
// settings, its own ports.
func (e *env) twin(t *testing.T) *env {
	t.Helper()
	vars := maps.Clone(e.vars)
	vars["READER_LISTEN_ADDR"], vars["READER_OPS_ADDR"] = testenv.FreeAddr(t), testenv.FreeAddr(t)
	return &env{pg: e.pg, redis: e.redis, keys: e.keys, vars: vars, secrets: e.secrets}
}

// awaitStatus polls GET /order/uid on r until it answers status.
func (r *reader) awaitStatus(t *testing.T, uid string, status int, limit time.Duration) response {
	t.Helper()
	var last response
	testenv.Await(t, fmt.Sprintf("%s to answer %d for %s", r.base, status, uid), limit, func() bool {
		last = r.do(t, http.MethodGet, "/order/"+uid)
		return last.status == status
	})
	return last
}

// Two readers asked for an order before it existed, and remember it as
// unknown for a minute; once the ingestor has stored it, both serve it at
// once: the announcement dropped their negative entries.
func TestNewOrdersSeenAtOnceByEveryReader(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.vars["READER_NEGATIVE_TTL"] = "1m"
	readers := []*reader{e.start(t, true), e.twin(t).start(t, true)}
	in := e.startIngestor(t, 1, nil)
	o := ordergen.New(61).Order()

	for _, r := range readers {
		for range 2 { // the second answer comes from the negative cache
			if s := r.do(t, http.MethodGet, "/order/"+o.OrderUID).status; s != http.StatusNotFound {
				t.Fatalf("%s before the order was sent: %d, want 404", r.base, s)
			}
		}
		if v := r.metric(t, `reader_cache_lookups_total{result="hit",tier="negative"}`); v != 1 {
			t.Fatalf("%s: negative hits %v, want 1: the uid must be remembered as unknown", r.base, v)
		}
	}
	in.produce(t, o.OrderUID, o)
	for _, r := range readers {
		got := r.awaitStatus(t, o.OrderUID, http.StatusOK, 15*time.Second) // the negative TTL is a minute
		requireJSONEqual(t, got.body, canonical(t, o))
		if v := r.metric(t, `reader_invalidations_total{kind="stored"}`); v < 1 {
			t.Errorf("%s: invalidations{stored} = %v", r.base, v)
		}
	}
}

// A tombstone erases an order that both readers hold in memory: both
// answer 404 soon after, and nothing fills it back, neither in the readers
// nor in Redis; the ingestor dead-letters a redelivery.
func TestTombstoneErasesFromEveryReader(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	readers := []*reader{e.start(t, true), e.twin(t).start(t, true)}
	in := e.startIngestor(t, 1, nil)
	o := ordergen.New(62).Order()
	in.produce(t, o.OrderUID, o)
	for _, r := range readers {
		r.awaitStatus(t, o.OrderUID, http.StatusOK, 15*time.Second)
		if got := r.do(t, http.MethodGet, "/order/"+o.OrderUID); got.header.Get("X-Cache") != "local" {
			t.Fatalf("%s: second GET from %q, want the local tier", r.base, got.header.Get("X-Cache"))
		}
	}

	in.produce(t, o.OrderUID, nil)
	for _, r := range readers {
		// Local copies never expire: only the announcement removes them.
		r.awaitStatus(t, o.OrderUID, http.StatusNotFound, 15*time.Second)
		if v := r.metric(t, `reader_invalidations_total{kind="erased"}`); v != 1 {
			t.Errorf("%s: invalidations{erased} = %v, want 1", r.base, v)
		}
	}
	ctx := context.Background()
	var n int
	if err := e.pg.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM orders WHERE order_uid = $1) + (SELECT count(*) FROM items WHERE order_uid = $1)`,
		o.OrderUID).Scan(&n); err != nil || n != 0 {
		t.Errorf("PostgreSQL still holds %d rows of the erased order (%v)", n, err)
	}
	// Asked again, through every tier: still gone, and not put back.
	for _, r := range readers {
		if s := r.do(t, http.MethodGet, "/order/"+o.OrderUID).status; s != http.StatusNotFound {
			t.Errorf("%s after the erasure: %d", r.base, s)
		}
	}
	if n := e.redis.Client.Exists(ctx, e.redis.Prefix+"order:"+o.OrderUID).Val(); n != 0 {
		t.Error("Redis holds the erased order")
	}

	// Sent again, it is refused: the readers keep answering 404.
	in.produce(t, o.OrderUID, o)
	testenv.Await(t, "the redelivery to be dead-lettered", 15*time.Second, func() bool {
		return strings.Contains(in.out.String(), `"reason":"erased"`)
	})
	for _, r := range readers {
		if s := r.do(t, http.MethodGet, "/order/"+o.OrderUID).status; s != http.StatusNotFound {
			t.Errorf("%s after the redelivery: %d", r.base, s)
		}
	}
}

// Readers whose Redis is cut off lose the subscription and say so; they
// resubscribe by themselves once Redis is back, and new orders are seen at
// once again.
func TestInvalidationAfterTheSubscriptionIsCut(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.vars["READER_NEGATIVE_TTL"] = "1m"
	redisURL, proxy := testenv.ProxyURL(t, e.redis.URL)
	e.vars["REDIS_URL"] = redisURL
	readers := []*reader{e.start(t, true), e.twin(t).start(t, true)}
	in := e.startIngestor(t, 1, nil) // its own way to Redis: only the readers' is cut
	const gauge = "reader_invalidation_subscribed"
	awaitGauge := func(want float64) {
		t.Helper()
		for _, r := range readers {
			testenv.Await(t, fmt.Sprintf("%s %s = %v", r.base, gauge, want), 15*time.Second, func() bool { return r.metric(t, gauge) == want })
		}
	}
	awaitGauge(1)
	proxy.Cut()
	awaitGauge(0)
	proxy.Restore()
	awaitGauge(1)

	o := ordergen.New(63).Order()
	for _, r := range readers {
		if s := r.do(t, http.MethodGet, "/order/"+o.OrderUID).status; s != http.StatusNotFound {
			t.Fatalf("%s before the order was sent: %d", r.base, s)
		}
	}
	in.produce(t, o.OrderUID, o)
	for _, r := range readers {
		r.awaitStatus(t, o.OrderUID, http.StatusOK, 15*time.Second)
		if v := r.metric(t, "reader_invalidation_resyncs_total"); v < 2 {
			t.Errorf("%s: resyncs = %v, want one per subscription", r.base, v)
		}
	}
}
