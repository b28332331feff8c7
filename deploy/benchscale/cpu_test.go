package benchscale

import (
	"strings"
	"testing"
	"time"
)

func TestParseMachineStat(t *testing.T) {
	t.Parallel()
	got, err := parseMachineStat("cpu  100 5 50 800 40 3 2 0 10 0\ncpu0 50 2 25 400 20 1 1 0 5 0\n")
	// busy: user+nice+system+irq+softirq+steal = 160 ticks; guest is in user.
	if want := (machineCPU{Busy: 1600 * time.Millisecond, Total: 10 * time.Second}); err != nil || got != want {
		t.Errorf("parseMachineStat = %+v, %v; want %+v", got, err, want)
	}
	for _, bad := range []string{"", "intr 1 2 3", "cpu 1 2 3", "cpu 1 2 3 x 5 6 7 8"} {
		if got, err := parseMachineStat(bad); err == nil {
			t.Errorf("parseMachineStat(%q) = %+v, want an error", bad, got)
		}
	}
}

func TestCPUDelta(t *testing.T) {
	t.Parallel()
	s := time.Second
	for _, tc := range []struct {
		name          string
		before, after map[int]time.Duration
		want          time.Duration
	}{
		{name: "same processes", before: map[int]time.Duration{1: s, 2: 2 * s}, after: map[int]time.Duration{1: 3 * s, 2: 2 * s}, want: 2 * s},
		{name: "started in between counts from zero", before: map[int]time.Duration{1: s}, after: map[int]time.Duration{1: s, 2: 4 * s}, want: 4 * s},
		{name: "ended in between is left out", before: map[int]time.Duration{1: s, 2: s}, after: map[int]time.Duration{1: 2 * s}, want: s},
	} {
		if got := cpuDelta(tc.before, tc.after); got != tc.want {
			t.Errorf("%s: cpuDelta = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestMedianResult(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		rates []float64
		want  float64
	}{
		{[]float64{5}, 5},
		{[]float64{9, 3, 6}, 6},
		{[]float64{9, 3, 6, 4}, 4},
	} {
		rs := make([]ingestResult, len(tc.rates))
		for i, r := range tc.rates {
			rs[i] = ingestResult{rate: r, orders: i}
		}
		if got := medianResult(rs); got.rate != tc.want {
			t.Errorf("medianResult(%v) = %v, want %v", tc.rates, got.rate, tc.want)
		}
	}
}

func TestIngestorsReport(t *testing.T) {
	t.Parallel()
	configs := []ingestConfig{{writers: 2}, {ingestors: 1}, {ingestors: 6}}
	res := func(rate float64) ingestResult {
		return ingestResult{orders: 1000, elapsed: time.Second, rate: rate, settled: 250 * time.Millisecond,
			ingestors: 100 * time.Millisecond, postgres: 900 * time.Millisecond, machineBusy: 1900 * time.Millisecond}
	}
	medians := []ingestResult{res(20000), res(10000), res(15000)}
	all := [][]ingestResult{{res(20000)}, {res(10000), res(9000)}, {res(15000)}}
	got := ingestorsReport(ingestorsSettings{orders: 1000, rounds: 2}, configs, medians, all, "1.00 2.00 3.00", "4.00 5.00 6.00",
		time.Date(2026, 12, 1, 11, 0, 0, 0, time.UTC))
	for _, want := range []string{
		"| reference: the writer alone, 2 batches in flight | 20,000 | 2.00 | — | — | 0.900 |",
		"| 1 ingestor | 10,000 | 1.00 | 0.25 s | 0.100 | 0.900 | 0.000 | 0.000 | 1.00 / 1.90 | 10,000, 9,000 |",
		"| 6 ingestors | 15,000 | 1.50 |",
		"Load average (1, 5, 15 min) 1.00 2.00 3.00 at the start, 4.00 5.00 6.00 at the end.",
		"Run of 2026-12-01 11:00 UTC: 1,000 orders on a 6-partition topic, 2 rounds",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
}
