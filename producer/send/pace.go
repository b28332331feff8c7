package send

import (
	"context"
	"time"
)

// Pacer spaces events at a steady rate without a ticker: the n-th event is
// due at start + n/rate, so a late wake-up is made up by the next events
// instead of drifting, and no ticks pile up while the caller is blocked
// elsewhere. The zero value (or a rate of 0) never waits.
type Pacer struct {
	interval time.Duration
	start    time.Time
	n        int64
	now      func() time.Time
}

// maxBehind is how far behind schedule the pacer may fall and still catch up.
const maxBehind = time.Second

// NewPacer returns a pacer for rate events per second; 0 means no limit.
func NewPacer(rate float64) *Pacer {
	p := &Pacer{now: time.Now}
	if rate > 0 {
		p.interval = time.Duration(float64(time.Second) / rate)
	}
	return p
}

// Interval is the spacing of events, 0 when there is no limit.
func (p *Pacer) Interval() time.Duration {
	if p == nil {
		return 0
	}
	return p.interval
}

// Wait blocks until the next event is due or ctx ends.
func (p *Pacer) Wait(ctx context.Context) error {
	if p == nil || p.interval <= 0 {
		return ctx.Err()
	}
	now := p.now()
	if p.n == 0 {
		p.start = now
	}
	due := p.start.Add(time.Duration(p.n) * p.interval)
	if now.Sub(due) > maxBehind {
		// After a long stall (a full queue, a broker outage) start over
		// rather than send a burst to catch up.
		p.start, p.n, due = now, 0, now
	}
	p.n++
	d := due.Sub(now)
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
