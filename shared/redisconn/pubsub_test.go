package redisconn_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderservice/orders/shared/redisconn"
	"github.com/orderservice/orders/shared/testenv"
)

// TestSubscribeWalksTheMasters: successive attempts subscribe on each
// master of the cluster in turn, and each subscription receives what is
// published through the cluster client, whichever node took the PUBLISH.
func TestSubscribeWalksTheMasters(t *testing.T) {
	t.Parallel()
	rc := testenv.RedisCluster(t, 0)
	c, err := redisconn.Open(rc.URL, redisconn.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	channel := rc.Prefix + "orders:events"
	nodes := map[string]bool{}
	for attempt := range 4 {
		ps := redisconn.Subscribe(ctx, c, channel, attempt)
		if _, err := ps.ReceiveTimeout(ctx, 5*time.Second); err != nil { // the subscription's confirmation
			t.Fatalf("attempt %d: %v", attempt, err)
		}
		// CLIENT LIST on each master tells which one holds the subscriber.
		var on string
		err := c.(*redis.ClusterClient).ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			list, err := m.ClientList(ctx).Result()
			if err == nil && containsSub(list) {
				on = m.Options().Addr
			}
			return err
		})
		if err != nil || on == "" {
			t.Fatalf("attempt %d: subscriber not found on any master (%v)", attempt, err)
		}
		nodes[on] = true
		for i := range 3 { // PUBLISH goes to the masters in turn
			msg := fmt.Sprint("m", attempt, i)
			if err := c.Publish(ctx, channel, msg).Err(); err != nil {
				t.Fatal(err)
			}
			got, err := receiveOwn(ctx, ps, fmt.Sprint("m", attempt, " "))
			if err != nil || got.Payload != msg {
				t.Fatalf("attempt %d: received %v, %v; want %s", attempt, got, err, msg)
			}
		}
		_ = ps.Close()
		testenv.Await(t, "the subscriber gone", 5*time.Second, func() bool {
			gone := true
			_ = c.(*redis.ClusterClient).ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
				if list, err := m.ClientList(ctx).Result(); err == nil && containsSub(list) {
					gone = false
				}
				return nil
			})
			return gone
		})
	}
	if len(nodes) != 3 {
		t.Fatalf("four attempts subscribed on %d masters, want all 3", len(nodes))
	}
}

// receiveOwn returns the next message whose payload starts with prefix.
// The cluster bus relays each PUBLISH to the other nodes on its own time,
// so a node may deliver a message of an earlier attempt (received there on
// another node already) to this attempt's new subscriber; those are skipped.
func receiveOwn(ctx context.Context, ps *redis.PubSub, prefix string) (*redis.Message, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for {
		m, err := ps.ReceiveMessage(ctx)
		if err != nil || strings.HasPrefix(m.Payload, prefix) {
			return m, err
		}
	}
}

// containsSub reports whether a CLIENT LIST shows a subscribed client.
func containsSub(list string) bool {
	for line := range strings.Lines(list) {
		if strings.Contains(line, " sub=1 ") {
			return true
		}
	}
	return false
}
