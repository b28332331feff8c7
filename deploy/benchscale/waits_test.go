//go:build benchscale

package benchscale

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// waitInterval is how often the wait sampler looks.
const waitInterval = 25 * time.Millisecond

// waitSample is what the machine and PostgreSQL were doing at one moment
// of the uncached GETs.
type waitSample struct {
	At      time.Time
	IO, CPU pressure
	// Busy are PostgreSQL's processes that were not idle, one line each:
	// backend type, role, wait event and the query's start.
	Busy []string
}

// waitSampler samples, every waitInterval, the machine's I/O and CPU
// pressure and what PostgreSQL's non-idle processes wait on, so that a
// stall of the GETs can be matched with its cause (the lookups waiting on
// reads, a lock, the WAL, or the machine's CPU).
type waitSampler struct {
	cancel context.CancelFunc
	done   chan []waitSample
}

// busyQuery lists PostgreSQL's processes doing something: Activity waits
// are background processes' idle loops, and idle client connections wait
// on ClientRead.
const busyQuery = `SELECT backend_type, coalesce(usename, '-'), coalesce(wait_event_type || '/' || wait_event, 'on CPU'),
       left(regexp_replace(coalesce(query, ''), '\s+', ' ', 'g'), 70)
  FROM pg_stat_activity
 WHERE pid <> pg_backend_pid() AND coalesce(state, '') NOT IN ('idle', 'idle in transaction')
   AND coalesce(wait_event_type, '') <> 'Activity'`

func (r *run) sampleWaits() *waitSampler {
	ctx, cancel := context.WithCancel(context.Background())
	s := &waitSampler{cancel: cancel, done: make(chan []waitSample, 1)}
	conn, err := r.pg.Pool.Acquire(ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	go func() {
		defer conn.Release()
		var out []waitSample
		tick := time.NewTicker(waitInterval)
		defer tick.Stop()
		for {
			ws := waitSample{At: time.Now()}
			ws.IO, _ = readPressure("io")
			ws.CPU, _ = readPressure("cpu")
			rows, err := conn.Query(ctx, busyQuery)
			if err == nil {
				ws.Busy, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (string, error) {
					var typ, role, wait, query string
					err := row.Scan(&typ, &role, &wait, &query)
					return fmt.Sprintf("%s (%s) %s: %s", typ, role, wait, query), err
				})
			}
			if err != nil && ctx.Err() == nil {
				ws.Busy = []string{"sampling failed: " + err.Error()}
			}
			out = append(out, ws)
			select {
			case <-ctx.Done():
				s.done <- out
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

// finish stops the sampler and returns its samples.
func (s *waitSampler) finish() []waitSample {
	s.cancel()
	return <-s.done
}

func readPressure(resource string) (pressure, error) {
	b, err := os.ReadFile("/proc/pressure/" + resource)
	if err != nil {
		return pressure{}, err
	}
	return parsePressure(string(b))
}

// reportStalls writes where the GETs were slow, to the step's log and to
// step-<n>-gets-waits.txt: every second's share over 10 ms, the worst
// 100 ms window, and the samples around it (the pressure stalls since the
// sample before, and PostgreSQL's busy processes). start is the first
// request's due time and interval the time between requests.
func (r *run) reportStalls(lat []time.Duration, start time.Time, interval time.Duration, samples []waitSample) {
	var b strings.Builder
	secs := windows(lat, interval, time.Second, 10*time.Millisecond)
	fmt.Fprintf(&b, "uncached GETs at %d stored orders, by second of due time (over 10 ms / due, median, max):\n", r.stored)
	for _, w := range secs {
		fmt.Fprintf(&b, "  %s  %4d / %4d  %7s  %8s\n", start.Add(w.Start).UTC().Format("15:04:05.000"), w.Over, w.N,
			w.Median.Round(10*time.Microsecond), w.Max.Round(10*time.Microsecond))
	}
	ws := windows(lat, interval, 100*time.Millisecond, 10*time.Millisecond)
	if i := worst(ws); i >= 0 {
		w := ws[i]
		from, to := start.Add(w.Start), start.Add(w.Start+100*time.Millisecond+w.Max)
		fmt.Fprintf(&b, "worst 100 ms: due from %s, %d of %d over 10 ms, max %s; samples from %s to %s (I/O and CPU pressure since the sample before, some/full):\n",
			from.UTC().Format("15:04:05.000"), w.Over, w.N, w.Max.Round(10*time.Microsecond),
			from.Add(-500*time.Millisecond).UTC().Format("15:04:05.000"), to.Add(500*time.Millisecond).UTC().Format("15:04:05.000"))
		for j, s := range samples {
			if j == 0 || s.At.Before(from.Add(-500*time.Millisecond)) || s.At.After(to.Add(500*time.Millisecond)) {
				continue
			}
			p := samples[j-1]
			fmt.Fprintf(&b, "  %s  io %6s/%6s  cpu %6s\n", s.At.UTC().Format("15:04:05.000"),
				(s.IO.Some - p.IO.Some).Round(time.Millisecond/10), (s.IO.Full - p.IO.Full).Round(time.Millisecond/10),
				(s.CPU.Some - p.CPU.Some).Round(time.Millisecond/10))
			for _, busy := range s.Busy {
				fmt.Fprintf(&b, "      %s\n", busy)
			}
		}
	}
	name := filepath.Join(r.logs, fmt.Sprintf("step-%d-gets-waits.txt", r.stored))
	if err := os.WriteFile(name, []byte(b.String()), 0o644); err != nil {
		r.t.Fatal(err)
	}
	r.t.Logf("step %d: the GETs by second and their worst 100 ms, with PostgreSQL's waits: %s", r.stored, name)
	for _, w := range secs {
		if w.Over > 0 {
			r.t.Logf("step %d: GETs due from %s: %d of %d over 10 ms, max %s", r.stored,
				start.Add(w.Start).UTC().Format("15:04:05"), w.Over, w.N, w.Max.Round(10*time.Microsecond))
		}
	}
}
