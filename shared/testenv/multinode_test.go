package testenv

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// TestRedisClusterEnv: the cluster serves keys of every slot through its
// client, its URL is one go-redis reads as a cluster, and two calls give
// two clusters.
func TestRedisClusterEnv(t *testing.T) {
	t.Parallel()
	a, b := RedisCluster(t, 0), RedisCluster(t, 0)
	if a.URL == b.URL {
		t.Fatalf("two calls gave the same cluster %s", a.URL)
	}
	ctx := context.Background()
	opts, err := redis.ParseClusterURL(a.URL)
	if err != nil || len(opts.Addrs) != 3 {
		t.Fatalf("ParseClusterURL(%s) = %v, %v; want 3 addresses", a.URL, opts, err)
	}
	masters := map[string]bool{}
	for i := range 30 {
		key := fmt.Sprint(a.Prefix, "k", i)
		if err := a.Client.Set(ctx, key, i, 0).Err(); err != nil {
			t.Fatal(err)
		}
		m, err := a.Cluster.Master(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		masters[m.Addr] = true
		if n, err := b.Client.Exists(ctx, key).Result(); err != nil || n != 0 {
			t.Fatalf("key %s of one cluster seen in the other: %d, %v", key, n, err)
		}
	}
	if len(masters) != 3 {
		t.Fatalf("keys under the prefix live on %d masters, want 3", len(masters))
	}
}

// TestPostgresWithReplica: the replica holds the migrated database, follows
// the primary's writes, lags while paused, and refuses writes.
func TestPostgresWithReplica(t *testing.T) {
	t.Parallel()
	r := PostgresWithReplica(t)
	ctx := context.Background()
	count := func() int {
		var n int
		if err := r.ReplicaPool.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n); err != nil {
			t.Fatalf("count on the replica: %v", err)
		}
		return n
	}
	if n := count(); n != 0 {
		t.Fatalf("a fresh replica holds %d orders", n)
	}
	InsertOrders(t, r.Pool, Sample(t))
	r.AwaitReplay(t)
	if n := count(); n != 1 {
		t.Fatalf("after AwaitReplay the replica holds %d orders, want 1", n)
	}
	r.PauseReplay(t)
	o := Sample(t)
	o.OrderUID, o.Payment.Transaction = "lagging", "lagging"
	InsertOrders(t, r.Pool, o)
	r.AwaitReceived(t)
	if n := count(); n != 1 {
		t.Fatalf("paused, the replica holds %d orders, want 1", n)
	}
	r.ResumeReplay(t)
	r.AwaitReplay(t)
	if n := count(); n != 2 {
		t.Fatalf("resumed, the replica holds %d orders, want 2", n)
	}
	if _, err := r.ReplicaPool.Exec(ctx, "DELETE FROM orders"); err == nil {
		t.Fatal("the replica accepted a write")
	}
	// The roles came with the copy: the reader's role reads the replica.
	conn, err := pgx.Connect(ctx, r.ReplicaURLAs("order_reader"))
	if err != nil {
		t.Fatalf("connect to the replica as order_reader: %v", err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n); err != nil || n != 2 {
		t.Fatalf("order_reader on the replica counts %d orders, %v; want 2", n, err)
	}
}
