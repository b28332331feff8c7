package kafka

import (
	"context"
	"fmt"
	"io"
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

// A batch that finishes while an earlier one is still in flight stores no
// offset: nothing is committed until the earlier batch is done, then both
// are. Auto-commit runs every 100ms, so an early store would show.
func TestLaterBatchWaitsForEarlierOffsets(t *testing.T) {
	t.Parallel()
	k := testenv.Kafka(t)
	topic := k.Topic(t, "inflight", 1)
	group := "g-" + topic
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(k.Brokers, ",")...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	produce := func(from, n int) {
		t.Helper()
		recs := make([]*kgo.Record, n)
		for i := range recs {
			recs[i] = &kgo.Record{Value: fmt.Appendf(nil, "message %d", from+i)}
		}
		if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	committed := func() int64 {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			t.Fatalf("fetch committed offsets: %v", err)
		}
		at := int64(-1)
		resp.Each(func(o kadm.OffsetResponse) {
			if o.Topic == topic && o.Partition == 0 && o.Err == nil {
				at = o.At
			}
		})
		return at
	}

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	m := metrics.New()
	h := &gatedHandler{
		p:       ingest.New(log, m, 1<<20, nil, nil, nil, ingest.Retry{Initial: time.Millisecond, Max: time.Millisecond}),
		release: make(chan struct{}), started: make(chan struct{}),
	}
	c, err := NewConsumer(log, m, ConsumerConfig{
		Brokers: k.Brokers, Topic: topic, Group: group,
		BatchSize: 10, BatchLinger: 10 * time.Millisecond, BatchesInFlight: 2,
		ShutdownTimeout: 5 * time.Second,
		Properties:      map[string]string{"auto.commit.interval.ms": "100", "session.timeout.ms": "6000"},
	}, h)
	if err != nil {
		t.Fatal(err)
	}
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
