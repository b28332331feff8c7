// Package kafka connects the ingestor to Kafka with confluent-kafka-go
// (librdkafka): a consumer-group loop that collects batches, hands them to
// the ingest pipeline and stores offsets only once their outcome is durable,
// and the dead-letter producer.
//
// Offset discipline. enable.auto.offset.store is false: an offset is stored
// (StoreMessage, which stores offset+1) only after the pipeline returned
// for the whole batch AND for every batch consumed before it. Auto-commit
// then commits stored offsets in the background, and the loop commits
// explicitly when partitions are revoked and at shutdown, so a new owner
// starts right after the last durable message and re-reads nothing that
// was stored.
//
// Threading. One goroutine owns the consumer: it polls, collects and
// prepares the next batch, and starts each prepared batch's Commit on a
// goroutine of its own, up to BatchesInFlight at once (each is one
// transaction on its own connection; PostgreSQL resolves a uid present in
// two of them: the second waits for the first and takes the writer's
// careful path). Flights may finish in any order; their offsets are stored
// in consumption order (type inOrder). A flight waiting out a transient
// failure only sleeps: the loop sees it failing, pauses every partition,
// starts no new batch and keeps polling so that rebalances are served and
// the member stays in the group. A partition revoked while a batch of it is
// in flight gets no offset from that batch (its data may commit; the new
// owner re-reads those messages, which is harmless: writes are
// idempotent). Every Poll uses a short timeout so that shutdown is never
// stuck in librdkafka. The one place calls are made elsewhere is the broker
// query for the lag gauges (see refreshLag): the high watermarks, and the
// committed offsets of partitions not consumed from yet. They are broker
// round trips the loop must not wait for, and librdkafka serves each on a
// queue of its own, safely beside the loop's calls.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/orderservice/orders/ingestor/ingest"
	"github.com/orderservice/orders/ingestor/metrics"
)

// pollInterval bounds every Poll call.
const pollInterval = 100 * time.Millisecond

// Handler gives batches durable outcomes in two steps; see
// ingest.Pipeline. Prepare must have no side effect (the consumer may drop
// part of a prepared batch); Commit makes the outcomes durable and must be
// safe for concurrent use (BatchesInFlight).
type Handler interface {
	Prepare(msgs []ingest.Message) *ingest.Batch
	Commit(ctx context.Context, b *ingest.Batch, wait ingest.WaitFunc) error
}

// ConsumerConfig configures a Consumer.
type ConsumerConfig struct {
	Brokers     string
	Topic       string
	Group       string
	BatchSize   int
	BatchLinger time.Duration
	// BatchesInFlight is how many batches may be committed concurrently,
	// each in its own transaction; offsets are still stored in batch order.
	BatchesInFlight int
	// ShutdownTimeout bounds the work on the batch in flight after the run
	// context is cancelled.
	ShutdownTimeout time.Duration
	// LagInterval is how often the consumer-lag gauges are refreshed
	// (DefaultLagInterval when zero).
	LagInterval time.Duration
	// Properties are extra librdkafka properties (security, tuning). They
	// cannot override the offset-handling settings this package relies on.
	Properties map[string]string
}

// Consumer is the consumer-group loop.
type Consumer struct {
	cfg     ConsumerConfig
	c       *ckafka.Consumer
	handler Handler
	log     *slog.Logger
	metrics *metrics.Metrics

	// Owned by the loop goroutine (and the rebalance callback, which runs
	// on it inside Poll).
	assigned map[int32]bool
	paused   bool
	pending  []ingest.Message // collected, not yet handled
	lag      lagQueries

	subscribed atomic.Bool
	nAssigned  atomic.Int32
	logsDone   chan struct{}
	closeOnce  sync.Once
}

// NewConsumer creates the librdkafka consumer (it connects lazily).
func NewConsumer(log *slog.Logger, m *metrics.Metrics, cfg ConsumerConfig, h Handler) (*Consumer, error) {
	cm := ckafka.ConfigMap{}
	for k, v := range cfg.Properties {
		if err := cm.SetKey(k, v); err != nil {
			return nil, fmt.Errorf("kafka property %s: %w", k, err)
		}
	}
	for k, v := range map[string]ckafka.ConfigValue{
		"bootstrap.servers":             cfg.Brokers,
		"group.id":                      cfg.Group,
		"partition.assignment.strategy": "cooperative-sticky",
		"enable.auto.offset.store":      false, // see the package doc
		"enable.auto.commit":            true,  // commits *stored* offsets only
		"auto.commit.interval.ms":       1000,
		"auto.offset.reset":             "earliest", // the lag gauge relies on it: see startOffset
		"enable.partition.eof":          false,
		"go.logs.channel.enable":        true,
	} {
		if err := cm.SetKey(k, v); err != nil {
			return nil, fmt.Errorf("kafka property %s: %w", k, err)
		}
	}
	if _, ok := cfg.Properties["session.timeout.ms"]; !ok {
		_ = cm.SetKey("session.timeout.ms", 10_000) // a killed member's partitions move within seconds
	}
	// librdkafka prefetches up to 64 MiB and fetches up to 50 MiB per
	// request by default; a few batches ahead is all the loop needs, and
	// the process stays small. (Messages larger than fetch.max.bytes are
	// still fetched: the limit is not absolute.)
	for k, v := range map[string]int{"queued.max.messages.kbytes": 16384, "fetch.max.bytes": 8 << 20} {
		if _, ok := cfg.Properties[k]; !ok {
			_ = cm.SetKey(k, v)
		}
	}
	if _, ok := cfg.Properties["heartbeat.interval.ms"]; !ok {
		_ = cm.SetKey("heartbeat.interval.ms", 1_000)
	}
	c, err := ckafka.NewConsumer(&cm)
	if err != nil {
		return nil, fmt.Errorf("create consumer: %w", err)
	}
	cons := &Consumer{
		cfg: cfg, c: c, handler: h, log: log, metrics: m,
		assigned: map[int32]bool{}, logsDone: make(chan struct{}),
		lag: lagQueries{done: make(chan lagReport, 1)},
	}
	go func() {
		defer close(cons.logsDone)
		for l := range c.Logs() {
			librdkafkaLog(log, "consumer", l)
		}
	}()
	return cons, nil
}

// Ready reports whether the consumer is subscribed, with partitions or
// waiting for them (a group with more members than partitions leaves some
// idle, and they are still healthy).
func (c *Consumer) Ready() bool { return c.subscribed.Load() }

// Assigned is the number of partitions currently owned.
func (c *Consumer) Assigned() int { return int(c.nAssigned.Load()) }

// Run consumes until ctx is cancelled, then finishes the batches in flight
// (within ShutdownTimeout; a prepared batch not started yet is left for
// the next owner), commits the stored offsets and closes the consumer. It
// returns nil on a clean shutdown.
func (c *Consumer) Run(ctx context.Context) (err error) {
	defer func() {
		if cerr := c.close(); err == nil {
			err = cerr
		}
	}()
	if err := c.c.SubscribeTopics([]string{c.cfg.Topic}, c.rebalance); err != nil {
		return fmt.Errorf("subscribe to %s: %w", c.cfg.Topic, err)
	}
	c.subscribed.Store(true)
	defer c.subscribed.Store(false)

	// A watermark query may be running on its own goroutine (see
	// refreshLag). It must be over before close destroys the librdkafka
	// handle: the client's closed check and the call it guards are not
	// atomic, so a call racing Close would use freed memory. This deferred
	// call runs before the close above.
	lagCtx, stopLag := context.WithCancel(ctx)
	defer func() {
		stopLag()
		c.lag.wg.Wait()
	}()

	// The batches in flight outlive ctx by at most ShutdownTimeout.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(c.cfg.ShutdownTimeout, cancelWork)
		context.AfterFunc(work, func() { t.Stop() })
	})
	defer stop()

	var (
		flights inOrder       // batches being committed, in consumption order
		next    *ingest.Batch // prepared, waiting for room in flights
		linger  time.Time     // when the pending messages must become a batch
	)
	for {
		// Store the offsets of the batches that are durable, strictly in
		// consumption order: a batch that finished early waits for every
		// earlier one.
		for _, f := range flights.finished() {
			if f.err != nil {
				// Only a cancelled context stops Commit: shutting down and
				// out of time. Nothing of this batch or of any later one
				// is stored; the next owner of the partitions handles them
				// again.
				n := flights.abandon()
				c.log.Warn("batch abandoned at shutdown; it will be consumed again",
					"messages", f.batch.Len(), "later_batches", n, "error", f.err)
				return nil
			}
			c.store(f.batch)
		}
		c.pauseWhileFailing(flights.failing())

		if ctx.Err() != nil { // shutting down: fetch and start nothing new
			head := flights.head()
			if head == nil {
				c.log.Info("stopping consumer: batches in flight done")
				return nil
			}
			<-head.done
			continue
		}

		if next != nil && flights.len() < c.maxInFlight() && !c.paused {
			// Partitions revoked since it was prepared: not ours now.
			next.Keep(func(p int32) bool { return c.assigned[p] })
			if next.Len() > 0 {
				flights.add(c.start(work, next))
			}
			next = nil
			continue
		}

		switch {
		case len(c.pending) == 0: // taken, or dropped by a revocation
			linger = time.Time{}
		case linger.IsZero():
			linger = time.Now().Add(c.cfg.BatchLinger)
		}
		full := len(c.pending) >= c.cfg.BatchSize
		if next == nil && len(c.pending) > 0 && (full || !time.Now().Before(linger)) {
			// Preparing is CPU work on every core and has no side effect:
			// it overlaps the transactions in flight (or waits, prepared,
			// for an outage to end).
			next = c.handler.Prepare(c.take())
			linger = time.Time{} // leftovers (above a batch) get a fresh linger
			continue
		}

		if next != nil || full {
			// Nothing more to collect until a batch starts: wait for the
			// oldest flight, polling now and then for rebalances (and the
			// messages already buffered).
			if head := flights.head(); head != nil {
				t := time.NewTimer(pollInterval)
				select {
				case <-head.done:
				case <-t.C:
				}
				t.Stop()
			}
			if err := c.poll(0); err != nil {
				cancelWork() // a flight retrying an outage would never return
				flights.abandon()
				return err
			}
		} else {
			timeout := pollInterval
			if !linger.IsZero() {
				timeout = min(timeout, max(time.Until(linger), time.Millisecond))
			}
			if err := c.poll(int(timeout.Milliseconds())); err != nil {
				cancelWork() // a flight retrying an outage would never return
				flights.abandon()
				return err
			}
		}
		c.refreshLag(lagCtx)
	}
}

// maxInFlight is how many batches may be committed concurrently.
func (c *Consumer) maxInFlight() int { return max(c.cfg.BatchesInFlight, 1) }

// start commits b on its own goroutine. Its WaitFunc only sleeps and marks
// the flight failing: the loop goroutine, which alone drives the
// consumer, pauses fetching while any flight is failing and keeps polling
// so that the member stays in the group.
func (c *Consumer) start(ctx context.Context, b *ingest.Batch) *flight {
	f := &flight{batch: b, done: make(chan struct{})}
	go func() {
		defer close(f.done)
		f.err = c.handler.Commit(ctx, b, func(ctx context.Context, d time.Duration) error {
			f.failing.Store(true)
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-t.C:
				return nil
			}
		})
		f.failing.Store(false)
	}()
	return f
}

// pauseWhileFailing pauses every assigned partition while a flight retries
// a transient failure (nothing new is buffered during an outage) and
// resumes them once none does.
func (c *Consumer) pauseWhileFailing(failing bool) {
	switch {
	case failing && !c.paused:
		c.paused = true
		if err := c.c.Pause(c.partitions()); err != nil {
			c.log.Warn("pause partitions", "error", err)
		}
	case !failing && c.paused:
		c.paused = false
		if err := c.c.Resume(c.partitions()); err != nil {
			c.log.Warn("resume partitions", "error", err)
		}
	}
}

// flight is a batch being committed.
type flight struct {
	batch *ingest.Batch
	done  chan struct{} // closed when Commit returned
	err   error         // Commit's error, read after done
	// failing is true while Commit waits out a transient failure.
	failing atomic.Bool
}

func (f *flight) isDone() bool {
	select {
	case <-f.done:
		return true
	default:
		return false
	}
}

// inOrder holds the flights in consumption order. Its methods are called
// by the loop goroutine only.
type inOrder struct{ flights []*flight }

func (q *inOrder) add(f *flight) { q.flights = append(q.flights, f) }

func (q *inOrder) len() int { return len(q.flights) }

// head is the oldest flight, or nil.
func (q *inOrder) head() *flight {
	if len(q.flights) == 0 {
		return nil
	}
	return q.flights[0]
}

// finished removes and returns the leading flights whose Commit returned,
// oldest first, up to and including the first that failed: a flight that
// finished while an older one is still running stays until that one is done.
func (q *inOrder) finished() []*flight {
	n := 0
	for n < len(q.flights) && q.flights[n].isDone() {
		n++
		if q.flights[n-1].err != nil {
			break
		}
	}
	out := q.flights[:n:n]
	q.flights = q.flights[n:]
	return out
}

// failing reports whether some flight is retrying a transient failure.
func (q *inOrder) failing() bool {
	for _, f := range q.flights {
		if f.failing.Load() {
			return true
		}
	}
	return false
}

// abandon waits for every remaining flight to return (they hold database
// connections; their context is cancelled by then, or they finish) and
// drops them without storing anything. It returns how many there were.
func (q *inOrder) abandon() int {
	n := len(q.flights)
	for _, f := range q.flights {
		<-f.done
	}
	q.flights = nil
	return n
}

// take hands over the collected messages, at most a batch.
func (c *Consumer) take() []ingest.Message {
	n := min(len(c.pending), c.cfg.BatchSize)
	msgs := c.pending[:n:n]
	c.pending = append([]ingest.Message(nil), c.pending[n:]...)
	return msgs
}

// poll handles one Poll's event: a message joins the pending batch, an
// error is logged (a fatal one ends the loop). Rebalances are handled by
// the callback inside Poll.
func (c *Consumer) poll(timeoutMs int) error {
	switch ev := c.c.Poll(timeoutMs).(type) {
	case *ckafka.Message:
		if ev.TopicPartition.Error != nil {
			// A per-partition consume error (e.g. a failed fetch) is not the
			// loop's error: librdkafka retries on its own.
			c.log.Warn("consume error", "partition", ev.TopicPartition.Partition, "error", ev.TopicPartition.Error)
			return nil //nolint:nilerr // logged above, see the comment
		}
		if !c.assigned[ev.TopicPartition.Partition] {
			return nil // raced with a revocation: the new owner gets it
		}
		c.pending = append(c.pending, toMessage(ev))
		// Drain what librdkafka already holds without waiting.
		for len(c.pending) < c.cfg.BatchSize {
			m, ok := c.c.Poll(0).(*ckafka.Message)
			if !ok || m == nil {
				break
			}
			if m.TopicPartition.Error == nil && c.assigned[m.TopicPartition.Partition] {
				c.pending = append(c.pending, toMessage(m))
			}
		}
	case ckafka.Error:
		if ev.IsFatal() {
			return fmt.Errorf("kafka consumer fatal error: %w", ev)
		}
		// Broker down, all brokers down, ...: librdkafka reconnects on its
		// own. Debug level: these repeat while the broker is away.
		c.log.Debug("kafka client error", "error", ev.Error(), "code", ev.Code().String())
	}
	return nil
}

// store stores, per partition, the offset after the batch's last message.
// A partition revoked meanwhile answers ERR__STATE: its new owner consumes
// those messages again, which is harmless (idempotent writes), so the error
// is ignored.
func (c *Consumer) store(b *ingest.Batch) {
	last := map[int32]int64{}
	b.Messages(func(m *ingest.Message) {
		if o, ok := last[m.Partition]; !ok || m.Offset > o {
			last[m.Partition] = m.Offset
		}
	})
	for p, off := range last {
		if !c.assigned[p] {
			continue
		}
		m := &ckafka.Message{TopicPartition: ckafka.TopicPartition{Topic: &c.cfg.Topic, Partition: p, Offset: ckafka.Offset(off)}}
		if _, err := c.c.StoreMessage(m); err != nil && !isCode(err, ckafka.ErrState) {
			c.log.Error("store offset", "partition", p, "offset", off, "error", err)
		}
	}
}

// rebalance handles cooperative-sticky's incremental assignments.
func (c *Consumer) rebalance(kc *ckafka.Consumer, ev ckafka.Event) error {
	switch e := ev.(type) {
	case ckafka.AssignedPartitions:
		if err := kc.IncrementalAssign(e.Partitions); err != nil {
			c.log.Error("incremental assign", "error", err)
			return err
		}
		for _, tp := range e.Partitions {
			c.assigned[tp.Partition] = true
		}
		if c.paused && len(e.Partitions) > 0 {
			// In an outage: new partitions must not buffer messages either.
			if err := kc.Pause(e.Partitions); err != nil {
				c.log.Warn("pause new partitions", "error", err)
			}
		}
		c.log.Info("partitions assigned", "partitions", partitionList(e.Partitions), "owned", len(c.assigned))
	case ckafka.RevokedPartitions:
		lost := kc.AssignmentLost()
		if !lost {
			// Commit what is durable before the partitions change hands.
			if _, err := kc.Commit(); err != nil && !isCode(err, ckafka.ErrNoOffset) {
				c.log.Warn("commit on revoke", "error", err)
			}
		}
		gone := map[int32]bool{}
		for _, tp := range e.Partitions {
			gone[tp.Partition] = true
			delete(c.assigned, tp.Partition)
			c.metrics.Lag.DeleteLabelValues(c.cfg.Topic, strconv.Itoa(int(tp.Partition)))
		}
		// Messages collected but not handled belong to the new owner now.
		kept := c.pending[:0]
		for _, m := range c.pending {
			if !gone[m.Partition] {
				kept = append(kept, m)
			}
		}
		c.pending = kept
		if err := kc.IncrementalUnassign(e.Partitions); err != nil && !isCode(err, ckafka.ErrState) {
			c.log.Warn("incremental unassign", "error", err)
		}
		c.log.Info("partitions revoked", "partitions", partitionList(e.Partitions), "lost", lost, "owned", len(c.assigned))
	}
	c.nAssigned.Store(int32(len(c.assigned)))
	c.metrics.AssignedPartitions.Set(float64(len(c.assigned)))
	return nil
}

// close commits the stored offsets and leaves the group (which revokes
// everything through the callback, committing again).
func (c *Consumer) close() error {
	var err error
	c.closeOnce.Do(func() {
		if _, cerr := c.c.Commit(); cerr != nil && !isCode(cerr, ckafka.ErrNoOffset) {
			c.log.Warn("final commit", "error", cerr)
		}
		if cerr := c.c.Close(); cerr != nil {
			err = fmt.Errorf("close consumer: %w", cerr)
		}
		<-c.logsDone
	})
	return err
}

func (c *Consumer) partitions() []ckafka.TopicPartition {
	out := make([]ckafka.TopicPartition, 0, len(c.assigned))
	for p := range c.assigned {
		out = append(out, ckafka.TopicPartition{Topic: &c.cfg.Topic, Partition: p})
	}
	return out
}

func toMessage(m *ckafka.Message) ingest.Message {
	out := ingest.Message{
		Topic:     *m.TopicPartition.Topic,
		Partition: m.TopicPartition.Partition,
		Offset:    int64(m.TopicPartition.Offset),
		Key:       m.Key,
		Value:     m.Value,
	}
	if m.TimestampType != ckafka.TimestampNotAvailable {
		out.Timestamp = m.Timestamp
	}
	if len(m.Headers) > 0 {
		out.Headers = make([]ingest.Header, len(m.Headers))
		for i, h := range m.Headers {
			out.Headers[i] = ingest.Header{Key: h.Key, Value: h.Value}
		}
	}
	return out
}

func isCode(err error, code ckafka.ErrorCode) bool {
	var kerr ckafka.Error
	return errors.As(err, &kerr) && kerr.Code() == code
}

func partitionList(tps []ckafka.TopicPartition) []int32 {
	out := make([]int32, len(tps))
	for i, tp := range tps {
		out[i] = tp.Partition
	}
	return out
}

// librdkafkaLog forwards one librdkafka log line (syslog levels) to slog.
// librdkafka's own "info" (6) is chatter such as telemetry ids, so it goes
// to debug; "notice" (5) and above stay visible.
func librdkafkaLog(log *slog.Logger, client string, l ckafka.LogEvent) {
	level := slog.LevelDebug
	switch {
	case l.Level <= 3:
		level = slog.LevelError
	case l.Level == 4:
		level = slog.LevelWarn
	case l.Level == 5:
		level = slog.LevelInfo
	}
	log.Log(context.Background(), level, l.Message, "client", client, "librdkafka", l.Tag)
}
