package main

import (
	"net/http"
	"testing"

	"github.com/orderservice/orders/shared/ordergen"
	"github.com/orderservice/orders/shared/testenv"
)

// TestReadReplica runs the reader with READER_DATABASE_REPLICA_URLS on a
// real streaming replica: lookups are served by the replica; an order the
// paused replica has not replayed yet is served (by the primary), never a
// 404; with the replica stopped the primary serves everything, and the
// metrics say which target answered.
func TestReadReplica(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := testenv.PostgresWithReplica(t)
	e.pg = r.PG
	e.vars["DATABASE_URL"] = r.URLAs("order_reader")
	e.vars["READER_DATABASE_REPLICA_URLS"] = r.ReplicaURLAs("order_reader")
	e.vars["READER_WARM_COUNT"] = "0"
	gen := ordergen.New(61)
	first := gen.Order()
	testenv.InsertOrders(t, r.Pool, first)
	r.AwaitReplay(t)
	rd := e.start(t, true)
	get := func(uid string, want int) {
		t.Helper()
		resp := rd.do(t, http.MethodGet, "/order/"+uid)
		if resp.status != want {
			t.Fatalf("GET /order/%s: %d %s, want %d", uid, resp.status, resp.body, want)
		}
	}
	get(first.OrderUID, http.StatusOK)
	if n := rd.metric(t, `reader_db_target_lookups_total{result="found",target="replica1"}`); n != 1 {
		t.Fatalf("found on replica1: %v, want 1", n)
	}
	if up := rd.metric(t, `reader_db_replica_up{target="replica1"}`); up != 1 {
		t.Fatalf("reader_db_replica_up = %v", up)
	}

	// Lag: the order is committed on the primary, not replayed yet.
	r.PauseReplay(t)
	late := gen.Order()
	testenv.InsertOrders(t, r.Pool, late)
	r.AwaitReceived(t)
	resp := rd.do(t, http.MethodGet, "/order/"+late.OrderUID)
	if resp.status != http.StatusOK || resp.header.Get("X-Cache") != "db" {
		t.Fatalf("an order the replica lags behind: %d X-Cache %q %s", resp.status, resp.header.Get("X-Cache"), resp.body)
	}
	requireJSONEqual(t, resp.body, canonical(t, late))
	if n := rd.metric(t, `reader_db_replica_rechecks_total{result="found"}`); n != 1 {
		t.Fatalf("rechecks found = %v, want 1", n)
	}
	r.ResumeReplay(t)

	// The replica stopped: the primary serves, the unknown stays unknown.
	r.Replica.Stop()
	after := gen.Order()
	testenv.InsertOrders(t, r.Pool, after)
	get(after.OrderUID, http.StatusOK)
	requireProblem(t, rd.do(t, http.MethodGet, "/order/unknown-with-the-replica-down"), http.StatusNotFound)
	if up := rd.metric(t, `reader_db_replica_up{target="replica1"}`); up != 0 {
		t.Fatalf("reader_db_replica_up = %v with the replica stopped", up)
	}
	if n := rd.metric(t, `reader_db_target_lookups_total{result="found",target="primary"}`); n < 2 {
		t.Fatalf("found on the primary: %v, want the lagging and the later order", n)
	}
	if resp := rd.do(t, http.MethodGet, "/readyz"); resp.status != http.StatusOK {
		t.Fatalf("/readyz = %d with the replica stopped", resp.status)
	}
}
