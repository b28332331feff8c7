package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderservice/orders/ingestor/ingest"
	"github.com/orderservice/orders/ingestor/metrics"
	"github.com/orderservice/orders/shared/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// gatedHandler prepares batches with a real pipeline and commits them
// without a database: the first batch's Commit blocks until release is
// closed, every later one returns at once.
type gatedHandler struct {
	p       *ingest.Pipeline
	release chan struct{}
	started chan struct{} // closed when the first Commit began

	mu       sync.Mutex
	commits  int
	finished []int64 // last offset of each batch whose Commit returned, in return order
}

func (h *gatedHandler) Prepare(msgs []ingest.Message) *ingest.Batch { return h.p.Prepare(msgs) }

func (h *gatedHandler) Commit(ctx context.Context, b *ingest.Batch, _ ingest.WaitFunc) error {
	h.mu.Lock()
	h.commits++
	first := h.commits == 1
	h.mu.Unlock()
	if first {
		close(h.started)
		select {
		case <-h.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	var last int64
	b.Messages(func(m *ingest.Message) { last = max(last, m.Offset) })
	h.mu.Lock()
	h.finished = append(h.finished, last)
	h.mu.Unlock()
	return nil
}

func (h *gatedHandler) done() []int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]int64(nil), h.finished...)
}

// topic is a one-partition topic on a test broker, with a group id, and a
// client to produce to it and read the group's committed offset.
type topic struct {
	brokers, name, group string
	cl                   *kgo.Client
	adm                  *kadm.Client
}

func newTopic(t *testing.T, name string) *topic {
	t.Helper()
	k := testenv.Kafka(t)
	tp := &topic{brokers: k.Brokers, name: k.Topic(t, name, 1)}
	tp.group = "g-" + tp.name
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(k.Brokers, ",")...), kgo.DefaultProduceTopic(tp.name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	tp.cl, tp.adm = cl, kadm.NewClient(cl)
	return tp
}

// produce writes n messages, numbered from from.
func (tp *topic) produce(t *testing.T, from, n int) {
	t.Helper()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Value: fmt.Appendf(nil, "message %d", from+i)}
	}
	if err := tp.cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// committed is the group's committed offset, or -1 when it has none.
func (tp *topic) committed(t *testing.T) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := tp.adm.FetchOffsets(ctx, tp.group)
	if err != nil {
		t.Fatalf("fetch committed offsets: %v", err)
	}
	at := int64(-1)
	resp.Each(func(o kadm.OffsetResponse) {
		if o.Topic == tp.name && o.Partition == 0 && o.Err == nil {
			at = o.At
		}
	})
	return at
}

// consumer returns a Consumer of the topic's group handing batches of 10
// to h, auto-committing every 100ms.
func (tp *topic) consumer(t *testing.T, h Handler, shutdownTimeout time.Duration) *Consumer {
	t.Helper()
	c, err := NewConsumer(slog.New(slog.DiscardHandler), metrics.New(), ConsumerConfig{
		Brokers: tp.brokers, Topic: tp.name, Group: tp.group,
		BatchSize: 10, BatchLinger: 10 * time.Millisecond, BatchesInFlight: 2,
		ShutdownTimeout: shutdownTimeout,
		Properties:      map[string]string{"auto.commit.interval.ms": "100", "session.timeout.ms": "6000"},
	}, h)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// preparer is a pipeline for Prepare only: it has no store, cache or
// dead-letter topic to commit to.
func preparer() *ingest.Pipeline {
	return ingest.New(slog.New(slog.DiscardHandler), metrics.New(), nil, nil, nil, ingest.Options{MaxSize: 1 << 20})
}

// A batch that finishes while an earlier one is still in flight stores no
// offset: nothing is committed until the earlier batch is done, then both
// are. Auto-commit runs every 100ms, so an early store would show.
func TestLaterBatchWaitsForEarlierOffsets(t *testing.T) {
	t.Parallel()
	tp := newTopic(t, "inflight")
	produce := func(from, n int) { t.Helper(); tp.produce(t, from, n) }
	committed := func() int64 { t.Helper(); return tp.committed(t) }

	h := &gatedHandler{p: preparer(), release: make(chan struct{}), started: make(chan struct{})}
	c := tp.consumer(t, h, 5*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-runErr; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	produce(0, 10)
	select {
	case <-h.started:
	case <-time.After(30 * time.Second):
		t.Fatal("the first batch never reached Commit")
	}
	produce(10, 10)
	// A later batch (the one holding offset 19) finishes while the first
	// is still blocked.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if d := h.done(); len(d) > 0 && d[len(d)-1] == 19 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("later batches finished %v, want one ending at offset 19", h.done())
		}
		time.Sleep(10 * time.Millisecond) // polling an observable condition
	}
	// Hold for several auto-commit intervals: nothing may be committed.
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if at := committed(); at >= 0 {
			t.Fatalf("offset %d committed while the first batch is in flight (finished: %v)", at, h.done())
		}
	}

	close(h.release)
	deadline = time.Now().Add(30 * time.Second)
	for committed() != 20 {
		if time.Now().After(deadline) {
			t.Fatalf("committed %d after the first batch finished, want 20", committed())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if d := h.done(); d[0] == d[len(d)-1] || d[len(d)-1] >= 10 {
		t.Errorf("batches finished in order %v: the test did not exercise out-of-order completion", d)
	}
}

// failingHandler prepares batches with a real pipeline; its Commit fails
// with err, or (err nil) waits for its context to end, as a batch retrying
// an outage does.
type failingHandler struct {
	p       *ingest.Pipeline
	err     error
	started chan struct{} // closed when the first Commit began
	once    sync.Once
}

func (h *failingHandler) Prepare(msgs []ingest.Message) *ingest.Batch { return h.p.Prepare(msgs) }

func (h *failingHandler) Commit(ctx context.Context, _ *ingest.Batch, _ ingest.WaitFunc) error {
	h.once.Do(func() { close(h.started) })
	if h.err != nil {
		return h.err
	}
	<-ctx.Done()
	return fmt.Errorf("db: abandoned: %w", ctx.Err())
}

// A batch that fails ends Run without storing its offset. When the
// shutdown ran out of ShutdownTimeout that is a clean stop: Run returns
// nil. A batch failing for any other reason is Run's error.
func TestRunEndsOnAFailedBatch(t *testing.T) {
	t.Parallel()
	errBroken := errors.New("handler broke its contract")
	tests := []struct {
		name     string
		err      error // Commit's error; nil: it waits for its context
		shutdown bool  // cancel Run's context once the batch is in flight
		want     error // Run's error (nil for none)
	}{
		{"shutdown out of time", nil, true, nil},
		{"batch failed while running", errBroken, false, errBroken},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tp := newTopic(t, "failing")
			h := &failingHandler{p: preparer(), err: tc.err, started: make(chan struct{})}
			c := tp.consumer(t, h, 200*time.Millisecond)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			runErr := make(chan error, 1)
			go func() { runErr <- c.Run(ctx) }()

			tp.produce(t, 0, 3)
			select {
			case <-h.started:
			case <-time.After(30 * time.Second):
				t.Fatal("the batch never reached Commit")
			}
			if tc.shutdown {
				cancel()
			}
			select {
			case err := <-runErr:
				if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
					t.Errorf("Run: %v, want %v", err, tc.want)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("Run did not return")
			}
			if at := tp.committed(t); at >= 0 {
				t.Errorf("offset %d committed for a batch that failed", at)
			}
		})
	}
}

// Properties that the consumer's offset handling relies on are refused
// with an error naming them, never silently replaced; the rest, the
// auto-commit interval included, are librdkafka's to apply.
func TestConsumerRefusesReservedProperties(t *testing.T) {
	t.Parallel()
	tests := []struct {
		props   map[string]string
		refused []string // named in the error; none: accepted
	}{
		{map[string]string{"auto.commit.interval.ms": "60000", "session.timeout.ms": "6000"}, nil},
		{map[string]string{"enable.auto.commit": "false"}, []string{"enable.auto.commit"}},
		{map[string]string{"enable.auto.offset.store": "true", "auto.offset.reset": "latest", "fetch.max.bytes": "1000000"},
			[]string{"enable.auto.offset.store", "auto.offset.reset"}},
		{map[string]string{"partition.assignment.strategy": "range"}, []string{"partition.assignment.strategy"}},
		{map[string]string{"group.id": "other", "bootstrap.servers": "elsewhere:9092"}, []string{"group.id", "bootstrap.servers"}},
		{map[string]string{"enable.partition.eof": "true", "go.logs.channel.enable": "false"}, []string{"enable.partition.eof", "go.logs.channel.enable"}},
	}
	for _, tc := range tests {
		c, err := NewConsumer(slog.New(slog.DiscardHandler), metrics.New(), ConsumerConfig{
			Brokers: "127.0.0.1:1", Topic: "t", Group: "g", BatchSize: 10, Properties: tc.props,
		}, preparer())
		if len(tc.refused) == 0 {
			if err != nil {
				t.Errorf("%v: %v, want accepted", tc.props, err)
				continue
			}
			if err := c.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
			continue
		}
		if err == nil {
			_ = c.Close()
			t.Errorf("%v accepted, want refused", tc.props)
			continue
		}
		for _, k := range tc.refused {
			if !strings.Contains(err.Error(), k) {
				t.Errorf("%v: error %q does not name %s", tc.props, err, k)
			}
		}
		if strings.Contains(err.Error(), "fetch.max.bytes") {
			t.Errorf("error %q names an allowed property", err)
		}
	}
}
