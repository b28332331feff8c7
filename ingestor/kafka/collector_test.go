package kafka

import (
	"slices"
	"testing"
	"time"

	"github.com/orderservice/orders/ingestor/ingest"
)

// The collector makes a batch of what it holds once a batch is full or
// linger has passed since the first message it holds; leftovers above a
// batch, and messages arriving after a revocation emptied it, start a
// linger of their own. Between those moments a poll waits at most until
// the batch is due.
func TestCollector(t *testing.T) {
	t.Parallel()
	const linger, limit = 50 * time.Millisecond, 100 * time.Millisecond
	type step struct {
		at   time.Duration // when, from the start
		add  []int32       // partitions of the messages polled now
		drop []int32       // partitions revoked now
		// Then:
		ready bool          // c.ready(now)
		wait  time.Duration // c.wait(now, limit)
		take  []int64       // if ready: the offsets c.take(now) must hand over
	}
	tests := []struct {
		name  string
		size  int
		steps []step
	}{
		{"empty", 3, []step{
			{at: 0, wait: limit},
		}},
		{"lingers from the first message", 3, []step{
			{at: 0, add: []int32{0}, wait: linger},
			{at: 30 * time.Millisecond, add: []int32{0}, wait: 20 * time.Millisecond},
			{at: 49 * time.Millisecond, wait: time.Millisecond},
			{at: 50 * time.Millisecond, ready: true, take: []int64{0, 1}},
			{at: 51 * time.Millisecond, wait: limit},
		}},
		{"past due, a poll still waits a millisecond", 3, []step{
			{at: 0, add: []int32{0}, wait: linger},
			{at: 80 * time.Millisecond, ready: true, wait: time.Millisecond},
		}},
		{"full before the linger", 2, []step{
			{at: 0, add: []int32{0, 1}, ready: true, take: []int64{0, 1}},
		}},
		{"leftovers start a fresh linger", 2, []step{
			{at: 0, add: []int32{0}, wait: linger},
			{at: 10 * time.Millisecond, add: []int32{0, 0}, ready: true, take: []int64{0, 1}},
			{at: 59 * time.Millisecond, wait: time.Millisecond},
			{at: 60 * time.Millisecond, ready: true, take: []int64{2}},
		}},
		{"a revocation that empties it ends the linger", 3, []step{
			{at: 0, add: []int32{1}, wait: linger},
			{at: 40 * time.Millisecond, drop: []int32{1}, wait: limit},
			{at: 45 * time.Millisecond, add: []int32{0}, wait: linger},
			{at: 94 * time.Millisecond, wait: time.Millisecond},
			{at: 95 * time.Millisecond, ready: true, take: []int64{1}},
		}},
		{"a revocation that leaves some keeps the linger", 4, []step{
			{at: 0, add: []int32{0, 1, 0}, wait: linger},
			{at: 10 * time.Millisecond, drop: []int32{1}, wait: 40 * time.Millisecond},
			{at: 50 * time.Millisecond, ready: true, take: []int64{0, 2}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newCollector(tc.size, linger)
			start := time.Unix(1_700_000_000, 0)
			var offset int64
			for _, s := range tc.steps {
				now := start.Add(s.at)
				for _, p := range s.add {
					c.add(ingest.Message{Partition: p, Offset: offset}, now)
					offset++
				}
				if len(s.drop) > 0 {
					c.drop(func(p int32) bool { return slices.Contains(s.drop, p) })
				}
				if got := c.ready(now); got != s.ready {
					t.Fatalf("at %s: ready = %v, want %v", s.at, got, s.ready)
				}
				if s.wait != 0 || !s.ready {
					if got := c.wait(now, limit); got != s.wait {
						t.Errorf("at %s: wait = %s, want %s", s.at, got, s.wait)
					}
				}
				if s.take == nil {
					continue
				}
				var got []int64
				for _, m := range c.take(now) {
					got = append(got, m.Offset)
				}
				if !slices.Equal(got, s.take) {
					t.Errorf("at %s: took offsets %v, want %v", s.at, got, s.take)
				}
			}
		})
	}
}

// full reports a whole batch, which the poll loop uses to stop draining.
func TestCollectorFull(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		size, held int
		want       bool
	}{
		{3, 0, false}, {3, 2, false}, {3, 3, true}, {3, 4, true}, {0, 1, true}, // size 0 counts as 1
	} {
		c := newCollector(tc.size, time.Second)
		for range tc.held {
			c.add(ingest.Message{}, time.Now())
		}
		if got := c.full(); got != tc.want {
			t.Errorf("size %d holding %d: full = %v, want %v", tc.size, tc.held, got, tc.want)
		}
	}
}
