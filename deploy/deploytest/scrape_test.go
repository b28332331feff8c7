package deploytest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/orderservice/orders/shared/testenv"
)

// buildBinaries compiles the named workspace packages (relative to the
// repository root) into a temporary directory, once per test.
func buildBinaries(t testing.TB, pkgs ...string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	out := map[string]string{}
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	for _, p := range pkgs {
		args = append(args, "./"+p)
		out[p] = filepath.Join(dir, filepath.Base(p))
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = root(t)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return out
}

// process is a service binary running for the length of a test.
type process struct {
	name string
	cmd  *exec.Cmd
	out  *testenv.Buffer
	done chan error
}

// start runs bin with exactly env (plus PATH), stops it with SIGTERM at
// cleanup, and prints its output when the test failed.
func start(t *testing.T, name, bin string, env map[string]string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "NO_COLOR=1"}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &process{name: name, cmd: cmd, out: &testenv.Buffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-p.done:
			if err != nil {
				t.Errorf("%s exited with %v after SIGTERM", name, err)
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("%s did not stop within 30s of SIGTERM", name)
		}
		if t.Failed() {
			t.Logf("--- %s output (last 8 KiB) ---\n%s", name, tail(p.out.String(), 8<<10))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// exited reports a process that stopped on its own (a crash at start).
func (p *process) exited() error {
	select {
	case err := <-p.done:
		p.done <- err
		return fmt.Errorf("%s exited: %w\n%s", p.name, err, tail(p.out.String(), 4<<10))
	default:
		return nil
	}
}

// waitFor polls cond every 50ms until it returns nil or the deadline
// passes, failing the test with cond's last error.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond) // polling interval, not synchronisation
	}
}

// httpGet GETs url and returns the status and body.
func httpGet(ctx context.Context, url string) (int, []byte, error) {
	return httpGetAuth(ctx, url, "")
}

// httpGetAuth is httpGet with token as a bearer credential (none if "").
func httpGetAuth(ctx context.Context, url, token string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// scrape fetches and parses a /metrics endpoint.
func scrape(ctx context.Context, url string) (map[string]*dto.MetricFamily, error) {
	code, body, err := httpGet(ctx, url)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d", url, code)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", url, err)
	}
	return fams, nil
}

// value is one number per series that tells whether a metric has moved:
// a counter's or gauge's value, a histogram's or summary's sample count.
func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	case m.Summary != nil:
		return float64(m.Summary.GetSampleCount())
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return 0
}

func seriesKey(m *dto.Metric) string {
	var b strings.Builder
	for _, l := range m.Label {
		fmt.Fprintf(&b, "%s=%q,", l.GetName(), l.GetValue())
	}
	return b.String()
}

// sampler scrapes endpoints over and over while traffic runs and remembers,
// per metric family, whether it was ever seen and whether it ever moved: a
// series with a non-zero value (counter, gauge, histogram count), or a
// gauge series whose value changed between two scrapes. Gauges such as
// consumer lag or an outage flag move and come back, so one final scrape
// could not tell.
type sampler struct {
	mu      sync.Mutex
	urls    map[string]string // service -> /metrics URL
	seen    map[string]*dto.MetricFamily
	seenBy  map[string]string // family -> service that exports it
	moved   map[string]bool
	last    map[string]float64 // family/series -> last value
	errs    map[string]error
	stop    chan struct{}
	stopped chan struct{}
	once    sync.Once
}

func newSampler() *sampler {
	s := &sampler{urls: map[string]string{}, seen: map[string]*dto.MetricFamily{}, seenBy: map[string]string{}, moved: map[string]bool{},
		last: map[string]float64{}, errs: map[string]error{}, stop: make(chan struct{}), stopped: make(chan struct{})}
	go s.loop()
	return s
}

func (s *sampler) add(service, url string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.urls[service] = url
}

func (s *sampler) loop() {
	defer close(s.stopped)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		s.sample()
		select {
		case <-s.stop:
			s.sample()
			return
		case <-tick.C:
		}
	}
}

func (s *sampler) sample() {
	s.mu.Lock()
	urls := make(map[string]string, len(s.urls))
	for k, v := range s.urls {
		urls[k] = v
	}
	s.mu.Unlock()
	for service, url := range urls {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		fams, err := scrape(ctx, url)
		cancel()
		s.mu.Lock()
		s.errs[service] = err
		for name, f := range fams {
			s.seen[name] = f
			if prev, ok := s.seenBy[name]; ok && prev != service && !sharedFamily(name) {
				s.errs["conflict"] = fmt.Errorf("%s is exported by both %s and %s", name, prev, service)
			}
			s.seenBy[name] = service
			for _, m := range f.Metric {
				v := value(m)
				key := name + "{" + seriesKey(m) + "}"
				prev, had := s.last[key]
				if v != 0 || had && prev != v {
					s.moved[name] = true
				}
				s.last[key] = v
			}
		}
		s.mu.Unlock()
	}
}

// sharedFamily reports the standard collectors every service exports.
func sharedFamily(name string) bool {
	return strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") || strings.HasPrefix(name, "promhttp_")
}

// finish stops sampling after one last scrape.
func (s *sampler) finish() {
	s.once.Do(func() { close(s.stop) })
	<-s.stopped
}

// families returns the last scrape of every family ever seen.
func (s *sampler) families() map[string]*dto.MetricFamily {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]*dto.MetricFamily, len(s.seen))
	for k, v := range s.seen {
		out[k] = v
	}
	return out
}

func (s *sampler) exporter(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seenBy[name]
}

func (s *sampler) hasMoved(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.moved[name]
}

// sum adds up a family's series values whose labels include match.
func sum(f *dto.MetricFamily, match map[string]string) float64 {
	if f == nil {
		return 0
	}
	var total float64
	for _, m := range f.Metric {
		ok := true
		for k, v := range match {
			found := false
			for _, l := range m.Label {
				found = found || l.GetName() == k && l.GetValue() == v
			}
			ok = ok && found
		}
		if ok {
			total += value(m)
		}
	}
	return total
}

// familyOf maps a name a query uses to the family it belongs to: histogram
// and summary series carry _bucket, _sum and _count suffixes.
func familyOf(name string, fams map[string]*dto.MetricFamily) (*dto.MetricFamily, bool) {
	if f, ok := fams[name]; ok {
		return f, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if f, ok := fams[base]; ok && (f.GetType() == dto.MetricType_HISTOGRAM || f.GetType() == dto.MetricType_SUMMARY && suffix != "_bucket") {
				return f, true
			}
		}
	}
	return nil, false
}

// readmeMetric is one row of deploy/README.md's metrics table.
type readmeMetric struct {
	Name    string // exact name, or a prefix ending in * (go_*)
	Service string
	Type    string
	Meaning string
}

// readmeIdle returns the names (or prefixes ending in *) of the README's
// "Also exported, and idle in a healthy run" sentence: metrics that must
// exist but need not move.
func readmeIdle(t testing.TB) []string {
	t.Helper()
	src := string(readFile(t, "deploy/README.md"))
	i := strings.Index(src, "Also exported, and idle in a healthy run")
	if i < 0 {
		return nil
	}
	para, _, _ := strings.Cut(src[i:], "\n\n")
	var out []string
	for _, m := range regexp.MustCompile("`([a-zA-Z_:][a-zA-Z0-9_:]*\\*?)`").FindAllStringSubmatch(para, -1) {
		out = append(out, m[1])
	}
	return out
}

// readmeMetrics parses the table rows whose first cell is a `metric_name`.
func readmeMetrics(t testing.TB) []readmeMetric {
	t.Helper()
	var out []readmeMetric
	row := regexp.MustCompile("^\\|\\s*`([a-zA-Z_:][a-zA-Z0-9_:]*\\*?)`\\s*\\|([^|]*)\\|([^|]*)\\|([^|]*)\\|([^|]*)\\|")
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, "deploy/README.md")))
	for sc.Scan() {
		if m := row.FindStringSubmatch(strings.TrimSpace(sc.Text())); m != nil {
			out = append(out, readmeMetric{Name: m[1], Service: strings.TrimSpace(m[2]), Type: strings.TrimSpace(m[3]), Meaning: strings.TrimSpace(m[5])})
		}
	}
	if len(out) == 0 {
		t.Fatal("deploy/README.md has no metrics table (rows like | `name` | service | type | labels | meaning |)")
	}
	return out
}
