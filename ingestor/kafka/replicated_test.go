package kafka

import (
	"context"
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

// countingHandler commits every batch at once and remembers each message.
type countingHandler struct {
	p    *ingest.Pipeline
	mu   sync.Mutex
	seen map[string]int // value -> times handed over
}

func (h *countingHandler) Prepare(msgs []ingest.Message) *ingest.Batch { return h.p.Prepare(msgs) }

func (h *countingHandler) Commit(_ context.Context, b *ingest.Batch, _ ingest.WaitFunc) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	b.Messages(func(m *ingest.Message) { h.seen[string(m.Value)]++ })
	return nil
}

func (h *countingHandler) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.seen)
}

// TestConsumeAndCommitWithReplicationFactorThree: against three brokers and
// a topic whose partitions have three replicas each (their leaders spread
// over the brokers), the consumer gets every message and commits every
// partition's offset to the end.
func TestConsumeAndCommitWithReplicationFactorThree(t *testing.T) {
	t.Parallel()
	k := testenv.KafkaBrokers(t, 3)
	const partitions, n = 6, 600
	name := k.ReplicatedTopic(t, "replicated", partitions, 3)
	group := "g-" + name
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(k.Brokers, ",")...), kgo.DefaultProduceTopic(name),
		kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	md, err := adm.Metadata(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	leaders := map[int32]bool{}
	for _, p := range md.Topics[name].Partitions {
		if len(p.Replicas) != 3 || len(p.ISR) != 3 {
			t.Fatalf("partition %d: replicas %v, ISR %v; want 3 each", p.Partition, p.Replicas, p.ISR)
		}
		leaders[p.Leader] = true
	}
	if len(md.Brokers) != 3 || len(leaders) < 2 {
		t.Fatalf("%d brokers, leaders on %v: the cluster is not spread over several brokers", len(md.Brokers), leaders)
	}

	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "message %d", i)}
	}
	if err := cl.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	h := &countingHandler{p: preparer(), seen: map[string]int{}}
	c, err := NewConsumer(slog.New(slog.DiscardHandler), metrics.New(), ConsumerConfig{
		Brokers: k.Brokers, Topic: name, Group: group,
		BatchSize: 50, BatchLinger: 10 * time.Millisecond, BatchesInFlight: 2,
		ShutdownTimeout: 10 * time.Second,
		Properties:      map[string]string{"auto.commit.interval.ms": "100", "session.timeout.ms": "6000"},
	}, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	testenv.Await(t, "every message handed over", 60*time.Second, func() bool { return h.count() == n })
	ends, err := adm.ListEndOffsets(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Await(t, "every partition committed to its end", 30*time.Second, func() bool {
		resp, err := adm.FetchOffsets(t.Context(), group)
		if err != nil {
			return false
		}
		ok := 0
		ends.Each(func(e kadm.ListedOffset) {
			if o, found := resp.Lookup(name, e.Partition); found && o.Err == nil && o.At == e.Offset {
				ok++
			}
		})
		return ok == partitions
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	for v, times := range h.seen {
		if times != 1 {
			t.Errorf("%q handed over %d times", v, times)
		}
	}
}
