package dlq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/orderservice/orders/producer/send"
)

// pollInterval bounds each Poll, so that a cancelled context is seen soon.
const pollInterval = 100 * time.Millisecond

// Config says where the dead-letter topic is.
type Config struct {
	// Brokers is the bootstrap list, host:port[,host:port…].
	Brokers string
	// Topic is the dead-letter topic.
	Topic string
	// Properties are extra librdkafka properties (-X), for the consumer
	// and, in a redrive, the producer; security settings, typically.
	Properties map[string]string
	// Log, when set, receives librdkafka's log lines.
	Log io.Writer
	// Timeout bounds each broker round trip of the setup: metadata,
	// watermarks, committed offsets, and the last commit.
	Timeout time.Duration
}

func (c *Config) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return 10 * time.Second
}

// Range is the part of one partition a scan reads: offsets From (inclusive)
// to End (exclusive), End being the high watermark when it was asked for.
type Range struct {
	Partition int32
	// Low is the partition's first offset still stored.
	Low  int64
	From int64
	End  int64
	// Committed is the group's committed offset, or -1 when there is none
	// (or it was not asked for).
	Committed int64
}

// Len is how many offsets the range spans: letters, since the ingestor's
// producer is not transactional.
func (r Range) Len() int64 { return max(r.End-r.From, 0) }

// Reader reads a dead-letter topic with a librdkafka consumer that is
// assigned partitions by hand: it never joins its group, and commits only
// when told to.
type Reader struct {
	cfg        Config
	group      string
	c          *kafka.Consumer
	partitions []int32
	logsDone   chan struct{}
}

// Open creates the consumer and waits (up to cfg.Timeout) for the broker to
// describe the topic. group is the consumer group whose offsets Ranges
// reads and Commit writes.
func Open(ctx context.Context, cfg Config, group string) (*Reader, error) {
	cm := kafka.ConfigMap{}
	for k, v := range cfg.Properties {
		if err := cm.SetKey(k, v); err != nil {
			return nil, fmt.Errorf("kafka property %s: %w", k, err)
		}
	}
	for k, v := range map[string]kafka.ConfigValue{
		"bootstrap.servers":        cfg.Brokers,
		"group.id":                 group,
		"client.id":                "order-producer-dlq",
		"enable.auto.commit":       false, // only what Commit is given
		"enable.auto.offset.store": false,
		"enable.partition.eof":     true, // a partition may end below its high watermark (compaction)
		"auto.offset.reset":        "earliest",
		"go.logs.channel.enable":   true,
	} {
		if err := cm.SetKey(k, v); err != nil {
			return nil, fmt.Errorf("kafka property %s: %w", k, err)
		}
	}
	c, err := kafka.NewConsumer(&cm)
	if err != nil {
		return nil, fmt.Errorf("create Kafka consumer: %w", err)
	}
	r := &Reader{cfg: cfg, group: group, c: c, logsDone: make(chan struct{})}
	go func() {
		defer close(r.logsDone)
		send.DrainLogs(c.Logs(), cfg.Log)
	}()
	md, err := send.AwaitTopic(ctx, c, cfg.Brokers, cfg.Topic, cfg.timeout())
	if err != nil {
		r.Close()
		return nil, err
	}
	for _, p := range md.Partitions {
		r.partitions = append(r.partitions, p.ID)
	}
	slices.Sort(r.partitions)
	return r, nil
}

// Group is the consumer group the reader commits to.
func (r *Reader) Group() string { return r.group }

// Ranges returns every partition's range up to its high watermark now. The
// range starts at the partition's first offset, or, when committed is true,
// at the group's committed offset where there is one.
func (r *Reader) Ranges(committed bool) ([]Range, error) {
	timeout := int(r.cfg.timeout().Milliseconds())
	out := make([]Range, 0, len(r.partitions))
	tps := make([]kafka.TopicPartition, 0, len(r.partitions))
	for _, p := range r.partitions {
		low, high, err := r.c.QueryWatermarkOffsets(r.cfg.Topic, p, timeout)
		if err != nil {
			return nil, fmt.Errorf("watermarks of %s/%d: %w", r.cfg.Topic, p, err)
		}
		out = append(out, Range{Partition: p, Low: low, From: low, End: high, Committed: -1})
		tps = append(tps, kafka.TopicPartition{Topic: &r.cfg.Topic, Partition: p})
	}
	if !committed {
		return out, nil
	}
	got, err := r.c.Committed(tps, timeout)
	if isCode(err, kafka.ErrGroupIDNotFound) {
		// Some brokers answer so for a group that never committed.
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("committed offsets of group %s: %w", r.group, err)
	}
	for _, tp := range got {
		if isCode(tp.Error, kafka.ErrGroupIDNotFound) {
			continue
		}
		if tp.Error != nil {
			return nil, fmt.Errorf("committed offset of group %s on %s/%d: %w", r.group, r.cfg.Topic, tp.Partition, tp.Error)
		}
		i := slices.IndexFunc(out, func(rg Range) bool { return rg.Partition == tp.Partition })
		if i < 0 || tp.Offset < 0 {
			continue // no commit yet: from the start
		}
		out[i].Committed = int64(tp.Offset)
		// Below the first stored offset (retention removed letters):
		// from what is left.
		out[i].From = max(int64(tp.Offset), out[i].Low)
	}
	return out, nil
}

// ErrStop, returned by Scan's fn, ends the scan early without an error.
var ErrStop = errors.New("stop scanning")

// Scan reads the ranges, each partition in offset order, and calls fn for
// every letter. It returns when every range has been read, when fn returns
// an error (which it returns, unless it is ErrStop), or when ctx ends.
func (r *Reader) Scan(ctx context.Context, ranges []Range, fn func(*Letter) error) error {
	end := map[int32]int64{}
	var assign []kafka.TopicPartition
	for _, rg := range ranges {
		if rg.Len() > 0 {
			end[rg.Partition] = rg.End
			assign = append(assign, kafka.TopicPartition{Topic: &r.cfg.Topic, Partition: rg.Partition, Offset: kafka.Offset(rg.From)})
		}
	}
	if len(assign) == 0 {
		return nil
	}
	if err := r.c.Assign(assign); err != nil {
		return fmt.Errorf("assign %s: %w", r.cfg.Topic, err)
	}
	defer func() { _ = r.c.Unassign() }()
	finish := func(p int32) {
		delete(end, p)
		// Letters past the high watermark are for the next run: stop
		// fetching them.
		_ = r.c.Pause([]kafka.TopicPartition{{Topic: &r.cfg.Topic, Partition: p}})
	}
	for len(end) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		switch e := r.c.Poll(int(pollInterval.Milliseconds())).(type) {
		case *kafka.Message:
			p, off := e.TopicPartition.Partition, int64(e.TopicPartition.Offset)
			hi, ok := end[p]
			if !ok {
				continue
			}
			if off >= hi {
				finish(p)
				continue
			}
			l := letterOf(e)
			if err := fn(&l); err != nil {
				if errors.Is(err, ErrStop) {
					return nil
				}
				return err
			}
			if off >= hi-1 {
				finish(p)
			}
		case kafka.PartitionEOF:
			// The end of what the partition holds now, which is at or
			// past the high watermark taken before the scan.
			if _, ok := end[e.Partition]; ok {
				finish(e.Partition)
			}
		case kafka.Error:
			if e.IsFatal() || isPermanent(e.Code()) {
				return fmt.Errorf("read %s: %w", r.cfg.Topic, e)
			}
			// Others (a broker down) are retried by librdkafka.
		}
	}
	return nil
}

// isPermanent reports client errors that retrying does not cure.
func isPermanent(c kafka.ErrorCode) bool {
	switch c {
	case kafka.ErrUnknownTopicOrPart, kafka.ErrUnknownTopic, kafka.ErrTopicAuthorizationFailed,
		kafka.ErrGroupAuthorizationFailed, kafka.ErrSaslAuthenticationFailed, kafka.ErrAuthentication:
		return true
	}
	return false
}

func letterOf(m *kafka.Message) Letter {
	hs := make([]Header, len(m.Headers))
	for i, h := range m.Headers {
		hs[i] = Header{Key: h.Key, Value: h.Value}
	}
	return Parse(m.TopicPartition.Partition, int64(m.TopicPartition.Offset), m.Key, m.Value, hs, m.Timestamp)
}

// Commit makes offsets (partition → next offset to read) the group's
// committed offsets. It waits for the broker's answer.
func (r *Reader) Commit(offsets map[int32]int64) error {
	if len(offsets) == 0 {
		return nil
	}
	tps := make([]kafka.TopicPartition, 0, len(offsets))
	for p, o := range offsets {
		tps = append(tps, kafka.TopicPartition{Topic: &r.cfg.Topic, Partition: p, Offset: kafka.Offset(o)})
	}
	got, err := r.c.CommitOffsets(tps)
	if err != nil {
		return fmt.Errorf("commit progress of group %s: %w", r.group, err)
	}
	for _, tp := range got {
		if tp.Error != nil {
			return fmt.Errorf("commit progress of group %s on %s/%d: %w", r.group, r.cfg.Topic, tp.Partition, tp.Error)
		}
	}
	return nil
}

// Close closes the consumer. It commits nothing.
func (r *Reader) Close() {
	_ = r.c.Close()
	<-r.logsDone
}
