package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderservice/orders/ingestor/ingest"
	ingestkafka "github.com/orderservice/orders/ingestor/kafka"
	"github.com/orderservice/orders/producer/source"
	"github.com/orderservice/orders/shared/testenv"
)

// dlqEnv is a source topic, its dead-letter topic and a parking topic on
// one broker.
type dlqEnv struct {
	brokers              string
	source, dlq, parking string
	// letters are what was dead-lettered, in the order sent.
	letters []sentLetter
	// base is the failed_at time of the first letter; letter i failed at
	// base + i minutes.
	base time.Time
}

// sentLetter is one dead-lettered record: the original as the source topic
// holds it, and what the ingestor said about it.
type sentLetter struct {
	rec          *kgo.Record
	reason, text string
	at           time.Time
}

func (l sentLetter) key() string { return string(l.rec.Key) }

func newDLQEnv(t testing.TB, sourcePartitions, dlqPartitions int32) *dlqEnv {
	t.Helper()
	k := testenv.Kafka(t)
	return &dlqEnv{
		brokers: k.Brokers,
		source:  k.Topic(t, "orders", sourcePartitions),
		dlq:     k.Topic(t, "orders.dlq", dlqPartitions),
		parking: k.Topic(t, "orders.dlq.parked", 1),
		base:    time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
	}
}

// deadLetter publishes recs (records read back from a topic) as dead
// letters with the ingestor's own producer, so that they carry exactly the
// ingestor's format: reasonOf says why each failed.
func (e *dlqEnv) deadLetter(t testing.TB, recs []*kgo.Record, reasonOf func(*kgo.Record) (reason, text string)) {
	t.Helper()
	p, err := ingestkafka.NewDeadLetterProducer(slog.New(slog.DiscardHandler), e.brokers, e.dlq, "order-ingestor", 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(10 * time.Second)
	var batch []ingest.DeadLetter
	for _, r := range recs {
		reason, text := reasonOf(r)
		at := e.base.Add(time.Duration(len(e.letters)) * time.Minute)
		msg := &ingest.Message{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value, Timestamp: r.Timestamp}
		for _, h := range r.Headers {
			msg.Headers = append(msg.Headers, ingest.Header{Key: h.Key, Value: h.Value})
		}
		batch = append(batch, ingest.DeadLetter{Msg: msg, Reason: ingest.Reason(reason), Error: text, Time: at})
		e.letters = append(e.letters, sentLetter{rec: r, reason: reason, text: text, at: at})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < len(batch); i += 500 {
		part := batch[i:min(i+500, len(batch))]
		delivered, err := p.Send(ctx, part)
		if err != nil {
			t.Fatalf("dead-letter: %v", err)
		}
		for j, ok := range delivered {
			if !ok {
				t.Fatalf("dead letter %d not delivered", i+j)
			}
		}
	}
}

// badStream sends `--bad n` to the source topic with the producer and
// dead-letters every bad message as the ingestor would: the reason is the
// ingestor's classification (checked against the expected-reason header),
// the error the decoder's or validator's. The unmarked original of the
// conflicts is a valid order and is not dead-lettered.
func (e *dlqEnv) badStream(t *testing.T, n int) {
	t.Helper()
	mustRun(t, "--brokers", e.brokers, "--topic", e.source, "--bad", strconv.Itoa(n), "--seed", "3", "--progress", "off")
	stored := map[string][]byte{} // a uid is always on one partition, read in order
	why := map[*kgo.Record][2]string{}
	var bad []*kgo.Record
	for _, r := range consumeAll(t, e.brokers, e.source) {
		reason, err := reasonFor(r.Value, stored)
		if header(r, source.HeaderBadClass) == "" {
			continue
		}
		if reason != header(r, source.HeaderExpectedReason) {
			t.Fatalf("bad message %s classified %q, header says %s", r.Key, reason, header(r, source.HeaderExpectedReason))
		}
		text := "order " + string(r.Key) + " is already stored with different content"
		if err != nil {
			text = err.Error()
		}
		why[r] = [2]string{reason, text}
		bad = append(bad, r)
	}
	e.deadLetter(t, bad, func(r *kgo.Record) (string, string) { return why[r][0], why[r][1] })
}

// generated sends n generated orders to the source topic and dead-letters
// all of them with reason invalid (as a stricter ingestor would).
func (e *dlqEnv) generated(t testing.TB, n int) {
	t.Helper()
	mustRun(t, "--brokers", e.brokers, "--topic", e.source, "--generate", strconv.Itoa(n), "--seed", "8", "--progress", "off")
	e.deadLetter(t, consumeAll(t, e.brokers, e.source), func(*kgo.Record) (string, string) {
		return "invalid", "payment.amount: must equal goods_total + delivery_cost + custom_fee"
	})
}

// dlqArgs returns the flags that point a dlq command at the environment.
func (e *dlqEnv) dlqArgs(cmd string, extra ...string) []string {
	args := []string{"dlq", cmd, "--brokers", e.brokers, "--topic", e.dlq}
	if cmd == "redrive" {
		args = append(args, "--parking-topic", e.parking, "--progress", "off")
	}
	return append(args, extra...)
}

// redriven returns the records of topic that a redrive sent (those with a
// redrive-count header).
func redriven(t testing.TB, brokers, topic string) []*kgo.Record {
	t.Helper()
	var out []*kgo.Record
	for _, r := range consumeAll(t, brokers, topic) {
		if header(r, "redrive-count") != "" {
			out = append(out, r)
		}
	}
	return out
}

// lsJSON runs `dlq ls --json` with args and decodes its lines.
func lsJSON(t *testing.T, e *dlqEnv, args ...string) []letterJSON {
	t.Helper()
	r := mustRun(t, e.dlqArgs("ls", append([]string{"--json"}, args...)...)...)
	var out []letterJSON
	sc := bufio.NewScanner(strings.NewReader(r.stdout))
	sc.Buffer(nil, 8<<20)
	for sc.Scan() {
		var l letterJSON
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("ls --json line %q: %v", sc.Text(), err)
		}
		out = append(out, l)
	}
	return out
}

// committed returns the group's committed offsets on topic (partition →
// offset), empty when the group has none.
func committed(t testing.TB, brokers, group, topic string) map[int32]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := adminClient(t, brokers).FetchOffsets(ctx, group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return map[int32]int64{}
	}
	if err != nil {
		t.Fatalf("fetch offsets of %s: %v", group, err)
	}
	out := map[int32]int64{}
	resp.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil && o.At >= 0 {
			out[o.Partition] = o.At
		}
	})
	return out
}
