package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderservice/orders/producer/source"
	"github.com/orderservice/orders/shared/model"
	"github.com/orderservice/orders/shared/ordergen"
	"github.com/orderservice/orders/shared/testenv"
)

// orderLines returns n generated orders' canonical encodings.
func orderLines(t testing.TB, seed int64, n int) [][]byte {
	t.Helper()
	g := ordergen.New(seed)
	out := make([][]byte, n)
	for i := range out {
		b, err := g.Order().Canonical()
		if err != nil {
			t.Fatal(err)
		}
		out[i] = b
	}
	return out
}

func TestFileFormatsAreConsumedBack(t *testing.T) {
	t.Parallel()
	orders := orderLines(t, 11, 3)
	pretty := func(b []byte) []byte {
		var buf bytes.Buffer
		if err := jsonIndent(&buf, b); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	tests := []struct {
		name  string
		input []byte
		want  [][]byte // values in send order
		stdin bool
	}{
		{"array", []byte("[\n" + string(orders[0]) + ",\n" + string(orders[1]) + "\n]\n"), orders[:2], false},
		{"single object", pretty(orders[2]), [][]byte{pretty(orders[2])}, false},
		{"ndjson", bytes.Join(orders, []byte("\n")), orders, false},
		{"ndjson on stdin", bytes.Join(orders, []byte("\r\n")), orders, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			brokers, topic := kafkaTopic(t, 1) // one partition: order is kept
			args := []string{"--brokers", brokers, "--topic", topic}
			var r result
			if tt.stdin {
				r = runCLI(context.Background(), t, bytes.NewReader(tt.input), append(args, "--file", "-")...)
			} else {
				path := filepath.Join(t.TempDir(), "orders.json")
				if err := os.WriteFile(path, tt.input, 0o600); err != nil {
					t.Fatal(err)
				}
				r = runCLI(context.Background(), t, nil, append(args, "--file", path)...)
			}
			if r.err != nil {
				t.Fatalf("run: %v\n%s", r.err, r.stderr)
			}
			recs := consumeAll(t, brokers, topic)
			if len(recs) != len(tt.want) {
				t.Fatalf("got %d records, want %d", len(recs), len(tt.want))
			}
			for i, rec := range recs {
				if !bytes.Equal(bytes.TrimSpace(rec.Value), bytes.TrimSpace(tt.want[i])) {
					t.Errorf("record %d:\n got %s\nwant %s", i, rec.Value, tt.want[i])
				}
				o, err := model.Decode(rec.Value)
				if err != nil || string(rec.Key) != o.OrderUID {
					t.Errorf("record %d: key %q, decode err %v", i, rec.Key, err)
				}
			}
		})
	}
}

func TestFileErrors(t *testing.T) {
	t.Parallel()
	good := orderLines(t, 12, 2)
	bad, err := model.Decode(good[1])
	if err != nil {
		t.Fatal(err)
	}
	bad.Payment.Currency = "DOLLARS"
	badJSON, err := bad.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name string
		path string
		want []string
	}{
		{"missing file", filepath.Join(dir, "nope.json"), []string{"nope.json", "no such file"}},
		{"invalid order", write("invalid.ndjson", append(append(good[0], '\n'), badJSON...)),
			[]string{"invalid.ndjson", "1 of 2 orders are invalid", "order #2 (line 2", bad.OrderUID, "payment.currency"}},
		{"broken json", write("broken.json", []byte("[\n"+string(good[0])+",\n{\"order_uid\": \n")),
			[]string{"broken.json", "line 3", "invalid JSON"}},
		{"empty", write("empty.json", []byte("  \n")), []string{"no orders"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			brokers, topic := kafkaTopic(t, 1)
			r := runCLI(context.Background(), t, nil, "--brokers", brokers, "--topic", topic, "--file", tt.path)
			if r.err == nil {
				t.Fatalf("run succeeded, want an error")
			}
			if exitCode(r.err, new(bytes.Buffer)) != exitFailure {
				t.Errorf("exit code is not %d", exitFailure)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.err.Error(), w) {
					t.Errorf("error %q does not mention %q", r.err, w)
				}
			}
			if n := countRecords(t, brokers, topic); n != 0 {
				t.Errorf("%d records were sent from a bad file, want none", n)
			}
		})
	}
}

func TestFileRawSendsBytesAsTheyAre(t *testing.T) {
	t.Parallel()
	brokers, topic := kafkaTopic(t, 1)
	input := "{\"order_uid\":\"raw-1\",\"items\":\"nope\"}\nnot json at all\n{\"truncated\":\n"
	r := runCLI(context.Background(), t, strings.NewReader(input), "--brokers", brokers, "--topic", topic, "--file", "-", "--raw")
	if r.err != nil {
		t.Fatalf("run: %v\n%s", r.err, r.stderr)
	}
	recs := consumeAll(t, brokers, topic)
	want := strings.Split(strings.TrimSuffix(input, "\n"), "\n")
	if len(recs) != len(want) {
		t.Fatalf("got %d records, want %d", len(recs), len(want))
	}
	for i, rec := range recs {
		if string(rec.Value) != want[i] {
			t.Errorf("record %d = %q, want %q", i, rec.Value, want[i])
		}
	}
	if string(recs[0].Key) != "raw-1" {
		t.Errorf("key of a raw object with an order_uid = %q, want raw-1", recs[0].Key)
	}
}

// reasonFor is how the ingestor classifies a message: decoding errors
// (empty and malformed alike) are malformed, except the size limit;
// validation errors are invalid; a valid order whose uid was already
// stored with other content is a conflict.
func reasonFor(value []byte, stored map[string][]byte) (string, error) {
	o, err := model.Decode(value)
	switch {
	case errors.Is(err, model.ErrTooLarge):
		return "too_large", err
	case errors.Is(err, model.ErrEmpty), errors.Is(err, model.ErrMalformed):
		return "malformed", err
	case err != nil:
		return "", fmt.Errorf("unclassified decode error: %w", err)
	}
	if err := o.Validate(); err != nil {
		return "invalid", err
	}
	canon, err := o.Canonical()
	if err != nil {
		return "", err
	}
	if prev, ok := stored[o.OrderUID]; ok && !bytes.Equal(prev, canon) {
		return "conflict", nil
	}
	stored[o.OrderUID] = canon
	return "", nil
}

// checkBad checks that every record marked bad fails for the class it
// claims and every other one is a valid order, and returns the count of
// each class.
func checkBad(t *testing.T, recs []*kgo.Record) map[string]int {
	t.Helper()
	stored := map[string][]byte{} // per uid; a uid always maps to one partition
	classes := map[string]int{}
	for _, r := range recs {
		class, want := header(r, source.HeaderBadClass), header(r, source.HeaderExpectedReason)
		got, err := reasonFor(r.Value, stored)
		if class == "" {
			if got != "" {
				t.Errorf("unmarked record %s/%d is %s: %v", r.Topic, r.Offset, got, err)
			}
			continue
		}
		classes[class]++
		if got != want {
			t.Errorf("%s message (key %s): classified %q (%v), header says %q", class, r.Key, got, err, want)
			continue
		}
		// The error must be the one the class is about, not another.
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		wantIn := map[string]string{
			"malformed":         "invalid JSON",
			"truncated":         "truncated JSON",
			"wrong_types":       "payment.amount: cannot use JSON string",
			"missing_fields":    "delivery.name: cannot be blank",
			"invalid_values":    "delivery.email: must be a valid e-mail address",
			"inconsistent_sums": "payment.amount: must equal goods_total",
			"too_large":         "message too large",
			"empty":             "empty message",
		}[class]
		if !strings.Contains(msg, wantIn) {
			t.Errorf("%s message: error %q does not contain %q", class, msg, wantIn)
		}
		if class == "inconsistent_sums" && strings.Contains(msg, ";") {
			t.Errorf("inconsistent_sums message fails more than the sum rule: %s", msg)
		}
	}
	return classes
}

func TestBadMessagesFailForTheirClass(t *testing.T) {
	t.Parallel()
	brokers, topic := kafkaTopic(t, 3)
	const k = 2 * 9
	mustRun(t, "--brokers", brokers, "--topic", topic, "--bad", "18", "--seed", "3")

	recs := consumeAll(t, brokers, topic)
	if len(recs) != k+1 {
		t.Fatalf("got %d records, want %d bad ones and the original of the conflict", len(recs), k)
	}
	classes := checkBad(t, recs)
	for _, c := range source.Classes {
		if classes[c.Name] != 2 {
			t.Errorf("class %s: %d messages, want 2", c.Name, classes[c.Name])
		}
	}
}

func TestBadRateMixesBadMessagesIntoTheStream(t *testing.T) {
	t.Parallel()
	brokers, topic := kafkaTopic(t, 3)
	const good = 400
	mustRun(t, "--brokers", brokers, "--topic", topic, "--generate", "400", "--bad-rate", "0.2", "--seed", "9")

	recs := consumeAll(t, brokers, topic)
	classes := checkBad(t, recs)
	bad := 0
	for _, n := range classes {
		bad += n
	}
	if got := len(recs) - bad; got != good {
		t.Errorf("%d good records, want all %d", got, good)
	}
	// 20% of ~500 messages: binomial, far outside 60-140 only by a bug.
	if bad < 60 || bad > 140 {
		t.Errorf("%d bad messages among %d, want about 20%%", bad, len(recs))
	}
	if len(classes) != len(source.Classes) {
		t.Errorf("classes seen %v, want all %d", classes, len(source.Classes))
	}
}

func TestRateIsKept(t *testing.T) {
	t.Parallel()
	brokers, topic := kafkaTopic(t, 2)
	const rate, secs = 200, 3
	mustRun(t, "--brokers", brokers, "--topic", topic, "--generate", "0", "--rate", "200", "--duration", "3s")

	recs := consumeAll(t, brokers, topic)
	n := len(recs)
	if n < rate*secs*9/10 || n > rate*secs*11/10 {
		t.Errorf("sent %d messages in %ds at %d/s, want %d ±10%%", n, secs, rate, rate*secs)
	}
	// The pace, from the records' own timestamps (set when produced).
	first, last := recs[0].Timestamp, recs[0].Timestamp
	for _, r := range recs {
		if r.Timestamp.Before(first) {
			first = r.Timestamp
		}
		if r.Timestamp.After(last) {
			last = r.Timestamp
		}
	}
	got := float64(n-1) / last.Sub(first).Seconds()
	if got < rate*0.9 || got > rate*1.1 {
		t.Errorf("records span %s for %d messages: %.1f/s, want %d ±10%%", last.Sub(first), n, got, rate)
	}
}

func TestDeliveryFailureExitsNonZero(t *testing.T) {
	t.Parallel()
	brokers, topic := kafkaTopic(t, 1)
	// Uncompressed, the too_large message (7th class) exceeds the
	// broker's max.message.bytes and is rejected.
	r := runCLI(context.Background(), t, nil, "--brokers", brokers, "--topic", topic, "--bad", "7", "--seed", "1",
		"-X", "compression.type=none", "-X", "linger.ms=0")
	if r.err == nil {
		t.Fatalf("run succeeded; want a delivery failure\n%s", r.stderr)
	}
	if code := exitCode(r.err, new(bytes.Buffer)); code != exitFailure {
		t.Errorf("exit code %d, want %d", code, exitFailure)
	}
	if !strings.Contains(r.err.Error(), "not delivered") || !strings.Contains(r.stderr, "too large") {
		t.Errorf("error %q / stderr %q do not explain the failure", r.err, r.stderr)
	}
}

func TestUnreachableBroker(t *testing.T) {
	t.Parallel()
	addr := testenv.FreeAddr(t) // nothing listens there
	r := runCLI(context.Background(), t, nil, "--brokers", addr, "--topic", "orders", "--sample", "--connect-timeout", "2s")
	if r.err == nil {
		t.Fatal("run succeeded against a closed port")
	}
	if want := "cannot reach Kafka at " + addr; !strings.Contains(r.err.Error(), want) {
		t.Errorf("error %q does not contain %q", r.err, want)
	}
}

func TestMissingTopic(t *testing.T) {
	t.Parallel()
	k := testenv.Kafka(t)
	// The producer names the missing topic when the connect timeout ends,
	// provided the broker answered at all by then: the package's parallel
	// tests kept a busy 2-core machine's first answer past 5 s (CI did).
	// The test runs in parallel with the package's longer ones.
	r := runCLI(context.Background(), t, nil, "--brokers", k.Brokers, "--topic", "no-such-topic", "--sample", "--connect-timeout", "15s")
	if r.err == nil || !strings.Contains(r.err.Error(), `"no-such-topic"`) {
		t.Errorf("error %v, want one naming the missing topic", r.err)
	}
}

func TestInterruptFlushesAndReports(t *testing.T) {
	t.Parallel()
	brokers, topic := kafkaTopic(t, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan result, 1)
	go func() {
		done <- runCLI(ctx, t, nil, "--brokers", brokers, "--topic", topic, "--generate", "0", "--rate", "500")
	}()
	// Interrupt once messages are arriving.
	deadline := time.Now().Add(20 * time.Second)
	for countRecords(t, brokers, topic) < 50 {
		if time.Now().After(deadline) {
			t.Fatal("no messages arrived within 20s")
		}
		time.Sleep(20 * time.Millisecond) // polling an observable condition
	}
	cancel()
	r := <-done
	if code := exitCode(r.err, new(bytes.Buffer)); code != exitInterrupted {
		t.Errorf("exit code %d (err %v), want %d", code, r.err, exitInterrupted)
	}
	n := countRecords(t, brokers, topic)
	if want := fmt.Sprintf("sent %d message", n); !strings.Contains(r.stderr, want) {
		t.Errorf("summary %q does not report the %d messages in the topic", r.stderr, n)
	}
	if !strings.Contains(r.stderr, "failed 0") {
		t.Errorf("summary reports failures: %q", r.stderr)
	}
}

func TestProgressLineWhenNotATerminal(t *testing.T) {
	t.Parallel()
	brokers, topic := kafkaTopic(t, 1)
	r := mustRun(t, "--brokers", brokers, "--topic", topic, "--generate", "60", "--rate", "100", "--progress-interval", "100ms")
	if !strings.Contains(r.stderr, "progress: ") || !strings.Contains(r.stderr, "/60 delivered") {
		t.Errorf("no progress line in %q", r.stderr)
	}
	if strings.Contains(r.stderr, "\r") {
		t.Errorf("progress bar drawn on a non-terminal: %q", r.stderr)
	}
}
