package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderservice/orders/shared/model"
	"github.com/orderservice/orders/shared/ordergen"
	"github.com/orderservice/orders/shared/testenv"
)

// The sample order ends up in every table with exactly its values, and in
// Redis as its canonical JSON.
func TestSampleOrderIsStoredAndCached(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	in := start(t, e.config())
	sample := testenv.Sample(t)
	e.produce(t, 1, orderRecord(t, sample))

	eventually(t, 30*time.Second, func() string {
		if n := count(t, e.pg.Pool, `SELECT count(*) FROM orders`); n != 1 {
			return fmt.Sprintf("%d orders stored", n)
		}
		return ""
	})
	got, sum := loadOrder(t, e.pg.Pool, sample.OrderUID)
	want := *sample
	want.DateCreated = want.DateCreated.UTC()
	if !reflect.DeepEqual(got, &want) {
		t.Errorf("stored order differs from the sample:\n got %+v\nwant %+v", got, &want)
	}
	canonical, wantSum := canonicalSHA(t, sample)
	if !bytes.Equal(sum, wantSum[:]) {
		t.Errorf("content_sha256 = %x, want %x", sum, wantSum)
	}
	for table, n := range map[string]int{"delivery": 1, "payment": 1, "items": len(sample.Items)} {
		if got := count(t, e.pg.Pool, "SELECT count(*) FROM "+table); got != n {
			t.Errorf("%s has %d rows, want %d", table, got, n)
		}
	}

	key := e.redis.Prefix + "order:" + sample.OrderUID
	eventually(t, 10*time.Second, func() string {
		v, err := e.redis.Client.Get(context.Background(), key).Bytes()
		if err != nil {
			return fmt.Sprintf("GET %s: %v", key, err)
		}
		if !bytes.Equal(v, canonical) {
			return fmt.Sprintf("cached %s, want %s", v, canonical)
		}
		return ""
	})
	if ttl := e.redis.Client.TTL(context.Background(), key).Val(); ttl <= 0 || ttl > 24*time.Hour {
		t.Errorf("cache TTL = %s, want (0, 24h]", ttl)
	}
	if s := httpStatus("http://" + in.ops + "/readyz"); s != http.StatusOK {
		t.Errorf("/readyz = %d, want 200", s)
	}
	if v := metric(t, in.ops, `ingestor_messages_total{outcome="stored",reason=""}`); v != 1 {
		t.Errorf("stored counter = %v, want 1", v)
	}
	// The offset is committed once the order is durable.
	eventually(t, 10*time.Second, func() string {
		if c := e.committed(t); c[0] != 1 {
			return fmt.Sprintf("committed offsets %v, want partition 0 at 1", c)
		}
		return ""
	})
	if n := e.dlqCount(t); n != 0 {
		t.Errorf("dead-letter topic has %d records, want 0", n)
	}
	// The lag gauge of the partition appears (refreshed every few seconds)
	// and says the consumer is caught up; so do the latency histograms. A
	// refresh made before the order was polled counted it (the partition
	// has a series from its assignment on), so 0 may take one more refresh.
	lag := fmt.Sprintf(`ingestor_consumer_lag{partition="0",topic=%q}`, e.topic)
	eventually(t, 15*time.Second, func() string {
		if !hasMetric(t, in.ops, lag) {
			return "no " + lag
		}
		if v := metric(t, in.ops, lag); v != 0 {
			return fmt.Sprintf("%s = %v, want 0", lag, v)
		}
		return ""
	})
	for _, h := range []string{"ingestor_end_to_end_seconds_count", "ingestor_db_write_seconds_count", "ingestor_batch_size_count"} {
		if v := metric(t, in.ops, h); v < 1 {
			t.Errorf("%s = %v, want at least 1", h, v)
		}
	}
}

// Every class of bad input is dead-lettered with its reason and headers,
// and the valid neighbours in the same batch are stored.
func TestBadInputIsDeadLetteredAndNeighboursStored(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	cfg := e.config()
	cfg.MaxMessageSize = 4096
	cfg.BatchLinger = 500 * time.Millisecond // one batch for everything below

	// A stored order whose payment transaction a new order reuses.
	gen := ordergen.New(7)
	existing := gen.Order()
	testenv.InsertOrders(t, e.pg.Pool, existing)

	good1, good2 := gen.Order(), gen.Order()
	invalid := gen.Order()
	invalid.Payment.Currency = "usd"
	invalid.Delivery.Email = "nope"
	reused := gen.Order()
	reused.Payment.Transaction = existing.Payment.Transaction
	big := gen.Order()
	big.InternalSignature = strings.Repeat("x", 200)
	bigRec := orderRecord(t, big)
	bigRec.Value = append(bigRec.Value, bytes.Repeat([]byte(" "), 5000)...)

	type bad struct {
		rec     *kgo.Record
		reason  string
		errPart string
	}
	bads := []bad{
		// An empty value, not a null one: a null value is a tombstone.
		{&kgo.Record{Key: []byte("empty"), Value: []byte{}}, "malformed", "empty"},
		{&kgo.Record{Key: []byte("garbage"), Value: []byte(`{"order_uid": 42`)}, "malformed", "malformed order"},
		{bigRec, "too_large", "too large"},
		{orderRecord(t, invalid), "invalid", "payment.currency"},
		{orderRecord(t, reused), "db_permanent", "payment_transaction_key"},
		{&kgo.Record{Key: []byte("not a uid!")}, "malformed", "tombstone (null value) without an order_uid"},
	}
	bads[0].rec.Headers = []kgo.RecordHeader{{Key: "trace", Value: []byte("abc")}}
	records := []*kgo.Record{orderRecord(t, good1)}
	for _, b := range bads {
		records = append(records, b.rec)
	}
	records = append(records, orderRecord(t, good2))

	in := start(t, cfg)
	sent := e.produce(t, 1, records...)

	dl := e.dlqRecords(t, len(bads))
	if len(dl) != len(bads) {
		t.Fatalf("got %d dead letters, want %d", len(dl), len(bads))
	}
	for i, b := range bads {
		r := dl[i]
		src := sent[i+1]
		if !bytes.Equal(r.Key, b.rec.Key) || !bytes.Equal(r.Value, b.rec.Value) {
			t.Errorf("dead letter %d: key/value differ from the original", i)
		}
		want := map[string]string{
			"reason":                     b.reason,
			"source_topic":               e.topic,
			"source_partition":           "0",
			"source_offset":              fmt.Sprint(src.offset),
			"__connect.errors.topic":     e.topic,
			"__connect.errors.partition": "0",
			"__connect.errors.offset":    fmt.Sprint(src.offset),
		}
		for k, v := range want {
			if got, _ := header(r, k); got != v {
				t.Errorf("dead letter %d (%s): header %s = %q, want %q", i, b.reason, k, got, v)
			}
		}
		for _, k := range []string{"error", "__connect.errors.exception.message"} {
			if got, _ := header(r, k); !strings.Contains(got, b.errPart) {
				t.Errorf("dead letter %d (%s): header %s = %q, want it to mention %q", i, b.reason, k, got, b.errPart)
			}
		}
		if at, _ := header(r, "failed_at"); at == "" {
			t.Errorf("dead letter %d: no failed_at header", i)
		}
	}
	if got, _ := header(dl[0], "trace"); got != "abc" {
		t.Errorf("original header not kept: trace = %q", got)
	}
	if msg, _ := header(dl[3], "error"); !strings.Contains(msg, "delivery.email") {
		t.Errorf("invalid error %q does not name every failing field", msg)
	}

	eventually(t, 10*time.Second, func() string {
		if n := count(t, e.pg.Pool, `SELECT count(*) FROM orders WHERE order_uid = ANY($1)`,
			[]string{good1.OrderUID, good2.OrderUID}); n != 2 {
			return fmt.Sprintf("%d of the 2 valid neighbours stored", n)
		}
		return ""
	})
	for _, uid := range []string{invalid.OrderUID, reused.OrderUID, big.OrderUID} {
		if n := count(t, e.pg.Pool, `SELECT count(*) FROM orders WHERE order_uid=$1`, uid); n != 0 {
			t.Errorf("bad order %s was stored", uid)
		}
	}
	eventually(t, 10*time.Second, func() string {
		if c := e.committed(t); c[0] != int64(len(records)) {
			return fmt.Sprintf("committed %v, want %d", c, len(records))
		}
		return ""
	})
	checkNoPersonalData(t, in.logs.String(), good1, good2, invalid, reused, big)
	for _, reason := range []string{"malformed", "too_large", "invalid", "db_permanent"} {
		want := 1.0
		if reason == "malformed" {
			want = 3
		}
		if v := metric(t, in.ops, fmt.Sprintf(`ingestor_messages_total{outcome="dead_lettered",reason=%q}`, reason)); v != want {
			t.Errorf("dead_lettered{%s} = %v, want %v", reason, v, want)
		}
	}
}

// An identical redelivery leaves one copy and no dead letter; a different
// order under a stored uid is dead-lettered as a conflict and the stored
// copy stays as it was. Both within a batch and across batches.
func TestDuplicatesAndConflicts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	in := start(t, e.config())
	gen := ordergen.New(11)
	a, b := gen.Order(), gen.Order()
	changedA := *a
	changedA.Delivery.City = "Elsewhere"
	changedB := *b
	changedB.Payment.Bank = "other"

	// First batch: a, a again (identical), b, b changed (conflict within the batch).
	e.produce(t, 1, orderRecord(t, a), orderRecord(t, a), orderRecord(t, b), orderRecord(t, &changedB))
	eventually(t, 20*time.Second, func() string {
		if v := metric(t, in.ops, `ingestor_messages_total{outcome="stored",reason=""}`); v != 2 {
			return fmt.Sprintf("stored = %v", v)
		}
		return ""
	})
	// Later batches: a again, a changed.
	e.produce(t, 1, orderRecord(t, a), orderRecord(t, &changedA))
	dl := e.dlqRecords(t, 2)
	for i, wantUID := range []string{b.OrderUID, a.OrderUID} {
		if r, _ := header(dl[i], "reason"); r != "conflict" || string(dl[i].Key) != wantUID {
			t.Errorf("dead letter %d: reason %q key %s, want conflict for %s", i, r, dl[i].Key, wantUID)
		}
	}
	eventually(t, 10*time.Second, func() string {
		if v := metric(t, in.ops, `ingestor_messages_total{outcome="duplicate",reason=""}`); v != 2 {
			return fmt.Sprintf("duplicate = %v, want 2", v)
		}
		return ""
	})
	if n := count(t, e.pg.Pool, `SELECT count(*) FROM orders`); n != 2 {
		t.Errorf("%d orders stored, want 2", n)
	}
	for _, o := range []*model.Order{a, b} {
		got, sum := loadOrder(t, e.pg.Pool, o.OrderUID)
		want := *o
		want.DateCreated = want.DateCreated.UTC()
		if !reflect.DeepEqual(got, &want) {
			t.Errorf("order %s changed:\n got %+v\nwant %+v", o.OrderUID, got, &want)
		}
		if _, s := canonicalSHA(t, o); !bytes.Equal(sum, s[:]) {
			t.Errorf("order %s: content hash changed", o.OrderUID)
		}
	}
	if n := e.dlqCount(t); n != 2 {
		t.Errorf("dead-letter topic has %d records, want 2", n)
	}
}

// A message too large for the dead-letter topic is dead-lettered without
// its value (and says so) instead of blocking its partition.
func TestOversizedDeadLetterDropsTheValue(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	big := "3145728"
	topic := e.topic + "-big"
	if _, err := e.adm.CreateTopic(ctx, 1, 1, map[string]*string{"max.message.bytes": &big}, topic); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(e.kafka.Brokers, ",")...),
		kgo.ProducerBatchMaxBytes(4<<20), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	good := ordergen.New(13).Order()
	huge := bytes.Repeat([]byte("x"), 1_500_000)
	if err := cl.ProduceSync(ctx,
		&kgo.Record{Topic: topic, Key: []byte("huge"), Value: huge},
		&kgo.Record{Topic: topic, Key: []byte(good.OrderUID), Value: orderRecord(t, good).Value},
	).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}

	cfg := e.config()
	cfg.KafkaTopic = topic
	cfg.MaxMessageSize = 4096
	start(t, cfg)
	dl := e.dlqRecords(t, 1)
	if r, _ := header(dl[0], "reason"); r != "too_large" || string(dl[0].Key) != "huge" {
		t.Errorf("dead letter: reason %q key %q, want too_large for huge", r, dl[0].Key)
	}
	if len(dl[0].Value) != 0 {
		t.Errorf("dead letter carries %d bytes, want the value dropped", len(dl[0].Value))
	}
	if d, _ := header(dl[0], "value_dropped"); !strings.Contains(d, "1500000 bytes") {
		t.Errorf("value_dropped header = %q", d)
	}
	eventually(t, 20*time.Second, func() string {
		if n := count(t, e.pg.Pool, `SELECT count(*) FROM orders WHERE order_uid=$1`, good.OrderUID); n != 1 {
			return "the order after the oversized message is not stored"
		}
		return ""
	})
}
