package localserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderservice/orders/shared/probe"
)

// ClusterOptions says how to run a throwaway Redis Cluster.
type ClusterOptions struct {
	// Dir, Output, Pdeathsig, StopSignal, StopGrace and Args apply to
	// every node; each node keeps its files in a directory of its own
	// under Dir. Port is ignored: every node listens on a free port.
	Options
	// Masters is the number of masters, which share the 16384 hash slots
	// (default and least 3: redis-cli refuses fewer).
	Masters int
	// Replicas is the number of replicas of each master (default 0). With
	// one or more, a replica takes over its master's slots once the master
	// has been unreachable for NodeTimeout.
	Replicas int
	// NodeTimeout is cluster-node-timeout: how long a node may be
	// unreachable before the others count it as failed (default 2 s;
	// production uses the Redis default, 15 s).
	NodeTimeout time.Duration
}

// Cluster is a running throwaway Redis Cluster.
//
// Its nodes run with cluster-require-full-coverage off: when a master is
// lost and no replica takes over, the other masters go on serving their
// slots (the right trade for a cache, whose misses fall back to the
// database) instead of the whole cluster refusing every command.
type Cluster struct {
	// URL names every node in go-redis's ParseClusterURL form,
	// redis://host1:port1?addr=host2:port2&addr=..., which the services
	// read as a cluster.
	URL string
	// Nodes are the cluster's nodes, masters first as created. Roles
	// change when a replica takes over: ask Master for the current one.
	Nodes []*Server
	// Dir holds every node's directory; Stop removes it.
	Dir string
}

// StartRedisCluster runs opts.Masters × (1 + opts.Replicas) redis-server
// processes (server is the redis-server binary) in cluster mode, without
// persistence, joins them with `redis-cli --cluster create` (cli is the
// redis-cli binary) and returns once every node reports cluster_state:ok,
// every slot has a master and every replica is in sync with its master.
// ctx bounds the start only.
func StartRedisCluster(ctx context.Context, server, cli string, opts ClusterOptions) (*Cluster, error) {
	if opts.Masters == 0 {
		opts.Masters = 3
	}
	if opts.NodeTimeout == 0 {
		opts.NodeTimeout = 2 * time.Second
	}
	c := &Cluster{Dir: opts.Dir}
	fail := func(err error) (*Cluster, error) {
		c.Stop()
		return nil, err
	}
	if opts.Masters < 3 || opts.Replicas < 0 {
		return fail(fmt.Errorf("a Redis Cluster needs at least 3 masters and no negative replica count, got %d and %d", opts.Masters, opts.Replicas))
	}
	n := opts.Masters * (1 + opts.Replicas)
	for i := range n {
		node, err := startClusterNode(ctx, server, opts, i)
		if err != nil {
			return fail(fmt.Errorf("cluster node %d: %w", i, err))
		}
		c.Nodes = append(c.Nodes, node)
	}
	args := []string{"--cluster", "create"}
	for _, node := range c.Nodes {
		args = append(args, node.Addr)
	}
	args = append(args, "--cluster-replicas", strconv.Itoa(opts.Replicas), "--cluster-yes")
	// cli is the system redis-cli, as server is the system redis-server.
	create := exec.CommandContext(ctx, cli, args...) //nolint:gosec // G204: running the system redis-cli is the point
	create.Dir = opts.Dir
	if out, err := create.CombinedOutput(); err != nil {
		return fail(fmt.Errorf("redis-cli --cluster create: %w: %s", err, tail(out)))
	}
	c.URL = "redis://" + c.Nodes[0].Addr
	for i, node := range c.Nodes[1:] {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		c.URL += sep + "addr=" + node.Addr
	}
	if err := c.Await(ctx); err != nil {
		return fail(fmt.Errorf("throwaway Redis Cluster did not form: %w", err))
	}
	return c, nil
}

// startClusterNode starts node i in opts.Dir/node-<i>, with its cluster
// bus on a free port of its own (cluster-port), so that no port+10000 rule
// constrains the choice.
//
// A free port is only free when it was probed: another process (a parallel
// test) may bind it before redis-server does. The node then exits with
// "Address already in use", and the start is tried again on new ports.
func startClusterNode(ctx context.Context, server string, opts ClusterOptions, i int) (*Server, error) {
	var err error
	for range portAttempts {
		var s *Server
		s, err = startClusterNodeOnce(ctx, server, opts, i)
		if err == nil || !strings.Contains(err.Error(), "Address already in use") {
			return s, err
		}
	}
	return nil, err
}

// portAttempts bounds the restarts of a server whose probed port was taken.
const portAttempts = 3

func startClusterNodeOnce(ctx context.Context, server string, opts ClusterOptions, i int) (*Server, error) {
	dir := filepath.Join(opts.Dir, "node-"+strconv.Itoa(i))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	// Both ports are probed while both probes are open, so the node's
	// client port cannot be the one just chosen for its bus.
	ports, err := freePorts(ctx, 2)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	busPort := strconv.Itoa(ports[0])
	nodeOpts := opts.Options
	nodeOpts.Dir, nodeOpts.Port = dir, ports[1]
	nodeOpts.Args = append([]string{
		"--cluster-enabled", "yes",
		"--cluster-config-file", filepath.Join(dir, "nodes.conf"),
		"--cluster-port", busPort,
		"--cluster-node-timeout", strconv.FormatInt(opts.NodeTimeout.Milliseconds(), 10),
		"--cluster-require-full-coverage", "no",
		// A replica's first sync starts at once, not after the 5 s that
		// Redis waits for more replicas to share a diskless transfer.
		"--repl-diskless-sync-delay", "0",
	}, opts.Args...)
	return StartRedis(ctx, server, nodeOpts)
}

// Stop stops every node, removes Dir and says how long it took. It is safe
// to call more than once.
func (c *Cluster) Stop() time.Duration {
	start := time.Now()
	for _, node := range c.Nodes {
		node.Stop()
	}
	if c.Dir != "" {
		_ = os.RemoveAll(c.Dir)
	}
	return time.Since(start)
}

// Await waits until the cluster is whole as far as its running nodes can
// make it: each of them reports cluster_state:ok, every slot is served by
// a running master (so after a master is killed it waits for a replica to
// take over, which never happens without replicas), and every running
// replica's link to its master is up. It gives up after startTimeout or
// when ctx ends.
func (c *Cluster) Await(ctx context.Context) error {
	return probe.Wait(ctx, startTimeout, func(ctx context.Context) error {
		running := c.running()
		if len(running) == 0 {
			return probe.Permanent(errors.New("no node is running"))
		}
		for _, node := range running {
			if err := nodeWhole(ctx, node.Addr, running); err != nil {
				return fmt.Errorf("%s: %w", node.Addr, err)
			}
		}
		return nil
	})
}

// running returns the nodes whose process has not exited.
func (c *Cluster) running() []*Server {
	var out []*Server
	for _, node := range c.Nodes {
		select {
		case <-node.Done():
		default:
			out = append(out, node)
		}
	}
	return out
}

// nodeWhole checks one node's view of the cluster (see Await).
func nodeWhole(ctx context.Context, addr string, running []*Server) error {
	rc := nodeClient(addr)
	defer rc.Close()
	info, err := rc.ClusterInfo(ctx).Result()
	if err != nil {
		return err
	}
	if !strings.Contains(info, "cluster_state:ok") {
		return errors.New("cluster_state is not ok")
	}
	shards, err := rc.ClusterShards(ctx).Result()
	if err != nil {
		return err
	}
	isRunning := func(port int64) bool {
		return slices.ContainsFunc(running, func(s *Server) bool {
			_, p, _ := net.SplitHostPort(s.Addr)
			return p == strconv.FormatInt(port, 10)
		})
	}
	var slots int64
	for _, sh := range shards {
		var master bool
		for _, n := range sh.Nodes {
			if n.Role == "master" && n.Health == "online" && isRunning(n.Port) {
				master = true
			}
		}
		if !master {
			continue
		}
		for _, r := range sh.Slots {
			slots += r.End - r.Start + 1
		}
	}
	if slots != 16384 {
		return fmt.Errorf("%d of 16384 slots served by a running master", slots)
	}
	repl, err := rc.Info(ctx, "replication").Result()
	if err != nil {
		return err
	}
	if strings.Contains(repl, "role:slave") && !strings.Contains(repl, "master_link_status:up") {
		return errors.New("replica not in sync with its master")
	}
	return nil
}

// Master returns the node that serves key's hash slot now, as the first
// running node answering CLUSTER SHARDS sees it.
func (c *Cluster) Master(ctx context.Context, key string) (*Server, error) {
	var last error
	for _, node := range c.running() {
		rc := nodeClient(node.Addr)
		slot, err := rc.ClusterKeySlot(ctx, key).Result()
		if err == nil {
			var shards []redis.ClusterShard
			if shards, err = rc.ClusterShards(ctx).Result(); err == nil {
				_ = rc.Close()
				return c.shardMaster(shards, slot, key)
			}
		}
		_ = rc.Close()
		last = err
	}
	return nil, fmt.Errorf("no running node answers: %w", last)
}

func (c *Cluster) shardMaster(shards []redis.ClusterShard, slot int64, key string) (*Server, error) {
	for _, sh := range shards {
		if !slices.ContainsFunc(sh.Slots, func(r redis.SlotRange) bool { return r.Start <= slot && slot <= r.End }) {
			continue
		}
		for _, n := range sh.Nodes {
			if n.Role != "master" {
				continue
			}
			for _, s := range c.Nodes {
				if _, p, _ := net.SplitHostPort(s.Addr); p == strconv.FormatInt(n.Port, 10) {
					return s, nil
				}
			}
		}
	}
	return nil, fmt.Errorf("no master serves slot %d of %q", slot, key)
}

// nodeClient is a client of one node alone, which fails at once rather
// than retrying: Await polls.
func nodeClient(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialerRetries: 1,
		DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second})
}

// tail returns the last tailSize bytes of out.
func tail(out []byte) []byte {
	if len(out) > tailSize {
		return out[len(out)-tailSize:]
	}
	return out
}
