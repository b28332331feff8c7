// Package kafka connects the ingestor to Kafka with confluent-kafka-go
// (librdkafka): a consumer-group loop that collects batches, hands them to
// the ingest pipeline and stores offsets only once their outcome is durable,
// and the dead-letter producer.
//
// Offset discipline. enable.auto.offset.store is false: an offset is stored
// (StoreMessage, which stores offset+1) only after the pipeline returned
// for the whole batch. Auto-commit then commits stored offsets in the
// background, and the loop commits explicitly when partitions are revoked
// and at shutdown, so a new owner starts right after the last durable
// message and re-reads nothing that was stored.
//
// Threading. One goroutine owns the consumer: it polls, commits a batch
// (while the next one is prepared on other goroutines) and polls again.
// Rebalance callbacks run inside Poll, therefore never while a batch is
// being written, except during a transient outage, when the pipeline's
// WaitFunc polls (with every partition paused) to keep the member in the
// group; the loop goroutine is blocked meanwhile, so only one goroutine
// ever touches the consumer. Every Poll uses a short timeout so that shutdown is
// never stuck in librdkafka.
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

// lagInterval is how often the lag gauges are refreshed (cheap, local
// watermark and position calls, but not per message).
const lagInterval = 3 * time.Second

// Handler gives batches durable outcomes in two steps; see
// ingest.Pipeline. Prepare must have no side effect (the consumer may drop
// part of a prepared batch); Commit makes the outcomes durable.
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
	// ShutdownTimeout bounds the work on the batch in flight after the run
	// context is cancelled.
	ShutdownTimeout time.Duration
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
	lastLag  time.Time

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
		"auto.offset.reset":             "earliest",
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

// Run consumes until ctx is cancelled, then finishes the batch in flight
// (within ShutdownTimeout), commits the stored offsets and closes the
// consumer. It returns nil on a clean shutdown.
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

	// The batch in flight outlives ctx by at most ShutdownTimeout.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(c.cfg.ShutdownTimeout, cancelWork)
		context.AfterFunc(work, func() { t.Stop() })
	})
	defer stop()

	// inflight is the prepared batch to commit next. While it is written,
	// the messages librdkafka already holds are prepared as the next batch:
	// decoding is CPU work in this process, writing mostly waits for
	// PostgreSQL, and overlapping them is most of the throughput.
	var inflight *ingest.Batch
	for {
		if inflight == nil {
			if ctx.Err() != nil {
				c.log.Info("stopping consumer: batch in flight done")
				return nil
			}
			if err := c.collect(ctx); err != nil {
				return err
			}
			if len(c.pending) == 0 {
				c.refreshLag(false)
				continue
			}
			inflight = c.handler.Prepare(c.take())
		}

		var next []ingest.Message
		if ctx.Err() == nil { // at shutdown, fetch nothing new
			if err := c.drain(); err != nil {
				return err
			}
			next = c.take()
			// drain may have run a revocation: leave those partitions'
			// messages to their new owner.
			inflight.Keep(func(p int32) bool { return c.assigned[p] })
		}
		var nextBatch *ingest.Batch
		prepared := make(chan struct{})
		go func() {
			defer close(prepared)
			if len(next) > 0 {
				nextBatch = c.handler.Prepare(next)
			}
		}()
		err := c.handler.Commit(work, inflight, c.wait)
		<-prepared
		if err != nil {
			// Only a cancelled context stops Commit: shutting down and out
			// of time. Nothing of the batch is stored; the next owner of
			// the partitions handles it again.
			c.log.Warn("batch abandoned at shutdown; it will be consumed again", "messages", inflight.Len(), "error", err)
			return nil
		}
		c.store(inflight)
		c.resume()
		inflight = nextBatch
		if inflight != nil {
			// Partitions revoked during an outage's waits: not ours now.
			inflight.Keep(func(p int32) bool { return c.assigned[p] })
			if inflight.Len() == 0 {
				inflight = nil
			}
		}
		c.refreshLag(false)
	}
}

// take hands over the collected messages.
func (c *Consumer) take() []ingest.Message {
	msgs := c.pending
	c.pending = nil
	return msgs
}

// drain adds what librdkafka already holds to the pending messages,
// without waiting, up to a batch.
func (c *Consumer) drain() error {
	for len(c.pending) < c.cfg.BatchSize {
		before := len(c.pending)
		if err := c.poll(0); err != nil {
			return err
		}
		if len(c.pending) == before {
			return nil
		}
	}
	return nil
}

// collect polls until the batch is full, BatchLinger has passed since its
// first message, or ctx is done.
func (c *Consumer) collect(ctx context.Context) error {
	var deadline time.Time
	if len(c.pending) > 0 { // left over from an outage's WaitFunc
		deadline = time.Now().Add(c.cfg.BatchLinger)
	}
	for len(c.pending) < c.cfg.BatchSize && ctx.Err() == nil {
		timeout := pollInterval
		if !deadline.IsZero() {
			left := time.Until(deadline)
			if left <= 0 {
				return nil
			}
			timeout = min(timeout, left)
		}
		ms := max(int(timeout.Milliseconds()), 1)
		if err := c.poll(ms); err != nil {
			return err
		}
		if deadline.IsZero() && len(c.pending) > 0 {
			deadline = time.Now().Add(c.cfg.BatchLinger)
		}
		c.refreshLag(false)
	}
	return nil
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

// wait is the pipeline's WaitFunc: pause every assigned partition (once),
// then poll for d so that heartbeats, rebalances and max.poll.interval.ms
// stay satisfied. Messages polled meanwhile (already in flight before the
// pause) join the next batch, so nothing is skipped.
func (c *Consumer) wait(ctx context.Context, d time.Duration) error {
	if !c.paused {
		c.paused = true
		if err := c.c.Pause(c.partitions()); err != nil {
			c.log.Warn("pause partitions", "error", err)
		}
	}
	deadline := time.Now().Add(d)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil
		}
		if err := c.poll(max(int(min(left, pollInterval).Milliseconds()), 1)); err != nil {
			return err
		}
	}
}

// resume undoes wait's pause once the batch has gone through.
func (c *Consumer) resume() {
	if !c.paused {
		return
	}
	c.paused = false
	if err := c.c.Resume(c.partitions()); err != nil {
		c.log.Warn("resume partitions", "error", err)
	}
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

// refreshLag updates the lag gauges from the cached high watermarks and the
// consumer's positions (no broker round trip).
func (c *Consumer) refreshLag(force bool) {
	if !force && time.Since(c.lastLag) < lagInterval {
		return
	}
	c.lastLag = time.Now()
	parts := c.partitions()
	if len(parts) == 0 {
		return
	}
	pos, err := c.c.Position(parts)
	if err != nil {
		return
	}
	for _, tp := range pos {
		_, high, err := c.c.GetWatermarkOffsets(c.cfg.Topic, tp.Partition)
		if err != nil || high < 0 || tp.Offset < 0 {
			continue // not fetched yet
		}
		c.metrics.Lag.WithLabelValues(c.cfg.Topic, strconv.Itoa(int(tp.Partition))).Set(float64(max(high-int64(tp.Offset), 0)))
	}
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
func librdkafkaLog(log *slog.Logger, client string, l ckafka.LogEvent) {
	level := slog.LevelDebug
	switch {
	case l.Level <= 3:
		level = slog.LevelError
	case l.Level == 4:
		level = slog.LevelWarn
	case l.Level <= 6:
		level = slog.LevelInfo
	}
	log.Log(context.Background(), level, l.Message, "client", client, "librdkafka", l.Tag)
}
