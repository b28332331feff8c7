package cache_test

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orderservice/orders/reader/cache"
	"github.com/orderservice/orders/shared/ordergen"
	"github.com/orderservice/orders/shared/testenv"
)

// stalledRemote is a shared tier whose lookups answer only once release
// closes (or their context ends).
type stalledRemote struct {
	cache.Remote
	release <-chan struct{}
}

func (s *stalledRemote) Get(ctx context.Context, uid string) ([]byte, error) {
	select {
	case <-s.release:
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
	return s.Remote.Get(ctx, uid)
}

// watchedStore counts the store's lookups, and closes answered once the
// first has its answer; with fail, each fails.
type watchedStore struct {
	cache.Store
	gets     atomic.Int64
	fail     bool
	answered chan struct{}
}

func (s *watchedStore) Get(ctx context.Context, uid string) (body []byte, err error) {
	if s.gets.Add(1) == 1 {
		defer close(s.answered)
	}
	if s.fail {
		return nil, errors.New("database down")
	}
	return s.Store.Get(ctx, uid)
}

// TestRemoteHedge: a lookup that Redis does not answer within the hedge
// delay asks PostgreSQL as well and is settled by the first answer that
// settles it: the database's order without waiting for Redis; when the
// database does not hold it or fails, Redis's answer, which comes after
// the database's (an order, or not found); a Redis that answers in time
// is the only tier asked.
func TestRemoteHedge(t *testing.T) {
	t.Parallel()
	never := make(chan struct{}) // Redis stalled for the whole lookup
	for _, tc := range []struct {
		name       string
		inDB       bool // the order is in the database
		inRedis    bool // and in Redis
		stalled    bool // Redis answers only after the database (never, with the order in it)
		dbFails    bool
		hedge      time.Duration
		wantSource cache.Source
		wantErr    error
		wantGets   int64   // store lookups
		wantSlow   float64 // lookups counted redis "slow"
	}{
		{name: "stalled redis, stored order", inDB: true, stalled: true, hedge: 10 * time.Millisecond,
			wantSource: cache.DB, wantGets: 1, wantSlow: 1},
		{name: "slow redis, unknown order", stalled: true, hedge: 10 * time.Millisecond,
			wantErr: cache.ErrNotFound, wantGets: 1, wantSlow: 1},
		{name: "slow redis holds it, not in the database", inRedis: true, stalled: true, hedge: 10 * time.Millisecond,
			wantSource: cache.Redis, wantGets: 1, wantSlow: 1},
		{name: "slow redis holds it, database down", inDB: true, inRedis: true, stalled: true, dbFails: true, hedge: 10 * time.Millisecond,
			wantSource: cache.Redis, wantGets: 1, wantSlow: 1},
		{name: "redis in time", inDB: true, inRedis: true, hedge: time.Minute,
			wantSource: cache.Redis, wantGets: 0, wantSlow: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var store *watchedStore
			f := newFixture(t, 1<<20, func(o *cache.Options) {
				o.RemoteHedge = tc.hedge
				store = &watchedStore{Store: o.Store, fail: tc.dbFails, answered: make(chan struct{})}
				o.Store = store
				if tc.stalled {
					release := never
					if !tc.inDB || tc.dbFails {
						release = store.answered
					}
					o.Remote = &stalledRemote{Remote: o.Remote, release: release}
				}
			})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			o := ordergen.New(91).Order()
			if tc.inDB {
				testenv.InsertOrders(t, f.pg.Pool, o)
			}
			want := canonical(t, o)
			if tc.inRedis {
				if err := f.rd.Client.Set(ctx, f.rd.Prefix+"order:"+o.OrderUID, want, time.Minute).Err(); err != nil {
					t.Fatal(err)
				}
			}
			got, src, err := f.tiers.Get(ctx, o.OrderUID)
			switch {
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Get: %v, want %v", err, tc.wantErr)
				}
			case err != nil:
				t.Fatalf("Get: %v", err)
			case src != tc.wantSource || !bytes.Equal(got.Body, want):
				t.Fatalf("Get: %s from %q, want the order from %q", got.Body, src, tc.wantSource)
			}
			if n := store.gets.Load(); n != tc.wantGets {
				t.Errorf("%d store lookups, want %d", n, tc.wantGets)
			}
			if n := f.count("redis", "slow"); n != tc.wantSlow {
				t.Errorf("%v lookups counted redis slow, want %v", n, tc.wantSlow)
			}
		})
	}
}
