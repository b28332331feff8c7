package redis

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/orderservice/orders/ingestor/ingest"
	"github.com/orderservice/orders/shared/testenv"
)

func entries(from, to int) []ingest.CacheEntry {
	out := make([]ingest.CacheEntry, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, ingest.CacheEntry{UID: fmt.Sprint("u", i), Canonical: []byte(fmt.Sprint(i))})
	}
	return out
}

func clusterCache(t *testing.T) (*testenv.RedisClusterEnv, *Cache) {
	t.Helper()
	rc := testenv.RedisCluster(t, 0)
	client, err := NewClient(rc.URL, 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return rc, New(client, rc.Prefix, time.Hour, 500*time.Millisecond)
}

// TestSetOnCluster: one Set writes a batch whose keys span every master.
func TestSetOnCluster(t *testing.T) {
	t.Parallel()
	rc, c := clusterCache(t)
	ctx := context.Background()
	batch := entries(0, 100)
	if failed, err := c.Set(ctx, batch); err != nil || failed != 0 {
		t.Fatalf("Set of 100 orders across slots: %d failed, %v", failed, err)
	}
	masters := map[string]bool{}
	for _, e := range batch {
		key := c.Key(e.UID)
		if got := rc.Client.Get(ctx, key).Val(); got != string(e.Canonical) {
			t.Fatalf("GET %s = %q, want %q", key, got, e.Canonical)
		}
		if ttl := rc.Client.TTL(ctx, key).Val(); ttl <= 59*time.Minute || ttl > time.Hour {
			t.Fatalf("TTL %s = %s, want about 1h", key, ttl)
		}
		m, err := rc.Cluster.Master(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		masters[m.Addr] = true
	}
	if len(masters) != 3 {
		t.Fatalf("the batch landed on %d masters, want 3", len(masters))
	}
}

// TestSetWithAMasterLost: with one master killed, a batch's orders on the
// other masters are written and those of the lost one counted as failed;
// the next batches skip the lost master without waiting for it.
func TestSetWithAMasterLost(t *testing.T) {
	t.Parallel()
	rc, c := clusterCache(t)
	ctx := context.Background()
	lost, err := rc.Cluster.Master(ctx, c.Key("u0"))
	if err != nil {
		t.Fatal(err)
	}
	lost.Kill()
	onLost := func(batch []ingest.CacheEntry) int {
		n := 0
		for _, e := range batch {
			if m, err := rc.Cluster.Master(ctx, c.Key(e.UID)); err != nil {
				t.Fatal(err)
			} else if m == lost {
				n++
			}
		}
		return n
	}
	for round := range 5 {
		batch := entries(round*100, round*100+100)
		want := onLost(batch)
		start := time.Now()
		failed, err := c.Set(ctx, batch)
		if round == 0 {
			// Within the pause after the failure: skipped, not sent.
			again, err := c.Set(ctx, batch)
			if !errors.Is(err, errSkipped) || again != want {
				t.Fatalf("a Set right after the failure: %d failed, %v; want %d skipped", again, err, want)
			}
		}
		if err == nil || failed != want {
			t.Fatalf("round %d: %d failed, %v; want the %d orders of the lost master", round, failed, err, want)
		}
		if round > 0 {
			// Past the circuit's pause one order probes the lost master
			// (refused at once); the others are skipped.
			if d := time.Since(start); d > 300*time.Millisecond {
				t.Errorf("round %d took %v: the lost master is waited for", round, d)
			}
		}
		for _, e := range batch {
			m, err := rc.Cluster.Master(ctx, c.Key(e.UID))
			if err != nil {
				t.Fatal(err)
			}
			if m == lost {
				continue
			}
			if got := rc.Client.Get(ctx, c.Key(e.UID)).Val(); got != string(e.Canonical) {
				t.Fatalf("round %d: GET %s on a live master = %q", round, c.Key(e.UID), got)
			}
		}
	}
}

// TestDeleteAndAnnounceOnCluster: erased orders are deleted from every
// master in one call (a multi-key DEL would be refused across slots), and
// a batch's events published through the cluster reach a subscriber on
// any master.
func TestDeleteAndAnnounceOnCluster(t *testing.T) {
	t.Parallel()
	rc, c := clusterCache(t)
	ctx := context.Background()
	batch := entries(0, 50)
	if failed, err := c.Set(ctx, batch); err != nil || failed != 0 {
		t.Fatalf("Set: %d failed, %v", failed, err)
	}
	uids := make([]string, len(batch))
	for i, e := range batch {
		uids[i] = e.UID
	}
	if err := c.Delete(ctx, uids); err != nil {
		t.Fatalf("Delete across slots: %v", err)
	}
	for _, uid := range uids {
		if n := rc.Client.Exists(ctx, c.Key(uid)).Val(); n != 0 {
			t.Fatalf("%s still cached after Delete", uid)
		}
	}
	// A subscriber on each master: the cluster relays the message to all.
	var (
		mu   sync.Mutex
		subs []*goredis.PubSub
	)
	err := rc.Client.ForEachMaster(ctx, func(ctx context.Context, m *goredis.Client) error {
		ps := m.Subscribe(ctx, c.Channel())
		mu.Lock()
		subs = append(subs, ps)
		mu.Unlock()
		_, err := ps.ReceiveTimeout(ctx, 5*time.Second) // the confirmation
		return err
	})
	if err != nil || len(subs) != 3 {
		t.Fatalf("subscribing on the %d masters: %v", len(subs), err)
	}
	defer func() {
		for _, ps := range subs {
			_ = ps.Close()
		}
	}()
	if err := c.Announce(ctx, ingest.Changes{Stored: []string{"u1"}, Erased: []string{"u2"}}); err != nil {
		t.Fatalf("Announce on a cluster: %v", err)
	}
	for _, ps := range subs {
		msg, err := ps.ReceiveTimeout(ctx, 5*time.Second)
		m, ok := msg.(*goredis.Message)
		if err != nil || !ok || m.Payload != `{"stored":["u1"],"erased":["u2"]}` {
			t.Fatalf("a master's subscriber received %v, %v", msg, err)
		}
	}
}
