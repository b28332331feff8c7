package send

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/orderservice/orders/producer/source"
)

// maxDistinctErrors bounds the error kinds Stats keeps.
const maxDistinctErrors = 5

// Config configures a Kafka sink.
type Config struct {
	// Brokers is the bootstrap list, host:port[,host:port…].
	Brokers string
	Topic   string
	// Properties are extra librdkafka properties (-X); they override the
	// defaults below.
	Properties map[string]string
	// Log, when set, receives librdkafka's log lines; otherwise they are
	// dropped (the errors that matter arrive as delivery reports).
	Log io.Writer
}

// MessageMaxBytes is the producer's message.max.bytes default: room for the
// too_large bad message (just over 1 MiB) and then some. The broker's
// max.message.bytes must allow what arrives after compression too.
const MessageMaxBytes = 4 << 20

// Defaults are the librdkafka properties the producer starts from. The
// idempotent producer with acks=all neither loses nor duplicates messages on
// retries; message.timeout.ms bounds how long a message may wait for an
// unreachable broker (librdkafka's own default is five minutes).
func Defaults() kafka.ConfigMap {
	return kafka.ConfigMap{
		"enable.idempotence": true,
		"acks":               "all",
		"compression.type":   "lz4",
		"linger.ms":          10,
		"batch.num.messages": 10000,
		"message.max.bytes":  MessageMaxBytes,
		"message.timeout.ms": 30000,
		"client.id":          "order-producer",
		// Only the key comes back in delivery reports: copying every
		// value back into Go would halve throughput.
		"go.delivery.report.fields": "key",
		"go.logs.channel.enable":    true,
	}
}

// Kafka is a Sink that produces to one topic and accounts for every delivery
// report.
type Kafka struct {
	p       *kafka.Producer
	topic   string
	brokers string

	queued    atomic.Int64
	delivered atomic.Int64
	failed    atomic.Int64
	space     chan struct{} // signalled on each delivery: the queue has room
	done      chan struct{} // closed when the event loop ends

	mu     sync.Mutex
	errors []ErrorCount
}

// New creates the producer. It does not contact the broker; call Check.
func New(cfg Config) (*Kafka, error) {
	conf := Defaults()
	conf["bootstrap.servers"] = cfg.Brokers
	for k, v := range cfg.Properties {
		conf[k] = v
	}
	p, err := kafka.NewProducer(&conf)
	if err != nil {
		return nil, fmt.Errorf("create Kafka producer: %w", err)
	}
	k := &Kafka{
		p:       p,
		topic:   cfg.Topic,
		brokers: cfg.Brokers,
		space:   make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	go k.events()
	go DrainLogs(p.Logs(), cfg.Log)
	return k, nil
}

// Check waits until the broker answers a metadata request for the topic,
// up to timeout, so that an unreachable broker or a missing topic is
// reported at once instead of after every message has timed out.
func (k *Kafka) Check(ctx context.Context, timeout time.Duration) error {
	_, err := AwaitTopic(ctx, k.p, k.brokers, k.topic, timeout)
	return err
}

// MetadataClient is what AwaitTopic asks: a librdkafka producer or consumer.
type MetadataClient interface {
	GetMetadata(topic *string, allTopics bool, timeoutMs int) (*kafka.Metadata, error)
}

// AwaitTopic asks the broker for topic's metadata until it answers with at
// least one partition or timeout passes, and returns the topic's metadata.
// The errors say which of the two is wrong: the broker (cannot reach Kafka
// at <brokers>) or the topic (does not exist).
func AwaitTopic(ctx context.Context, c MetadataClient, brokers, topic string, timeout time.Duration) (kafka.TopicMetadata, error) {
	deadline := time.Now().Add(timeout)
	var lastErr error
	for {
		wait := min(time.Until(deadline), time.Second)
		if wait <= 0 {
			break
		}
		md, err := c.GetMetadata(&topic, false, int(wait.Milliseconds()))
		if err == nil {
			t, ok := md.Topics[topic]
			switch {
			case ok && t.Error.Code() == kafka.ErrNoError && len(t.Partitions) > 0:
				return t, nil
			case ok && t.Error.Code() != kafka.ErrNoError:
				lastErr = fmt.Errorf("topic %q at %s: %w", topic, brokers, t.Error)
			default:
				lastErr = fmt.Errorf("topic %q does not exist at %s", topic, brokers)
			}
			// A missing topic may be in the middle of auto-creation:
			// ask again until the deadline.
		} else {
			lastErr = fmt.Errorf("cannot reach Kafka at %s: %w", brokers, err)
		}
		select {
		case <-ctx.Done():
			return kafka.TopicMetadata{}, ctx.Err()
		case <-time.After(min(100*time.Millisecond, max(time.Until(deadline), 0))):
		}
	}
	if lastErr == nil {
		lastErr = fmt.Errorf("cannot reach Kafka at %s: no answer", brokers)
	}
	var kerr kafka.Error
	if errors.As(lastErr, &kerr) && kerr.Code() == kafka.ErrTimedOut {
		return kafka.TopicMetadata{}, fmt.Errorf("cannot reach Kafka at %s: no answer within %s", brokers, timeout)
	}
	return kafka.TopicMetadata{}, lastErr
}

// Send enqueues m. When librdkafka's queue is full it waits for deliveries
// to make room.
func (k *Kafka) Send(ctx context.Context, m source.Message) error {
	msg := &kafka.Message{
		TopicPartition: kafka.TopicPartition{Topic: &k.topic, Partition: kafka.PartitionAny},
		Key:            m.Key,
		Value:          m.Value,
	}
	for _, h := range m.Headers {
		msg.Headers = append(msg.Headers, kafka.Header{Key: h.Key, Value: h.Value})
	}
	for {
		err := k.p.Produce(msg, nil)
		if err == nil {
			k.queued.Add(1)
			return nil
		}
		var kerr kafka.Error
		if !errors.As(err, &kerr) || kerr.Code() != kafka.ErrQueueFull {
			return fmt.Errorf("produce to %s: %w", k.topic, err)
		}
		select {
		case <-k.space:
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// events reads delivery reports and client errors until the producer closes.
func (k *Kafka) events() {
	defer close(k.done)
	for ev := range k.p.Events() {
		switch e := ev.(type) {
		case *kafka.Message:
			if err := e.TopicPartition.Error; err != nil {
				k.failed.Add(1)
				k.recordError(err.Error(), string(e.Key))
			} else {
				k.delivered.Add(1)
			}
			select {
			case k.space <- struct{}{}:
			default:
			}
		case kafka.Error:
			// Transient client errors (a broker down) are retried by
			// librdkafka; a message that cannot be delivered in the end
			// fails with its own report. Fatal ones fail everything.
			if e.IsFatal() {
				k.recordError("fatal: "+e.Error(), "")
			}
		}
	}
}

func (k *Kafka) recordError(msg, key string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for i := range k.errors {
		if k.errors[i].Err == msg {
			k.errors[i].Count++
			return
		}
	}
	if len(k.errors) < maxDistinctErrors {
		k.errors = append(k.errors, ErrorCount{Err: msg, Count: 1, Key: key})
	}
}

// Stats returns the counts so far.
func (k *Kafka) Stats() Stats {
	k.mu.Lock()
	errs := append([]ErrorCount(nil), k.errors...)
	k.mu.Unlock()
	return Stats{
		Queued:    k.queued.Load(),
		Delivered: k.delivered.Load(),
		Failed:    k.failed.Load(),
		Errors:    errs,
	}
}

// Close flushes for up to timeout, then purges what is left (those messages
// get failed delivery reports, so every message is accounted for) and
// closes the producer.
func (k *Kafka) Close(timeout time.Duration) Stats {
	if left := k.p.Flush(int(timeout.Milliseconds())); left > 0 {
		_ = k.p.Purge(kafka.PurgeQueue | kafka.PurgeInFlight | kafka.PurgeNonBlocking)
		// Purged messages report their failure through the event loop.
		k.p.Flush(1000)
	}
	k.p.Close()
	<-k.done
	s := k.Stats()
	if lost := s.Queued - s.Delivered - s.Failed; lost > 0 {
		// Should not happen; never report them as sent.
		s.Failed += lost
		s.Errors = append(s.Errors, ErrorCount{Err: "no delivery report", Count: lost})
	}
	return s
}

// DrainLogs reads librdkafka's log channel until it closes, writing each
// line to w, or dropping it when w is nil.
func DrainLogs(logs chan kafka.LogEvent, w io.Writer) {
	for l := range logs {
		if w != nil {
			fmt.Fprintln(w, "librdkafka "+l.Tag+" ["+strconv.Itoa(l.Level)+"]: "+l.Message)
		}
	}
}
