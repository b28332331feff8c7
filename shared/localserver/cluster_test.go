package localserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func startCluster(ctx context.Context, t *testing.T, opts ClusterOptions) *Cluster {
	t.Helper()
	server, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server: %v (apt-get install redis-server)", err)
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatalf("redis-cli: %v (apt-get install redis-tools)", err)
	}
	opts.Dir = mkdir(t)
	start := time.Now()
	c, err := StartRedisCluster(ctx, server, cli, opts)
	if err != nil {
		t.Fatalf("StartRedisCluster: %v", err)
	}
	t.Logf("%d-node cluster up in %v", len(c.Nodes), time.Since(start))
	t.Cleanup(func() { c.Stop() })
	return c
}

func clusterClient(t *testing.T, url string) *redis.ClusterClient {
	t.Helper()
	opts, err := redis.ParseClusterURL(url)
	if err != nil {
		t.Fatalf("ParseClusterURL(%s): %v", url, err)
	}
	opts.MaxRetries = -1
	cc := redis.NewClusterClient(opts)
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// TestRedisCluster starts a cluster of each shape, checks its topology and
// that keys of every slot are served, loses a master, and checks what the
// cluster does then: with replicas one takes over and serves the lost
// master's keys; without, the other masters go on serving theirs and the
// lost slots stay down. Stop leaves nothing behind.
func TestRedisCluster(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		replicas int
	}{
		{"three masters", 0},
		{"three masters with a replica each", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			c := startCluster(ctx, t, ClusterOptions{Replicas: tt.replicas, NodeTimeout: time.Second})
			if want := 3 * (1 + tt.replicas); len(c.Nodes) != want {
				t.Fatalf("%d nodes, want %d", len(c.Nodes), want)
			}
			if n := strings.Count(c.URL, "addr="); n != len(c.Nodes)-1 {
				t.Fatalf("URL %s names %d extra nodes, want %d", c.URL, n, len(c.Nodes)-1)
			}
			cc := clusterClient(t, c.URL)
			info, err := cc.ClusterInfo(ctx).Result()
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"cluster_state:ok", "cluster_size:3", fmt.Sprintf("cluster_known_nodes:%d", len(c.Nodes))} {
				if !strings.Contains(info, want) {
					t.Fatalf("CLUSTER INFO lacks %s:\n%s", want, info)
				}
			}

			// Keys over every master, written by one pipeline that the
			// client splits by slot.
			keys := make([]string, 60)
			masters := map[string]bool{}
			_, err = cc.Pipelined(ctx, func(p redis.Pipeliner) error {
				for i := range keys {
					keys[i] = fmt.Sprint("key-", i)
					p.Set(ctx, keys[i], i, 0)
				}
				return nil
			})
			if err != nil {
				t.Fatalf("pipelined SETs across slots: %v", err)
			}
			for i, k := range keys {
				if v, err := cc.Get(ctx, k).Int(); err != nil || v != i {
					t.Fatalf("GET %s = %d, %v; want %d", k, v, err, i)
				}
				m, err := c.Master(ctx, k)
				if err != nil {
					t.Fatal(err)
				}
				masters[m.Addr] = true
			}
			if len(masters) != 3 {
				t.Fatalf("the keys live on %d masters, want 3", len(masters))
			}

			lost, err := c.Master(ctx, keys[0])
			if err != nil {
				t.Fatal(err)
			}
			if tt.replicas > 0 {
				// The replica has every write its master acknowledged
				// with WAIT.
				mc := nodeClient(lost.Addr)
				defer mc.Close()
				if n, err := mc.Wait(ctx, 1, 5*time.Second).Result(); err != nil || n < 1 {
					t.Fatalf("WAIT 1 on %s = %d, %v", lost.Addr, n, err)
				}
			}
			lost.Kill()
			if tt.replicas > 0 {
				if err := c.Await(ctx); err != nil {
					t.Fatalf("no replica took over from the killed master: %v", err)
				}
				now, err := c.Master(ctx, keys[0])
				if err != nil || now == lost {
					t.Fatalf("master of %s after the kill: %v, %v (killed %s)", keys[0], now, err, lost.Addr)
				}
				fresh := clusterClient(t, c.URL)
				for i, k := range keys {
					if v, err := fresh.Get(ctx, k).Int(); err != nil || v != i {
						t.Errorf("after the failover GET %s = %d, %v; want %d", k, v, err, i)
					}
				}
			} else {
				short, cancel := context.WithTimeout(ctx, 3*time.Second)
				err := c.Await(short)
				cancel()
				if err == nil {
					t.Fatal("Await says the cluster is whole with a master lost and no replica")
				}
				// The other masters serve their keys, asked directly.
				served := 0
				for i, k := range keys {
					m, err := c.Master(ctx, k)
					if err != nil {
						t.Fatal(err)
					}
					if m == lost {
						continue
					}
					mc := nodeClient(m.Addr)
					v, err := mc.Get(ctx, k).Int()
					_ = mc.Close()
					if err != nil || v != i {
						t.Fatalf("GET %s on surviving master %s = %d, %v", k, m.Addr, v, err)
					}
					served++
				}
				if served == 0 || served == len(keys) {
					t.Fatalf("%d of %d keys on the surviving masters, want some but not all", served, len(keys))
				}
			}

			c.Stop()
			for _, node := range c.Nodes {
				select {
				case <-node.Done():
				default:
					t.Errorf("node %s still running after Stop", node.Addr)
				}
				if conn, err := new(net.Dialer).DialContext(ctx, "tcp", node.Addr); err == nil {
					_ = conn.Close()
					t.Errorf("%s still answers after Stop", node.Addr)
				}
			}
			if _, err := os.Stat(c.Dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("directory %s left behind: %v", c.Dir, err)
			}
		})
	}
}

func TestRedisClusterNeedsThreeMasters(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, err := StartRedisCluster(context.Background(), "redis-server", "redis-cli", ClusterOptions{Options: Options{Dir: dir}, Masters: 2})
	if err == nil || !strings.Contains(err.Error(), "at least 3 masters") {
		t.Fatalf("err = %v, want one saying a cluster needs 3 masters", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("directory %s left behind: %v", dir, err)
	}
}
