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
// on any node and received on any other. go-redis sends each PUBLISH to a
// master in turn, and when that one fails to answer retries on the next,
// so publishing needs nothing more. It subscribes, though, on the master
// of the channel name's hash slot only: with that master lost and no
// replica to take over, the subscription could never be made again.
// Subscribe moves to another master after a failed attempt.

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
