package kafka

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderservice/orders/ingestor/ingest"
)

// stepHandler prepares batches with a real pipeline; its Commits block
// until the test releases them, one gate per Commit in start order, and it
// logs when each starts and ends.
type stepHandler struct {
	p     *ingest.Pipeline
	gates chan chan struct{} // the next Commit's gate; the test sends them
	mu    sync.Mutex
	log   []string
	moved chan struct{} // a value whenever the log grows
}

func (h *stepHandler) Prepare(msgs []ingest.Message) *ingest.Batch { return h.p.Prepare(msgs) }

func (h *stepHandler) Commit(ctx context.Context, b *ingest.Batch, _ ingest.WaitFunc) error {
	kind := "orders"
	if b.Exclusive() {
		kind = "erasure"
	}
	h.note("start " + kind)
	defer h.note("end " + kind)
	select {
	case gate := <-h.gates:
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

func (h *stepHandler) note(s string) {
	h.mu.Lock()
	h.log = append(h.log, s)
	h.mu.Unlock()
	select {
	case h.moved <- struct{}{}:
	default:
	}
}

func (h *stepHandler) steps() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.log)
}

// A batch holding a tombstone starts only once the batches before it are
// done, and the batches after it start only once it is: orders and
// erasures of a uid take effect in offset order although up to two
// batches fly at once.
func TestErasingBatchFliesAlone(t *testing.T) {
	t.Parallel()
	tp := newTopic(t, "exclusive")
	h := &stepHandler{p: preparer(), gates: make(chan chan struct{}, 8), moved: make(chan struct{}, 1)}
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

	// awaitSteps waits until the log is want; stays checks that it stays
	// so while there is time for it to change.
	awaitSteps := func(want ...string) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for !slices.Equal(h.steps(), want) {
			select {
			case <-h.moved:
			case <-deadline:
				t.Fatalf("steps %v, want %v", h.steps(), want)
			}
		}
	}
	stays := func(want ...string) {
		t.Helper()
		time.Sleep(500 * time.Millisecond) // long enough for a second flight to start: batches linger 10ms
		if got := h.steps(); !slices.Equal(got, want) {
			t.Fatalf("steps %v, want them to stay %v", got, want)
		}
	}
	gate := func() chan struct{} {
		g := make(chan struct{})
		h.gates <- g
		return g
	}
	tombstone := func(uid string) {
		t.Helper()
		if err := tp.cl.ProduceSync(context.Background(), &kgo.Record{Key: []byte(uid)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	first, erasure, after := gate(), gate(), gate()
	tp.produce(t, 0, 10)
	awaitSteps("start orders")
	tombstone("u1")
	stays("start orders") // a second flight is free, but the erasure waits

	close(first)
	awaitSteps("start orders", "end orders", "start erasure")
	tp.produce(t, 11, 10)
	stays("start orders", "end orders", "start erasure") // nothing flies beside it

	close(erasure)
	awaitSteps("start orders", "end orders", "start erasure", "end erasure", "start orders")
	close(after)
	awaitSteps("start orders", "end orders", "start erasure", "end erasure", "start orders", "end orders")
	// 10 orders, the tombstone, 10 orders: all committed.
	deadline := time.Now().Add(30 * time.Second)
	for tp.committed(t) != 21 {
		if time.Now().After(deadline) {
			t.Fatalf("committed %d, want 21", tp.committed(t))
		}
		time.Sleep(50 * time.Millisecond) // polling the broker's committed offset
	}
}
