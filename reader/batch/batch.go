// Package batch collects work queued on a channel into batches without
// waiting to fill them ("smart batching"): a batch is the first item to
// arrive plus whatever else is queued at that moment. A lone item is handled
// as soon as it comes, as without batching; under a burst, the items that
// queued while the previous batch was handled share one round trip. The
// reader's Redis GETs, its Redis fills and its PostgreSQL lookups all batch
// this way.
package batch

// Next waits for a first item on ch, or for stop to close (then ok is
// false), and returns buf[:0] holding that item and every item ch holds at
// that moment, up to max in all.
func Next[T any](stop <-chan struct{}, ch <-chan T, buf []T, max int) (batch []T, ok bool) {
	batch = buf[:0]
	select {
	case <-stop:
		return batch, false
	case v := <-ch:
		batch = append(batch, v)
	}
	for len(batch) < max {
		select {
		case v := <-ch:
			batch = append(batch, v)
		default:
			return batch, true
		}
	}
	return batch, true
}

// Serve is a worker: it calls handle with each batch Next takes from ch,
// up to max items, until stop closes; then it calls fail with every item
// still queued, so that no caller waits for an answer that will not come.
func Serve[T any](stop <-chan struct{}, ch <-chan T, max int, handle func([]T), fail func(T)) {
	buf := make([]T, 0, max)
	for {
		b, ok := Next(stop, ch, buf, max)
		if !ok {
			break
		}
		handle(b)
	}
	for {
		select {
		case v := <-ch:
			fail(v)
		default:
			return
		}
	}
}
