package benchscale

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// pressure is a line pair of a /proc/pressure file (Linux PSI): the total
// time some task, and every non-idle task, was stalled on the resource.
type pressure struct {
	Some, Full time.Duration
}

// parsePressure reads the totals of a /proc/pressure/{cpu,io,memory}
// file's text ("some avg10=0.00 avg60=0.00 avg300=0.00 total=1234" and a
// "full" line, which older kernels leave out for cpu). Totals are in µs.
func parsePressure(text string) (pressure, error) {
	var p pressure
	found := false
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		var dst *time.Duration
		switch f[0] {
		case "some":
			dst, found = &p.Some, true
		case "full":
			dst = &p.Full
		default:
			return pressure{}, fmt.Errorf("%q is not a pressure line", strings.TrimSpace(line))
		}
		var total string
		for _, kv := range f[1:] {
			if v, ok := strings.CutPrefix(kv, "total="); ok {
				total = v
			}
		}
		us, err := strconv.ParseInt(total, 10, 64)
		if err != nil {
			return pressure{}, fmt.Errorf("%q: no total: %w", strings.TrimSpace(line), err)
		}
		*dst = time.Duration(us) * time.Microsecond
	}
	if !found {
		return pressure{}, fmt.Errorf("no \"some\" line in %q", text)
	}
	return p, nil
}

// latencyWindow is what the requests due in one window of an open-loop
// run took.
type latencyWindow struct {
	Start  time.Duration // offset of the window from the first request's due time
	N      int           // requests due in it
	Over   int           // of them, over the threshold
	Max    time.Duration
	Median time.Duration
}

// windows groups the latencies of an open-loop run, request i due at
// i*interval, into windows of width by due time, and counts those over
// threshold: a stall shows as the windows whose requests were all slow.
func windows(lat []time.Duration, interval, width, threshold time.Duration) []latencyWindow {
	if len(lat) == 0 || interval <= 0 || width <= 0 {
		return nil
	}
	n := int((time.Duration(len(lat)-1)*interval)/width) + 1
	out := make([]latencyWindow, n)
	groups := make([][]time.Duration, n)
	for i, d := range lat {
		w := int(time.Duration(i) * interval / width)
		groups[w] = append(groups[w], d)
		out[w].Max = max(out[w].Max, d)
		if d > threshold {
			out[w].Over++
		}
	}
	for w := range out {
		out[w].Start = time.Duration(w) * width
		out[w].N = len(groups[w])
		out[w].Median = percentile(groups[w], 50)
	}
	return out
}

// worst returns the index of the window with the slowest request (-1 for
// none).
func worst(ws []latencyWindow) int {
	at := -1
	for i, w := range ws {
		if at < 0 || w.Max > ws[at].Max {
			at = i
		}
	}
	return at
}

// parseSchedstat reads a /proc/<pid>/task/<tid>/schedstat line: the time
// the thread has run on a CPU, the time it has waited runnable for one
// (the run-queue delay), both in ns, and how many times it was put on a
// CPU.
func parseSchedstat(text string) (run, wait time.Duration, slices int64, err error) {
	f := strings.Fields(text)
	if len(f) != 3 {
		return 0, 0, 0, fmt.Errorf("schedstat %q: want three fields", text)
	}
	var n [3]int64
	for i := range n {
		if n[i], err = strconv.ParseInt(f[i], 10, 64); err != nil {
			return 0, 0, 0, fmt.Errorf("schedstat %q: %w", text, err)
		}
	}
	return time.Duration(n[0]), time.Duration(n[1]), n[2], nil
}
