package kafka

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/orderservice/orders/ingestor/ingest"
)

// Offsets are stored strictly in batch order: whatever order the flights
// finish in, finished() only ever hands over a prefix of the flights, so a
// batch's offsets are stored only after it and every earlier batch is
// durable; after an abandoned flight nothing later is handed over.
func TestInOrderHandsOverOnlyDurablePrefixes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// finish lists flight indexes in completion order; fail marks the
		// index whose Commit returns an error.
		finish []int
		fail   int
		// want is, after each completion, the flights handed over by
		// finished() (cumulative).
		want [][]int
	}{
		{"in order", []int{0, 1, 2}, -1, [][]int{{0}, {0, 1}, {0, 1, 2}}},
		{"reverse order", []int{2, 1, 0}, -1, [][]int{nil, nil, {0, 1, 2}}},
		{"middle first", []int{1, 0, 2}, -1, [][]int{nil, {0, 1}, {0, 1, 2}}},
		{"last first then head", []int{2, 0, 1}, -1, [][]int{nil, {0}, {0, 1, 2}}},
		{"head abandoned", []int{1, 0, 2}, 0, [][]int{nil, {0}, {0}}},
		{"middle abandoned", []int{0, 2, 1}, 1, [][]int{{0}, {0}, {0, 1}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var q inOrder
			flights := make([]*flight, 3)
			index := map[*flight]int{}
			for i := range flights {
				flights[i] = &flight{batch: &ingest.Batch{}, done: make(chan struct{})}
				index[flights[i]] = i
				q.add(flights[i])
			}
			var got []int
			stopped := false
			for step, i := range tc.finish {
				if i == tc.fail {
					flights[i].err = context.Canceled
				}
				close(flights[i].done)
				if !stopped {
					for _, f := range q.finished() {
						got = append(got, index[f])
						if f.err != nil {
							stopped = true // the consumer abandons the rest
							break
						}
					}
				}
				if !slices.Equal(got, tc.want[step]) {
					t.Fatalf("after flight %d finished: handed over %v, want %v", i, got, tc.want[step])
				}
			}
			for k, i := range got {
				if k != i {
					t.Fatalf("handed over %v: not a prefix in batch order", got)
				}
			}
			if !stopped && q.len() != 0 {
				t.Errorf("%d flights left after all finished", q.len())
			}
		})
	}
}

// failing reflects any flight waiting out a transient failure, and
// abandon waits for every flight before dropping them.
func TestInOrderFailingAndAbandon(t *testing.T) {
	t.Parallel()
	var q inOrder
	a := &flight{batch: &ingest.Batch{}, done: make(chan struct{})}
	b := &flight{batch: &ingest.Batch{}, done: make(chan struct{})}
	q.add(a)
	q.add(b)
	if q.failing() {
		t.Fatal("failing with no flight failing")
	}
	b.failing.Store(true)
	if !q.failing() {
		t.Fatal("a later flight retrying an outage must pause fetching too")
	}
	returned := make(chan int)
	go func() { returned <- q.abandon() }()
	select {
	case n := <-returned:
		t.Fatalf("abandon returned %d before the flights finished", n)
	default:
	}
	a.err = errors.New("cancelled")
	close(a.done)
	close(b.done)
	if n := <-returned; n != 2 || q.len() != 0 {
		t.Errorf("abandon = %d, %d left; want 2, 0", n, q.len())
	}
}

// awaitHead returns at once without flights, at its limit while the oldest
// flight runs, and without a limit only once that flight is done.
func TestInOrderAwaitHead(t *testing.T) {
	t.Parallel()
	var q inOrder
	q.awaitHead(0) // nothing in flight: must not block
	head := &flight{batch: &ingest.Batch{}, done: make(chan struct{})}
	q.add(head)
	q.awaitHead(time.Millisecond) // the head runs: returns at the limit
	returned := make(chan struct{})
	go func() {
		q.awaitHead(0)
		close(returned)
	}()
	select {
	case <-returned:
		t.Fatal("awaitHead(0) returned while the oldest flight runs")
	case <-time.After(20 * time.Millisecond): // long enough for a wrong return to show
	}
	close(head.done)
	<-returned
	if q.len() != 1 {
		t.Errorf("awaitHead removed flights: %d left, want 1", q.len())
	}
}
