package kafka

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/orderservice/orders/ingestor/ingest"
)

// The dead-letter record keeps the original key, value and headers and
// adds ours and Kafka Connect's. (The round trip through a broker is
// covered by the ingestor's integration tests.)
func TestDeadLetterRecord(t *testing.T) {
	t.Parallel()
	d := &DeadLetterProducer{topic: "orders.dlq", connector: "order-ingestor"}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	msg := &ingest.Message{Topic: "orders", Partition: 4, Offset: 77, Key: []byte("k"), Value: []byte("{bad"),
		Headers: []ingest.Header{{Key: "trace", Value: []byte("t1")}}, Timestamp: at.Add(-time.Second)}
	l := ingest.DeadLetter{Msg: msg, Reason: ingest.ReasonMalformed, Error: "malformed order: truncated JSON", Time: at}

	for _, drop := range []bool{false, true} {
		r := d.record(&l, drop)
		got := map[string]string{}
		for _, h := range r.Headers {
			got[h.Key] = string(h.Value)
		}
		want := map[string]string{
			"trace": "t1", "reason": "malformed", "error": "malformed order: truncated JSON",
			"source_topic": "orders", "source_partition": "4", "source_offset": "77",
			"source_timestamp": "2026-01-02T03:04:04Z", "failed_at": "2026-01-02T03:04:05Z",
			"__connect.errors.topic": "orders", "__connect.errors.partition": "4", "__connect.errors.offset": "77",
			"__connect.errors.connector.name": "order-ingestor", "__connect.errors.stage": "VALUE_CONVERTER",
			"__connect.errors.exception.message": "malformed order: truncated JSON",
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("drop=%v: header %s = %q, want %q", drop, k, got[k], v)
			}
		}
		if *r.TopicPartition.Topic != "orders.dlq" || string(r.Key) != "k" {
			t.Errorf("drop=%v: topic %s key %s", drop, *r.TopicPartition.Topic, r.Key)
		}
		switch {
		case !drop && string(r.Value) != "{bad":
			t.Errorf("value %q, want the original bytes", r.Value)
		case drop && (r.Value != nil || !strings.Contains(got["value_dropped"], "4 bytes")):
			t.Errorf("dropped record: value %q, value_dropped %q", r.Value, got["value_dropped"])
		}
	}
}

// The error headers are capped at maxErrorHeader bytes, cut at a rune
// boundary, with the number of bytes left out; short texts are unchanged.
func TestDeadLetterErrorHeaderCapped(t *testing.T) {
	t.Parallel()
	d := &DeadLetterProducer{topic: "orders.dlq", connector: "order-ingestor"}
	long := strings.Repeat("items[1].name: cannot be blank; ", 20_000) // ~640 KB, ASCII
	multi := strings.Repeat("é", maxErrorHeader)                       // 2-byte runes: a cut may fall inside one
	for _, tc := range []struct {
		name, text string
		capped     bool
	}{
		{"short", "malformed order: truncated JSON", false},
		{"exactly the limit", strings.Repeat("x", maxErrorHeader), false},
		{"one byte over", strings.Repeat("x", maxErrorHeader+1), true},
		{"long validation text", long, true},
		{"multi-byte runes", multi, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := ingest.DeadLetter{Msg: &ingest.Message{Topic: "orders", Value: []byte("{}")},
				Reason: ingest.ReasonInvalid, Error: tc.text, Time: time.Now()}
			got := map[string]string{}
			for _, h := range d.record(&l, false).Headers {
				got[h.Key] = string(h.Value)
			}
			for _, k := range []string{"error", "__connect.errors.exception.message"} {
				v := got[k]
				if !tc.capped {
					if v != tc.text {
						t.Errorf("%s: changed a text within the limit (%d bytes)", k, len(v))
					}
					continue
				}
				if len(v) > maxErrorHeader || !utf8.ValidString(v) {
					t.Fatalf("%s: %d bytes (limit %d), valid UTF-8 %v", k, len(v), maxErrorHeader, utf8.ValidString(v))
				}
				kept, _, ok := strings.Cut(v, "… (")
				if !ok || !strings.HasPrefix(tc.text, kept) || len(kept) < maxErrorHeader-64 {
					t.Fatalf("%s: want a long prefix of the text then the suffix, got %d bytes ending %q", k, len(v), v[max(len(v)-60, 0):])
				}
				if want := fmt.Sprintf("… (%d more bytes)", len(tc.text)-len(kept)); !strings.HasSuffix(v, want) {
					t.Errorf("%s: ends %q, want %q", k, v[max(len(v)-60, 0):], want)
				}
			}
		})
	}
}
