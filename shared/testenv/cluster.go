package testenv

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderservice/orders/shared/localserver"
)

// RedisClusterEnv is a throwaway Redis Cluster of the test's own.
type RedisClusterEnv struct {
	// URL names every node in go-redis's ParseClusterURL form
	// (redis://h1:p1?addr=h2:p2&...), as the services take a cluster.
	URL string
	// Client is a cluster client of URL, closed at cleanup. It reloads
	// the slot map when it is older than 100 ms, so it follows failovers.
	Client *redis.ClusterClient
	// Prefix ("t<hex>:") is for the code under test, as RedisEnv's: keys
	// under it spread over every slot.
	Prefix string
	// Cluster is the running cluster: its nodes may be killed
	// (Node.Kill), and Master says which node serves a key.
	Cluster *localserver.Cluster
}

// RedisCluster starts a Redis Cluster of three masters, each with replicas
// replicas, private to the test and stopped when it ends, so the test may
// kill its nodes. Nodes count one another as failed after one second
// unreachable (cluster-node-timeout), so a replica takes over a killed
// master within a few seconds. It needs redis-server and redis-cli on
// PATH; it fails the test when they are missing or the cluster does not
// form. A start takes about two seconds.
func RedisCluster(t testing.TB, replicas int) *RedisClusterEnv {
	t.Helper()
	server, err := defaultSources().lookPath("redis-server")
	if err != nil {
		t.Fatalf("testenv: RedisCluster: no redis-server binary: install redis-server")
	}
	cli, err := defaultSources().lookPath("redis-cli")
	if err != nil {
		t.Fatalf("testenv: RedisCluster: no redis-cli binary: install redis-tools (or redis-server)")
	}
	dir, err := serverDir("testenv-redis-cluster-")
	if err != nil {
		t.Fatalf("testenv: RedisCluster: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := localserver.StartRedisCluster(ctx, server, cli, localserver.ClusterOptions{
		Options: serverOptions(dir, syscall.SIGTERM), Replicas: replicas, NodeTimeout: time.Second,
	})
	if err != nil {
		t.Fatalf("testenv: RedisCluster: %v", err)
	}
	t.Cleanup(func() { c.Stop() })
	opts, err := redis.ParseClusterURL(c.URL)
	if err != nil {
		t.Fatalf("testenv: RedisCluster: %v", err)
	}
	// Reloaded whenever older than this: the test's own client sees a
	// replica that took over within a command or two, as the services'
	// clients do (they reload after a failure).
	opts.ClusterStateReloadInterval = 100 * time.Millisecond
	cc := redis.NewClusterClient(opts)
	t.Cleanup(func() { _ = cc.Close() })
	return &RedisClusterEnv{URL: c.URL, Client: cc, Prefix: "t" + randomHex(6) + ":", Cluster: c}
}

// AwaitReplicated waits until every master's writes so far are on its
// replicas (WAIT on each master), so that a replica taking over holds
// them. It is for clusters started with replicas.
func (e *RedisClusterEnv) AwaitReplicated(t testing.TB) {
	t.Helper()
	err := e.Client.ForEachMaster(context.Background(), func(ctx context.Context, m *redis.Client) error {
		n, err := m.Wait(ctx, 1, 10*time.Second).Result()
		if err == nil && n < 1 {
			err = fmt.Errorf("%s: no replica acknowledged", m.Options().Addr)
		}
		return err
	})
	if err != nil {
		t.Fatalf("testenv: AwaitReplicated: %v", err)
	}
}
