package source

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/orderservice/orders/shared/model"
	"github.com/orderservice/orders/shared/ordergen"
)

// drain reads src to the end.
func drain(t *testing.T, src Source) []Message {
	t.Helper()
	var out []Message
	for {
		m, err := src.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		out = append(out, m)
		if len(out) > 1_000_000 {
			t.Fatal("source does not end")
		}
	}
}

func TestEmbeddedSampleIsTheSharedOne(t *testing.T) {
	shared, err := os.ReadFile("../../shared/model/testdata/model.json")
	if err != nil {
		t.Fatalf("read the shared sample: %v", err)
	}
	if !bytes.Equal(shared, sampleJSON) {
		t.Error("source/sample.json differs from shared/model/testdata/model.json: copy it again")
	}
	msgs := drain(t, must(Sample()))
	if len(msgs) != 1 || string(msgs[0].Key) != "b563feb7b2b84b6test" {
		t.Fatalf("Sample yielded %d messages, first key %q", len(msgs), msgs[0].Key)
	}
}

func must(s Source, err error) Source {
	if err != nil {
		panic(err)
	}
	return s
}

func TestGenerateWithOneWorkerIsOrdergensSequence(t *testing.T) {
	ctx := context.Background()
	gen := ordergen.New(7)
	msgs := drain(t, Generate(ctx, 7, 50, 1))
	for i, m := range msgs {
		want, err := gen.Order().Canonical()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(m.Value, want) {
			t.Fatalf("message %d differs from ordergen.New(7)'s order %d", i, i)
		}
	}
}

func TestGenerateIsDeterministicUniqueAndValid(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const n = 2000
	a := drain(t, Generate(ctx, 3, n, 4))
	b := drain(t, Generate(ctx, 3, n, 4))
	if len(a) != n || len(b) != n {
		t.Fatalf("got %d and %d messages, want %d", len(a), len(b), n)
	}
	uids := map[string]bool{}
	for i := range a {
		if !bytes.Equal(a[i].Value, b[i].Value) {
			t.Fatalf("message %d differs between two runs with the same seed", i)
		}
		o, err := model.Decode(a[i].Value)
		if err != nil {
			t.Fatal(err)
		}
		if err := o.Validate(); err != nil {
			t.Errorf("message %d: %v", i, err)
		}
		if uids[o.OrderUID] {
			t.Errorf("order_uid %s repeats", o.OrderUID)
		}
		uids[o.OrderUID] = true
	}
	// Nearby seeds share no worker stream.
	for _, m := range drain(t, Generate(ctx, 4, n, 4)) {
		if uids[string(m.Key)] {
			t.Fatalf("seeds 3 and 4 both generate order_uid %s", m.Key)
		}
	}
}

func TestGenerateStopsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	g := Generate(ctx, 1, 0, 3)
	if _, err := g.Next(); err != nil {
		t.Fatal(err)
	}
	cancel()
	for range 10 * workerBuffer {
		if _, err := g.Next(); err != nil {
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("after cancel: %v, want io.ErrUnexpectedEOF", err)
			}
			return
		}
	}
	t.Fatal("an endless generator kept going after its context ended")
}

// classify returns the dead-letter reason of a value, as the ingestor
// decides it, with the error; conflicts are judged by the caller.
func classify(v []byte) (string, error) {
	o, err := model.Decode(v)
	switch {
	case errors.Is(err, model.ErrTooLarge):
		return "too_large", err
	case err != nil:
		return "malformed", err
	}
	if err := o.Validate(); err != nil {
		return "invalid", err
	}
	return "", nil
}

func TestBadClasses(t *testing.T) {
	msgs := drain(t, Bad(NewCorrupter(ordergen.New(5)), 2*len(Classes)))
	if len(msgs) != 2*len(Classes)+1 {
		t.Fatalf("got %d messages, want %d bad ones and one original", len(msgs), 2*len(Classes))
	}
	sent := map[string][]byte{}
	seen := map[string]int{}
	for i, m := range msgs {
		class, reason := m.Header(HeaderBadClass), m.Header(HeaderExpectedReason)
		got, err := classify(m.Value)
		if class == "" {
			if got != "" {
				t.Fatalf("unmarked message %d is %s: %v", i, got, err)
			}
			sent[string(m.Key)] = m.Value
			continue
		}
		seen[class]++
		if class == "conflict" {
			orig, ok := sent[string(m.Key)]
			if got != "" || !ok || bytes.Equal(orig, m.Value) {
				t.Errorf("conflict %d: valid=%v, original sent before=%v, same content=%v",
					i, got == "", ok, bytes.Equal(orig, m.Value))
			}
			got = "conflict"
		}
		if got != reason {
			t.Errorf("%s message classified %q (%v), its header says %q", class, got, err, reason)
		}
		if len(m.Key) == 0 {
			t.Errorf("%s message has no key", class)
		}
	}
	for _, c := range Classes {
		if seen[c.Name] != 2 {
			t.Errorf("class %s: %d messages, want 2", c.Name, seen[c.Name])
		}
	}
}

func TestTooLargeExceedsTheLimitAndFitsTheProducer(t *testing.T) {
	m, err := damaged("too_large", ordergen.New(1).Order())
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Value) <= model.DefaultMaxSize || len(m.Value) != TooLargeSize {
		t.Errorf("too_large is %d bytes, want %d (over %d)", len(m.Value), TooLargeSize, model.DefaultMaxSize)
	}
	// Under its limit the decoder would accept it: size is the only fault.
	o, err := model.Decoder{MaxSize: 2 * TooLargeSize}.Decode(m.Value)
	if err != nil {
		t.Fatalf("too_large is not a valid order apart from its size: %v", err)
	}
	if err := o.Validate(); err != nil {
		t.Errorf("too_large is not a valid order apart from its size: %v", err)
	}
}

func TestMixKeepsEveryGoodMessage(t *testing.T) {
	good := drain(t, Generate(context.Background(), 8, 300, 1))
	mixed := drain(t, Mix(&slice{msgs: append([]Message(nil), good...)},
		NewCorrupter(ordergen.New(99)), 0.25, rand.New(rand.NewPCG(1, 2))))
	var kept []Message
	bad := 0
	for _, m := range mixed {
		if m.Header(HeaderBadClass) != "" {
			bad++
		} else if m.Order != nil && strings.HasPrefix(string(m.Value), `{"order_uid"`) {
			kept = append(kept, m)
		}
	}
	// Conflict originals are good orders too, made by the corrupter when no
	// order came before; here the stream always has one.
	if len(kept) != len(good) {
		t.Fatalf("%d good messages in the mix, want %d", len(kept), len(good))
	}
	for i := range good {
		if !bytes.Equal(kept[i].Value, good[i].Value) {
			t.Fatalf("good message %d changed or moved", i)
		}
	}
	if frac := float64(bad) / float64(len(mixed)); frac < 0.15 || frac > 0.35 {
		t.Errorf("bad fraction %.2f, want about 0.25", frac)
	}
}
