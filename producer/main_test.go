package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/orderservice/orders/shared/model"
	"github.com/orderservice/orders/shared/testenv"
)

func TestSampleIsConsumedBack(t *testing.T) {
	t.Parallel()
	brokers, topic := kafkaTopic(t, 3)
	r := mustRun(t, "--brokers", brokers, "--topic", topic, "--sample")

	recs := consumeAll(t, brokers, topic)
	if len(recs) != 1 {
		t.Fatalf("got %d records, want 1", len(recs))
	}
	want, err := testenv.Sample(t).Canonical()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(recs[0].Value, want) {
		t.Errorf("value:\n got %s\nwant %s", recs[0].Value, want)
	}
	if string(recs[0].Key) != "b563feb7b2b84b6test" {
		t.Errorf("key = %q, want the order_uid", recs[0].Key)
	}
	if !strings.Contains(r.stderr, "sent 1 message to") || !strings.Contains(r.stderr, "failed 0") {
		t.Errorf("summary missing or wrong:\n%s", r.stderr)
	}
}

func TestGenerateIsConsumedBackValidAndReproducible(t *testing.T) {
	t.Parallel()
	brokers, topic := kafkaTopic(t, 4)
	const n = 300
	mustRun(t, "--brokers", brokers, "--topic", topic, "--generate", "300", "--seed", "1")
	dry := mustRun(t, "--dry-run", "--generate", "300", "--seed", "1")

	// The dry run prints exactly what was sent, so the same seed must
	// give the same messages through Kafka.
	want := map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(dry.stdout, "\n"), "\n") {
		o, err := model.Decode([]byte(line))
		if err != nil {
			t.Fatalf("dry-run line: %v", err)
		}
		want[o.OrderUID] = line
	}
	if len(want) != n {
		t.Fatalf("dry run printed %d distinct orders, want %d", len(want), n)
	}

	recs := consumeAll(t, brokers, topic)
	if len(recs) != n {
		t.Fatalf("got %d records, want %d", len(recs), n)
	}
	seen := map[string]bool{}
	for _, r := range recs {
		o, err := model.Decode(r.Value)
		if err != nil {
			t.Fatalf("record %s/%d: %v", r.Topic, r.Offset, err)
		}
		if err := o.Validate(); err != nil {
			t.Errorf("order %s fails validation: %v", o.OrderUID, err)
		}
		if string(r.Key) != o.OrderUID {
			t.Errorf("key %q != order_uid %q", r.Key, o.OrderUID)
		}
		if seen[o.OrderUID] {
			t.Errorf("order_uid %s sent twice", o.OrderUID)
		}
		seen[o.OrderUID] = true
		if want[o.OrderUID] != string(r.Value) {
			t.Errorf("order %s differs from the dry run with the same seed", o.OrderUID)
		}
		if n := len(o.Items); n < 1 || n > 5 {
			t.Errorf("order %s has %d items, want 1-5", o.OrderUID, n)
		}
	}
}

func TestSeedGivesIdenticalOutput(t *testing.T) {
	t.Parallel()
	for _, mode := range [][]string{
		{"--generate", "200"},
		{"--bad", "20"},
		{"--generate", "200", "--bad-rate", "0.3"},
	} {
		args := append([]string{"--dry-run", "--seed", "42"}, mode...)
		a, b := mustRun(t, args...), mustRun(t, args...)
		if a.stdout == "" || a.stdout != b.stdout {
			t.Errorf("%v: two runs with --seed 42 differ (or are empty)", mode)
		}
		other := mustRun(t, append([]string{"--dry-run", "--seed", "43"}, mode...)...)
		if other.stdout == a.stdout {
			t.Errorf("%v: --seed 43 gives the same output as --seed 42", mode)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no mode", []string{}, "choose what to send"},
		{"two modes", []string{"--sample", "--generate", "3"}, "choose one of --sample, --generate"},
		{"bad rate too high", []string{"--generate", "3", "--bad-rate", "1"}, "--bad-rate"},
		{"raw without file", []string{"--sample", "--raw"}, "--raw only applies to --file"},
		{"negative rate", []string{"--sample", "--rate", "-1"}, "--rate"},
		{"bad -X", []string{"--sample", "-X", "novalue"}, "key=value"},
		{"positional", []string{"--sample", "extra"}, "unexpected argument"},
		{"bad zero", []string{"--bad", "0"}, "--bad"},
		{"negative generate", []string{"--generate", "-2"}, "--generate: want N >= 0"},
		{"generate not a number", []string{"--generate", "ten"}, "not an integer"},
		{"progress mode", []string{"--sample", "--progress", "fancy"}, "progress mode"},
		{"progress interval", []string{"--sample", "--progress-interval", "0s"}, "--progress-interval"},
		{"workers", []string{"--generate", "3", "--workers", "0"}, "--workers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(context.Background(), t, nil, tt.args...)
			var stderr bytes.Buffer
			if code := exitCode(r.err, &stderr); code != exitUsage {
				t.Fatalf("exit code %d, want %d (err %v)", code, exitUsage, r.err)
			}
			if !strings.Contains(r.err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", r.err, tt.want)
			}
		})
	}
}

func TestEnvironmentSetsBrokersAndTopic(t *testing.T) {
	t.Parallel()
	brokers, topic := kafkaTopic(t, 1)
	env := map[string]string{"KAFKA_BROKERS": "127.0.0.1:1", "PRODUCER_BROKERS": brokers, "PRODUCER_TOPIC": topic}
	var stdout, stderr testenv.Buffer
	err := run(context.Background(), []string{"--sample"}, func(k string) string { return env[k] }, strings.NewReader(""), &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	if n := countRecords(t, brokers, topic); n != 1 {
		t.Errorf("topic from PRODUCER_TOPIC holds %d records, want 1", n)
	}
}

func TestDryRunPrintsNDJSONThatFileReadsBack(t *testing.T) {
	t.Parallel()
	dry := mustRun(t, "--dry-run", "--generate", "20", "--seed", "5")
	again := runCLI(context.Background(), t, strings.NewReader(dry.stdout), "--dry-run", "--file", "-")
	if again.err != nil {
		t.Fatalf("--file - of the dry-run output: %v\n%s", again.err, again.stderr)
	}
	if again.stdout != dry.stdout {
		t.Errorf("re-read output differs")
	}
	var o model.Order
	if err := json.Unmarshal([]byte(strings.SplitN(dry.stdout, "\n", 2)[0]), &o); err != nil || o.OrderUID == "" {
		t.Errorf("first line is not an order: %v", err)
	}
}

func TestExitCodes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want int
	}{
		{nil, exitOK},
		{usagef("x"), exitUsage},
		{errInterrupted, exitInterrupted},
		{errors.New("boom"), exitFailure},
	}
	for _, tt := range tests {
		if got := exitCode(tt.err, new(bytes.Buffer)); got != tt.want {
			t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func TestBadAndGeneratedUIDsNeverCollide(t *testing.T) {
	t.Parallel()
	keys := func(args ...string) map[string]bool {
		c, err := parseFlags(append([]string{"--seed", "1", "--dry-run"}, args...), func(string) string { return "" }, new(bytes.Buffer))
		if err != nil {
			t.Fatal(err)
		}
		src, err := openSource(t.Context(), c, strings.NewReader(""))
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for {
			m, err := src.Next()
			if err != nil {
				return out
			}
			out[string(m.Key)] = true
		}
	}
	good := keys("--generate", "100")
	for k := range keys("--bad", "27") {
		if good[k] {
			t.Errorf("--bad and --generate with the same seed both use order_uid %s", k)
		}
	}
}
