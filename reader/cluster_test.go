package main

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/orderservice/orders/shared/localserver"
	"github.com/orderservice/orders/shared/model"
	"github.com/orderservice/orders/shared/ordergen"
	"github.com/orderservice/orders/shared/testenv"
)

// clusterEnv is a reader's environment on a private Redis Cluster, with
// the in-process tier and the hedge off so that X-Cache names the tier
// behind it, and n orders stored in PostgreSQL and cached in the cluster
// as the ingestor caches them.
func clusterEnv(t *testing.T, replicas, n int) (*env, *testenv.RedisClusterEnv, []*model.Order) {
	t.Helper()
	e := newEnv(t)
	rc := testenv.RedisCluster(t, replicas)
	e.vars["REDIS_URL"], e.vars["READER_REDIS_KEY_PREFIX"] = rc.URL, rc.Prefix
	e.vars["READER_WARM_COUNT"], e.vars["READER_CACHE_BYTES"] = "0", "0"
	// No hedge: a Redis node's first command (its connection, the
	// cluster's slots after a master is lost) may take longer than the
	// hedge delay, and X-Cache would then name whichever tier answered
	// first rather than the one that holds the order.
	e.vars["READER_REDIS_HEDGE"] = "0"
	gen := ordergen.New(41)
	orders := make([]*model.Order, n)
	for i := range orders {
		orders[i] = gen.Order()
		if err := rc.Client.Set(context.Background(), model.CacheKey(rc.Prefix, orders[i].OrderUID), canonical(t, orders[i]), time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
	}
	testenv.InsertOrders(t, e.pg.Pool, orders...)
	return e, rc, orders
}

func masterOf(t *testing.T, rc *testenv.RedisClusterEnv, o *model.Order) *localserver.Server {
	t.Helper()
	m, err := rc.Cluster.Master(context.Background(), model.CacheKey(rc.Prefix, o.OrderUID))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestRedisClusterMasterLost: with a master of a three-master cluster
// killed (no replica to take over), every order is still served, and
// correct: those of the surviving masters from Redis, those of the lost
// one from PostgreSQL. The reader stays ready and reports Redis not
// fully up.
func TestRedisClusterMasterLost(t *testing.T) {
	t.Parallel()
	e, rc, orders := clusterEnv(t, 0, 30)
	r := e.start(t, true)
	lost := masterOf(t, rc, orders[0])
	lost.Kill()
	fromRedis, fromDB := 0, 0
	for round := range 2 {
		for _, o := range orders {
			resp := r.do(t, http.MethodGet, "/order/"+o.OrderUID)
			if resp.status != http.StatusOK {
				t.Fatalf("round %d: %s: %d %s", round, o.OrderUID, resp.status, resp.body)
			}
			requireJSONEqual(t, resp.body, canonical(t, o))
			want := "redis"
			if masterOf(t, rc, o) == lost {
				want = "db"
			}
			if got := resp.header.Get("X-Cache"); got != want {
				t.Fatalf("round %d: %s answered by %q, want %q", round, o.OrderUID, got, want)
			}
			if want == "redis" {
				fromRedis++
			} else {
				fromDB++
			}
		}
	}
	if fromRedis == 0 || fromDB == 0 {
		t.Fatalf("%d answers from Redis, %d from PostgreSQL: want both", fromRedis, fromDB)
	}
	if up := r.metric(t, "reader_redis_up"); up != 0 {
		t.Errorf("reader_redis_up = %v with a master lost", up)
	}
	if resp := r.do(t, http.MethodGet, "/readyz"); resp.status != http.StatusOK {
		t.Errorf("/readyz = %d with a master lost (the cache is optional)", resp.status)
	}
}

// TestRedisClusterFailover: after a master is killed and its replica takes
// over, the lost master's orders are served from Redis again, without a
// restart, and reader_redis_up is back to 1.
func TestRedisClusterFailover(t *testing.T) {
	t.Parallel()
	e, rc, orders := clusterEnv(t, 1, 20)
	rc.AwaitReplicated(t)
	r := e.start(t, true)
	lost := masterOf(t, rc, orders[0])
	lost.Kill()
	resp := r.do(t, http.MethodGet, "/order/"+orders[0].OrderUID)
	if resp.status != http.StatusOK {
		t.Fatalf("with its master killed: %d %s", resp.status, resp.body)
	}
	requireJSONEqual(t, resp.body, canonical(t, orders[0]))
	start := time.Now()
	testenv.Await(t, "the lost master's order served from Redis again", 30*time.Second, func() bool {
		resp := r.do(t, http.MethodGet, "/order/"+orders[0].OrderUID)
		if resp.status != http.StatusOK {
			t.Fatalf("during the failover: %d %s", resp.status, resp.body)
		}
		time.Sleep(20 * time.Millisecond) // pacing the polls, not synchronisation
		return resp.header.Get("X-Cache") == "redis"
	})
	t.Logf("served from Redis again %v after the kill", time.Since(start))
	for _, o := range orders {
		resp := r.do(t, http.MethodGet, "/order/"+o.OrderUID)
		if resp.status != http.StatusOK || resp.header.Get("X-Cache") != "redis" {
			t.Fatalf("%s after the failover: %d X-Cache %q", o.OrderUID, resp.status, resp.header.Get("X-Cache"))
		}
		requireJSONEqual(t, resp.body, canonical(t, o))
	}
	testenv.Await(t, "reader_redis_up back to 1", 10*time.Second, func() bool {
		return r.metric(t, "reader_redis_up") == 1
	})
}
