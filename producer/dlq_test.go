package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderservice/orders/producer/dlq"
	"github.com/orderservice/orders/shared/testenv"
)

// keysOf returns the keys of the sent letters that pick selects, sorted.
func keysOf(ls []sentLetter, pick func(sentLetter) bool) []string {
	var out []string
	for _, l := range ls {
		if pick(l) {
			out = append(out, l.key())
		}
	}
	slices.Sort(out)
	return out
}

func TestDLQLsAndStatsFilters(t *testing.T) {
	t.Parallel()
	e := newDLQEnv(t, 3, 2)
	e.badStream(t, 18)
	if len(e.letters) != 18 {
		t.Fatalf("%d letters, want 18", len(e.letters))
	}
	some := e.letters[4]
	at := func(i int) string { return e.base.Add(time.Duration(i) * time.Minute).Format(time.RFC3339) }
	// The source offsets of partition 1, to cut a range in its middle.
	var p1 []int64
	for _, l := range e.letters {
		if l.rec.Partition == 1 {
			p1 = append(p1, l.rec.Offset)
		}
	}
	slices.Sort(p1)
	if len(p1) < 3 {
		t.Fatalf("source partition 1 has %d letters; the seed should spread them", len(p1))
	}
	lo, hi := p1[1], p1[len(p1)-2]

	tests := []struct {
		name string
		args []string
		pick func(sentLetter) bool
	}{
		{"everything", nil, func(sentLetter) bool { return true }},
		{"one reason", []string{"--reason", "invalid"}, func(l sentLetter) bool { return l.reason == "invalid" }},
		{"two reasons", []string{"--reason", "malformed,too_large"}, func(l sentLetter) bool {
			return l.reason == "malformed" || l.reason == "too_large"
		}},
		{"reason repeated", []string{"--reason", "conflict", "--reason", "too_large"}, func(l sentLetter) bool {
			return l.reason == "conflict" || l.reason == "too_large"
		}},
		{"exact key", []string{"--key", some.key()}, func(l sentLetter) bool { return l.key() == some.key() }},
		{"key pattern", []string{"--key-pattern", some.key()[:3] + "*"}, func(l sentLetter) bool {
			return strings.HasPrefix(l.key(), some.key()[:3])
		}},
		{"since", []string{"--since", at(10)}, func(l sentLetter) bool { return !l.at.Before(e.base.Add(10 * time.Minute)) }},
		{"since and until", []string{"--since", at(3), "--until", at(7)}, func(l sentLetter) bool {
			return !l.at.Before(e.base.Add(3*time.Minute)) && l.at.Before(e.base.Add(7*time.Minute))
		}},
		{"source partitions", []string{"--partition", "0,2"}, func(l sentLetter) bool { return l.rec.Partition != 1 }},
		{"source offset range", []string{"--partition", "1", "--offset-from", fmt.Sprint(lo), "--offset-to", fmt.Sprint(hi)},
			func(l sentLetter) bool { return l.rec.Partition == 1 && l.rec.Offset >= lo && l.rec.Offset <= hi }},
		{"filters combine", []string{"--reason", "malformed", "--partition", "0"}, func(l sentLetter) bool {
			return l.reason == "malformed" && l.rec.Partition == 0
		}},
		{"nothing matches", []string{"--reason", "no_such_reason"}, func(sentLetter) bool { return false }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			want := keysOf(e.letters, tt.pick)
			if tt.name != "nothing matches" && len(want) == 0 {
				t.Fatalf("the case selects no letter of the fixture: it tests nothing")
			}
			if tt.name != "everything" && len(want) == len(e.letters) {
				t.Fatalf("the case selects every letter: it tests nothing")
			}

			ls := lsJSON(t, e, tt.args...)
			got := make([]string, len(ls))
			for i, l := range ls {
				got[i] = l.Key
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("ls %v: keys\n got %v\nwant %v", tt.args, got, want)
			}

			r := mustRun(t, e.dlqArgs("stats", append([]string{"--json"}, tt.args...)...)...)
			var st dlq.Stats
			if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
				t.Fatalf("stats --json: %v\n%s", err, r.stdout)
			}
			wantReasons := map[string]int64{}
			var oldest, newest *sentLetter
			for _, l := range e.letters {
				if tt.pick(l) {
					wantReasons[l.reason]++
					if oldest == nil || l.at.Before(oldest.at) {
						oldest = &l
					}
					if newest == nil || l.at.After(newest.at) {
						newest = &l
					}
				}
			}
			if st.Scanned != int64(len(e.letters)) || st.Letters != int64(len(want)) || !maps.Equal(st.ByReason, wantReasons) {
				t.Errorf("stats: scanned %d letters %d by reason %v, want %d, %d, %v",
					st.Scanned, st.Letters, st.ByReason, len(e.letters), len(want), wantReasons)
			}
			if oldest != nil && (st.Oldest == nil || st.Oldest.Key != oldest.key() || st.Newest == nil || st.Newest.Key != newest.key()) {
				t.Errorf("stats: oldest %+v newest %+v, want keys %s and %s", st.Oldest, st.Newest, oldest.key(), newest.key())
			}
			var bySource int64
			for _, s := range st.BySource {
				bySource += s.Letters
				if s.Topic != e.source {
					t.Errorf("stats: source topic %q, want %s", s.Topic, e.source)
				}
			}
			if bySource != st.Letters {
				t.Errorf("stats: by source partition sums to %d, want %d", bySource, st.Letters)
			}
		})
	}
}

// Every field of ls --json is the letter's: what the ingestor said, where
// the original was, and the original headers only.
func TestDLQLsShowsEachLetter(t *testing.T) {
	t.Parallel()
	e := newDLQEnv(t, 3, 2)
	e.badStream(t, 9)
	sent := map[string]sentLetter{}
	for _, l := range e.letters {
		sent[l.key()] = l
	}
	ls := lsJSON(t, e, "--payload")
	if len(ls) != len(e.letters) {
		t.Fatalf("ls listed %d letters, want %d", len(ls), len(e.letters))
	}
	for _, l := range ls {
		s, ok := sent[l.Key]
		if !ok {
			t.Fatalf("ls lists key %s, which was not dead-lettered", l.Key)
		}
		if l.Reason != s.reason || l.Error != s.text || !l.Time.Equal(s.at) {
			t.Errorf("%s: reason %q error %q time %s, want %q %q %s", l.Key, l.Reason, l.Error, l.Time, s.reason, s.text, s.at)
		}
		if l.SourceTopic != e.source || l.SourcePartition != s.rec.Partition || l.SourceOffset != s.rec.Offset {
			t.Errorf("%s: source %s/%d@%d, want %s/%d@%d", l.Key, l.SourceTopic, l.SourcePartition, l.SourceOffset,
				e.source, s.rec.Partition, s.rec.Offset)
		}
		var wantHeaders []headerJSON
		for _, h := range s.rec.Headers {
			wantHeaders = append(wantHeaders, headerJSON{Key: h.Key, Value: string(h.Value)})
		}
		if !slices.Equal(l.Headers, wantHeaders) {
			t.Errorf("%s: headers %v, want the original ones %v", l.Key, l.Headers, wantHeaders)
		}
		value := l.PayloadBase64
		if l.Payload != nil {
			value = []byte(*l.Payload)
		}
		if !bytes.Equal(value, s.rec.Value) {
			t.Errorf("%s: payload of %d bytes differs from the original's %d", l.Key, len(value), len(s.rec.Value))
		}
	}

	// Without --json: a table, one row per letter, no payload; --limit.
	r := mustRun(t, e.dlqArgs("ls", "--limit", "2")...)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "DLQ") || !strings.Contains(lines[0], "ERROR") {
		t.Fatalf("ls --limit 2: want a header and 2 rows, got\n%s", r.stdout)
	}
	for _, row := range lines[1:] {
		key := strings.Fields(row)[4]
		s, ok := sent[key]
		if !ok || !strings.Contains(row, s.reason) || !strings.Contains(row, fmt.Sprintf("%s/%d@%d", e.source, s.rec.Partition, s.rec.Offset)) {
			t.Errorf("row %q does not show the letter of key %s", row, key)
		}
	}
	text := mustRun(t, e.dlqArgs("stats")...).stdout
	all := fmt.Sprintf("%d letters selected of %d", len(e.letters), len(e.letters))
	for _, want := range []string{all, "reason", "malformed", "oldest", "newest", "source partition", e.source + "/"} {
		if !strings.Contains(text, want) {
			t.Errorf("stats output lacks %q:\n%s", want, text)
		}
	}
}

// assertRedriven checks that recs are exactly the originals of want, each
// once: their key, value and headers with redrive-count n, on their
// original partition. (Two letters may share a key: a conflict and another
// conflict with the same original.)
func assertRedriven(t *testing.T, recs []*kgo.Record, want []sentLetter, n int) {
	t.Helper()
	describe := func(partition int32, key, value []byte, headers []kgo.RecordHeader) string {
		hs := make([]string, len(headers))
		for i, h := range headers {
			hs[i] = h.Key + "=" + shorten(string(h.Value), 20)
		}
		return fmt.Sprintf("partition %d key %s value sha256:%x headers %v", partition, key, sha256.Sum256(value), hs)
	}
	wanted := map[string]int{}
	for _, l := range want {
		hs := append(slices.Clone(l.rec.Headers), kgo.RecordHeader{Key: "redrive-count", Value: fmt.Appendf(nil, "%d", n)})
		wanted[describe(l.rec.Partition, l.rec.Key, l.rec.Value, hs)]++
	}
	got := map[string]int{}
	for _, r := range recs {
		got[describe(r.Partition, r.Key, r.Value, r.Headers)]++
	}
	if len(recs) != len(want) {
		t.Errorf("%d records redriven, want %d", len(recs), len(want))
	}
	for k, c := range wanted {
		if got[k] != c {
			t.Errorf("redriven %d times, want %d: %s", got[k], c, k)
		}
	}
	for k, c := range got {
		if wanted[k] == 0 {
			t.Errorf("redriven %d times, want never: %s", c, k)
		}
	}
}

func TestDLQRedriveByReason(t *testing.T) {
	t.Parallel()
	e := newDLQEnv(t, 3, 2)
	e.badStream(t, 18)
	pick := func(reason string) []sentLetter {
		var out []sentLetter
		for _, l := range e.letters {
			if l.reason == reason {
				out = append(out, l)
			}
		}
		return out
	}
	invalid := pick("invalid")
	r := mustRun(t, e.dlqArgs("redrive", "--reason", "invalid")...)
	assertRedriven(t, redriven(t, e.brokers, e.source), invalid, 1)
	if want := fmt.Sprintf("sent %d, parked 0, skipped %d, failed 0", len(invalid), len(e.letters)-len(invalid)); !strings.Contains(r.stderr, want) {
		t.Errorf("summary lacks %q:\n%s", want, r.stderr)
	}
	group := dlq.DefaultGroup(dlq.DefaultGroupBase, &dlq.Filter{Reasons: []string{"invalid"}})
	if !strings.Contains(r.stderr, "group "+group) {
		t.Errorf("summary does not name the group %s:\n%s", group, r.stderr)
	}
	if n := countRecords(t, e.brokers, e.parking); n != 0 {
		t.Errorf("%d letters parked, want none", n)
	}

	// The same redrive again resumes at the end: nothing is sent twice.
	again := mustRun(t, e.dlqArgs("redrive", "--reason", "invalid")...)
	if !strings.Contains(again.stderr, "examined 0 of 0 letters") {
		t.Errorf("second run examined letters again:\n%s", again.stderr)
	}
	assertRedriven(t, redriven(t, e.brokers, e.source), invalid, 1)

	// Another filter has progress of its own: the letters the first one
	// passed over are still there for it.
	mustRun(t, e.dlqArgs("redrive", "--reason", "conflict")...)
	assertRedriven(t, redriven(t, e.brokers, e.source), append(slices.Clone(invalid), pick("conflict")...), 1)
}

func TestDLQRedriveDryRunSendsNothing(t *testing.T) {
	t.Parallel()
	e := newDLQEnv(t, 3, 2)
	e.badStream(t, 9)
	before := countRecords(t, e.brokers, e.source)
	r := mustRun(t, e.dlqArgs("redrive", "--dry-run", "--reason", "malformed")...)
	if n := countRecords(t, e.brokers, e.source); n != before {
		t.Errorf("dry run sent %d records", n-before)
	}
	if n := countRecords(t, e.brokers, e.parking); n != 0 {
		t.Errorf("dry run parked %d records", n)
	}
	group := dlq.DefaultGroup(dlq.DefaultGroupBase, &dlq.Filter{Reasons: []string{"malformed"}})
	if c := committed(t, e.brokers, group, e.dlq); len(c) != 0 {
		t.Errorf("dry run committed %v", c)
	}
	want := keysOf(e.letters, func(l sentLetter) bool { return l.reason == "malformed" })
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[0] != "would" || f[1] != "send" || !strings.Contains(line, "to "+e.source+"/") {
			t.Fatalf("dry-run line %q", line)
		}
		got = append(got, f[5])
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("dry run would send %v, want %v", got, want)
	}
	if !strings.Contains(r.stderr, fmt.Sprintf("would send %d, park 0", len(want))) {
		t.Errorf("dry-run summary:\n%s", r.stderr)
	}
	// The real run after it still has every letter to do.
	mustRun(t, e.dlqArgs("redrive", "--reason", "malformed")...)
	if got := len(redriven(t, e.brokers, e.source)); got != len(want) {
		t.Errorf("the run after the dry run redrove %d letters, want %d", got, len(want))
	}
}

// --rate configures the pacer; the records it sends are spaced at least as
// the rate says (a lower bound only: a slow machine cannot fail it).
func TestDLQRedriveRate(t *testing.T) {
	t.Parallel()
	e := newDLQEnv(t, 1, 1)
	e.generated(t, 12)
	c, err := parseDLQFlags(e.dlqArgs("redrive", "--rate", "20")[1:], func(string) string { return "" }, new(bytes.Buffer))
	if err != nil {
		t.Fatal(err)
	}
	r, err := dlq.Open(t.Context(), dlq.Config{Brokers: e.brokers, Topic: e.dlq}, "rate-check")
	if err != nil {
		t.Fatal(err)
	}
	d, err := dlq.NewRedrive(t.Context(), r, redriveOptions(c))
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Interval(); got != 50*time.Millisecond {
		t.Errorf("--rate 20: pacer interval %v, want 50ms", got)
	}

	mustRun(t, e.dlqArgs("redrive", "--rate", "20")...)
	recs := redriven(t, e.brokers, e.source)
	if len(recs) != 12 {
		t.Fatalf("%d records redriven, want 12", len(recs))
	}
	first, last := recs[0].Timestamp, recs[0].Timestamp
	for _, r := range recs {
		if r.Timestamp.Before(first) {
			first = r.Timestamp
		}
		if r.Timestamp.After(last) {
			last = r.Timestamp
		}
	}
	if span, least := last.Sub(first), 11*50*time.Millisecond*9/10; span < least {
		t.Errorf("12 records at --rate 20 span %v, want at least %v", span, least)
	}
}

// A letter goes round: redriven, dead-lettered again by the ingestor (with
// the redrive-count it was sent with), redriven again, until it has been
// redriven --max-redrives times: then it is parked, not sent.
func TestDLQRedriveRoundsEndInParking(t *testing.T) {
	t.Parallel()
	e := newDLQEnv(t, 3, 1)
	e.generated(t, 5)
	first := slices.Clone(e.letters)
	args := e.dlqArgs("redrive", "--max-redrives", "2", "--reason", "invalid")
	ofRound := func(round int) []*kgo.Record {
		return slices.DeleteFunc(redriven(t, e.brokers, e.source), func(r *kgo.Record) bool {
			return header(r, "redrive-count") != strconv.Itoa(round)
		})
	}
	for round := 1; round <= 2; round++ {
		r := mustRun(t, args...)
		if !strings.Contains(r.stderr, "examined 5 of 5 letters: sent 5, parked 0") {
			t.Fatalf("round %d: %s", round, r.stderr)
		}
		// The originals again, now with redrive-count = round; a still
		// strict ingestor dead-letters them again.
		recs := ofRound(round)
		assertRedriven(t, recs, first, round)
		e.deadLetter(t, recs, func(*kgo.Record) (string, string) { return "invalid", "still invalid" })
	}
	before := len(redriven(t, e.brokers, e.source))
	r := mustRun(t, args...)
	if !strings.Contains(r.stderr, "examined 5 of 5 letters: sent 0, parked 5") {
		t.Fatalf("third round: %s", r.stderr)
	}
	if n := len(redriven(t, e.brokers, e.source)); n != before {
		t.Errorf("third round sent %d records, want none", n-before)
	}
	parked := consumeAll(t, e.brokers, e.parking)
	if len(parked) != 5 {
		t.Fatalf("%d parked records, want 5", len(parked))
	}
	for _, p := range parked {
		if header(p, "redrive-count") != "2" || header(p, "reason") != "invalid" || header(p, "__connect.errors.topic") != e.source ||
			!strings.Contains(header(p, dlq.HeaderParkedReason), "redriven 2 times") || header(p, dlq.HeaderDLQTopic) != e.dlq {
			t.Errorf("parked record %s: headers %v", p.Key, p.Headers)
		}
		if !strings.Contains(r.stderr, "key "+string(p.Key)) {
			t.Errorf("summary does not report parked key %s:\n%s", p.Key, r.stderr)
		}
	}
}

// A redrive interrupted after some letters were acknowledged commits them;
// the next run sends the rest, and no letter twice.
func TestDLQRedriveInterruptAndResume(t *testing.T) {
	t.Parallel()
	e := newDLQEnv(t, 3, 2)
	const n, interruptAfter = 60, 10
	e.generated(t, n)
	originals := countRecords(t, e.brokers, e.source)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan result, 1)
	// 20 letters/s: the run lasts 3s, long enough to be interrupted.
	go func() { done <- runCLI(ctx, t, nil, e.dlqArgs("redrive", "--rate", "20")...) }()
	// The broker has acknowledged what the topic holds.
	adm := adminClient(t, e.brokers)
	testenv.Await(t, "letters acknowledged", 30*time.Second, func() bool {
		ends, err := adm.ListEndOffsets(ctx, e.source)
		if err != nil {
			t.Fatalf("end offsets: %v", err)
		}
		var total int64
		ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
		return total-originals >= interruptAfter
	})
	cancel()
	first := <-done
	if code := exitCode(first.err, new(bytes.Buffer)); code != exitInterrupted {
		t.Fatalf("interrupted run: exit %d (%v), want %d\n%s", code, first.err, exitInterrupted, first.stderr)
	}
	sentFirst := countRecords(t, e.brokers, e.source) - originals
	if sentFirst < interruptAfter || sentFirst >= n {
		t.Fatalf("interrupted run sent %d letters, want between %d and %d", sentFirst, interruptAfter, n-1)
	}
	if want := fmt.Sprintf("sent %d,", sentFirst); !strings.Contains(first.stderr, want) {
		t.Errorf("interrupted run's summary lacks %q:\n%s", want, first.stderr)
	}

	second := mustRun(t, e.dlqArgs("redrive")...)
	if want := fmt.Sprintf("examined %d of %d letters: sent %d,", n-sentFirst, n-sentFirst, n-sentFirst); !strings.Contains(second.stderr, want) {
		t.Errorf("resumed run's summary lacks %q:\n%s", want, second.stderr)
	}
	assertRedriven(t, redriven(t, e.brokers, e.source), e.letters, 1)
}

func TestDLQUsageErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no command", []string{"dlq"}, "name a command"},
		{"unknown command", []string{"dlq", "purge"}, `unknown command "purge"`},
		{"bad time", []string{"dlq", "ls", "--since", "yesterday"}, "RFC 3339"},
		{"until before since", []string{"dlq", "ls", "--since", "2026-01-02T00:00:00Z", "--until", "2026-01-01T00:00:00Z"}, "must be after"},
		{"bad glob", []string{"dlq", "ls", "--key-pattern", "[a"}, "key pattern"},
		{"bad partition", []string{"dlq", "stats", "--partition", "0,x"}, "partition numbers"},
		{"empty offset range", []string{"dlq", "ls", "--offset-from", "10", "--offset-to", "5"}, "is empty"},
		{"negative offset", []string{"dlq", "ls", "--offset-to", "-1"}, "--offset-to"},
		{"max redrives", []string{"dlq", "redrive", "--max-redrives", "0"}, "--max-redrives"},
		{"negative rate", []string{"dlq", "redrive", "--rate", "-1"}, "--rate"},
		{"into itself", []string{"dlq", "redrive", "--to", "orders.dlq"}, "into itself"},
		{"ls flag on redrive", []string{"dlq", "redrive", "--payload"}, "flag provided but not defined"},
		{"redrive flag on ls", []string{"dlq", "ls", "--dry-run"}, "flag provided but not defined"},
		{"positional", []string{"dlq", "stats", "extra"}, "unexpected argument"},
		{"progress mode", []string{"dlq", "redrive", "--progress", "fancy"}, "progress mode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := runCLI(context.Background(), t, nil, tt.args...)
			if code := exitCode(r.err, new(bytes.Buffer)); code != exitUsage {
				t.Fatalf("exit code %d, want %d (err %v)", code, exitUsage, r.err)
			}
			if !strings.Contains(r.err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", r.err, tt.want)
			}
		})
	}
}

func TestDLQMissingTopic(t *testing.T) {
	t.Parallel()
	k := testenv.Kafka(t)
	for _, cmd := range []string{"stats", "ls", "redrive"} {
		r := runCLI(context.Background(), t, nil, "dlq", cmd, "--brokers", k.Brokers, "--topic", "no-such-dlq", "--connect-timeout", "5s")
		if code := exitCode(r.err, new(bytes.Buffer)); code != exitFailure || !strings.Contains(r.err.Error(), `"no-such-dlq"`) {
			t.Errorf("%s: exit %d, error %v; want %d and one naming the topic", cmd, code, r.err, exitFailure)
		}
	}
	// A parking topic that does not exist stops a redrive before it starts.
	e := newDLQEnv(t, 1, 1)
	e.generated(t, 2)
	r := runCLI(context.Background(), t, nil, "dlq", "redrive", "--brokers", e.brokers, "--topic", e.dlq,
		"--parking-topic", "no-such-parking", "--connect-timeout", "5s", "--progress", "off")
	if r.err == nil || !strings.Contains(r.err.Error(), `"no-such-parking"`) {
		t.Errorf("error %v, want one naming the parking topic", r.err)
	}
	if got := len(redriven(t, e.brokers, e.source)); got != 0 {
		t.Errorf("%d letters sent without a parking topic", got)
	}
}

// A letter whose record the broker refuses stops the redrive (exit 1) with
// the broker's error; its progress stays before it, so the next run, the
// cause fixed, sends it.
func TestDLQRedriveFailureIsRetriedByTheNextRun(t *testing.T) {
	t.Parallel()
	e := newDLQEnv(t, 3, 1)
	e.badStream(t, 9)
	var large []sentLetter
	for _, l := range e.letters {
		if l.reason == "too_large" {
			large = append(large, l)
		}
	}
	if len(large) != 1 {
		t.Fatalf("%d too_large letters, want 1", len(large))
	}
	// Uncompressed, the 1 MiB + 1 KiB value exceeds the broker's limit.
	args := e.dlqArgs("redrive", "--reason", "too_large")
	r := runCLI(context.Background(), t, nil, append(args, "-X", "compression.type=none")...)
	if code := exitCode(r.err, new(bytes.Buffer)); code != exitFailure || !strings.Contains(r.err.Error(), "1 letters were not redriven") {
		t.Fatalf("exit %d, error %v; want %d and the failure\n%s", code, r.err, exitFailure, r.stderr)
	}
	if !strings.Contains(r.stderr, "failed 1") || !strings.Contains(strings.ToLower(r.stderr), "too large") {
		t.Errorf("summary does not report the failure and its cause:\n%s", r.stderr)
	}
	var dlqOffset int64 = -1
	for _, l := range lsJSON(t, e, "--reason", "too_large") {
		dlqOffset = l.DLQOffset
	}
	group := dlq.DefaultGroup(dlq.DefaultGroupBase, &dlq.Filter{Reasons: []string{"too_large"}})
	if at, ok := committed(t, e.brokers, group, e.dlq)[0]; ok && at > dlqOffset {
		t.Errorf("progress committed at %d, past the failed letter at %d", at, dlqOffset)
	}
	if got := len(redriven(t, e.brokers, e.source)); got != 0 {
		t.Fatalf("%d records redriven by the failed run", got)
	}

	mustRun(t, args...)
	assertRedriven(t, redriven(t, e.brokers, e.source), large, 1)
}
