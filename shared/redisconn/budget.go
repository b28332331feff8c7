package redisconn

import (
	"context"
	"time"
)

// One request may meet Redis more than once on its way: in the reader, the
// rate limiter leases tokens, then the cache looks the order up. Each
// bounds its own wait by the Redis timeout, and a shared Breaker keeps the
// second from waiting after the first timed out; but a request whose first
// user waited most of a timeout and then got an answer (a slow Redis, not
// a failed one) would wait again as long. WithWaited notes on a request's
// context how long it has waited for Redis so far, and Remaining gives the
// next user what is left of one timeout, so that a request waits for Redis
// at most one timeout in all.

type waitedKey struct{}

// WithWaited returns ctx noting that its request has waited d more for
// Redis (added to what ctx notes already). A d of 0 or less returns ctx
// itself: the requests Redis does not slow cost no context value.
func WithWaited(ctx context.Context, d time.Duration) context.Context {
	if d <= 0 {
		return ctx
	}
	prev, _ := ctx.Value(waitedKey{}).(time.Duration)
	return context.WithValue(ctx, waitedKey{}, prev+d)
}

// Remaining returns what is left of timeout once the Redis waits noted on
// ctx (WithWaited) are taken off: timeout itself when there are none, 0
// when they add up to timeout or more (the request should not wait for
// Redis again).
func Remaining(ctx context.Context, timeout time.Duration) time.Duration {
	waited, _ := ctx.Value(waitedKey{}).(time.Duration)
	return max(timeout-waited, 0)
}
