package kafka

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/orderservice/orders/ingestor/ingest"
	"github.com/orderservice/orders/shared/model"
)

// diagnosticKeys are the headers record appends after the original ones,
// in order (value_dropped follows when the value is left out). The
// dead-letter tools find the block by its first key, reason.
var diagnosticKeys = []string{
	"reason", "error", "source_topic", "source_partition", "source_offset", "source_timestamp", "failed_at",
	"__connect.errors.topic", "__connect.errors.partition", "__connect.errors.offset",
	"__connect.errors.connector.name", "__connect.errors.task.id", "__connect.errors.stage",
	"__connect.errors.class.name", "__connect.errors.exception.class.name", "__connect.errors.exception.message",
}

// FuzzDeadLetterRecord builds dead-letter records from arbitrary message
// bytes (key, value, one original header, partition, offset, timestamp):
// once with the error the pipeline gives that value (decoding and
// validation, as ingest does), once with an arbitrary error text and
// reason. The record never panics, keeps the original key, value and
// headers byte for byte, and appends the diagnostic block whole, in order,
// with values the dead-letter tools can read back.
func FuzzDeadLetterRecord(f *testing.F) {
	f.Add([]byte("k"), []byte(`{"order_uid":"x"}`), "trace", []byte("t1"), "db refused", int32(3), int64(77), int64(1767225600000), uint8(3), false)
	f.Fuzz(func(t *testing.T, key, value []byte, hkey string, hvalue []byte, errText string,
		partition int32, offset, timestampMs int64, reason uint8, drop bool) {
		d := &DeadLetterProducer{topic: "orders.dlq", connector: "order-ingestor"}
		msg := &ingest.Message{Topic: "orders", Partition: partition, Offset: offset, Key: key, Value: value,
			Headers: []ingest.Header{{Key: hkey, Value: hvalue}}, Timestamp: time.UnixMilli(timestampMs)}
		at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)

		if r, text, ok := pipelineError(value); ok {
			requireRecord(t, d, &ingest.DeadLetter{Msg: msg, Reason: r, Error: text, Time: at}, drop, true)
		}
		reasons := []ingest.Reason{ingest.ReasonMalformed, ingest.ReasonInvalid, ingest.ReasonTooLarge,
			ingest.ReasonConflict, ingest.ReasonDBPermanent}
		l := &ingest.DeadLetter{Msg: msg, Reason: reasons[int(reason)%len(reasons)], Error: errText, Time: at}
		requireRecord(t, d, l, drop, false)
	})
}

// pipelineError returns the reason and error text ingest gives value, and
// false for a valid order.
func pipelineError(value []byte) (ingest.Reason, string, bool) {
	o, err := model.Decoder{MaxSize: 1 << 20}.Decode(value)
	switch {
	case errors.Is(err, model.ErrTooLarge):
		return ingest.ReasonTooLarge, err.Error(), true
	case err != nil:
		return ingest.ReasonMalformed, err.Error(), true
	}
	if err := o.Validate(); err != nil {
		return ingest.ReasonInvalid, err.Error(), true
	}
	return "", "", false
}

func requireRecord(t *testing.T, d *DeadLetterProducer, l *ingest.DeadLetter, drop, fromModel bool) {
	t.Helper()
	r := d.record(l, drop)
	m := l.Msg
	if *r.TopicPartition.Topic != "orders.dlq" || !bytes.Equal(r.Key, m.Key) || !r.Timestamp.Equal(l.Time) {
		t.Fatalf("topic %s, key %q, timestamp %v", *r.TopicPartition.Topic, r.Key, r.Timestamp)
	}
	switch {
	case drop && r.Value != nil:
		t.Fatalf("value kept (%d bytes) in a record meant to drop it", len(r.Value))
	case !drop && !bytes.Equal(r.Value, m.Value):
		t.Fatalf("value %q, want the original %q", r.Value, m.Value)
	}

	want := len(m.Headers) + len(diagnosticKeys)
	if drop {
		want++
	}
	if len(r.Headers) != want {
		t.Fatalf("%d headers, want %d", len(r.Headers), want)
	}
	for i, h := range m.Headers {
		if r.Headers[i].Key != h.Key || !bytes.Equal(r.Headers[i].Value, h.Value) {
			t.Fatalf("original header %d is %q=%q, want %q=%q", i, r.Headers[i].Key, r.Headers[i].Value, h.Key, h.Value)
		}
	}
	got := map[string]string{}
	for i, h := range r.Headers[len(m.Headers):] {
		wantKey := "value_dropped"
		if i < len(diagnosticKeys) {
			wantKey = diagnosticKeys[i]
		}
		if h.Key != wantKey {
			t.Fatalf("diagnostic header %d is %q, want %q", i, h.Key, wantKey)
		}
		got[h.Key] = string(h.Value)
	}

	if got["reason"] != string(l.Reason) || !strings.HasSuffix(got["__connect.errors.class.name"], "."+string(l.Reason)) {
		t.Fatalf("reason %q, class %q, want %q", got["reason"], got["__connect.errors.class.name"], l.Reason)
	}
	text := got["error"]
	if got["__connect.errors.exception.message"] != text {
		t.Fatalf("exception message %q differs from error %q", got["__connect.errors.exception.message"], text)
	}
	requireCapped(t, l.Error, text)
	if fromModel && !utf8.ValidString(text) {
		t.Fatalf("the model's error is not UTF-8: %q", text)
	}
	for _, k := range []string{"source_partition", "__connect.errors.partition"} {
		if n, err := strconv.ParseInt(got[k], 10, 32); err != nil || int32(n) != m.Partition {
			t.Fatalf("%s %q, want %d", k, got[k], m.Partition)
		}
	}
	for _, k := range []string{"source_offset", "__connect.errors.offset"} {
		if n, err := strconv.ParseInt(got[k], 10, 64); err != nil || n != m.Offset {
			t.Fatalf("%s %q, want %d", k, got[k], m.Offset)
		}
	}
	if at, err := time.Parse(time.RFC3339Nano, got["failed_at"]); err != nil || !at.Equal(l.Time) {
		t.Fatalf("failed_at %q, want %v", got["failed_at"], l.Time)
	}
	// RFC 3339 has four-digit years; a producer may set any timestamp.
	if y := m.Timestamp.UTC().Year(); y >= 0 && y <= 9999 {
		if ts, err := time.Parse(time.RFC3339Nano, got["source_timestamp"]); err != nil || !ts.Equal(m.Timestamp) {
			t.Fatalf("source_timestamp %q, want %v", got["source_timestamp"], m.Timestamp)
		}
	}
	if drop && !strings.HasPrefix(got["value_dropped"], strconv.Itoa(len(m.Value))+" bytes") {
		t.Fatalf("value_dropped %q for %d bytes", got["value_dropped"], len(m.Value))
	}
}

// requireCapped checks that header is text, or its beginning and the
// count of bytes left out, within maxErrorHeader.
func requireCapped(t *testing.T, text, header string) {
	t.Helper()
	if len(text) <= maxErrorHeader {
		if header != text {
			t.Fatalf("error header %q, want %q", header, text)
		}
		return
	}
	if len(header) > maxErrorHeader {
		t.Fatalf("error header of %d bytes, over %d", len(header), maxErrorHeader)
	}
	i := strings.LastIndex(header, "… (")
	if i < 0 || !strings.HasPrefix(text, header[:i]) || header[i+len("… ("):] != strconv.Itoa(len(text)-i)+" more bytes)" {
		t.Fatalf("capped error header %q does not say what was cut from %d bytes", header[max(0, len(header)-60):], len(text))
	}
}
