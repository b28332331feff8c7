// Package redisconn opens the Redis client both services use, from one URL
// that names either a single server or a Redis Cluster.
//
// A URL naming one node (redis://host:6379/0, rediss://, unix://) gives a
// go-redis *redis.Client. A URL naming several, in go-redis's
// ParseClusterURL form (redis://h1:7001?addr=h2:7002&addr=h3:7003), gives a
// *redis.ClusterClient: the nodes listed are where it first learns the
// cluster's slot map, and it then sends each key's command to the master
// serving the key's hash slot, splitting pipelines by slot. Both are a
// redis.UniversalClient, which is all the services see.
//
// Both clients are tuned for a cache: every command and dial is bounded by
// the caller's timeout and nothing is retried (a failed cache operation is
// cheaper to skip than to wait for), except that a cluster client still
// follows MOVED and ASK redirections. A cluster command that fails other
// than with a Redis reply (a connection refused, a timeout, CLUSTERDOWN)
// reloads the slot map at once instead of at go-redis's 60 s refresh, so
// that a replica promoted in place of a lost master is used as soon as the
// cluster has promoted it.
package redisconn

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Options are the client settings the services choose; the URL gives the
// rest (credentials, TLS, database, go-redis's query parameters).
type Options struct {
	// Timeout bounds each read, write and wait for a pooled connection.
	Timeout time.Duration
	// DialTimeout bounds each connection attempt; 0 means Timeout.
	DialTimeout time.Duration
}

// IsCluster reports whether url names a Redis Cluster: several nodes, the
// first as the URL's host and the others as addr query parameters.
func IsCluster(rawURL string) bool {
	u, err := url.Parse(rawURL)
	return err == nil && u.Query().Has("addr")
}

// Open returns the client for url (see the package comment). It does not
// connect: the first command does. The error never quotes url, which may
// hold a password.
func Open(rawURL string, o Options) (redis.UniversalClient, error) {
	if o.DialTimeout == 0 {
		o.DialTimeout = o.Timeout
	}
	if IsCluster(rawURL) {
		return openCluster(rawURL, o)
	}
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, parseError(err)
	}
	opts.MaxRetries = -1
	opts.DialerRetries = 1
	opts.DialTimeout = o.DialTimeout
	opts.ReadTimeout, opts.WriteTimeout, opts.PoolTimeout = o.Timeout, o.Timeout, o.Timeout
	// Without this go-redis ignores the context's deadline on the socket.
	opts.ContextTimeoutEnabled = true
	return redis.NewClient(opts), nil
}

func openCluster(rawURL string, o Options) (redis.UniversalClient, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, parseError(err)
	}
	if db := strings.Trim(u.Path, "/"); db != "" && db != "0" {
		return nil, errors.New("invalid Redis URL: a Redis Cluster has database 0 only; remove the path")
	}
	u.Path = ""
	opts, err := redis.ParseClusterURL(u.String())
	if err != nil {
		return nil, parseError(err)
	}
	opts.MaxRetries = -1
	opts.DialerRetries = 1
	opts.DialTimeout = o.DialTimeout
	opts.ReadTimeout, opts.WriteTimeout, opts.PoolTimeout = o.Timeout, o.Timeout, o.Timeout
	opts.ContextTimeoutEnabled = true
	cc := redis.NewClusterClient(opts)
	cc.AddHook(reloadOnFailure{cc})
	return cc, nil
}

// parseError is go-redis's parse error without the URL: url.Parse's
// errors quote it (password included); go-redis's own name only the part
// that is wrong.
func parseError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("invalid Redis URL: %s", ue.Err.Error())
	}
	return fmt.Errorf("invalid Redis URL: %s", strings.TrimPrefix(err.Error(), "redis: "))
}

// reloadOnFailure asks a cluster client to reload its slot map after a
// command fails other than with a plain answer: the node it was sent to may
// have been replaced by a replica (go-redis otherwise reloads only on
// MOVED, which a dead node never sends, and every 60 s). go-redis coalesces
// reloads, at most one per 200 ms.
type reloadOnFailure struct{ cc *redis.ClusterClient }

func (h reloadOnFailure) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h reloadOnFailure) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if NodeFailed(err) {
			h.cc.ReloadState(ctx)
		}
		return err
	}
}

func (h reloadOnFailure) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		if err != nil {
			for _, cmd := range cmds {
				if NodeFailed(cmd.Err()) {
					h.cc.ReloadState(ctx)
					break
				}
			}
		}
		return err
	}
}

// NodeFailed reports whether err is the failure of the node a command went
// to: it could not be reached or did not answer in time, or the cluster
// says it is down. A miss, an error reply about the command itself (the
// node answered) and a caller's cancellation are not. It is what a
// Breaker's Done should be told, and on a cluster it may mean that the
// slot map is out of date.
func NodeFailed(err error) bool {
	if err == nil || errors.Is(err, redis.Nil) || errors.Is(err, context.Canceled) {
		return false
	}
	var reply redis.Error
	if errors.As(err, &reply) {
		return strings.HasPrefix(err.Error(), "CLUSTERDOWN")
	}
	return true
}

// Node returns the address of the node c sends key's commands to: its one
// server, or the master serving key's hash slot in the cluster's slot map
// as c knows it now (no round trip). It returns "" when a cluster client
// has no slot map yet and cannot load one.
func Node(ctx context.Context, c redis.UniversalClient, key string) string {
	switch c := c.(type) {
	case *redis.ClusterClient:
		m, err := c.MasterForKey(ctx, key)
		if err != nil {
			return ""
		}
		return m.Options().Addr
	case *redis.Client:
		return c.Options().Addr
	}
	return ""
}
