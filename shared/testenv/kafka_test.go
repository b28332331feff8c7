package testenv

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// TestKafkaWithLibrdkafka checks what every service relies on: librdkafka
// can produce to the broker Kafka hands out and consume from it in a
// consumer group with manual commits, and a new group member resumes after
// the committed offsets.
func TestKafkaWithLibrdkafka(t *testing.T) {
	t.Parallel()
	k := Kafka(t)
	topic := k.Topic(t, "orders", 3)
	const n = 30

	p, err := kafka.NewProducer(&kafka.ConfigMap{
		"bootstrap.servers":   k.Brokers,
		"enable.idempotence":  true,
		"acks":                "all",
		"enable.metrics.push": false, // kfake answers telemetry requests; keep the log quiet
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	produce := func(from, to int) {
		t.Helper()
		deliveries := make(chan kafka.Event, to-from)
		for i := from; i < to; i++ {
			err := p.Produce(&kafka.Message{
				TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: kafka.PartitionAny},
				Key:            fmt.Appendf(nil, "k%d", i),
				Value:          fmt.Appendf(nil, "v%d", i),
				Headers:        []kafka.Header{{Key: "h", Value: []byte("x")}},
			}, deliveries)
			if err != nil {
				t.Fatal(err)
			}
		}
		for i := from; i < to; i++ {
			select {
			case ev := <-deliveries:
				if m := ev.(*kafka.Message); m.TopicPartition.Error != nil {
					t.Fatalf("delivery: %v", m.TopicPartition.Error)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("no delivery report for %d of %d messages", to-i, to-from)
			}
		}
	}
	produce(0, n)

	group := "g-" + randomHex(4)
	consume := func(want int) map[string]bool {
		t.Helper()
		c, err := kafka.NewConsumer(&kafka.ConfigMap{
			"bootstrap.servers":   k.Brokers,
			"group.id":            group,
			"auto.offset.reset":   "earliest",
			"enable.auto.commit":  false,
			"session.timeout.ms":  6000,
			"enable.metrics.push": false,
		})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Subscribe(topic, nil); err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		deadline := time.Now().Add(60 * time.Second)
		for len(got) < want && time.Now().Before(deadline) {
			m, err := c.ReadMessage(200 * time.Millisecond)
			if err != nil {
				var kerr kafka.Error
				if errors.As(err, &kerr) && kerr.IsTimeout() {
					continue
				}
				t.Fatalf("read: %v", err)
			}
			if len(m.Headers) != 1 || string(m.Headers[0].Value) != "x" {
				t.Errorf("message %s lost its header: %v", m.Value, m.Headers)
			}
			got[string(m.Value)] = true
			if _, err := c.CommitMessage(m); err != nil {
				t.Fatalf("commit: %v", err)
			}
		}
		if len(got) != want {
			t.Fatalf("consumed %d distinct messages, want %d", len(got), want)
		}
		return got
	}
	first := consume(n)
	for i := range n {
		if !first[fmt.Sprintf("v%d", i)] {
			t.Errorf("v%d not consumed", i)
		}
	}

	// The committed offsets hold: a new member of the group sees only
	// what was produced after.
	produce(n, n+5)
	second := consume(5)
	for v := range second {
		if first[v] {
			t.Errorf("%s consumed again after its offset was committed", v)
		}
	}
}

func TestKafkaTopicsAreUnique(t *testing.T) {
	t.Parallel()
	k := Kafka(t)
	a, b := k.Topic(t, "orders", 6), k.Topic(t, "orders", 6)
	if a == b {
		t.Fatalf("two topics named %s", a)
	}
	adm, err := newAdmin(k.Brokers)
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	md, err := adm.Metadata(t.Context(), a)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(md.Topics[a].Partitions); got != 6 {
		t.Errorf("topic %s has %d partitions, want 6", a, got)
	}
}

// TestKafkaGroupSharesPartitions checks that two librdkafka members of one
// group split the topic's partitions between them and together read and
// commit every message, as two ingestor replicas would. A commit racing a
// rebalance fails (illegal generation) and its messages are read again by
// the partition's new owner: delivery is at least once.
func TestKafkaGroupSharesPartitions(t *testing.T) {
	t.Parallel()
	k := Kafka(t)
	topic := k.Topic(t, "orders", 6)
	const n = 60
	p, err := kafka.NewProducer(&kafka.ConfigMap{
		"bootstrap.servers": k.Brokers, "enable.metrics.push": false,
		// Flush counts undrained delivery reports as outstanding.
		"go.delivery.reports": false,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for i := range n {
		// Explicit partitions: every partition gets messages.
		err := p.Produce(&kafka.Message{
			TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: int32(i % 6)},
			Value:          fmt.Appendf(nil, "v%d", i),
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
	}
	if left := p.Flush(30_000); left != 0 {
		t.Fatalf("%d messages not delivered", left)
	}

	group := topic + "-group"
	newMember := func() *kafka.Consumer {
		c, err := kafka.NewConsumer(&kafka.ConfigMap{
			"bootstrap.servers":             k.Brokers,
			"group.id":                      group,
			"auto.offset.reset":             "earliest",
			"enable.auto.commit":            false,
			"session.timeout.ms":            6000,
			"partition.assignment.strategy": "cooperative-sticky",
			"enable.metrics.push":           false,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		if err := c.Subscribe(topic, nil); err != nil {
			t.Fatal(err)
		}
		return c
	}
	members := []*kafka.Consumer{newMember(), newMember()}
	all := make([]kafka.TopicPartition, 6)
	for i := range all {
		all[i] = kafka.TopicPartition{Topic: &topic, Partition: int32(i)}
	}
	// fullyCommitted reports whether the group's offsets are at the end of
	// every partition (n/6 messages each).
	fullyCommitted := func() bool {
		parts, err := members[0].Committed(all, 5000)
		if err != nil {
			return false
		}
		for _, p := range parts {
			if p.Offset != kafka.Offset(n/6) {
				return false
			}
		}
		return true
	}
	seen := map[string]int{}
	perMember := make([]int, len(members))
	var commitErrs []error
	deadline := time.Now().Add(60 * time.Second)
	lastCheck := time.Now()
	for done := false; !done && time.Now().Before(deadline); {
		assigned := 0
		for i, c := range members {
			ev := c.Poll(50)
			if m, ok := ev.(*kafka.Message); ok && m.TopicPartition.Error == nil {
				seen[string(m.Value)]++
				perMember[i]++
				if _, err := c.CommitMessage(m); err != nil {
					commitErrs = append(commitErrs, err)
				}
			}
			if parts, err := c.Assignment(); err == nil && len(parts) > 0 {
				assigned++
			}
		}
		if len(seen) == n && assigned == len(members) && time.Since(lastCheck) > 200*time.Millisecond {
			lastCheck = time.Now()
			done = fullyCommitted()
		}
	}
	if len(seen) != n {
		t.Fatalf("group read %d of %d messages", len(seen), n)
	}
	if !fullyCommitted() {
		t.Fatalf("the group's offsets do not reach the end of every partition")
	}
	for _, err := range commitErrs {
		var kerr kafka.Error
		if !errors.As(err, &kerr) || (kerr.Code() != kafka.ErrIllegalGeneration && kerr.Code() != kafka.ErrRebalanceInProgress) {
			t.Errorf("commit failed for a reason other than a rebalance: %v", err)
		}
	}
	for i, c := range members {
		parts, err := c.Assignment()
		if err != nil || len(parts) == 0 || len(parts) == 6 {
			t.Errorf("member %d holds %d of 6 partitions (err %v), want a share", i, len(parts), err)
		}
	}
	t.Logf("messages read per member: %v; commits lost to rebalances: %d", perMember, len(commitErrs))
}
