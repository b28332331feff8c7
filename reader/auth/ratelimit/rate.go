package ratelimit

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Rate is a limit of Limit events per Period with bursts of up to Burst
// events (a GCRA bucket of Burst tokens refilled at Limit per Period).
// The zero Rate, and any Rate whose Limit is 0, is no limit at all.
type Rate struct {
	Limit  int
	Period time.Duration
	Burst  int
}

// PerSecond is limit events a second in bursts of up to burst (at least 1).
func PerSecond(limit, burst int) Rate { return per(limit, burst, time.Second) }

// PerMinute is limit events a minute in bursts of up to burst (at least 1).
func PerMinute(limit, burst int) Rate { return per(limit, burst, time.Minute) }

func per(limit, burst int, period time.Duration) Rate {
	if limit <= 0 {
		return Rate{}
	}
	return Rate{Limit: limit, Period: period, Burst: max(burst, 1)}
}

// Unlimited reports whether r limits nothing.
func (r Rate) Unlimited() bool { return r.Limit <= 0 || r.Period <= 0 }

// interval is the time one token takes to come back.
func (r Rate) interval() time.Duration { return r.Period / time.Duration(r.Limit) }

// String writes r as ParseRate reads it when Period is a second.
func (r Rate) String() string {
	if r.Unlimited() {
		return "0"
	}
	if r.Period == time.Second {
		return fmt.Sprintf("%d/%d", r.Limit, r.Burst)
	}
	return fmt.Sprintf("%d per %v, burst %d", r.Limit, r.Period, r.Burst)
}

// maxPerSecond bounds what ParseRate accepts: far above what one reader
// serves, low enough that no arithmetic on it overflows.
const maxPerSecond = 1_000_000

// ParseRate reads a per-second rate as written in an API key's entry and
// in the configuration: "R/B" is R requests a second in bursts of up to B,
// "R" is R a second in bursts of R, and "0" is no limit.
func ParseRate(s string) (Rate, error) {
	limitText, burstText, hasBurst := strings.Cut(s, "/")
	limit, err := parseCount(limitText)
	if err != nil {
		return Rate{}, fmt.Errorf("rate: requests per second: %w", err)
	}
	burst := limit
	if hasBurst {
		if burst, err = parseCount(burstText); err != nil {
			return Rate{}, fmt.Errorf("rate: burst: %w", err)
		}
	}
	if limit == 0 {
		if hasBurst && burst != 0 {
			return Rate{}, errors.New("rate: a burst needs a rate above 0 (0 alone disables the limit)")
		}
		return Rate{}, nil
	}
	if burst == 0 {
		return Rate{}, errors.New("rate: burst must be at least 1")
	}
	return PerSecond(limit, burst), nil
}

func parseCount(s string) (int, error) {
	if s == "" || len(s) > 7 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("must be a whole number from 0 to %d", maxPerSecond)
	}
	n, err := strconv.Atoi(s)
	if err != nil || n > maxPerSecond {
		return 0, fmt.Errorf("must be a whole number from 0 to %d", maxPerSecond)
	}
	return n, nil
}
