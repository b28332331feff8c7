package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderservice/orders/ingestor/config"
	"github.com/orderservice/orders/shared/model"
	"github.com/orderservice/orders/shared/ordergen"
	"github.com/orderservice/orders/shared/testenv"
)

// tombstone is the record that erases uid: the uid as key, a null value.
func tombstone(uid string) *kgo.Record { return &kgo.Record{Key: []byte(uid)} }

// events subscribes to the env's events channel and returns every message
// received from now on, decoded.
func (e *env) events(t *testing.T) <-chan model.Events {
	t.Helper()
	ctx := context.Background()
	sub := e.redis.Client.Subscribe(ctx, model.EventsChannel(e.redis.Prefix))
	t.Cleanup(func() { _ = sub.Close() })
	if _, err := sub.Receive(ctx); err != nil { // the confirmation: subscribed from here on
		t.Fatalf("subscribe: %v", err)
	}
	out := make(chan model.Events, 100)
	go func() {
		for msg := range sub.Channel() {
			ev, err := model.DecodeEvents([]byte(msg.Payload))
			if err != nil {
				t.Errorf("undecodable event %q: %v", msg.Payload, err)
				continue
			}
			out <- ev
		}
	}()
	return out
}

// awaitEvents reads events until every uid of stored and erased was
// announced as such, and fails the test otherwise.
func awaitEvents(t *testing.T, events <-chan model.Events, stored, erased []string) {
	t.Helper()
	want := map[string]bool{}
	for _, uid := range stored {
		want["stored "+uid] = true
	}
	for _, uid := range erased {
		want["erased "+uid] = true
	}
	deadline := time.After(20 * time.Second)
	for len(want) > 0 {
		select {
		case ev := <-events:
			for _, uid := range ev.Stored {
				delete(want, "stored "+uid)
			}
			for _, uid := range ev.Erased {
				delete(want, "erased "+uid)
			}
		case <-deadline:
			t.Fatalf("events never announced %v", want)
		}
	}
}

func hashHex(uid string) string {
	h := sha256.Sum256([]byte(uid))
	return hex.EncodeToString(h[:])
}

// rowsOf counts the rows of uid in each order table.
func (e *env) rowsOf(t testing.TB, uid string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, table := range []string{"orders", "delivery", "payment", "items"} {
		out[table] = count(t, e.pg.Pool, "SELECT count(*) FROM "+table+" WHERE order_uid = $1", uid)
	}
	return out
}

// A tombstone erases a stored order from PostgreSQL and Redis and tells
// the readers; a tombstone for a uid never stored is harmless and recorded.
// Both uids are remembered: the order delivered again (a redelivery, a
// redrive) is dead-lettered as erased, without its content, and stored
// nowhere. A second tombstone changes nothing.
func TestTombstoneErasesOrderEverywhere(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	in := start(t, e.config())
	events := e.events(t)
	gen := ordergen.New(41)
	order, unknown, neighbour := gen.Order(), gen.Order(), gen.Order()
	key := e.redis.Prefix + "order:" + order.OrderUID

	e.produce(t, 1, orderRecord(t, order), orderRecord(t, neighbour))
	awaitEvents(t, events, []string{order.OrderUID, neighbour.OrderUID}, nil)
	if n := e.redis.Client.Exists(context.Background(), key).Val(); n != 1 {
		t.Fatalf("the order was announced before it was cached")
	}

	sent := e.produce(t, 1, tombstone(order.OrderUID), tombstone(unknown.OrderUID))
	awaitEvents(t, events, nil, []string{order.OrderUID, unknown.OrderUID})
	// Announced once it is gone from both stores.
	for table, n := range e.rowsOf(t, order.OrderUID) {
		if n != 0 {
			t.Errorf("%s holds %d rows of the erased order", table, n)
		}
	}
	if n := e.redis.Client.Exists(context.Background(), key).Val(); n != 0 {
		t.Errorf("Redis still holds the erased order")
	}
	for table, n := range e.rowsOf(t, neighbour.OrderUID) {
		if n == 0 {
			t.Errorf("%s lost the neighbour's rows", table)
		}
	}
	// The audit record: the uid's hash and the tombstone's position.
	for i, uid := range []string{order.OrderUID, unknown.OrderUID} {
		var topic string
		var partition int32
		var offset int64
		var at time.Time
		h := sha256.Sum256([]byte(uid))
		if err := e.pg.Pool.QueryRow(context.Background(), `SELECT source_topic, source_partition, source_offset, erased_at
			FROM erased_orders WHERE uid_sha256 = $1`, h[:]).Scan(&topic, &partition, &offset, &at); err != nil {
			t.Fatalf("erased_orders row of tombstone %d: %v", i, err)
		}
		if topic != e.topic || partition != 0 || offset != sent[i].offset || time.Since(at) > time.Minute {
			t.Errorf("erased_orders row %d = %s/%d/%d at %s, want %s/0/%d just now", i, topic, partition, offset, at, e.topic, sent[i].offset)
		}
	}
	if v := metric(t, in.ops, `ingestor_erasures_total{result="deleted"}`); v != 1 {
		t.Errorf("erasures{deleted} = %v, want 1", v)
	}
	if v := metric(t, in.ops, `ingestor_erasures_total{result="unknown"}`); v != 1 {
		t.Errorf("erasures{unknown} = %v, want 1", v)
	}
	// The log names erased orders by their hash only.
	var erasedLines []string
	for line := range strings.Lines(in.logs.String()) {
		if strings.Contains(line, `"msg":"order erased"`) {
			erasedLines = append(erasedLines, line)
		}
	}
	if len(erasedLines) != 2 || !strings.Contains(erasedLines[0], hashHex(order.OrderUID)) || !strings.Contains(erasedLines[1], hashHex(unknown.OrderUID)) {
		t.Errorf("log lines of the erasures: %q, want one per uid naming its hash", erasedLines)
	}
	for _, l := range erasedLines {
		if strings.Contains(l, order.OrderUID) || strings.Contains(l, unknown.OrderUID) {
			t.Errorf("an erasure log line names the uid: %s", l)
		}
	}

	// Delivered again: refused, and the dead letter keeps no content.
	again := e.produce(t, 1, orderRecord(t, order), orderRecord(t, unknown), tombstone(order.OrderUID))
	dl := e.dlqRecords(t, 2)
	for i, r := range dl {
		if reason, _ := header(r, "reason"); reason != "erased" {
			t.Errorf("dead letter %d: reason %q, want erased", i, reason)
		}
		if off, _ := header(r, "source_offset"); off != fmt.Sprint(again[i].offset) {
			t.Errorf("dead letter %d: source_offset %s, want %d", i, off, again[i].offset)
		}
		if r.Value != nil {
			t.Errorf("dead letter %d of an erased order carries its value (%d bytes)", i, len(r.Value))
		}
		if why, ok := header(r, "value_dropped"); !ok || why == "" {
			t.Errorf("dead letter %d: no value_dropped header", i)
		}
		if string(r.Key) != again[i].uid {
			t.Errorf("dead letter %d: key %q, want %q", i, r.Key, again[i].uid)
		}
	}
	eventually(t, 10*time.Second, func() string {
		if c := e.committed(t); c[0] != again[2].offset+1 {
			return fmt.Sprintf("committed %v, want %d", c, again[2].offset+1)
		}
		if v := metric(t, in.ops, `ingestor_erasures_total{result="repeated"}`); v != 1 {
			return fmt.Sprintf("erasures{repeated} = %v, want 1", v)
		}
		return ""
	})
	for _, uid := range []string{order.OrderUID, unknown.OrderUID} {
		if rows := e.rowsOf(t, uid); rows["orders"] != 0 {
			t.Errorf("erased uid %s stored again", uid)
		}
		if n := e.redis.Client.Exists(context.Background(), e.redis.Prefix+"order:"+uid).Val(); n != 0 {
			t.Errorf("erased uid %s cached again", uid)
		}
	}
	for _, c := range []struct {
		series string
		want   float64
	}{
		{`ingestor_messages_total{outcome="dead_lettered",reason="erased"}`, 2},
		{`ingestor_messages_total{outcome="erased",reason=""}`, 3},
		{`ingestor_messages_total{outcome="stored",reason=""}`, 2},
		{`ingestor_erasures_total{result="deleted"}`, 1},
	} {
		if v := metric(t, in.ops, c.series); v != c.want {
			t.Errorf("%s = %v, want %v", c.series, v, c.want)
		}
	}
	checkNoPersonalData(t, in.logs.String(), order, unknown, neighbour)
}

// Within one batch, orders and tombstones of a uid take effect in offset
// order: an order followed by its tombstone ends erased (never stored, no
// dead letter), an order after its uid's tombstone is dead-lettered as
// erased, and the batch's other orders are stored.
func TestTombstoneAndOrdersInOneBatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	cfg := e.config()
	cfg.BatchLinger = 500 * time.Millisecond // one batch for everything below
	in := start(t, cfg)
	events := e.events(t)
	gen := ordergen.New(43)
	before, after, other := gen.Order(), gen.Order(), gen.Order()

	sent := e.produce(t, 1,
		orderRecord(t, before), tombstone(before.OrderUID),
		tombstone(after.OrderUID), orderRecord(t, after),
		orderRecord(t, other))
	awaitEvents(t, events, []string{other.OrderUID}, []string{before.OrderUID, after.OrderUID})
	if v := metric(t, in.ops, "ingestor_batch_size_count"); v != 1 {
		t.Fatalf("%v batches, want the five messages in one", v)
	}
	dl := e.dlqRecords(t, 1)
	if reason, _ := header(dl[0], "reason"); reason != "erased" || string(dl[0].Key) != after.OrderUID {
		t.Errorf("dead letter: %s reason %q, want %s erased", dl[0].Key, reason, after.OrderUID)
	}
	if off, _ := header(dl[0], "source_offset"); off != fmt.Sprint(sent[3].offset) {
		t.Errorf("dead letter source_offset %s, want %d", off, sent[3].offset)
	}
	eventually(t, 10*time.Second, func() string {
		if c := e.committed(t); c[0] != 5 {
			return fmt.Sprintf("committed %v, want 5", c)
		}
		return ""
	})
	if n := e.dlqCount(t); n != 1 {
		t.Errorf("%d dead letters, want only the order after its tombstone", n)
	}
	for _, uid := range []string{before.OrderUID, after.OrderUID} {
		if rows := e.rowsOf(t, uid); rows["orders"] != 0 {
			t.Errorf("order %s stored", uid)
		}
	}
	if rows := e.rowsOf(t, other.OrderUID); rows["orders"] != 1 {
		t.Errorf("the batch's other order was not stored")
	}
	for _, c := range []struct {
		series string
		want   float64
	}{
		{`ingestor_messages_total{outcome="erased",reason=""}`, 3}, // two tombstones, the order before one
		{`ingestor_messages_total{outcome="dead_lettered",reason="erased"}`, 1},
		{`ingestor_messages_total{outcome="stored",reason=""}`, 1},
		{`ingestor_erasures_total{result="unknown"}`, 2}, // neither order was ever stored
	} {
		if v := metric(t, in.ops, c.series); v != c.want {
			t.Errorf("%s = %v, want %v", c.series, v, c.want)
		}
	}
}

// An erasure is done only once Redis has dropped the order: while Redis is
// away the batch is retried (the tombstone's offset does not move, the
// outage gauge says so), and once it is back the key is gone and the
// offset moves.
func TestErasureWaitsForRedis(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	redisURL, proxy := testenv.ProxyURL(t, e.redis.URL)
	cfg := e.config()
	cfg.RedisURL = redisURL
	in := start(t, cfg)
	o := ordergen.New(47).Order()
	key := e.redis.Prefix + "order:" + o.OrderUID
	e.produce(t, 1, orderRecord(t, o))
	eventually(t, 20*time.Second, func() string {
		if n := e.redis.Client.Exists(context.Background(), key).Val(); n != 1 {
			return "the order is not cached yet"
		}
		return ""
	})

	proxy.Cut()
	e.produce(t, 1, tombstone(o.OrderUID))
	eventually(t, 20*time.Second, func() string {
		if v := metric(t, in.ops, `ingestor_outage{stage="redis"}`); v != 1 {
			return fmt.Sprintf(`outage{stage="redis"} = %v`, v)
		}
		return ""
	})
	if rows := e.rowsOf(t, o.OrderUID); rows["orders"] != 0 {
		t.Errorf("the order is still in PostgreSQL during the Redis outage")
	}
	if n := e.redis.Client.Exists(context.Background(), key).Val(); n != 1 {
		t.Fatalf("the key went away while Redis was cut off: the test did not hold the erasure")
	}
	if c := e.committed(t); c[0] > 1 {
		t.Errorf("committed %v: the tombstone's offset moved before Redis dropped the order", c)
	}

	proxy.Restore()
	eventually(t, 30*time.Second, func() string {
		if n := e.redis.Client.Exists(context.Background(), key).Val(); n != 0 {
			return "Redis still holds the erased order"
		}
		if c := e.committed(t); c[0] != 2 {
			return fmt.Sprintf("committed %v, want 2", c)
		}
		if v := metric(t, in.ops, `ingestor_outage{stage="redis"}`); v != 0 {
			return fmt.Sprintf(`outage{stage="redis"} = %v after the restore`, v)
		}
		return ""
	})
}

// With INGESTOR_CONSISTENCY=accept, orders that break only consistency
// rules are stored as sent and counted by rule; with the default, reject,
// they are dead-lettered as invalid. An order that breaks a structural
// rule too is dead-lettered either way.
func TestConsistencyPolicy(t *testing.T) {
	t.Parallel()
	gen := ordergen.New(45)
	good := gen.Order()
	goodsTotal := gen.Order() // goods_total off the items' sum, amount consistent with it
	goodsTotal.Payment.GoodsTotal += 100
	goodsTotal.Payment.Amount += 100
	amount := gen.Order()
	amount.Payment.Amount++
	track := gen.Order()
	track.Items[0].TrackNumber = "OTHER" + track.TrackNumber
	// The upstream sample producer's shape: goods_total 900 against one
	// item of total_price 1000, amount matching neither.
	all := gen.Order()
	all.Items = all.Items[:1]
	all.Items[0].TotalPrice = 1000
	all.Payment.GoodsTotal, all.Payment.Amount = 900, 1
	all.Items[0].TrackNumber = "ELSEWHERE"
	structural := gen.Order()
	structural.Payment.Amount++
	structural.Delivery.Email = "nope"
	inconsistent := []*model.Order{goodsTotal, amount, track, all}

	for _, tc := range []struct {
		policy string
		stored []*model.Order
		letter []*model.Order
		rules  map[string]float64
	}{
		{"reject", []*model.Order{good}, append(slices.Clone(inconsistent), structural), map[string]float64{"goods_total": 0, "amount": 0, "track_number": 0}},
		{"accept", append([]*model.Order{good}, inconsistent...), []*model.Order{structural}, map[string]float64{"goods_total": 2, "amount": 2, "track_number": 2}},
	} {
		t.Run(tc.policy, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, 1)
			cfg := e.config()
			cfg.Consistency = config.Consistency(tc.policy)
			in := start(t, cfg)
			var recs []*kgo.Record
			for _, o := range append([]*model.Order{good, structural}, inconsistent...) {
				recs = append(recs, orderRecord(t, o))
			}
			e.produce(t, 1, recs...)
			dl := e.dlqRecords(t, len(tc.letter))
			eventually(t, 20*time.Second, func() string {
				if c := e.committed(t); c[0] != int64(len(recs)) {
					return fmt.Sprintf("committed %v, want %d", c, len(recs))
				}
				return ""
			})
			var lettered []string
			for _, r := range dl {
				if reason, _ := header(r, "reason"); reason != "invalid" {
					t.Errorf("dead letter %s: reason %q, want invalid", r.Key, reason)
				}
				lettered = append(lettered, string(r.Key))
			}
			for _, o := range tc.letter {
				if !slices.Contains(lettered, o.OrderUID) {
					t.Errorf("%s not dead-lettered (letters: %v)", o.OrderUID, lettered)
				}
			}
			if n := count(t, e.pg.Pool, `SELECT count(*) FROM orders`); n != len(tc.stored) {
				t.Errorf("%d orders stored, want %d", n, len(tc.stored))
			}
			for _, o := range tc.stored {
				// Stored as sent: the figures are not corrected.
				got, _ := loadOrder(t, e.pg.Pool, o.OrderUID)
				want, _ := json.Marshal(o)
				if g, _ := json.Marshal(got); o != good && !jsonEqual(t, g, want) {
					t.Errorf("order %s stored as %s, want %s", o.OrderUID, g, want)
				}
			}
			for rule, want := range tc.rules {
				series := fmt.Sprintf(`ingestor_inconsistent_orders_total{rule=%q}`, rule)
				if v, ok := sample(scrape(t, in.ops), series); !ok || v != want {
					t.Errorf("%s = %v (exported %v), want %v", series, v, ok, want)
				}
			}
		})
	}
}

// jsonEqual compares two JSON documents as values.
func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}
