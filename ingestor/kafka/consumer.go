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
// careful path). A batch that erases (it holds a tombstone) is the
// exception: it starts once every earlier flight is done, and no other
// starts until it is, so that orders and erasures of a uid take effect in
// offset order. Flights may finish in any order; their offsets are stored
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
	"slices"
	"strconv"
	"strings"
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

var _ Handler = (*ingest.Pipeline)(nil)

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
	batch    collector     // polled, not prepared yet
	next     *ingest.Batch // prepared, waiting for room in flights
	flights  inOrder       // being committed, in consumption order
	lag      lagQueries

	subscribed atomic.Bool
	logsDone   chan struct{}
	closeOnce  sync.Once

	// reached is the outcome of the last broker query (see queryLag): nil
	// until one ended, then a pointer to nil or to the query's error.
	reached atomic.Pointer[error]
}

// reserved are the consumer settings this package relies on (see the
// package doc), and why. Properties naming one are refused rather than
// silently replaced.
var reserved = map[string]string{
	"bootstrap.servers":             "the brokers are configured on their own",
	"group.id":                      "the group is configured on its own",
	"partition.assignment.strategy": "the loop handles cooperative-sticky's incremental rebalances",
	"enable.auto.offset.store":      "offsets are stored only once durable",
	"enable.auto.commit":            "stored offsets are committed in the background",
	"auto.offset.reset":             "the lag gauge counts from the first offset of a partition without a committed one",
	"enable.partition.eof":          "the loop has no use for end-of-partition events",
	"go.logs.channel.enable":        "librdkafka's logs go to the ingestor's logger",
}

// NewConsumer creates the librdkafka consumer (it connects lazily). It
// refuses Properties that name a reserved setting.
func NewConsumer(log *slog.Logger, m *metrics.Metrics, cfg ConsumerConfig, h Handler) (*Consumer, error) {
	var refused []string
	for k := range cfg.Properties {
		if why, ok := reserved[k]; ok {
			refused = append(refused, fmt.Sprintf("%s (%s)", k, why))
		}
	}
	if len(refused) > 0 {
		slices.Sort(refused)
		return nil, fmt.Errorf("kafka properties the ingestor sets itself cannot be overridden: %s", strings.Join(refused, "; "))
	}
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
		"enable.auto.offset.store":      false,      // see the package doc
		"enable.auto.commit":            true,       // commits *stored* offsets only
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
	// Only durable offsets are ever stored, so any auto-commit interval is
	// safe (a longer one means more messages consumed again after a crash,
	// which idempotent writes make harmless): the properties may set it.
	if _, ok := cfg.Properties["auto.commit.interval.ms"]; !ok {
		_ = cm.SetKey("auto.commit.interval.ms", 1000)
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
		assigned: map[int32]bool{}, batch: newCollector(cfg.BatchSize, cfg.BatchLinger),
		logsDone: make(chan struct{}),
		lag:      lagQueries{done: make(chan lagReport, 1)},
	}
	go func() {
		defer close(cons.logsDone)
		for l := range c.Logs() {
			librdkafkaLog(log, "consumer", l)
		}
	}()
	return cons, nil
}

// Ready returns nil when the consumer is subscribed, with partitions or
// waiting for them (a group with more members than partitions leaves some
// idle, and they are still healthy), and the broker answered its last
// query (every lag interval, see queryLag); else what is wrong.
func (c *Consumer) Ready() error {
	if !c.subscribed.Load() {
		return errors.New("not subscribed")
	}
	switch err := c.reached.Load(); {
	case err == nil:
		return errors.New("no broker has answered yet")
	case *err != nil:
		return fmt.Errorf("broker unreachable: %w", *err)
	}
	return nil
}

// Run consumes until ctx is cancelled, then finishes the batches in flight
// (within ShutdownTimeout; a prepared batch not started yet is left for
// the next owner), commits the stored offsets and closes the consumer.
//
// It returns nil on a clean shutdown, including one that ran out of
// ShutdownTimeout: the batches still in flight are then abandoned with no
// offset stored, nor any of a later batch, so that the next owner of the
// partitions consumes them again and nothing is lost. Anything else that
// ends the loop is returned: a fatal consumer error, or a batch that failed
// otherwise (Handler.Commit fails only when its context is cancelled).
func (c *Consumer) Run(ctx context.Context) (err error) {
	defer func() {
		if cerr := c.Close(); err == nil {
			err = cerr
		}
	}()
	if err := c.c.SubscribeTopics([]string{c.cfg.Topic}, c.rebalance); err != nil {
		return fmt.Errorf("subscribe to %s: %w", c.cfg.Topic, err)
	}
	c.subscribed.Store(true)
	defer c.subscribed.Store(false)
	lagCtx, stopLag := c.startLag(ctx)
	defer stopLag() // before close, deferred above: see startLag
	work, cancelWork := c.workContext(ctx)
	defer cancelWork()

	for {
		if err := c.storeDurable(); err != nil {
			return c.abandon(work, cancelWork, err)
		}
		c.pauseWhileFailing()
		switch {
		case ctx.Err() != nil: // shutting down: fetch and start nothing new
			if c.flights.len() == 0 {
				c.log.Info("stopping consumer: batches in flight done")
				return nil
			}
			c.flights.awaitHead(0)
		case c.startNext(work):
		case c.prepareNext():
		default:
			if err := c.pollOnce(); err != nil {
				return c.abandon(work, cancelWork, err)
			}
			c.refreshLag(lagCtx)
		}
	}
}

// workContext returns the context of the batches in flight: it outlives
// ctx by at most ShutdownTimeout.
func (c *Consumer) workContext(ctx context.Context) (context.Context, context.CancelFunc) {
	work, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(c.cfg.ShutdownTimeout, cancel)
		context.AfterFunc(work, func() { t.Stop() })
	})
	return work, func() {
		stop()
		cancel()
	}
}

// storeDurable stores the offsets of the batches that are durable, strictly
// in consumption order: a batch that finished early waits for every earlier
// one. A failed batch stops it with its error: nothing of that batch or of
// any later one may be stored.
func (c *Consumer) storeDurable() error {
	for _, f := range c.flights.finished() {
		if f.err != nil {
			return fmt.Errorf("batch of %d messages not committed: %w", f.batch.Len(), f.err)
		}
		c.store(f.batch)
	}
	return nil
}

// abandon ends the loop on err: it cancels the batches still in flight and
// waits for them (they hold database connections), storing nothing of
// them. A batch cut short because the shutdown ran out of time is a clean
// stop (see Run): abandon logs it and returns nil. It returns err
// otherwise.
func (c *Consumer) abandon(work context.Context, cancelWork context.CancelFunc, err error) error {
	outOfTime := work.Err() != nil // only the ShutdownTimeout timer cancels work before this point
	cancelWork()
	later := c.flights.abandon()
	if outOfTime && errors.Is(err, context.Canceled) {
		c.log.Warn("batch abandoned at shutdown; it will be consumed again", "later_batches", later, "err", err)
		return nil
	}
	return err
}

// startNext starts committing the prepared batch when a flight is free and
// no outage pauses consumption. A batch that erases waits until no flight
// is left, and while it flies no other starts (see ingest.Batch.Exclusive).
// It reports whether it took the batch.
func (c *Consumer) startNext(work context.Context) bool {
	if c.next == nil || c.flights.len() >= c.maxInFlight() || c.paused || c.flights.exclusive() {
		return false
	}
	// Partitions revoked since it was prepared: not ours now.
	c.next.Keep(func(p int32) bool { return c.assigned[p] })
	exclusive := c.next.Exclusive()
	if exclusive && c.flights.len() > 0 {
		return false
	}
	if c.next.Len() > 0 {
		f := startFlight(work, c.handler, c.next)
		f.exclusive = exclusive
		c.flights.add(f)
	}
	c.next = nil
	return true
}

// prepareNext prepares the collected messages as the next batch once they
// are one and no prepared batch is waiting. Preparing is CPU work on every
// core and has no side effect: it overlaps the transactions in flight (or
// waits, prepared, for an outage to end). It reports whether it prepared.
func (c *Consumer) prepareNext() bool {
	now := time.Now()
	if c.next != nil || !c.batch.ready(now) {
		return false
	}
	c.next = c.handler.Prepare(c.batch.take(now))
	return true
}

// pollOnce polls for messages and rebalances. With a batch waiting for a
// flight, or a full one collected, there is nothing more to collect: it
// waits for the oldest flight (at most pollInterval), then polls without
// blocking, for rebalances and the messages already buffered. Otherwise it
// polls until the collected messages are due.
func (c *Consumer) pollOnce() error {
	if c.next != nil || c.batch.full() {
		c.flights.awaitHead(pollInterval)
		return c.poll(0)
	}
	return c.poll(int(c.batch.wait(time.Now(), pollInterval).Milliseconds()))
}

// maxInFlight is how many batches may be committed concurrently.
func (c *Consumer) maxInFlight() int { return max(c.cfg.BatchesInFlight, 1) }

// pauseWhileFailing pauses every assigned partition while a flight retries
// a transient failure (nothing new is buffered during an outage) and
// resumes them once none does.
func (c *Consumer) pauseWhileFailing() {
	switch failing := c.flights.failing(); {
	case failing && !c.paused:
		c.paused = true
		if err := c.c.Pause(c.partitions()); err != nil {
			c.log.Warn("pause partitions", "err", err)
		}
	case !failing && c.paused:
		c.paused = false
		if err := c.c.Resume(c.partitions()); err != nil {
			c.log.Warn("resume partitions", "err", err)
		}
	}
}

// poll handles one Poll's event: a message joins the collected ones, an
// error is logged (a fatal one ends the loop). Rebalances are handled by
// the callback inside Poll.
func (c *Consumer) poll(timeoutMs int) error {
	switch ev := c.c.Poll(timeoutMs).(type) {
	case *ckafka.Message:
		if ev.TopicPartition.Error != nil {
			// A per-partition consume error (e.g. a failed fetch) is not the
			// loop's error: librdkafka retries on its own.
			c.log.Warn("consume error", "partition", ev.TopicPartition.Partition, "err", ev.TopicPartition.Error)
			return nil //nolint:nilerr // logged above, see the comment
		}
		if !c.assigned[ev.TopicPartition.Partition] {
			return nil // raced with a revocation: the new owner gets it
		}
		now := time.Now()
		c.batch.add(toMessage(ev), now)
		// Drain what librdkafka already holds without waiting.
		for !c.batch.full() {
			m, ok := c.c.Poll(0).(*ckafka.Message)
			if !ok || m == nil {
				break
			}
			if m.TopicPartition.Error == nil && c.assigned[m.TopicPartition.Partition] {
				c.batch.add(toMessage(m), now)
			}
		}
	case ckafka.Error:
		if ev.IsFatal() {
			return fmt.Errorf("kafka consumer fatal error: %w", ev)
		}
		// Broker down, all brokers down, ...: librdkafka reconnects on its
		// own. Debug level: these repeat while the broker is away.
		c.log.Debug("kafka client error", "err", ev.Error(), "code", ev.Code().String())
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
			c.log.Error("store offset", "partition", p, "offset", off, "err", err)
		}
	}
}

// rebalance handles cooperative-sticky's incremental assignments.
func (c *Consumer) rebalance(kc *ckafka.Consumer, ev ckafka.Event) error {
	switch e := ev.(type) {
	case ckafka.AssignedPartitions:
		if err := kc.IncrementalAssign(e.Partitions); err != nil {
			c.log.Error("incremental assign", "err", err)
			return err
		}
		for _, tp := range e.Partitions {
			c.assigned[tp.Partition] = true
		}
		if c.paused && len(e.Partitions) > 0 {
			// In an outage: new partitions must not buffer messages either.
			if err := kc.Pause(e.Partitions); err != nil {
				c.log.Warn("pause new partitions", "err", err)
			}
		}
		c.log.Info("partitions assigned", "partitions", partitionList(e.Partitions), "owned", len(c.assigned))
	case ckafka.RevokedPartitions:
		lost := kc.AssignmentLost()
		if !lost {
			// Commit what is durable before the partitions change hands.
			if _, err := kc.Commit(); err != nil && !isCode(err, ckafka.ErrNoOffset) {
				c.log.Warn("commit on revoke", "err", err)
			}
		}
		gone := map[int32]bool{}
		for _, tp := range e.Partitions {
			gone[tp.Partition] = true
			delete(c.assigned, tp.Partition)
			c.metrics.Lag.DeleteLabelValues(c.cfg.Topic, strconv.Itoa(int(tp.Partition)))
		}
		// Messages collected but not prepared belong to the new owner now.
		c.batch.drop(func(p int32) bool { return gone[p] })
		if err := kc.IncrementalUnassign(e.Partitions); err != nil && !isCode(err, ckafka.ErrState) {
			c.log.Warn("incremental unassign", "err", err)
		}
		c.log.Info("partitions revoked", "partitions", partitionList(e.Partitions), "lost", lost, "owned", len(c.assigned))
	}
	c.metrics.AssignedPartitions.Set(float64(len(c.assigned)))
	return nil
}

// Close commits the stored offsets and leaves the group (which revokes
// everything through the callback, committing again). Run closes the
// consumer when it returns; Close is for one that never ran. Calls after
// the first do nothing. It must not be called while Run runs.
func (c *Consumer) Close() error {
	var err error
	c.closeOnce.Do(func() {
		if _, cerr := c.c.Commit(); cerr != nil && !isCode(cerr, ckafka.ErrNoOffset) {
			c.log.Warn("final commit", "err", cerr)
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

// toMessage converts a librdkafka message. Its Value is nil for a null
// value (a tombstone) and empty, not nil, for an empty one, as ingest
// expects.
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
