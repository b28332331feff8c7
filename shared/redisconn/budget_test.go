package redisconn_test

import (
	"context"
	"testing"
	"time"

	"github.com/orderservice/orders/shared/redisconn"
)

// TestRemaining: the waits noted on a context add up and come off the
// timeout, never below 0; a wait of 0 adds no context value.
func TestRemaining(t *testing.T) {
	const timeout = 300 * time.Millisecond
	for _, tc := range []struct {
		name  string
		waits []time.Duration
		want  time.Duration
	}{
		{"no wait", nil, timeout},
		{"a wait of 0", []time.Duration{0}, timeout},
		{"one wait", []time.Duration{100 * time.Millisecond}, 200 * time.Millisecond},
		{"waits add up", []time.Duration{100 * time.Millisecond, 150 * time.Millisecond}, 50 * time.Millisecond},
		{"a whole timeout", []time.Duration{timeout}, 0},
		{"more than the timeout", []time.Duration{200 * time.Millisecond, 200 * time.Millisecond}, 0},
		{"a negative wait", []time.Duration{-time.Second}, timeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := context.Background()
			ctx := base
			for _, w := range tc.waits {
				ctx = redisconn.WithWaited(ctx, w)
			}
			if got := redisconn.Remaining(ctx, timeout); got != tc.want {
				t.Errorf("Remaining after %v = %v, want %v", tc.waits, got, tc.want)
			}
			if tc.want == timeout && ctx != base {
				t.Error("no wait, yet a new context")
			}
		})
	}
}
