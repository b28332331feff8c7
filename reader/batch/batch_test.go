package batch_test

import (
	"slices"
	"testing"

	"github.com/orderservice/orders/reader/batch"
)

func TestNext(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		queued []int
		max    int
		want   [][]int // the batches, in order, until the queue is empty
	}{
		{"one", []int{1}, 4, [][]int{{1}}},
		{"all fit", []int{1, 2, 3}, 4, [][]int{{1, 2, 3}}},
		{"exactly max", []int{1, 2, 3, 4}, 4, [][]int{{1, 2, 3, 4}}},
		{"split at max", []int{1, 2, 3, 4, 5, 6}, 4, [][]int{{1, 2, 3, 4}, {5, 6}}},
		{"max one", []int{1, 2}, 1, [][]int{{1}, {2}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ch := make(chan int, len(tc.queued))
			for _, v := range tc.queued {
				ch <- v
			}
			buf := make([]int, 0, tc.max)
			for i, want := range tc.want {
				got, ok := batch.Next(nil, ch, buf, tc.max)
				if !ok || !slices.Equal(got, want) {
					t.Fatalf("batch %d = %v (ok %v), want %v", i, got, ok, want)
				}
			}
			if len(ch) != 0 {
				t.Fatalf("%d items left queued", len(ch))
			}
		})
	}
}

// TestNextWaitsForTheFirstItem: Next blocks until an item comes, and
// returns as soon as it does (it does not wait for more).
func TestNextWaitsForTheFirstItem(t *testing.T) {
	t.Parallel()
	ch := make(chan int)
	got := make(chan []int, 1)
	go func() {
		b, _ := batch.Next(nil, ch, nil, 8)
		got <- b
	}()
	ch <- 7
	if b := <-got; !slices.Equal(b, []int{7}) {
		t.Fatalf("batch %v, want [7]", b)
	}
}

// TestNextStops: a closed stop ends the wait with ok false and no items.
func TestNextStops(t *testing.T) {
	t.Parallel()
	stop := make(chan struct{})
	close(stop)
	if b, ok := batch.Next(stop, make(chan int), nil, 8); ok || len(b) != 0 {
		t.Fatalf("Next after stop = %v, %v; want empty, false", b, ok)
	}
}
