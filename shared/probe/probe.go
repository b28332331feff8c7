// Package probe tells whether a PostgreSQL or Redis server answers, and
// waits until a check passes: the one way the development stack, the
// throwaway servers of localserver and the test environment find out that
// a server is up.
package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/orderservice/orders/shared/retry"
)

// pingTimeout bounds one ping, so that a server that accepts connections
// and never answers (or an address that drops them) does not hold a wait
// for longer than a few polls.
const pingTimeout = 5 * time.Second

// Postgres connects to the server at url (a postgres:// URL or DSN) once
// and pings it.
func Postgres(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return conn.Ping(ctx)
}

// Redis sends PING once to the server at url (redis:// or rediss://).
func Redis(ctx context.Context, url string) error {
	opts, err := redis.ParseURL(url)
	if err != nil {
		// The parse error may quote the URL, password included.
		return errors.New("parse redis url: not a valid redis:// or rediss:// URL")
	}
	ctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	// A plain connect first: when nothing listens (the usual answer while
	// a server starts) go-redis would log its dial failure to stderr.
	conn, err := new(net.Dialer).DialContext(ctx, opts.Network, opts.Addr)
	if err != nil {
		return err
	}
	_ = conn.Close()
	opts.MaxRetries = -1
	opts.DialerRetries = 1
	c := redis.NewClient(opts)
	defer c.Close()
	return c.Ping(ctx).Err()
}

// poll is how often Wait checks: soon at first (a local server is up within
// milliseconds), then every 200 ms.
var poll = retry.Policy{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond}

// Permanent marks err as one that waiting cannot cure (the process that was
// to answer has exited): Wait returns err at once.
func Permanent(err error) error { return backoff.Permanent(err) }

// Wait calls check until it returns nil, returns an error marked with
// Permanent (Wait returns that error), or ctx ends or timeout passes (Wait
// returns the context's error and check's last one).
func Wait(ctx context.Context, timeout time.Duration, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		last = check(ctx)
		return struct{}{}, last
	}, backoff.WithBackOff(poll.BackOff()), backoff.WithMaxElapsedTime(0))
	var perm *backoff.PermanentError
	if err == nil || errors.As(last, &perm) || ctx.Err() == nil {
		return err
	}
	return fmt.Errorf("%w (last error: %w)", ctx.Err(), last)
}
