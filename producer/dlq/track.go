package dlq

import "sync"

// tracker knows, per dead-letter partition, up to which offset every letter
// is done, which is what may be committed. Letters are added in offset
// order (the order Scan reads them); their acknowledgements may come in
// any order, since they go to different topics and partitions.
type tracker struct {
	mu    sync.Mutex
	parts map[int32]*partTrack
}

type partTrack struct {
	// pending are the offsets of letters produced and not yet
	// acknowledged, in offset order; done marks acknowledged ones still
	// behind an unacknowledged one.
	pending []int64
	done    map[int64]bool
	// next is the offset after the last letter read.
	next int64
	// committed is the last offset committed (or found committed), -1 for
	// none.
	committed int64
}

func newTracker(ranges []Range) *tracker {
	t := &tracker{parts: map[int32]*partTrack{}}
	for _, r := range ranges {
		t.parts[r.Partition] = &partTrack{next: r.From, committed: r.Committed, done: map[int64]bool{}}
	}
	return t
}

// skip records a letter passed over: done at once.
func (t *tracker) skip(p int32, off int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.parts[p].next = off + 1
}

// add records a letter handed to the producer.
func (t *tracker) add(p int32, off int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	pt := t.parts[p]
	pt.pending = append(pt.pending, off)
	pt.next = off + 1
}

// unadd takes back the letter added last, which was never handed over: it
// is where the partition's progress stays.
func (t *tracker) unadd(p int32, off int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	pt := t.parts[p]
	if n := len(pt.pending); n > 0 && pt.pending[n-1] == off {
		pt.pending = pt.pending[:n-1]
	}
	pt.next = min(pt.next, off)
}

// ack records the acknowledgement of a letter added before.
func (t *tracker) ack(p int32, off int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	pt := t.parts[p]
	pt.done[off] = true
	for len(pt.pending) > 0 && pt.done[pt.pending[0]] {
		delete(pt.done, pt.pending[0])
		pt.pending = pt.pending[1:]
	}
}

// uncommitted returns the offset each partition may commit, where it is
// past the last commit. A letter whose delivery failed is never acked, so
// its partition's offset stays at it.
func (t *tracker) uncommitted() map[int32]int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[int32]int64{}
	for p, pt := range t.parts {
		o := pt.next
		if len(pt.pending) > 0 {
			o = pt.pending[0]
		}
		if o > pt.committed {
			out[p] = o
		}
	}
	return out
}

// committed records that offsets were committed.
func (t *tracker) committed(offsets map[int32]int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for p, o := range offsets {
		t.parts[p].committed = max(t.parts[p].committed, o)
	}
}
