package kafka

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"
	"unicode/utf8"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/orderservice/orders/ingestor/ingest"
)

// DeadLetterProducer publishes dead letters with an idempotent producer
// (acks=all, no duplicates from internal retries) and reports which were
// acknowledged, so that only their offsets get stored.
type DeadLetterProducer struct {
	p     *ckafka.Producer
	topic string
	// connector names the Kafka Connect "connector" in the DLQ headers.
	connector string
	log       *slog.Logger
	done      chan struct{}
}

var _ ingest.DeadLetters = (*DeadLetterProducer)(nil)

// NewDeadLetterProducer creates the producer. props are extra librdkafka
// properties (security settings); maxMessageSize is the consumer's size
// limit, so that a too_large message still fits.
func NewDeadLetterProducer(log *slog.Logger, brokers, topic, connector string, maxMessageSize int, props map[string]string) (*DeadLetterProducer, error) {
	cfg := ckafka.ConfigMap{
		"bootstrap.servers":  brokers,
		"enable.idempotence": true,
		"acks":               "all",
		"linger.ms":          5,
		"compression.type":   "lz4",
		// Room for the original message plus the headers.
		"message.max.bytes":      max(1_000_000, maxMessageSize+64*1024),
		"go.logs.channel.enable": true,
		// The Go client's default channels hold a million events each
		// (~24 MB of heap); delivery reports go to per-call channels and
		// ProduceChannel is unused, so small ones do.
		"go.events.channel.size":  1000,
		"go.produce.channel.size": 1000,
		// Bounded: a delivery that cannot succeed in 30s is reported failed
		// and retried by the caller, which does not store the offset.
		"delivery.timeout.ms": 30_000,
	}
	for k, v := range props {
		if err := cfg.SetKey(k, v); err != nil {
			return nil, fmt.Errorf("kafka property %s: %w", k, err)
		}
	}
	p, err := ckafka.NewProducer(&cfg)
	if err != nil {
		return nil, fmt.Errorf("create dead-letter producer: %w", err)
	}
	d := &DeadLetterProducer{p: p, topic: topic, connector: connector, log: log, done: make(chan struct{})}
	go d.drain()
	return d, nil
}

// drain forwards librdkafka's logs and client-level errors to slog. Delivery
// reports go to per-call channels, not here.
func (d *DeadLetterProducer) drain() {
	defer close(d.done)
	events, logs := d.p.Events(), d.p.Logs()
	for events != nil || logs != nil {
		select {
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if e, isErr := ev.(ckafka.Error); isErr {
				d.log.Warn("dead-letter producer error", "err", e.Error(), "code", e.Code().String(), "fatal", e.IsFatal())
			}
		case l, ok := <-logs:
			if !ok {
				logs = nil
				continue
			}
			librdkafkaLog(d.log, "producer", l)
		}
	}
}

// Send publishes letters and waits for every delivery report.
func (d *DeadLetterProducer) Send(ctx context.Context, letters []ingest.DeadLetter) ([]bool, error) {
	delivered := make([]bool, len(letters))
	reports := make(chan ckafka.Event, len(letters))
	type pending struct {
		i       int
		dropped bool // sent without its value (too big for the topic)
	}
	sent := 0
	var firstErr error
	for i := range letters {
		msg := d.record(&letters[i], false)
		msg.Opaque = pending{i: i}
		err := d.p.Produce(msg, reports)
		if isCode(err, ckafka.ErrMsgSizeTooLarge) {
			// Larger than the producer may send (message.max.bytes):
			// publish the record without the value, as below.
			msg = d.record(&letters[i], true)
			msg.Opaque = pending{i: i, dropped: true}
			err = d.p.Produce(msg, reports)
		}
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("produce dead letter: %w", err)
			}
			continue
		}
		sent++
	}
	for sent > 0 {
		select {
		case <-ctx.Done():
			// Unconfirmed letters stay false; they may still be delivered,
			// in which case a retry duplicates them: at-least-once.
			return delivered, ctx.Err()
		case ev := <-reports:
			sent--
			m, ok := ev.(*ckafka.Message)
			if !ok {
				continue
			}
			pd := m.Opaque.(pending)
			err := m.TopicPartition.Error
			if err == nil {
				delivered[pd.i] = true
				continue
			}
			if isCode(err, ckafka.ErrMsgSizeTooLarge) && !pd.dropped {
				// The topic cannot take the original bytes: publish the
				// record without them rather than block the partition
				// forever. The headers still say where to find them.
				retry := d.record(&letters[pd.i], true)
				retry.Opaque = pending{i: pd.i, dropped: true}
				if perr := d.p.Produce(retry, reports); perr == nil {
					sent++
					continue
				}
			}
			if firstErr == nil {
				firstErr = fmt.Errorf("deliver dead letter: %w", err)
			}
		}
	}
	return delivered, firstErr
}

// record builds the dead-letter record: the original key and value (unless
// dropValue or the letter's DropValue), the original headers, our headers
// and the Kafka Connect DLQ headers that existing tooling reads.
func (d *DeadLetterProducer) record(l *ingest.DeadLetter, dropValue bool) *ckafka.Message {
	m := l.Msg
	partition := strconv.FormatInt(int64(m.Partition), 10)
	offset := strconv.FormatInt(m.Offset, 10)
	at := l.Time.UTC().Format(time.RFC3339Nano)
	headers := make([]ckafka.Header, 0, len(m.Headers)+16)
	for _, h := range m.Headers {
		headers = append(headers, ckafka.Header{Key: h.Key, Value: h.Value})
	}
	add := func(k, v string) { headers = append(headers, ckafka.Header{Key: k, Value: []byte(v)}) }
	add("reason", string(l.Reason))
	errText := capHeader(l.Error)
	add("error", errText)
	add("source_topic", m.Topic)
	add("source_partition", partition)
	add("source_offset", offset)
	add("source_timestamp", m.Timestamp.UTC().Format(time.RFC3339Nano))
	add("failed_at", at)
	add("__connect.errors.topic", m.Topic)
	add("__connect.errors.partition", partition)
	add("__connect.errors.offset", offset)
	add("__connect.errors.connector.name", d.connector)
	add("__connect.errors.task.id", "0")
	add("__connect.errors.stage", connectStage(l.Reason))
	add("__connect.errors.class.name", "orderservice.ingestor."+string(l.Reason))
	add("__connect.errors.exception.class.name", "orderservice.ingestor."+string(l.Reason))
	add("__connect.errors.exception.message", errText)
	value := m.Value
	switch {
	case l.DropValue != "": // the core's decision: see ingest.DeadLetter
		value = nil
		add("value_dropped", l.DropValue)
	case dropValue:
		value = nil
		add("value_dropped", fmt.Sprintf("%d bytes exceed the dead-letter topic's size limit", len(m.Value)))
	}
	return &ckafka.Message{
		TopicPartition: ckafka.TopicPartition{Topic: &d.topic, Partition: ckafka.PartitionAny},
		Key:            m.Key,
		Value:          value,
		Headers:        headers,
		Timestamp:      l.Time,
	}
}

// maxErrorHeader bounds the "error" and exception-message headers: a
// 1000-item order failing on every item has ~0.5 MB of validation text,
// which would bloat (or, beside a large value, overflow) the dead-letter
// record. The first failures say what is wrong; the rest is counted.
const maxErrorHeader = 8 << 10

// capHeader returns s if it fits maxErrorHeader bytes, else its beginning,
// cut at a rune boundary, and "… (N more bytes)", within maxErrorHeader.
func capHeader(s string) string {
	if len(s) <= maxErrorHeader {
		return s
	}
	// The suffix is at most len("… (") + 20 digits + len(" more bytes)").
	const room = 40
	cut := maxErrorHeader - room
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf("… (%d more bytes)", len(s)-cut)
}

// connectStage maps a reason to the Kafka Connect stage that would have
// failed: conversion for bytes that are not an order, the sink's put for
// orders the database refused.
func connectStage(r ingest.Reason) string {
	switch r {
	case ingest.ReasonMalformed, ingest.ReasonTooLarge:
		return "VALUE_CONVERTER"
	case ingest.ReasonInvalid:
		return "TRANSFORMATION"
	default:
		return "TASK_PUT"
	}
}

// Close flushes outstanding records (bounded by timeout) and closes the
// producer.
func (d *DeadLetterProducer) Close(timeout time.Duration) {
	if left := d.p.Flush(int(timeout.Milliseconds())); left > 0 {
		d.log.Warn("dead-letter producer closed with unflushed records", "records", left)
	}
	d.p.Close()
	<-d.done
}
