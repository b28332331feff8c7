package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/orderservice/orders/ingestor/config"
	"github.com/orderservice/orders/shared/ordergen"
	"github.com/orderservice/orders/shared/testenv"
)

// proxyFaults are the two ways a dependency goes away: cut (connections
// reset, new ones refused) and stalled (connections held open, nothing
// answered: only the client's own timeouts notice).
var proxyFaults = []struct {
	name   string
	inject func(*testenv.Proxy)
}{
	{"cut", (*testenv.Proxy).Cut},
	{"stall", (*testenv.Proxy).Stall},
}

// newEnvBehindProxy is newEnv with a broker that the ingestor reaches only
// through the returned proxy; the test's own clients (env.kcl, env.adm) go
// past it, so that the test produces and reads offsets during the outage.
func newEnvBehindProxy(t *testing.T, partitions int32) (*env, *testenv.ProxiedKafka) {
	t.Helper()
	k := testenv.KafkaBehindProxy(t)
	e := &env{pg: testenv.Postgres(t), redis: testenv.Redis(t), kafka: k.KafkaEnv}
	e.topic = e.kafka.Topic(t, "orders", partitions)
	e.dlq = e.kafka.Topic(t, "orders.dlq", 1)
	e.group = "order-ingestor-" + e.topic
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(k.Brokers),
		k.Direct(),
		kgo.DefaultProduceTopic(e.topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0),
	)
	if err != nil {
		t.Fatalf("kafka test client: %v", err)
	}
	t.Cleanup(cl.Close)
	e.kcl, e.adm = cl, kadm.NewClient(cl)
	return e, k
}

// configBehindProxy is the env's configuration with the timings an outage
// test needs: the broker is asked every 100 ms (lag and readiness), and
// librdkafka reconnects within half a second once it is back (its default
// backoff grows to 10 s).
func (e *env) configBehindProxy() config.Config {
	cfg := e.config()
	cfg.LagInterval = 100 * time.Millisecond
	cfg.KafkaProperties += ";reconnect.backoff.max.ms=500"
	return cfg
}

// readyz returns /readyz's status and body.
func readyz(t *testing.T, in *instance) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + in.ops + "/readyz")
	if err != nil {
		t.Fatalf("/readyz: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// awaitBrokerUnreachable waits until /readyz answers 503 for the broker.
func awaitBrokerUnreachable(t *testing.T, in *instance, want string) {
	t.Helper()
	eventually(t, 15*time.Second, func() string {
		status, body := readyz(t, in)
		if status != http.StatusServiceUnavailable || !strings.Contains(body, want) {
			return fmt.Sprintf("/readyz = %d %s, want 503 naming %q", status, body, want)
		}
		if v := metric(t, in.ops, "ingestor_ready"); v != 0 {
			return fmt.Sprintf("ingestor_ready = %v", v)
		}
		return ""
	})
}

// committedTotal sums the group's committed offsets over the partitions of
// the env's topic; an error (the group does not exist yet) is "nothing yet".
func (e *env) committedTotal() (n int64, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := e.adm.FetchOffsets(ctx, e.group)
	if err != nil {
		return 0, err
	}
	resp.Each(func(o kadm.OffsetResponse) {
		if o.Topic == e.topic && o.Err == nil && o.At >= 0 {
			n += o.At
		}
	})
	return n, nil
}

// The broker is unreachable when the ingestor starts (cut, or accepting
// connections and answering nothing): it starts all the same, says so on
// /readyz, and once the broker is back it consumes everything produced
// meanwhile, each order once, and dead-letters the bad message once.
func TestKafkaUnreachableAtStart(t *testing.T) {
	t.Parallel()
	for _, fault := range proxyFaults {
		t.Run(fault.name, func(t *testing.T) {
			t.Parallel()
			const partitions, total = 2, 40
			e, k := newEnvBehindProxy(t, partitions)
			var l ledger
			e.produceStream(t, ordergen.New(61), total, 20, partitions, &l)
			e.produce(t, 1, &kgo.Record{Key: []byte("bad"), Value: []byte("not json")})

			fault.inject(k.Proxy)
			in := start(t, e.configBehindProxy())
			if s := httpStatus("http://" + in.ops + "/healthz"); s != http.StatusOK {
				t.Fatalf("/healthz = %d with the broker unreachable, want 200 (the process is fine)", s)
			}
			awaitBrokerUnreachable(t, in, "broker")
			if n := count(t, e.pg.Pool, `SELECT count(*) FROM orders`); n != 0 {
				t.Fatalf("%d orders stored with the broker unreachable", n)
			}

			k.Proxy.Restore()
			eventually(t, 30*time.Second, func() string {
				if n, err := e.committedTotal(); n != total+1 {
					return fmt.Sprintf("committed %d (%v), want %d in total", n, err, total+1)
				}
				if status, body := readyz(t, in); status != http.StatusOK {
					return fmt.Sprintf("/readyz = %d %s after the broker came back", status, body)
				}
				return ""
			})
			e.checkCommitted(t, &l)
			if n := count(t, e.pg.Pool, `SELECT count(*) FROM orders`); n != total {
				t.Errorf("%d orders stored, want %d", n, total)
			}
			for _, m := range []struct {
				sample string
				want   float64
			}{
				{`ingestor_messages_total{outcome="stored",reason=""}`, total},
				{`ingestor_messages_total{outcome="duplicate",reason=""}`, 0},
				{`ingestor_messages_total{outcome="dead_lettered",reason="malformed"}`, 1},
			} {
				if v := metric(t, in.ops, m.sample); v != m.want {
					t.Errorf("%s = %v, want %v", m.sample, v, m.want)
				}
			}
			if n := e.dlqCount(t); n != 1 {
				t.Errorf("%d dead letters, want 1", n)
			}
		})
	}
}

// The broker goes away mid-stream, for less than the session timeout: the
// ingestor keeps its partitions, /readyz says the broker is unreachable,
// the lag gauges keep their last values (a lag that cannot be measured is
// not reported as 0), and once the broker is back the orders produced
// meanwhile are stored, each once, with nothing consumed twice.
func TestKafkaUnreachableMidStream(t *testing.T) {
	t.Parallel()
	for _, fault := range proxyFaults {
		t.Run(fault.name, func(t *testing.T) {
			t.Parallel()
			const partitions, before, during = 2, 20, 30
			e, k := newEnvBehindProxy(t, partitions)
			in := start(t, e.configBehindProxy())
			var l ledger
			gen := ordergen.New(62)
			e.produceStream(t, gen, before, 10, partitions, &l)
			e.wantStored(t, before, "before the outage")
			eventually(t, 15*time.Second, func() string {
				if status, body := readyz(t, in); status != http.StatusOK {
					return fmt.Sprintf("/readyz = %d %s before the outage", status, body)
				}
				return ""
			})
			e.wantLag(t, in, 10*time.Second, []float64{0, 0}, "before the outage")

			fault.inject(k.Proxy)
			awaitBrokerUnreachable(t, in, "broker unreachable")
			e.produceStream(t, gen, during, 10, partitions, &l)
			if v := metric(t, in.ops, "ingestor_assigned_partitions"); v != partitions {
				t.Errorf("%v partitions assigned during the outage, want %d (kept)", v, partitions)
			}
			for p := range partitions {
				name := fmt.Sprintf(`ingestor_consumer_lag{partition="%d",topic=%q}`, p, e.topic)
				if !hasMetric(t, in.ops, name) {
					t.Errorf("%s dropped during the outage", name)
				}
			}
			if n := count(t, e.pg.Pool, `SELECT count(*) FROM orders`); n != before {
				t.Errorf("%d orders stored while the broker was unreachable, want %d", n, before)
			}

			k.Proxy.Restore()
			e.wantStored(t, before+during, "after the outage")
			e.wantLag(t, in, 10*time.Second, []float64{0, 0}, "after the outage")
			eventually(t, 15*time.Second, func() string {
				if n, err := e.committedTotal(); n != before+during {
					return fmt.Sprintf("committed %d (%v), want %d in total", n, err, before+during)
				}
				if status, body := readyz(t, in); status != http.StatusOK {
					return fmt.Sprintf("/readyz = %d %s after the outage", status, body)
				}
				return ""
			})
			e.checkCommitted(t, &l)
			if v := metric(t, in.ops, `ingestor_messages_total{outcome="duplicate",reason=""}`); v != 0 {
				t.Errorf("%v messages consumed twice, want 0", v)
			}
			if v := metric(t, in.ops, `ingestor_messages_total{outcome="stored",reason=""}`); v != before+during {
				t.Errorf("%v orders stored, want %d", v, before+during)
			}
		})
	}
}

// The dead-letter producer loses the broker while it sends: a batch of a
// good order and a bad message is held in its database write (the test
// locks the orders table) until the broker is unreachable, so its dead
// letter is produced during the outage. The order is stored, the offset
// waits, and once the broker is back the dead letter arrives once and the
// offset moves. Whether the offset waits for the dead letter cannot be seen
// during the outage (nothing can be committed then), so the broker holds
// the dead letter's produce request a while after the outage, and nothing
// may be committed before it is answered.
func TestDeadLetterProducedDuringKafkaOutage(t *testing.T) {
	t.Parallel()
	for _, fault := range proxyFaults {
		t.Run(fault.name, func(t *testing.T) {
			t.Parallel()
			e, k := newEnvBehindProxy(t, 1)
			cfg := e.configBehindProxy()
			cfg.BatchLinger = 300 * time.Millisecond // both messages in one batch
			cfg.KafkaProperties += ";auto.commit.interval.ms=100"
			in := start(t, cfg)
			eventually(t, 15*time.Second, func() string {
				if status, body := readyz(t, in); status != http.StatusOK {
					return fmt.Sprintf("/readyz = %d %s", status, body)
				}
				return ""
			})

			release := e.pg.LockTable(t, "orders")
			good := ordergen.New(63).Order()
			e.produce(t, 1, &kgo.Record{Key: []byte("bad"), Value: []byte("not json")}, orderRecord(t, good))
			testenv.Await(t, "the batch's write waiting for the lock", 15*time.Second, func() bool {
				return e.pg.LockWaiters(t, "order_ingestor") > 0
			})
			fault.inject(k.Proxy)
			awaitBrokerUnreachable(t, in, "broker unreachable")
			release() // the write commits; the dead letter is sent to an unreachable broker
			eventually(t, 15*time.Second, func() string {
				if n := count(t, e.pg.Pool, `SELECT count(*) FROM orders WHERE order_uid=$1`, good.OrderUID); n != 1 {
					return "good order not stored"
				}
				return ""
			})
			if n := e.dlqCount(t); n != 0 {
				t.Fatalf("%d dead letters while the broker is unreachable", n)
			}
			if c := e.committed(t); c[0] != 0 {
				t.Fatalf("committed %v before the dead letter was delivered", c)
			}

			held, release := holdProduce(k.Fake, e.dlq)
			k.Proxy.Restore()
			select {
			case <-held:
			case <-time.After(30 * time.Second):
				t.Fatal("the dead letter never reached the broker after the outage")
			}
			for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) { // sampling an invariant over ten auto-commit intervals
				if c := e.committed(t); c[0] != 0 {
					t.Fatalf("committed %v while the dead letter's produce is unanswered", c)
				}
			}
			release()
			eventually(t, 45*time.Second, func() string {
				if c := e.committed(t); c[0] != 2 {
					return fmt.Sprintf("committed %v, want 2 once the dead letter is delivered", c)
				}
				return ""
			})
			recs := e.dlqRecords(t, 1)
			if n := e.dlqCount(t); n != 1 || len(recs) != 1 {
				t.Fatalf("%d dead letters, want 1", n)
			}
			if r, _ := header(recs[0], "reason"); r != "malformed" || string(recs[0].Key) != "bad" {
				t.Errorf("dead letter key %q reason %q, want bad, malformed", recs[0].Key, r)
			}
			if v := metric(t, in.ops, `ingestor_messages_total{outcome="dead_lettered",reason="malformed"}`); v != 1 {
				t.Errorf("dead_lettered{malformed} = %v, want 1", v)
			}
		})
	}
}

// holdProduce makes the broker hold the first produce request to topic
// until release is called: held is closed once one arrived. Other requests,
// on other connections, are served meanwhile.
func holdProduce(c *kfake.Cluster, topic string) (held <-chan struct{}, release func()) {
	arrived, released := make(chan struct{}), make(chan struct{})
	var first atomic.Bool
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		for _, tp := range req.(*kmsg.ProduceRequest).Topics {
			if tp.Topic == topic && first.CompareAndSwap(false, true) {
				close(arrived)
				c.SleepControl(func() { <-released })
			}
		}
		return nil, nil, false // served as usual
	})
	return arrived, sync.OnceFunc(func() { close(released) })
}
