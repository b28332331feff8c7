package redisconn

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Pub/sub on a cluster.
//
// A Redis Cluster relays every PUBLISH (the classic, unsharded kind) over
// its bus to the subscribers of every node, so a message may be published
// on any node and received on any other. go-redis sends both to the master
// of the channel name's hash slot, which makes that one master a single
// point of failure for the channel: with it lost and no replica to take
// over, nothing could be published or subscribed. Publish and Subscribe
// use the slot's master while it answers and any other master otherwise.

// Publish publishes msg on channel: on c's one server, or on a cluster
// through the channel's slot master, then, if that fails other than with a
// reply, on each other master in turn until one takes it (each takes it
// for the whole cluster, so one is enough and more would deliver copies).
func Publish(ctx context.Context, c redis.UniversalClient, channel string, msg any) error {
	err := c.Publish(ctx, channel, msg).Err()
	cc, ok := c.(*redis.ClusterClient)
	if !ok || !stale(err) || ctx.Err() != nil {
		return err
	}
	first := Node(ctx, c, channel)
	for _, m := range masters(ctx, cc) {
		if m.Options().Addr == first {
			continue
		}
		if err2 := m.Publish(ctx, channel, msg).Err(); err2 == nil {
			return nil
		} else if ctx.Err() != nil {
			break
		}
	}
	return err
}

// Subscribe subscribes to channel for the attempt-th time (counting from
// 0, one more after each lost subscription): on c's one server; on a
// cluster, the first attempt on the channel's slot master as go-redis
// would, each next one on the next master of the slot map, so that a lost
// master costs one failed attempt, not the subscription.
func Subscribe(ctx context.Context, c redis.UniversalClient, channel string, attempt int) *redis.PubSub {
	cc, ok := c.(*redis.ClusterClient)
	if !ok || attempt == 0 {
		return c.Subscribe(ctx, channel)
	}
	ms := masters(ctx, cc)
	if len(ms) == 0 {
		return c.Subscribe(ctx, channel)
	}
	return ms[attempt%len(ms)].Subscribe(ctx, channel)
}

// masters returns a client of each master of cc's slot map, reloaded
// first, in address order (so that successive attempts walk them all).
func masters(ctx context.Context, cc *redis.ClusterClient) []*redis.Client {
	var (
		mu  sync.Mutex
		out []*redis.Client
	)
	err := cc.ForEachMaster(ctx, func(_ context.Context, m *redis.Client) error {
		mu.Lock()
		defer mu.Unlock()
		out = append(out, m)
		return nil
	})
	if err != nil && !errors.Is(err, context.Canceled) && len(out) == 0 {
		return nil
	}
	slices.SortFunc(out, func(a, b *redis.Client) int { return strings.Compare(a.Options().Addr, b.Options().Addr) })
	return out
}
