package retry_test

import (
	"testing"
	"time"

	"github.com/orderservice/orders/shared/retry"
)

const ms = time.Millisecond

// TestPolicyDelays checks the delays of a run of failures, twice (the second
// run after Reset). Without jitter each delay is its step exactly; with
// jitter it lies within ±Jitter of its step, and over many runs not every
// delay may be exact (that would be no jitter).
func TestPolicyDelays(t *testing.T) {
	tests := []struct {
		name   string
		policy retry.Policy
		steps  []time.Duration
	}{
		{
			name:   "reader circuit breaker: 100 ms doubling to 5 s",
			policy: retry.Policy{Initial: 100 * ms, Max: 5 * time.Second},
			steps:  []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 3200 * ms, 5000 * ms, 5000 * ms},
		},
		{
			name:   "ingestor retries: ±50% around 100 ms doubling to 5 s",
			policy: retry.Policy{Initial: 100 * ms, Max: 5 * time.Second, Jitter: 0.5},
			steps:  []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 3200 * ms, 5000 * ms, 5000 * ms},
		},
		{
			name:   "constant pause",
			policy: retry.Policy{Initial: 5 * time.Second, Max: 5 * time.Second},
			steps:  []time.Duration{5 * time.Second, 5 * time.Second, 5 * time.Second},
		},
		{
			name:   "small jitter",
			policy: retry.Policy{Initial: time.Second, Max: 4 * time.Second, Jitter: 0.1},
			steps:  []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second},
		},
		{
			name:   "max below initial",
			policy: retry.Policy{Initial: 300 * ms, Max: 100 * ms},
			steps:  []time.Duration{300 * ms, 300 * ms, 300 * ms},
		},
		{
			name:   "max not a power of two of initial",
			policy: retry.Policy{Initial: 20 * ms, Max: 250 * ms},
			steps:  []time.Duration{20 * ms, 40 * ms, 80 * ms, 160 * ms, 250 * ms, 250 * ms},
		},
		{
			name:   "zero policy",
			policy: retry.Policy{},
			steps:  []time.Duration{0, 0, 0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runs := 1
			if tt.policy.Jitter > 0 {
				runs = 200
			}
			varied := false
			for range runs {
				b := tt.policy.BackOff()
				for round := range 2 {
					for i, step := range tt.steps {
						got := b.NextBackOff()
						spread := time.Duration(tt.policy.Jitter * float64(step))
						if got < step-spread || got > step+spread+1 {
							t.Fatalf("round %d, delay %d = %v, want %v ± %v", round, i+1, got, step, spread)
						}
						varied = varied || got != step
					}
					b.Reset()
				}
			}
			if tt.policy.Jitter > 0 && !varied {
				t.Fatalf("every delay was exact: jitter %v not applied", tt.policy.Jitter)
			}
		})
	}
}
