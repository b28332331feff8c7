package main

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/orderservice/orders/shared/localserver"
	"github.com/orderservice/orders/shared/model"
	"github.com/orderservice/orders/shared/ordergen"
	"github.com/orderservice/orders/shared/testenv"
)

// A master of the Redis Cluster is killed mid-stream. The ingestor keeps
// storing every order in PostgreSQL and committing offsets (never ahead of
// the data), stays ready, keeps caching the orders of the surviving
// masters throughout, and once the lost master's replica has taken over
// caches that master's slots again, without a restart.
func TestRedisClusterMasterKilledMidStream(t *testing.T) {
	t.Parallel()
	const partitions, before, during = 3, 60, 240
	e := newEnv(t, partitions)
	rc := testenv.RedisCluster(t, 1)
	cfg := e.config()
	cfg.RedisURL, cfg.RedisKeyPrefix = rc.URL, rc.Prefix
	cfg.BatchSize = 20
	in := start(t, cfg)
	ctx := context.Background()
	key := func(o *model.Order) string { return model.CacheKey(rc.Prefix, o.OrderUID) }
	cached := func(o *model.Order) bool { return rc.Client.Exists(ctx, key(o)).Val() == 1 }
	master := func(o *model.Order) *localserver.Server {
		m, err := rc.Cluster.Master(ctx, key(o))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	stored := func() int { return count(t, e.pg.Pool, `SELECT count(*) FROM orders`) }

	gen := ordergen.New(31)
	var l ledger
	e.produceStream(t, gen, before, 10, partitions, &l)
	eventually(t, 30*time.Second, func() string {
		if n := stored(); n != before {
			return fmt.Sprintf("%d of %d orders stored before the kill", n, before)
		}
		for _, o := range l.orders {
			if !cached(o) {
				return "order " + o.OrderUID + " not cached before the kill"
			}
		}
		return ""
	})
	lost := master(l.orders[0])
	surviving := map[*localserver.Server]bool{}
	for _, o := range l.orders {
		if m := master(o); m != lost {
			surviving[m] = true
		}
	}
	rc.AwaitReplicated(t)
	lost.Kill()

	produced := make(chan struct{})
	go func() {
		defer close(produced)
		e.produceStream(t, gen, during, 10, partitions, &l)
	}()
	for {
		e.checkCommitted(t, &l)
		if s := httpStatus("http://" + in.ops + "/readyz"); s != http.StatusOK {
			t.Fatalf("/readyz = %d with a Redis master lost (the cache is optional)", s)
		}
		select {
		case <-produced:
		case <-time.After(100 * time.Millisecond): // pacing the checks, not synchronisation
			continue
		}
		break
	}
	total := before + during
	eventually(t, 60*time.Second, func() string {
		e.checkCommitted(t, &l)
		if n := stored(); n != total {
			return fmt.Sprintf("%d of %d orders stored", n, total)
		}
		var sum int64
		for _, o := range e.committed(t) {
			sum += o
		}
		if sum != int64(total) {
			return fmt.Sprintf("committed offsets sum to %d, want %d", sum, total)
		}
		return ""
	})
	if v := metric(t, in.ops, `ingestor_redis_errors_total`); v == 0 {
		t.Error("no cache error counted with a master killed mid-stream")
	}
	// Every order whose slot a surviving master serves is cached, those
	// ingested while the other master was down included.
	onSurvivors := 0
	for _, o := range l.orders {
		if surviving[master(o)] {
			onSurvivors++
			if !cached(o) {
				t.Errorf("order %s, on a surviving master, is not cached", o.OrderUID)
			}
		}
	}
	if onSurvivors == 0 || onSurvivors == total {
		t.Fatalf("%d of %d orders on the surviving masters, want some but not all", onSurvivors, total)
	}

	// Recovered: a replica serves the lost master's slots, and new orders
	// of those slots are cached again (after the circuit's next probe).
	if err := rc.Cluster.Await(ctx); err != nil {
		t.Fatalf("no replica took over: %v", err)
	}
	var sent []*model.Order
	eventually(t, 30*time.Second, func() string {
		o := gen.Order()
		l.add(e.produce(t, partitions, orderRecord(t, o)), o)
		if !surviving[master(o)] {
			sent = append(sent, o)
		}
		time.Sleep(100 * time.Millisecond) // pacing the probes, not synchronisation
		for _, o := range sent {
			if cached(o) {
				return ""
			}
		}
		return fmt.Sprintf("none of %d orders of the lost master's slots sent after the failover is cached", len(sent))
	})
	checkNoPersonalData(t, in.logs.String(), l.orders...)
}
