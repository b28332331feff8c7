// Package retry holds the one backoff policy type of the services: how long
// to wait after each of a run of consecutive failures. The ingestor retries
// its database and dead-letter writes with it and pauses its cache writes
// with it, the reader paces its Redis circuit breaker with it, and the
// development stack and tests poll for servers with it. The delays
// themselves come from cenkalti/backoff, the usual Go implementation.
package retry

import (
	"time"

	"github.com/cenkalti/backoff/v5"
)

// Policy is an exponential backoff: the delay after the first failure is
// Initial, each next one twice the last, up to Max. Jitter, between 0 and 1,
// spreads every delay at random over ±Jitter of itself (0.5: from half to
// one and a half times), so that many clients failing together do not try
// again in step; 0 makes the delays exact.
//
// A Max below Initial means Initial every time; the zero Policy waits not at
// all.
type Policy struct {
	Initial time.Duration
	Max     time.Duration
	Jitter  float64
}

// BackOff returns a new schedule following p: each NextBackOff is the delay
// before the next attempt, and Reset, after a success, starts again from
// Initial. Like every backoff.ExponentialBackOff it is not safe for
// concurrent use: each run of attempts, or the lock that guards it, owns one.
func (p Policy) BackOff() *backoff.ExponentialBackOff {
	b := &backoff.ExponentialBackOff{
		InitialInterval:     p.Initial,
		RandomizationFactor: p.Jitter,
		Multiplier:          2,
		MaxInterval:         max(p.Max, p.Initial),
	}
	b.Reset()
	return b
}
