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

// Serve hands each batch to handle, and once stop closes fails what is
// still queued: a caller whose item came too late is answered too.
func TestServe(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		handled     []int // sent and answered before stop
		late        []int // queued while the worker waits on an empty queue, right before stop closes
		max         int
		wantBatches int
	}{
		{"nothing late", []int{1, 2, 3}, nil, 2, 2},
		// With batches of one, each late item is a coin toss between
		// stop and the queue: a Serve that dropped what is queued at
		// stop would keep all ten 1 time in 1,024.
		{"late items failed", []int{1}, []int{10, 11, 12, 13, 14, 15, 16, 17, 18, 19}, 1, 1},
		{"nothing at all", nil, []int{5}, 4, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			stop := make(chan struct{})
			ch := make(chan int, len(tc.handled)+len(tc.late))
			for _, v := range tc.handled {
				ch <- v
			}
			var got []int
			var batches int
			block := make(chan struct{})
			failed := make(chan []int, 1)
			handle := func(b []int) {
				if len(b) > tc.max {
					t.Errorf("batch of %d, more than %d", len(b), tc.max)
				}
				batches++
				got = append(got, b...)
				if len(got) == len(tc.handled) {
					close(block) // every early item answered
				}
			}
			if len(tc.handled) == 0 {
				close(block)
			}
			done := make(chan struct{})
			var fails []int
			go func() {
				defer close(done)
				batch.Serve(stop, ch, tc.max, handle, func(v int) { fails = append(fails, v) })
				failed <- fails
			}()
			<-block
			// The worker now waits on an empty queue; stop it and queue
			// the late items in one step, so that none is handled.
			for _, v := range tc.late {
				ch <- v
			}
			close(stop)
			<-done
			// A late item may still be handled if the worker took it
			// before it saw stop: each item is handled or failed, once.
			all := append(append([]int{}, got...), <-failed...)
			slices.Sort(all)
			want := append(append([]int{}, tc.handled...), tc.late...)
			slices.Sort(want)
			if !slices.Equal(all, want) {
				t.Fatalf("handled %v and failed %v, want each of %v once", got, fails, want)
			}
			if len(tc.late) == 0 && batches != tc.wantBatches {
				t.Errorf("%d batches, want %d", batches, tc.wantBatches)
			}
		})
	}
}
