package kafka

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"time"
)

// DefaultLagInterval is how often the lag gauges are refreshed when
// ConsumerConfig.LagInterval is zero.
const DefaultLagInterval = 3 * time.Second

// lagQueryTimeout bounds one partition's watermark query. The broker
// normally answers in milliseconds; a slow or absent one only delays the
// next refresh (and shutdown by at most this much).
const lagQueryTimeout = time.Second

// lagQueries is the loop's bookkeeping of the broker's high-watermark
// queries. Lag is high watermark minus position, and the two halves come
// from different places:
//
//   - The position (the offset after the last message the loop polled) is
//     local, and read on the loop goroutine.
//   - The high watermark is asked of the broker (QueryWatermarkOffsets). The
//     copy librdkafka caches (GetWatermarkOffsets) is refreshed only by
//     fetch responses, and paused partitions are not fetched: during a
//     database outage, exactly when operators watch the lag, it would stay
//     frozen however much arrives. The query is a broker round trip, so it
//     runs on a goroutine of its own: neither polling (group membership) nor
//     the batches retrying the outage ever wait for it.
//
// At most one query runs at a time; its result is applied by the loop on
// its next iteration (at most pollInterval later), which also keeps every
// gauge write on the goroutine that handles revocations, so a revoked
// partition's series, once deleted, is never set again.
type lagQueries struct {
	next    time.Time            // when the next query may start
	running bool                 // a query is in flight; its result comes on done
	done    chan map[int32]int64 // capacity 1: the query never blocks on it
	wg      sync.WaitGroup       // the query's goroutine; Run waits for it before Close
}

// lagInterval is how often the lag gauges are refreshed.
func (c *Consumer) lagInterval() time.Duration {
	if c.cfg.LagInterval > 0 {
		return c.cfg.LagInterval
	}
	return DefaultLagInterval
}

// refreshLag is called by the loop on every iteration and never blocks: it
// applies the result of the last watermark query, if one came, and starts
// the next one when due. ctx stops a query between partitions.
func (c *Consumer) refreshLag(ctx context.Context) {
	select {
	case highs := <-c.lag.done:
		c.lag.running = false
		c.setLag(highs)
	default:
	}
	if c.lag.running || len(c.assigned) == 0 || time.Now().Before(c.lag.next) {
		return
	}
	c.lag.running = true
	c.lag.next = time.Now().Add(c.lagInterval())
	parts := make([]int32, 0, len(c.assigned))
	for p := range c.assigned {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	c.lag.wg.Go(func() { c.lag.done <- c.queryHighWatermarks(ctx, parts) })
}

// queryHighWatermarks asks the partitions' leaders for their high
// watermarks. It runs off the loop goroutine: rd_kafka_query_watermark_offsets
// waits on a reply queue of its own and touches no state of the loop's
// (confluent-kafka-go documents the client as safe for concurrent use).
// Partitions whose query fails are left out; their gauges wait for the
// next round.
func (c *Consumer) queryHighWatermarks(ctx context.Context, parts []int32) map[int32]int64 {
	highs := make(map[int32]int64, len(parts))
	for _, p := range parts {
		if ctx.Err() != nil {
			break
		}
		_, high, err := c.c.QueryWatermarkOffsets(c.cfg.Topic, p, int(lagQueryTimeout.Milliseconds()))
		if err != nil {
			// Debug: this repeats every interval while the broker is away.
			c.log.Debug("query high watermark for the lag gauge", "partition", p, "error", err)
			continue
		}
		highs[p] = high
	}
	return highs
}

// setLag sets the gauge of every assigned partition whose position is known
// (a partition not consumed from yet has none) from the queried high
// watermark, or the cached one where it is newer (fetch responses may have
// moved it since the query) or the query failed.
func (c *Consumer) setLag(queried map[int32]int64) {
	parts := c.partitions()
	if len(parts) == 0 {
		return
	}
	pos, err := c.c.Position(parts)
	if err != nil {
		return
	}
	for _, tp := range pos {
		high := int64(-1)
		if _, h, err := c.c.GetWatermarkOffsets(c.cfg.Topic, tp.Partition); err == nil {
			high = h
		}
		if q, ok := queried[tp.Partition]; ok {
			high = max(high, q)
		}
		if high < 0 || tp.Offset < 0 {
			continue // not known yet
		}
		c.metrics.Lag.WithLabelValues(c.cfg.Topic, strconv.Itoa(int(tp.Partition))).Set(float64(max(high-int64(tp.Offset), 0)))
	}
}
