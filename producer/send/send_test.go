package send

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/orderservice/orders/producer/source"
	"github.com/orderservice/orders/shared/testenv"
)

func newKafka(t *testing.T, props map[string]string) *Kafka {
	t.Helper()
	k := testenv.Kafka(t)
	topic := k.Topic(t, "send", 2)
	s, err := New(Config{Brokers: k.Brokers, Topic: topic, Properties: props})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Check(context.Background(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	return s
}

func msg(i int) source.Message {
	return source.Message{Key: []byte{byte('a' + i%26)}, Value: []byte(`{"n":1}`)}
}

func TestKafkaAccountsForEveryDelivery(t *testing.T) {
	t.Parallel()
	s := newKafka(t, nil)
	for i := range 500 {
		if err := s.Send(context.Background(), msg(i)); err != nil {
			t.Fatal(err)
		}
	}
	st := s.Close(10 * time.Second)
	if st.Queued != 500 || st.Delivered != 500 || st.Failed != 0 {
		t.Errorf("stats %+v, want 500 queued and delivered", st)
	}
}

func TestKafkaCloseCountsUndeliveredAsFailed(t *testing.T) {
	t.Parallel()
	// A long linger keeps the messages in librdkafka's queue, as a broker
	// that stopped answering would: Close must purge them and say so.
	s := newKafka(t, map[string]string{"linger.ms": "20000", "message.timeout.ms": "60000", "batch.num.messages": "100000"})
	for i := range 100 {
		if err := s.Send(context.Background(), msg(i)); err != nil {
			t.Fatal(err)
		}
	}
	st := s.Close(0)
	if st.Queued != 100 || st.Delivered+st.Failed != 100 || st.Failed == 0 {
		t.Errorf("stats %+v: want all 100 accounted for, the purged ones as failed", st)
	}
	if len(st.Errors) == 0 || !strings.Contains(strings.ToLower(st.Errors[0].Err), "purge") {
		t.Errorf("errors %+v do not name the purge", st.Errors)
	}
}

func TestKafkaSendStopsWithContextWhenQueueIsFull(t *testing.T) {
	t.Parallel()
	s := newKafka(t, map[string]string{"linger.ms": "20000", "message.timeout.ms": "60000", "queue.buffering.max.messages": "10"})
	defer s.Close(0)
	ctx, cancel := context.WithCancel(context.Background())
	for i := range 10 {
		if err := s.Send(ctx, msg(i)); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	if err := s.Send(ctx, msg(10)); err == nil {
		t.Error("Send into a full queue with a cancelled context returned nil")
	}
}

func TestCheckNamesTheUnreachableBroker(t *testing.T) {
	t.Parallel()
	addr := testenv.FreeAddr(t)
	s, err := New(Config{Brokers: addr, Topic: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(0)
	err = s.Check(context.Background(), time.Second)
	if err == nil || !strings.Contains(err.Error(), "cannot reach Kafka at "+addr) {
		t.Errorf("Check = %v, want it to name %s", err, addr)
	}
}

func TestPacerNeverRunsAhead(t *testing.T) {
	t.Parallel()
	const rate, n = 1000, 200
	p := NewPacer(rate)
	start := time.Now()
	for range n {
		if err := p.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	// The n-th event is due (n-1)/rate after the first: it cannot come
	// sooner, whatever the machine's load.
	if got, least := time.Since(start), time.Duration(n-1)*time.Second/rate; got < least {
		t.Errorf("%d events at %d/s took %s, want at least %s", n, rate, got, least)
	}
}

func TestPacerRestartsAfterAStall(t *testing.T) {
	t.Parallel()
	now := time.Unix(0, 0)
	p := NewPacer(10)
	p.now = func() time.Time { return now }
	_ = p.Wait(context.Background()) // event 0 at t=0
	now = now.Add(time.Minute)       // a long stall
	_ = p.Wait(context.Background()) // due long ago: no wait, schedule restarts
	if !p.start.Equal(now) || p.n != 1 {
		t.Errorf("after a stall start=%v n=%d, want the schedule restarted now", p.start, p.n)
	}
}

func TestZeroRatePacerDoesNotWait(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := NewPacer(0).Wait(ctx); err == nil {
		t.Error("Wait with a cancelled context returned nil")
	}
}

func TestWriterPrintsOneValuePerLine(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for _, v := range []string{`{"a":1}`, ``, `x`} {
		if err := w.Send(context.Background(), source.Message{Value: []byte(v)}); err != nil {
			t.Fatal(err)
		}
	}
	st := w.Close(0)
	if buf.String() != "{\"a\":1}\n\nx\n" || st.Delivered != 3 {
		t.Errorf("wrote %q, stats %+v", buf.String(), st)
	}
}
