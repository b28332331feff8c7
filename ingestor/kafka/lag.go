package kafka

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"time"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// DefaultLagInterval is how often the lag gauges are refreshed when
// ConsumerConfig.LagInterval is zero.
const DefaultLagInterval = 3 * time.Second

// lagQueryTimeout bounds one broker query of a refresh (one partition's
// watermarks, or the committed offsets). The broker normally answers in
// milliseconds; a slow or absent one only delays the next refresh (and
// shutdown by at most this much).
const lagQueryTimeout = time.Second

// lagQueries is the loop's bookkeeping of the broker queries behind the lag
// gauges. Lag is high watermark minus position, and the two halves come
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
// A partition not consumed from yet in this assignment has no position:
// librdkafka sets it only when the application polls a message. That is
// every partition assigned while the others are paused for an outage (it
// is paused at once, so it is never fetched), and any partition before its
// first message. Its consumption will start where librdkafka starts it:
// at the group's committed offset, or, without one, where auto.offset.reset
// points (see startOffset). The committed offsets are a broker round trip
// too (rd_kafka_committed sends an OffsetFetch through the group
// coordinator), so they are asked on the same goroutine, right after the
// watermarks, and only for the partitions that had no position when the
// query started.
//
// At most one query runs at a time; its result is applied by the loop on
// its next iteration (at most pollInterval later), which also keeps every
// gauge write on the goroutine that handles revocations, so a revoked
// partition's series, once deleted, is never set again.
type lagQueries struct {
	next    time.Time      // when the next query may start
	running bool           // a query is in flight; its result comes on done
	done    chan lagReport // capacity 1: the query never blocks on it
	wg      sync.WaitGroup // the query's goroutine; Run waits for it before Close
}

// lagReport is what one query learnt from the broker.
type lagReport struct {
	// reached is nil when the broker answered, else why it did not; no
	// watermark is asked when it did not.
	reached error
	high    map[int32]int64 // high watermark per partition
	// start is where consumption will start, for the partitions that had
	// no position when the query began.
	start map[int32]int64
}

// lagInterval is how often the lag gauges are refreshed.
func (c *Consumer) lagInterval() time.Duration {
	if c.cfg.LagInterval > 0 {
		return c.cfg.LagInterval
	}
	return DefaultLagInterval
}

// startLag returns the context of the lag queries and the function that
// ends them. A query may be running on its own goroutine (see refreshLag);
// it must be over before close destroys the librdkafka handle: the
// client's closed check and the call it guards are not atomic, so a call
// racing Close would use freed memory. stop cancels the query and waits for
// it.
func (c *Consumer) startLag(ctx context.Context) (lagCtx context.Context, stop func()) {
	lagCtx, cancel := context.WithCancel(ctx)
	return lagCtx, func() {
		cancel()
		c.lag.wg.Wait()
	}
}

// refreshLag is called by the loop on every iteration and never blocks: it
// applies the result of the last query, if one came, and starts the next
// one when due. ctx stops a query between its broker calls.
func (c *Consumer) refreshLag(ctx context.Context) {
	select {
	case r := <-c.lag.done:
		c.lag.running = false
		c.reached.Store(&r.reached)
		c.setLag(r)
	default:
	}
	// The query runs with no partition assigned too: it is how readiness
	// learns that the broker answers.
	if c.lag.running || time.Now().Before(c.lag.next) {
		return
	}
	c.lag.running = true
	c.lag.next = time.Now().Add(c.lagInterval())
	parts := make([]int32, 0, len(c.assigned))
	for p := range c.assigned {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	// Position is local (no broker round trip), so it is read here, on the
	// loop goroutine like every other position read.
	var unpositioned []int32
	if pos, err := c.c.Position(c.partitions()); err == nil {
		for _, tp := range pos {
			if tp.Offset < 0 {
				unpositioned = append(unpositioned, tp.Partition)
			}
		}
	}
	c.lag.wg.Go(func() { c.lag.done <- c.queryLag(ctx, parts, unpositioned) })
}

// queryLag asks a broker for the topic's metadata (whether one answers is
// what readiness reports; when none does, the round ends there rather than
// wait out every partition's timeout), then the partitions' leaders for
// their watermarks and, for the unpositioned partitions, the group
// coordinator for their committed offsets. It runs off the loop goroutine:
// rd_kafka_metadata, rd_kafka_query_watermark_offsets and
// rd_kafka_committed each wait on a reply queue of their own (the
// requests are served by librdkafka's own threads) and touch no state of
// the loop's; none serves the consumer queue, so no rebalance callback
// or message is ever delivered here (confluent-kafka-go documents the
// client as safe for concurrent use). A partition whose query fails is
// left out; its gauge waits for the next round.
func (c *Consumer) queryLag(ctx context.Context, parts, unpositioned []int32) lagReport {
	r := lagReport{high: make(map[int32]int64, len(parts)), start: make(map[int32]int64, len(unpositioned))}
	if _, err := c.c.GetMetadata(&c.cfg.Topic, false, int(lagQueryTimeout.Milliseconds())); err != nil {
		c.log.Debug("query metadata", "err", err)
		r.reached = err
		return r
	}
	lows := make(map[int32]int64, len(unpositioned))
	for _, p := range parts {
		if ctx.Err() != nil {
			return r
		}
		low, high, err := c.c.QueryWatermarkOffsets(c.cfg.Topic, p, int(lagQueryTimeout.Milliseconds()))
		if err != nil {
			// Debug: this repeats every interval while the broker is away.
			c.log.Debug("query watermarks for the lag gauge", "partition", p, "err", err)
			continue
		}
		r.high[p] = high
		lows[p] = low
	}
	tps := make([]ckafka.TopicPartition, 0, len(unpositioned))
	for _, p := range unpositioned {
		if _, ok := lows[p]; ok {
			tps = append(tps, ckafka.TopicPartition{Topic: &c.cfg.Topic, Partition: p})
		}
	}
	if len(tps) == 0 || ctx.Err() != nil {
		return r
	}
	committed, err := c.c.Committed(tps, int(lagQueryTimeout.Milliseconds()))
	if err != nil {
		c.log.Debug("query committed offsets for the lag gauge", "partitions", partitionList(tps), "err", err)
		return r
	}
	for _, tp := range committed {
		if tp.Error != nil {
			continue
		}
		r.start[tp.Partition] = startOffset(int64(tp.Offset), lows[tp.Partition], r.high[tp.Partition])
	}
	return r
}

// startOffset is where librdkafka starts consuming a partition given its
// committed offset (negative when there is none) and its watermarks: at
// the committed offset, or where auto.offset.reset points when there is
// none or it is out of the log's range (the fetch then fails with
// OFFSET_OUT_OF_RANGE and is reset the same way). NewConsumer sets
// auto.offset.reset to "earliest", which no property overrides: the low
// watermark.
func startOffset(committed, low, high int64) int64 {
	if committed >= low && committed <= high {
		return committed
	}
	return low
}

// setLag sets the gauge of every assigned partition from its position, or
// from where its consumption will start when it has none (a partition not
// consumed from yet), and the queried high watermark, or the cached one
// where it is newer (fetch responses may have moved it since the query) or
// the query failed. A partition for which neither is known keeps its gauge
// (or still has none) until the next round.
func (c *Consumer) setLag(r lagReport) {
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
		if q, ok := r.high[tp.Partition]; ok {
			high = max(high, q)
		}
		from := int64(tp.Offset)
		if from < 0 {
			// Nothing polled from it yet: count from where its
			// consumption will start (a partition assigned since the
			// query began waits for the next round).
			s, ok := r.start[tp.Partition]
			if !ok {
				continue
			}
			from = s
		}
		if high < 0 {
			continue // not known yet
		}
		c.metrics.Lag.WithLabelValues(c.cfg.Topic, strconv.Itoa(int(tp.Partition))).Set(float64(max(high-from, 0)))
	}
}
