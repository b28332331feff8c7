package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderservice/orders/shared/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// result is what one run of the CLI gave.
type result struct {
	stdout, stderr string
	err            error
}

// runCLI runs the command with args and no environment.
func runCLI(ctx context.Context, t testing.TB, stdin io.Reader, args ...string) result {
	t.Helper()
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	var stdout, stderr testenv.Buffer
	err := run(ctx, args, func(string) string { return "" }, stdin, &stdout, &stderr)
	return result{stdout: stdout.String(), stderr: stderr.String(), err: err}
}

// mustRun runs the command and fails the test if it does not succeed.
func mustRun(t testing.TB, args ...string) result {
	t.Helper()
	r := runCLI(context.Background(), t, nil, args...)
	if r.err != nil {
		t.Fatalf("producer %s: %v\nstderr:\n%s", strings.Join(args, " "), r.err, r.stderr)
	}
	return r
}

// kafkaTopic gives a test a broker and a topic of its own.
func kafkaTopic(t testing.TB, partitions int32) (brokers, topic string) {
	t.Helper()
	k := testenv.Kafka(t)
	return k.Brokers, k.Topic(t, "producer", partitions)
}

func adminClient(t testing.TB, brokers string) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...))
	if err != nil {
		t.Fatalf("kgo client: %v", err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// countRecords returns how many records the topic holds (the sum of its
// partitions' end offsets: the producer is not transactional, so every
// offset is one record).
func countRecords(t testing.TB, brokers, topic string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := adminClient(t, brokers).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("list end offsets of %s: %v", topic, err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			t.Fatalf("end offset of %s/%d: %v", topic, o.Partition, o.Err)
		}
		n += o.Offset
	})
	return n
}

// consumeAll reads back every record of the topic, partition by partition
// in offset order.
func consumeAll(t testing.TB, brokers, topic string) []*kgo.Record {
	t.Helper()
	want := countRecords(t, brokers, topic)
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(strings.Split(brokers, ",")...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxBytes(16<<20),
		kgo.FetchMaxPartitionBytes(8<<20),
	)
	if err != nil {
		t.Fatalf("kgo consumer: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for int64(len(recs)) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records of %s before the deadline", len(recs), want, topic)
		}
		for _, e := range fs.Errors() {
			if !errors.Is(e.Err, context.DeadlineExceeded) {
				t.Fatalf("consume %s: %v", topic, e.Err)
			}
		}
		recs = append(recs, fs.Records()...)
	}
	return recs
}

// header returns the value of a record header, or "".
func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// jsonIndent pretty-prints one JSON value.
func jsonIndent(w *bytes.Buffer, b []byte) error { return json.Indent(w, b, "", "  ") }
