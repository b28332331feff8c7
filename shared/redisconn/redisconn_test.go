package redisconn_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderservice/orders/shared/redisconn"
	"github.com/orderservice/orders/shared/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestOpen(t *testing.T) {
	t.Parallel()
	const timeout = 300 * time.Millisecond
	tests := []struct {
		url     string
		cluster bool
		check   func(redis.UniversalClient) string // "" when right
		err     string                             // substring of the error; "" for success
	}{
		{url: "redis://127.0.0.1:6379/2", check: func(c redis.UniversalClient) string {
			o := c.(*redis.Client).Options()
			if o.Addr != "127.0.0.1:6379" || o.DB != 2 || o.MaxRetries > 0 || o.ReadTimeout != timeout ||
				o.DialTimeout != timeout || o.DialerRetries != 1 || !o.ContextTimeoutEnabled {
				return fmt.Sprintf("options %+v", o)
			}
			return ""
		}},
		{url: "unix:///run/redis/redis.sock", check: func(c redis.UniversalClient) string {
			if o := c.(*redis.Client).Options(); o.Network != "unix" {
				return "network " + o.Network
			}
			return ""
		}},
		{url: "redis://:pw@h1:7001?addr=h2:7002&addr=h3:7003", cluster: true, check: func(c redis.UniversalClient) string {
			o := c.(*redis.ClusterClient).Options()
			if strings.Join(o.Addrs, ",") != "h1:7001,h2:7002,h3:7003" || o.Password != "pw" || o.MaxRetries != -1 ||
				o.ReadTimeout != timeout || o.DialerRetries != 1 || !o.ContextTimeoutEnabled {
				return fmt.Sprintf("options %+v", o)
			}
			return ""
		}},
		{url: "rediss://h1:7001/0?addr=h2:7002", cluster: true, check: func(c redis.UniversalClient) string {
			if o := c.(*redis.ClusterClient).Options(); o.TLSConfig == nil || o.TLSConfig.ServerName != "h1" {
				return "no TLS for rediss://"
			}
			return ""
		}},
		{url: "redis://:s3cret@h1:7001/1?addr=h2:7002", cluster: true, err: "database 0 only"},
		{url: "redis://:s3cret@h1:7001?addr=h2", cluster: true, err: "addr param"},
		{url: "redis://:s3cret@h1:7001?addr=h2:7002&bogus=1", cluster: true, err: "unexpected option: bogus"},
		{url: "redis://:s3cret@host:6379/abc", err: "invalid database number"},
		{url: "http://:s3cret@host:6379", err: "scheme"},
		{url: "redis://:s3cret@ho st:6379", err: "invalid Redis URL"},
	}
	for _, tt := range tests {
		if got := redisconn.IsCluster(tt.url); got != tt.cluster {
			t.Errorf("IsCluster(%s) = %v, want %v", tt.url, got, tt.cluster)
		}
		c, err := redisconn.Open(tt.url, redisconn.Options{Timeout: timeout})
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) || strings.Contains(err.Error(), "s3cret") {
				t.Errorf("Open(%s): %v; want an error with %q, without the password", tt.url, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Open(%s): %v", tt.url, err)
			continue
		}
		if msg := tt.check(c); msg != "" {
			t.Errorf("Open(%s): %s", tt.url, msg)
		}
		_ = c.Close()
	}
}

// TestClusterPipelinesAcrossSlots: one pipeline of SETs and one of GETs
// over keys of every master work, and Node names the master of each key.
func TestClusterPipelinesAcrossSlots(t *testing.T) {
	t.Parallel()
	rc := testenv.RedisCluster(t, 0)
	c, err := redisconn.Open(rc.URL, redisconn.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	keys := make([]string, 100)
	for i := range keys {
		keys[i] = fmt.Sprint(rc.Prefix, "order:", i)
	}
	_, err = c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			p.Set(ctx, k, i, time.Minute)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("pipelined SETs: %v", err)
	}
	gets := make([]*redis.StringCmd, len(keys))
	_, err = c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			gets[i] = p.Get(ctx, k)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("pipelined GETs: %v", err)
	}
	nodes := map[string]bool{}
	for i, k := range keys {
		if v, err := gets[i].Int(); err != nil || v != i {
			t.Fatalf("GET %s = %d, %v", k, v, err)
		}
		m, err := rc.Cluster.Master(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if got := redisconn.Node(ctx, c, k); got != m.Addr {
			t.Fatalf("Node(%s) = %s, want its master %s", k, got, m.Addr)
		}
		nodes[m.Addr] = true
	}
	if len(nodes) != 3 {
		t.Fatalf("keys on %d masters, want 3", len(nodes))
	}
	// MGET across slots is what a cluster refuses: the reason the
	// services pipeline single-key commands instead.
	if err := c.MGet(ctx, keys[:10]...).Err(); err == nil || !strings.Contains(err.Error(), "CROSSSLOT") {
		t.Fatalf("MGET across slots: %v, want CROSSSLOT", err)
	}
}

// TestPromotedReplicaIsUsedAtOnce: after a master is killed and its
// replica takes over, the client finds the new master within seconds (its
// failed commands reload the slot map), not at go-redis's 60 s refresh.
func TestPromotedReplicaIsUsedAtOnce(t *testing.T) {
	t.Parallel()
	rc := testenv.RedisCluster(t, 1)
	c, err := redisconn.Open(rc.URL, redisconn.Options{Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	key := rc.Prefix + "order:promoted"
	if err := c.Set(ctx, key, "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	lost, err := rc.Cluster.Master(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	rc.AwaitReplicated(t)
	lost.Kill()
	if err := c.Get(ctx, key).Err(); err == nil {
		t.Fatal("GET answered by a killed master")
	}
	start := time.Now()
	testenv.Await(t, "the key served by the promoted replica", 20*time.Second, func() bool {
		v, err := c.Get(ctx, key).Result()
		time.Sleep(50 * time.Millisecond) // pacing the polls, not synchronisation
		return err == nil && v == "v"
	})
	t.Logf("served again %v after the kill", time.Since(start))
	if now := redisconn.Node(ctx, c, key); now == lost.Addr || now == "" {
		t.Fatalf("Node still routes to the killed master %s: %q", lost.Addr, now)
	}
}

var errDown = errors.New("down")
