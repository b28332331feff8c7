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
