package redis

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/orderservice/orders/ingestor/ingest"
	"github.com/orderservice/orders/shared/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestSetWritesPrefixedKeysWithTTL(t *testing.T) {
	t.Parallel()
	env, c := newTestCache(t)
	entries := []ingest.CacheEntry{{UID: "a", Canonical: []byte(`{"order_uid":"a"}`)}, {UID: "b", Canonical: []byte(`{"order_uid":"b"}`)}}
	if failed, err := c.Set(context.Background(), entries); err != nil || failed != 0 {
		t.Fatalf("Set: %d failed, %v", failed, err)
	}
	for _, e := range entries {
		key := env.Prefix + "order:" + e.UID
		if got := env.Client.Get(context.Background(), key).Val(); got != string(e.Canonical) {
			t.Errorf("GET %s = %q, want %q", key, got, e.Canonical)
		}
		if ttl := env.Client.TTL(context.Background(), key).Val(); ttl <= 59*time.Minute || ttl > time.Hour {
			t.Errorf("TTL %s = %s, want about 1h", key, ttl)
		}
	}
}

// A Redis that does not answer fails the whole pipeline within the timeout.
func TestSetReportsEveryFailure(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // accepts and never answers: a black hole
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
		}
	}()
	client, err := NewClient("redis://"+ln.Addr().String()+"/0", 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	c := New(client, "", time.Hour, 200*time.Millisecond)
	start := time.Now()
	failed, err := c.Set(context.Background(), []ingest.CacheEntry{{UID: "a", Canonical: []byte("{}")}, {UID: "b", Canonical: []byte("{}")}})
	if err == nil || failed != 2 {
		t.Fatalf("Set to a black hole: %d failed, %v; want 2 and an error", failed, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Set took %s, want it bounded by the 200ms timeout", d)
	}
}

func TestNewClientRejectsBadURL(t *testing.T) {
	t.Parallel()
	if _, err := NewClient("http://user:secret@host", time.Second); err == nil {
		t.Fatal("NewClient accepted an http URL")
	}
}

// Delete removes exactly the named orders' keys.
func TestDeleteRemovesErasedOrders(t *testing.T) {
	t.Parallel()
	env, c := newTestCache(t)
	ctx := context.Background()
	entries := []ingest.CacheEntry{{UID: "a", Canonical: []byte(`{}`)}, {UID: "b", Canonical: []byte(`{}`)}, {UID: "c", Canonical: []byte(`{}`)}}
	if _, err := c.Set(ctx, entries); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, []string{"a", "c", "never-cached"}); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	for uid, want := range map[string]int64{"a": 0, "b": 1, "c": 0} {
		if n := env.Client.Exists(ctx, env.Prefix+"order:"+uid).Val(); n != want {
			t.Errorf("key of %s: exists %d, want %d", uid, n, want)
		}
	}
	if err := c.Delete(ctx, nil); err != nil {
		t.Errorf("Delete of nothing: %v", err)
	}
}

// Announce publishes one model.Events message on the prefixed channel.
func TestAnnouncePublishesEvents(t *testing.T) {
	t.Parallel()
	env, c := newTestCache(t)
	ctx := context.Background()
	if want := env.Prefix + "orders:events"; c.Channel() != want {
		t.Errorf("Channel() = %q, want %q", c.Channel(), want)
	}
	sub := env.Client.Subscribe(ctx, c.Channel())
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil { // the subscription's confirmation
		t.Fatal(err)
	}
	if err := c.Announce(ctx, ingest.Changes{Stored: []string{"a", "b"}, Erased: []string{"c"}}); err != nil {
		t.Fatalf("Announce: %v", err)
	}
	if err := c.Announce(ctx, ingest.Changes{Stored: []string{"d"}}); err != nil {
		t.Fatalf("Announce: %v", err)
	}
	for _, want := range []string{`{"stored":["a","b"],"erased":["c"]}`, `{"stored":["d"]}`} {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		msg, err := sub.ReceiveMessage(rctx)
		cancel()
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		if msg.Channel != c.Channel() || msg.Payload != want {
			t.Errorf("received %q on %s, want %q", msg.Payload, msg.Channel, want)
		}
	}
}

// newTestCache returns a test Redis and a Cache on it, under the test's key
// prefix, with a one-hour TTL and a one-second timeout.
func newTestCache(t *testing.T) (*testenv.RedisEnv, *Cache) {
	t.Helper()
	env := testenv.Redis(t)
	client, err := NewClient(env.URL, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return env, New(client, env.Prefix, time.Hour, time.Second)
}
