package benchscale

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/orderservice/orders/shared/ordergen"
)

func TestParseSteps(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want []int
		err  string
	}{
		{in: "0,1000000,3000000", want: []int{0, 1_000_000, 3_000_000}},
		{in: "0, 1M, 3M", want: []int{0, 1_000_000, 3_000_000}},
		{in: "0,100k,300000", want: []int{0, 100_000, 300_000}},
		{in: "5", want: []int{5}},
		{in: "", err: "not a count"},
		{in: "0,,1", err: "not a count"},
		{in: "-1", err: "not a count"},
		{in: "1.5M", err: "not a count"},
		{in: "0,1M,1M", err: "must increase"},
		{in: "3M,1M", err: "must increase"},
		{in: "2000M", err: "over a billion"},
	} {
		got, err := parseSteps(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseSteps(%q) = %v, %v; want an error with %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("parseSteps(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseEnv(t *testing.T) {
	t.Parallel()
	got, err := parseEnv("  READER_GC_PERCENT=100\tGOMAXPROCS=1  EMPTY= ")
	if want := []string{"READER_GC_PERCENT=100", "GOMAXPROCS=1", "EMPTY="}; err != nil || !slices.Equal(got, want) {
		t.Errorf("parseEnv = %q, %v; want %q", got, err, want)
	}
	if got, err := parseEnv(""); err != nil || got != nil {
		t.Errorf("parseEnv of nothing = %q, %v", got, err)
	}
	for _, bad := range []string{"NOVALUE", "=1", "A=1 B", `"Q"=1`} {
		if got, err := parseEnv(bad); err == nil {
			t.Errorf("parseEnv(%q) = %q, want an error", bad, got)
		}
	}
}

// Retimed orders arrive in date order give or take maxLateness, keep
// their payment time relative to creation, stay valid and reproducible,
// and share timestamps often enough to exercise keyset paging.
func TestRetime(t *testing.T) {
	t.Parallel()
	gen := ordergen.New(3)
	var prev time.Time
	stamps := map[time.Time]int{}
	const n = 2000
	for seq := range int64(n) {
		o := gen.Order()
		paidBefore := o.DateCreated.Unix() - o.Payment.PaymentDT
		retime(o, seq)
		due := timelineStart.Add(time.Duration(seq) * time.Second)
		if o.DateCreated.After(due) || due.Sub(o.DateCreated) >= maxLateness {
			t.Fatalf("order %d created %v, want within %v before %v", seq, o.DateCreated, maxLateness, due)
		}
		if got := o.DateCreated.Unix() - o.Payment.PaymentDT; got != paidBefore {
			t.Fatalf("order %d paid %ds before creation, the generator had %ds", seq, got, paidBefore)
		}
		if err := o.Validate(); err != nil {
			t.Fatalf("order %d: %v", seq, err)
		}
		if !prev.IsZero() && o.DateCreated.Before(prev.Add(-maxLateness)) {
			t.Fatalf("order %d is more than %v older than the one before", seq, maxLateness)
		}
		prev = o.DateCreated
		stamps[o.DateCreated]++
	}
	if shared := n - len(stamps); shared < n/10 {
		t.Errorf("only %d of %d orders share a timestamp with another", shared, n)
	}
	a, b := ordergen.New(9).Order(), ordergen.New(9).Order()
	retime(a, 77)
	retime(b, 77)
	if !a.DateCreated.Equal(b.DateCreated) || a.Payment.PaymentDT != b.Payment.PaymentDT {
		t.Errorf("the same order and number dated %v and %v", a.DateCreated, b.DateCreated)
	}
}

func TestPercentile(t *testing.T) {
	t.Parallel()
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // unsorted on purpose
	}
	for _, tc := range []struct {
		name    string
		samples []time.Duration
		p       float64
		want    time.Duration
	}{
		{"none", nil, 99, 0},
		{"one", ms(7), 50, 7 * time.Millisecond},
		{"median of odd", ms(3, 1, 2), 50, 2 * time.Millisecond},
		{"median of even is the lower", ms(4, 1, 3, 2), 50, 2 * time.Millisecond},
		{"p99 of 100", ms(hundred...), 99, 99 * time.Millisecond},
		{"p100 is the max", ms(hundred...), 100, 100 * time.Millisecond},
		{"p99 of 10 is the max", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
		{"tiny p is the min", ms(5, 6), 0.1, 5 * time.Millisecond},
	} {
		if got := percentile(tc.samples, tc.p); got != tc.want {
			t.Errorf("%s: percentile(p%g) = %v, want %v", tc.name, tc.p, got, tc.want)
		}
	}
}

func TestParseMemStatus(t *testing.T) {
	t.Parallel()
	const status = "Name:\treader\nVmPeak:\t 1000000 kB\nVmHWM:\t  250000 kB\nVmRSS:\t  200000 kB\nThreads:\t9\n"
	m, err := parseMemStatus(status)
	if err != nil || m.RSS != 200000*1024 || m.Peak != 250000*1024 {
		t.Fatalf("parseMemStatus = %+v, %v", m, err)
	}
	for _, bad := range []string{
		"Name:\treader\nVmRSS:\t 1 kB\n",           // no VmHWM
		"VmHWM:\t 1 kB\nVmRSS:\t lots kB\n",        // not a number
		"VmHWM:\t 1 kB\nVmRSS:\t 1 MB\n",           // not kB
		"VmHWM:\t 1 kB\nVmRSS:\t 1 kB\nVmRSS: 2\n", // a broken duplicate
	} {
		if m, err := parseMemStatus(bad); err == nil {
			t.Errorf("parseMemStatus(%q) = %+v, want an error", bad, m)
		}
	}
	self, err := readMemStatus(os.Getpid())
	if err != nil || self.RSS <= 0 || self.Peak < self.RSS {
		t.Fatalf("this process: %+v, %v", self, err)
	}
}

func TestMachineFiles(t *testing.T) {
	t.Parallel()
	if n, err := memTotal("MemFree: 5 kB\nMemTotal:       24683520 kB\n"); err != nil || n != 24683520*1024 {
		t.Errorf("memTotal = %d, %v", n, err)
	}
	if _, err := memTotal("MemFree: 5 kB\n"); err == nil {
		t.Error("memTotal without MemTotal: no error")
	}
	if s, err := loadAverage("12.84 14.02 11.98 3/901 12345\n"); err != nil || s != "12.84 14.02 11.98" {
		t.Errorf("loadAverage = %q, %v", s, err)
	}
	for _, bad := range []string{"", "1.0 2.0", "a b c"} {
		if s, err := loadAverage(bad); err == nil {
			t.Errorf("loadAverage(%q) = %q, want an error", bad, s)
		}
	}
}

func sampleRows() []row {
	return []row{
		{Stored: 0, Slice: 100_000, IngestRate: 15234.4, IngestCPU1k: 0.0521, BareRate: 20000, GetP50: 1500 * time.Microsecond,
			GetP99: 7250 * time.Microsecond, RefGetP99: 3100 * time.Microsecond, Warm1k: 80 * time.Millisecond, Warm100k: 2500 * time.Millisecond, Warmed100k: 100_000,
			ReaderRSS: 250_000_000, BytesPerOrder: 2345.6, BareBytesPerOrder: 1800, LoadAverage: "1.00 2.00 3.00"},
		{Stored: 1_000_000, Slice: 100_000, IngestRate: 12000, BareRate: 16000, Warm100k: 3 * time.Second, Warmed100k: 42_000,
			GetP99: 9 * time.Millisecond, Gets: 10_000, GetErrors: 15,
			ReaderRSS: 260_000_000, BytesPerOrder: 2400, BareBytesPerOrder: 1850},
	}
}

func TestMarkdown(t *testing.T) {
	t.Parallel()
	md := markdown(sampleRows())
	lines := strings.Split(strings.TrimSpace(md), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines, want a header, a rule and 2 rows:\n%s", len(lines), md)
	}
	cols := strings.Count(lines[0], "|")
	for i, l := range lines {
		if strings.Count(l, "|") != cols {
			t.Errorf("line %d has %d cells, the header %d: %s", i, strings.Count(l, "|")-1, cols-1, l)
		}
	}
	for _, want := range []string{
		"| 0 | 15,234 | 20,000 | 0.76 | 0.052 | 1.50 ms | 7.25 ms | 3.10 ms | 0.08 s | 2.50 s | 250 MB | 2,346 | 1,800 | 1.00 2.00 3.00 |",
		"| 1,000,000 | 12,000 | 16,000 | 0.75 |",
		"3.00 s (42,000 orders)",
		"| 9.00 ms (15 of 10,000 failed) |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("table lacks %q:\n%s", want, md)
		}
	}
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -4500: "-4,500"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestPlots(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := plots(sampleRows(), dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range figures {
		b, err := os.ReadFile(filepath.Join(dir, f.file))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", f.file, err)
		}
		if r := img.Bounds(); r.Dx() < 500 || r.Dy() < 250 {
			t.Errorf("%s is %v", f.file, r)
		}
	}
	if err := plots(nil, dir); err == nil {
		t.Error("plots of no rows: no error")
	}
}

func TestReplaceSection(t *testing.T) {
	t.Parallel()
	doc := "# Benchmarks\n\nintro\n\n" + sectionBegin + "\nold table\n" + sectionEnd + "\n\nafter\n"
	got, err := replaceSection(doc, "\nnew table\n\n")
	want := "# Benchmarks\n\nintro\n\n" + sectionBegin + "\nnew table\n" + sectionEnd + "\n\nafter\n"
	if err != nil || got != want {
		t.Fatalf("replaceSection = %q, %v\nwant %q", got, err, want)
	}
	again, err := replaceSection(got, "new table")
	if err != nil || again != want {
		t.Errorf("a second replacement changed the document: %q, %v", again, err)
	}
	for name, bad := range map[string]string{
		"no markers":    "# Benchmarks\n",
		"no end":        sectionBegin + "\nx\n",
		"two begins":    sectionBegin + sectionBegin + sectionEnd,
		"end before it": sectionEnd + "\n" + sectionBegin,
	} {
		if out, err := replaceSection(bad, "x"); err == nil {
			t.Errorf("%s: replaceSection = %q, want an error", name, out)
		}
	}
	path := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := updateSection(path, "new table"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != want {
		t.Errorf("file after updateSection: %q", b)
	}
}

func TestHistogramOver(t *testing.T) {
	t.Parallel()
	scraped := `# HELP x_seconds latency
x_seconds_bucket{query="get",le="0.005"} 90
x_seconds_bucket{query="get",le="0.01"} 97
x_seconds_bucket{query="get",le="+Inf"} 100
x_seconds_bucket{query="search",le="0.01"} 1
x_seconds_bucket{query="search",le="+Inf"} 50
x_seconds_count{query="get"} 100
`
	tests := []struct {
		labels, le  string
		over, total float64
	}{
		{`query="get"`, "0.01", 3, 100},
		{`query="get"`, "0.005", 10, 100},
		{`query=`, "0.01", 52, 150},
		{`query="none"`, "0.01", 0, 0},
	}
	for _, tt := range tests {
		over, total := histogramOver(scraped, "x_seconds", tt.labels, tt.le)
		if over != tt.over || total != tt.total {
			t.Errorf("histogramOver(%s, %s) = %v, %v; want %v, %v", tt.labels, tt.le, over, total, tt.over, tt.total)
		}
	}
}

func TestParsePressure(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, text string
		want       pressure
		err        bool
	}{
		{"io", "some avg10=1.27 avg60=0.74 avg300=0.25 total=8904460\nfull avg10=0.72 avg60=0.47 avg300=0.16 total=7108794\n",
			pressure{Some: 8904460 * time.Microsecond, Full: 7108794 * time.Microsecond}, false},
		{"cpu without full", "some avg10=9.30 avg60=3.47 avg300=3.39 total=140262803\n", pressure{Some: 140262803 * time.Microsecond}, false},
		{"no total", "some avg10=1.00\n", pressure{}, true},
		{"no some", "full avg10=0.00 avg60=0.00 avg300=0.00 total=5\n", pressure{}, true},
		{"other line", "cpu 1 2 3\n", pressure{}, true},
		{"empty", "", pressure{}, true},
	}
	for _, tt := range tests {
		got, err := parsePressure(tt.text)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("%s: parsePressure = %+v, %v; want %+v, error %v", tt.name, got, err, tt.want, tt.err)
		}
	}
}

func TestParseSchedstat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, text string
		run, wait  time.Duration
		slices     int64
		err        bool
	}{
		{"thread", "1820377812 2914052177 41270\n", 1820377812, 2914052177, 41270, false},
		{"never ran", "0 0 0", 0, 0, 0, false},
		{"two fields", "1 2\n", 0, 0, 0, true},
		{"not a number", "1 2 x\n", 0, 0, 0, true},
		{"empty", "", 0, 0, 0, true},
	}
	for _, tt := range tests {
		run, wait, slices, err := parseSchedstat(tt.text)
		if (err != nil) != tt.err || run != tt.run || wait != tt.wait || slices != tt.slices {
			t.Errorf("%s: parseSchedstat = %v, %v, %d, %v; want %v, %v, %d, error %v",
				tt.name, run, wait, slices, err, tt.run, tt.wait, tt.slices, tt.err)
		}
	}
}

func TestWindows(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	// Ten requests 10 ms apart in windows of 30 ms: 0-2, 3-5, 6-8, 9.
	lat := []time.Duration{1 * ms, 2 * ms, 3 * ms, 40 * ms, 30 * ms, 20 * ms, 2 * ms, 1 * ms, 2 * ms, 11 * ms}
	got := windows(lat, 10*ms, 30*ms, 10*ms)
	want := []latencyWindow{
		{Start: 0, N: 3, Over: 0, Max: 3 * ms, Median: 2 * ms},
		{Start: 30 * ms, N: 3, Over: 3, Max: 40 * ms, Median: 30 * ms},
		{Start: 60 * ms, N: 3, Over: 0, Max: 2 * ms, Median: 2 * ms},
		{Start: 90 * ms, N: 1, Over: 1, Max: 11 * ms, Median: 11 * ms},
	}
	if !slices.Equal(got, want) {
		t.Errorf("windows =\n%+v\nwant\n%+v", got, want)
	}
	if w := worst(got); w != 1 {
		t.Errorf("worst = %d, want 1", w)
	}
	if lat[3] != 40*ms {
		t.Error("windows reordered its input")
	}
	if got := windows(nil, ms, ms, ms); got != nil {
		t.Errorf("windows of nothing = %v", got)
	}
	if w := worst(nil); w != -1 {
		t.Errorf("worst of nothing = %d", w)
	}
}
