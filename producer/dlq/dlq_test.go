package dlq

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

// ingestorHeaders are the headers ingestor/kafka appends to a dead letter,
// in its order (the integration tests in package main use its producer).
func ingestorHeaders(reason, errText, topic string, partition int32, offset int64, at time.Time) []Header {
	p, o := fmt.Sprint(partition), fmt.Sprint(offset)
	h := func(k, v string) Header { return Header{Key: k, Value: []byte(v)} }
	return []Header{
		h("reason", reason), h("error", errText), h("source_topic", topic), h("source_partition", p),
		h("source_offset", o), h("source_timestamp", at.Add(-time.Second).Format(time.RFC3339Nano)),
		h("failed_at", at.Format(time.RFC3339Nano)),
		h("__connect.errors.topic", topic), h("__connect.errors.partition", p), h("__connect.errors.offset", o),
		h("__connect.errors.connector.name", "order-ingestor"), h("__connect.errors.task.id", "0"),
		h("__connect.errors.stage", "TRANSFORMATION"), h("__connect.errors.class.name", "orderservice.ingestor."+reason),
		h("__connect.errors.exception.class.name", "orderservice.ingestor."+reason),
		h("__connect.errors.exception.message", errText),
	}
}

func TestParseSplitsOriginalFromDiagnosticHeaders(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name         string
		original     []Header
		wantOriginal []string // keys, in order
		wantCount    int
	}{
		{"no headers", nil, nil, 0},
		{"plain", []Header{{"trace", []byte("t1")}, {"bad-class", []byte("malformed")}}, []string{"trace", "bad-class"}, 0},
		// An upstream header that shares a name with the ingestor's stays
		// the original's.
		{"upstream reason and error", []Header{{"reason", []byte("upstream")}, {"error", []byte("x")}}, []string{"reason", "error"}, 0},
		{"redriven before", []Header{{"trace", []byte("t")}, {"redrive-count", []byte("2")}}, []string{"trace"}, 2},
		{"bad redrive-count", []Header{{"redrive-count", []byte("many")}}, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hs := append(slices.Clone(tt.original), ingestorHeaders("invalid", "payment.amount: bad", "orders", 4, 77, at)...)
			l := Parse(1, 9, []byte("k"), []byte("{}"), hs, at.Add(time.Hour))
			var keys []string
			for _, h := range l.Original {
				keys = append(keys, h.Key)
			}
			if !slices.Equal(keys, tt.wantOriginal) {
				t.Errorf("original headers %v, want %v", keys, tt.wantOriginal)
			}
			if l.RedriveCount != tt.wantCount {
				t.Errorf("redrive count %d, want %d", l.RedriveCount, tt.wantCount)
			}
			if l.Reason != "invalid" || l.Error != "payment.amount: bad" || !l.Time.Equal(at) {
				t.Errorf("reason %q error %q time %s", l.Reason, l.Error, l.Time)
			}
			if l.SourceTopic != "orders" || l.SourcePartition != 4 || l.SourceOffset != 77 || l.Source() != "orders/4@77" {
				t.Errorf("source %s", l.Source())
			}
			if len(l.Headers) != len(hs) || l.Partition != 1 || l.Offset != 9 {
				t.Errorf("letter keeps %d of %d headers, at %d/%d", len(l.Headers), len(hs), l.Partition, l.Offset)
			}
		})
	}
}

func TestParseWithoutIngestorHeaders(t *testing.T) {
	t.Parallel()
	ts := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	// A value the ingestor dropped, and no failed_at: the record time.
	hs := []Header{{"trace", []byte("t")}, {"reason", []byte("too_large")}, {"value_dropped", []byte("5000000 bytes exceed…")}}
	l := Parse(0, 1, []byte("k"), []byte("ignored"), hs, ts)
	if l.Value != nil || l.ValueDropped == "" || !l.Time.Equal(ts) || l.Source() != "?/?@?" {
		t.Errorf("letter %+v", l)
	}
	if len(l.Original) != 1 || l.Original[0].Key != "trace" {
		t.Errorf("original %v", l.Original)
	}
}

func TestFilter(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 2, 12, 0, 0, 0, time.UTC)
	l := Letter{Key: []byte("b563feb7b2b84b6test"), Reason: "invalid", Time: at, SourceTopic: "orders", SourcePartition: 3, SourceOffset: 100}
	unknown := Letter{Key: []byte("x"), Reason: "invalid", Time: at, SourcePartition: -1, SourceOffset: -1}
	tests := []struct {
		name      string
		f         Filter
		want      bool
		onUnknown bool // for a letter whose source is unknown
	}{
		{"zero", Filter{}, true, true},
		{"reason", Filter{Reasons: []string{"malformed", "invalid"}}, true, true},
		{"other reason", Filter{Reasons: []string{"malformed"}}, false, false},
		{"key", Filter{Keys: []string{"b563feb7b2b84b6test"}}, true, false},
		{"key prefix is not the key", Filter{Keys: []string{"b563"}}, false, false},
		{"pattern", Filter{KeyPattern: "b563*test"}, true, false},
		{"pattern must match it all", Filter{KeyPattern: "b563"}, false, false},
		{"since, inclusive", Filter{Since: at}, true, true},
		{"since, later", Filter{Since: at.Add(time.Nanosecond)}, false, false},
		{"until, exclusive", Filter{Until: at}, false, false},
		{"until, later", Filter{Until: at.Add(time.Nanosecond)}, true, true},
		{"partition", Filter{Partitions: []int32{0, 3}}, true, false},
		{"other partition", Filter{Partitions: []int32{0}}, false, false},
		{"offset from, inclusive", Filter{OffsetFrom: 100}, true, false},
		{"offset from, later", Filter{OffsetFrom: 101}, false, false},
		{"offset to, inclusive", Filter{OffsetEnd: 101}, true, false},
		{"offset to, earlier", Filter{OffsetEnd: 100}, false, false},
		{"all together", Filter{Reasons: []string{"invalid"}, KeyPattern: "b*", Since: at.Add(-time.Hour), Until: at.Add(time.Hour),
			Partitions: []int32{3}, OffsetFrom: 50, OffsetEnd: 150}, true, false},
	}
	for _, tt := range tests {
		if err := tt.f.Validate(); err != nil {
			t.Errorf("%s: Validate: %v", tt.name, err)
		}
		if got := tt.f.Match(&l); got != tt.want {
			t.Errorf("%s: Match = %v, want %v", tt.name, got, tt.want)
		}
		if got := tt.f.Match(&unknown); got != tt.onUnknown {
			t.Errorf("%s: Match(letter of unknown source) = %v, want %v", tt.name, got, tt.onUnknown)
		}
	}
}

func TestFilterValidate(t *testing.T) {
	t.Parallel()
	at := time.Now()
	for _, f := range []Filter{
		{KeyPattern: "[a"},
		{Since: at, Until: at},
		{OffsetFrom: -1},
		{OffsetFrom: 10, OffsetEnd: 10},
		{Partitions: []int32{-1}},
	} {
		if err := f.Validate(); err == nil {
			t.Errorf("%+v: Validate accepted it", f)
		}
	}
}

// Equal selections give the same progress group, whatever the order of
// the flags; different ones, different groups; no filter, the base name.
func TestDefaultGroup(t *testing.T) {
	t.Parallel()
	a := Filter{Reasons: []string{"invalid", "malformed"}, Partitions: []int32{3, 0}}
	b := Filter{Reasons: []string{"malformed", "invalid", "invalid"}, Partitions: []int32{0, 3}}
	c := Filter{Reasons: []string{"invalid"}}
	if DefaultGroup("g", &Filter{}) != "g" {
		t.Errorf("zero filter: %s", DefaultGroup("g", &Filter{}))
	}
	if DefaultGroup("g", &a) != DefaultGroup("g", &b) {
		t.Errorf("equal filters %s and %s give different groups", a.String(), b.String())
	}
	if DefaultGroup("g", &a) == DefaultGroup("g", &c) || DefaultGroup("g", &c) == "g" {
		t.Errorf("different filters share a group: %s", DefaultGroup("g", &c))
	}
}

// Only the offset before the first unacknowledged letter is committable,
// whatever order the acknowledgements come in; a letter that never is
// (its delivery failed) holds its partition there.
func TestTracker(t *testing.T) {
	t.Parallel()
	tr := newTracker([]Range{{Partition: 0, From: 10, End: 20, Committed: 10}, {Partition: 1, From: 0, End: 5, Committed: -1}})
	if got := tr.uncommitted(); len(got) != 1 || got[1] != 0 {
		t.Fatalf("before anything: %v, want only partition 1 (no commit yet) at 0", got)
	}
	tr.committed(map[int32]int64{1: 0})
	tr.add(0, 10)
	tr.skip(0, 11)
	tr.add(0, 12)
	tr.add(0, 13)
	tr.skip(1, 0)
	want := func(w map[int32]int64) {
		t.Helper()
		if got := tr.uncommitted(); !maps.Equal(got, w) {
			t.Errorf("uncommitted %v, want %v", got, w)
		}
	}
	want(map[int32]int64{1: 1})
	tr.ack(0, 12) // out of order: 10 still pending
	want(map[int32]int64{1: 1})
	tr.ack(0, 10)
	want(map[int32]int64{0: 13, 1: 1})
	tr.committed(map[int32]int64{0: 13, 1: 1})
	want(map[int32]int64{})
	// 13 fails (never acked): later letters do not move the partition.
	tr.skip(0, 14)
	tr.add(0, 15)
	tr.ack(0, 15)
	want(map[int32]int64{})
	// A letter taken back before it was handed over holds it too.
	tr.add(1, 1)
	tr.unadd(1, 1)
	want(map[int32]int64{})
	tr.skip(1, 1)
	want(map[int32]int64{1: 2})
}

// Letters that cannot be sent again are parked, each with its reason;
// the others go back to their source partition, or to --to.
func TestDecide(t *testing.T) {
	t.Parallel()
	d := &Redrive{opts: RedriveOptions{MaxRedrives: 3, ParkingTopic: "parked"},
		topics: map[string]topicInfo{"orders": {partitions: 6}, "other": {partitions: 2}}}
	base := Letter{Key: []byte("k"), Value: []byte("{}"), SourceTopic: "orders", SourcePartition: 4, SourceOffset: 1}
	with := func(f func(*Letter)) *Letter {
		l := base
		f(&l)
		return &l
	}
	tests := []struct {
		name      string
		l         *Letter
		to        string
		action    Action
		topic     string
		partition int32
		why       string
	}{
		{"back to its partition", &base, "", Send, "orders", 4, ""},
		{"below the limit", with(func(l *Letter) { l.RedriveCount = 2 }), "", Send, "orders", 4, ""},
		{"at the limit", with(func(l *Letter) { l.RedriveCount = 3 }), "", Park, "parked", -1, "redriven 3 times"},
		{"value dropped", with(func(l *Letter) { l.ValueDropped = "2000000 bytes" }), "", Park, "parked", -1, "dropped the value"},
		{"no source topic", with(func(l *Letter) { l.SourceTopic = "" }), "", Park, "parked", -1, "no __connect.errors.topic"},
		{"no source topic, --to", with(func(l *Letter) { l.SourceTopic = "" }), "other", Send, "other", -1, ""},
		{"--to: the partitioner's", &base, "other", Send, "other", -1, ""},
		{"partition gone", with(func(l *Letter) { l.SourcePartition = 9 }), "", Send, "orders", -1, ""},
	}
	for _, tt := range tests {
		d.opts.To = tt.to
		dec, err := d.decide(context.Background(), tt.l)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if dec.Action != tt.action || dec.Topic != tt.topic || dec.Partition != tt.partition || !whyMatches(dec.Why, tt.why) {
			t.Errorf("%s: %s to %s/%d (%q), want %s to %s/%d (%q)", tt.name, dec.Action, dec.Topic, dec.Partition, dec.Why,
				tt.action, tt.topic, tt.partition, tt.why)
		}
	}
}

// whyMatches: no reason when none is wanted, else one that says it.
func whyMatches(why, want string) bool {
	if want == "" {
		return why == ""
	}
	return strings.Contains(why, want)
}
