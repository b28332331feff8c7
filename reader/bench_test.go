package main

// Benchmarks of the whole reader (run, real PostgreSQL and Redis) over
// loopback TCP with 64 keep-alive connections, each against a "ceiling": a
// minimal net/http server returning the same bytes, measured in the same
// run. They are load tests with a fixed duration, not b.N loops: run them
// with -benchtime=1x, e.g.
//
//	go test -run '^$' -bench . -benchtime=1x ./reader
//
// When wrk is installed (apt-get install wrk) it generates the load, as a
// C client costs the 2-core machine less than a Go one; otherwise a Go
// client does. A comparison runs READER_BENCH_ROUNDS rounds (5 by
// default), each a load window of a third of READER_BENCH_SECONDS (at
// least 1 s; 3 s with make bench's 9) on each side.
//
// Every request carries a valid API key, as in production, and the reader
// checks it and its rate limit (a limit far above the load, so that the
// check runs and never refuses); the ceiling gets the same requests.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/orderservice/orders/reader/auth"
	"github.com/orderservice/orders/reader/auth/authtest"
	"github.com/orderservice/orders/reader/config"
	"github.com/orderservice/orders/reader/pii"
	"github.com/orderservice/orders/shared/model"
	"github.com/orderservice/orders/shared/ordergen"
	"github.com/orderservice/orders/shared/testenv"
)

const benchConns = 64

func benchDuration() time.Duration {
	if s, err := strconv.Atoi(os.Getenv("READER_BENCH_SECONDS")); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	return 3 * time.Second
}

// loadResult is one measurement.
type loadResult struct {
	requests int
	errors   int
	rps      float64
	p99      time.Duration
	tool     string
	// cpuPerReq is this process's CPU time (user+system) per request:
	// with wrk, that is the server alone, a figure that the load of other
	// processes on the machine does not change much.
	cpuPerReq time.Duration
	// clientCPUPerReq is wrk's CPU time per request (0 with the Go
	// client, which runs in this process).
	clientCPUPerReq time.Duration
	// allocsPerReq and bytesPerReq are this process's heap allocations
	// per request, gcs its collections in the window (wrk only: the Go
	// client allocates in this process too).
	allocsPerReq, bytesPerReq float64
	gcs                       uint64
}

// heapCounts reads the process's allocations so far (objects and bytes)
// and its completed GC cycles.
func heapCounts() (objects, bytes, gcs uint64) {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:objects"}, {Name: "/gc/heap/allocs:bytes"}, {Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	return s[0].Value.Uint64(), s[1].Value.Uint64(), s[2].Value.Uint64()
}

// cpuTime is the CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (r loadResult) String() string {
	s := fmt.Sprintf("%s: %.0f req/s, p99 %v, %d requests, %d errors, %v CPU/request in this process",
		r.tool, r.rps, r.p99.Round(10*time.Microsecond), r.requests, r.errors, r.cpuPerReq.Round(100*time.Nanosecond))
	if r.clientCPUPerReq > 0 {
		// The client's share of a core: near 1 for one wrk thread, it
		// would be what limits the rate.
		s += fmt.Sprintf(", wrk %v CPU/request (%.2f of a core)", r.clientCPUPerReq.Round(100*time.Nanosecond),
			r.clientCPUPerReq.Seconds()*r.rps)
	}
	if r.allocsPerReq > 0 {
		s += fmt.Sprintf(", %.1f allocations (%.0f B) per request, %d GCs", r.allocsPerReq, r.bytesPerReq, r.gcs)
	}
	return s
}

// goLoad sends GETs of paths (round robin, each worker its own stride) over
// benchConns keep-alive connections, with token as the bearer credential,
// for d or until every path was asked once when once is set.
func goLoad(b *testing.B, base, token string, paths []string, d time.Duration, once bool) loadResult {
	b.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: benchConns, MaxConnsPerHost: benchConns, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	auth := []string{authtest.Bearer(token)}
	var next atomic.Int64
	var errs atomic.Int64
	lat := make([][]time.Duration, benchConns)
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range benchConns {
		wg.Go(func() {
			buf := make([]byte, 32<<10)
			for time.Now().Before(deadline) {
				i := next.Add(1) - 1
				if once && int(i) >= len(paths) {
					return
				}
				req, err := http.NewRequest(http.MethodGet, base+paths[int(i)%len(paths)], nil)
				if err != nil {
					errs.Add(1)
					continue
				}
				req.Header["Authorization"] = auth
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					errs.Add(1)
					continue
				}
				_, _ = io.CopyBuffer(io.Discard, resp.Body, buf)
				resp.Body.Close()
				if resp.StatusCode >= 500 {
					errs.Add(1)
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	res := loadResult{requests: len(all), errors: int(errs.Load()), rps: float64(len(all)) / elapsed.Seconds(), tool: "go"}
	if len(all) > 0 {
		res.p99 = all[len(all)*99/100]
	}
	return res
}

var (
	wrkRPS = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkP99 = regexp.MustCompile(`\n\s+99%\s+([0-9.]+)(us|ms|s)`)
	wrkReq = regexp.MustCompile(`([0-9]+) requests in`)
	wrkErr = regexp.MustCompile(`Non-2xx or 3xx responses: ([0-9]+)`)
)

// compareThreads is wrk's threads in compare. One: on the 2-core machine,
// two wrk threads and the server's two (GOMAXPROCS) took turns on the
// cores, and a round's p99 moved with how the scheduler happened to share
// them: with two threads the rounds' p99 ratios of one run spread over
// 1.12–1.66× and their p99s were 6–12 ms; with one, 0.82–1.05× and 5 ms,
// at higher rates on both sides (2026-12-01, load 3–4). One thread used
// 0.3–0.67 of a core at either side's rate (logged with each result; the
// least when other jobs took the CPU): the server, not the client, sets
// the rate measured.
const compareThreads = 1

// wrkLoad runs wrk with threads threads and benchConns connections; paths
// are spread over the threads by a Lua script, each request with token as
// its bearer credential. When profile is not empty, the load window's CPU
// profile of this process is written to that file. It returns ok=false
// when wrk is not installed.
func wrkLoad(b *testing.B, base, token string, paths []string, d time.Duration, threads int, profile string) (loadResult, bool) {
	b.Helper()
	bin, err := exec.LookPath("wrk")
	if err != nil {
		return loadResult{}, false
	}
	var script strings.Builder
	script.WriteString("local paths = {\n")
	for _, p := range paths {
		fmt.Fprintf(&script, "%q,\n", p)
	}
	fmt.Fprintf(&script, "}\nlocal headers = {Authorization = %q}\nlocal threads = %d\n", authtest.Bearer(token), threads)
	// Each thread formats its requests once, in init: wrk.format per
	// request cost more of wrk's CPU than the rest of its work, CPU that
	// the 2-core machine takes from the server measured. The bytes sent
	// are the same.
	script.WriteString(`local n = 0
local reqs = {}
function setup(thread) thread:set("id", n); n = n + 1 end
function init(args)
  i = id
  for k, p in ipairs(paths) do reqs[k] = wrk.format("GET", p, headers) end
end
function request()
  i = i + threads
  return reqs[(i % #reqs) + 1]
end
`)
	lua := filepath.Join(b.TempDir(), "paths.lua")
	if err := os.WriteFile(lua, []byte(script.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	secs := max(1, int(d.Seconds()))
	if profile != "" {
		// The load window alone, without the seeding.
		f, err := os.Create(profile)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	cpu0 := cpuTime()
	objects0, bytes0, gcs0 := heapCounts()
	cmd := exec.Command(bin, "-t"+strconv.Itoa(threads), "-c"+strconv.Itoa(benchConns), "-d"+strconv.Itoa(secs)+"s",
		"--latency", "-s", lua, base)
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("wrk: %v\n%s", err, out)
	}
	s := string(out)
	res := loadResult{tool: "wrk"}
	if m := wrkRPS.FindStringSubmatch(s); m != nil {
		res.rps, _ = strconv.ParseFloat(m[1], 64)
	}
	if m := wrkReq.FindStringSubmatch(s); m != nil {
		res.requests, _ = strconv.Atoi(m[1])
	}
	if m := wrkErr.FindStringSubmatch(s); m != nil {
		res.errors, _ = strconv.Atoi(m[1])
	}
	if m := wrkP99.FindStringSubmatch(s); m != nil {
		v, _ := strconv.ParseFloat(m[1], 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[m[2]]
		res.p99 = time.Duration(v * float64(unit))
	}
	if res.rps == 0 {
		b.Fatalf("cannot read wrk's output:\n%s", s)
	}
	if res.requests > 0 {
		res.cpuPerReq = (cpuTime() - cpu0) / time.Duration(res.requests)
		objects, bytes, gcs := heapCounts()
		res.allocsPerReq = float64(objects-objects0) / float64(res.requests)
		res.bytesPerReq = float64(bytes-bytes0) / float64(res.requests)
		res.gcs = gcs - gcs0
		res.clientCPUPerReq = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()) / time.Duration(res.requests)
	}
	return res, true
}

// ceiling serves body for every request, as little as net/http allows,
// from an http.Server configured as the reader's public one (publicServer:
// the same read, write and idle timeouts, which cost each request a few
// deadline updates): the comparison is then of what the reader does on top
// of net/http, not of two server configurations.
func ceiling(b *testing.B, body []byte) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := publicServer(benchConfig(b), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = []string{"application/json"}
		_, _ = w.Write(body)
	}))
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// benchConfig is the reader's default configuration, as benchServe runs it
// (the URLs and files are placeholders: only the server settings are read).
func benchConfig(b *testing.B) *config.Config {
	b.Helper()
	vars := map[string]string{"DATABASE_URL": "postgres://bench/bench", "REDIS_URL": "redis://bench:6379",
		"READER_API_KEYS_FILE": "keys"}
	cfg, err := config.Load(func(k string) string { return vars[k] })
	if err != nil {
		b.Fatal(err)
	}
	return cfg
}

// benchKeys is the keys file of a benchmark: authtest's keys, and read
// (orders:read) and pii (orders:read and orders:pii), which may each send
// a million requests a second: the limiter runs and never refuses.
type benchKeys struct {
	*authtest.Keys
	read, pii string
}

// benchReader starts the reader over a fresh database holding orders (see
// benchServe).
func benchReader(b *testing.B, extra map[string]string, orders []*model.Order) (base, ops string, keys benchKeys) {
	b.Helper()
	pg := testenv.Postgres(b)
	for i := 0; i < len(orders); i += 1000 {
		testenv.InsertOrders(b, pg.Pool, orders[i:min(i+1000, len(orders))]...)
	}
	vacuumAnalyze(b, pg)
	return benchServe(b, pg, extra)
}

// vacuumAnalyze settles freshly loaded tables: a fresh database has no
// planner statistics and no hint bits until autovacuum runs (the first
// read of each new row would otherwise also write it); production tables
// are settled.
func vacuumAnalyze(b *testing.B, pg *testenv.PG) {
	b.Helper()
	if _, err := pg.Pool.Exec(context.Background(), "VACUUM ANALYZE"); err != nil {
		b.Fatal(err)
	}
}

// benchServe runs the reader on pg and a fresh Redis key space until the
// benchmark ends, with its log and audit stream written to files as in
// production (JSON lines; a terminal or a pipe would measure the log
// consumer) and an API keys file, and returns once it is ready.
func benchServe(b *testing.B, pg *testenv.PG, extra map[string]string) (base, ops string, keys benchKeys) {
	b.Helper()
	read, readLine := authtest.NewKey(b, "bench-read", "1000000/1000000", auth.ScopeRead)
	pii, piiLine := authtest.NewKey(b, "bench-pii", "1000000/1000000", auth.ScopeRead, auth.ScopePII)
	keys = benchKeys{Keys: authtest.NewKeys(b, readLine, piiLine), read: read, pii: pii}
	logFile, err := os.Create(filepath.Join(b.TempDir(), "reader.log"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { logFile.Close() })
	rd := testenv.Redis(b)
	vars := map[string]string{
		"READER_LISTEN_ADDR": testenv.FreeAddr(b), "READER_OPS_ADDR": testenv.FreeAddr(b),
		"DATABASE_URL": pg.URLAs("order_reader"),
		"REDIS_URL":    rd.URL, "READER_REDIS_KEY_PREFIX": rd.Prefix,
		"READER_API_KEYS_FILE": keys.File, "READER_AUDIT_LOG": filepath.Join(b.TempDir(), "audit.log"),
	}
	for k, v := range extra {
		vars[k] = v
	}
	// Tuning variables of the process environment apply, for experiments:
	// READER_GC_PERCENT=400 go test -bench ...
	for _, k := range []string{"READER_GC_PERCENT", "READER_MEMORY_LIMIT", "READER_DB_MAX_CONNS", "READER_DB_SEARCHERS", "READER_LOG_LEVEL"} {
		if v := os.Getenv(k); v != "" {
			vars[k] = v
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"reader"}, func(k string) string { return vars[k] }, logFile, io.Discard)
	}()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("reader: %v", err)
		}
	})
	base, ops = "http://"+vars["READER_LISTEN_ADDR"], "http://"+vars["READER_OPS_ADDR"]
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base, ops, keys
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("reader not ready: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// comparison is the reader against the ceiling over the rounds of one
// compare.
type comparison struct {
	name             string
	reader, ceil     loadResult // medians of the rounds (median)
	rpsRatio         float64    // median of the rounds' ratios
	p99Ratio         float64
	rpsSpread        [2]float64 // lowest and highest of the rounds' ratios
	p99Spread        [2]float64
	rounds, duration int // rounds, and seconds of each load window
}

// newComparison takes the ratios as the medians of the per-round ratios:
// each round's two measurements are adjacent in time, so they share the
// machine's load of the moment.
func newComparison(name string, rs, cs []loadResult, window time.Duration) comparison {
	c := comparison{name: name, reader: median(rs), ceil: median(cs), rounds: len(rs), duration: int(window.Seconds())}
	var rpsRatios, p99Ratios []float64
	for i := range rs {
		rpsRatios = append(rpsRatios, rs[i].rps/cs[i].rps)
		p99Ratios = append(p99Ratios, float64(rs[i].p99)/float64(cs[i].p99))
	}
	slices.Sort(rpsRatios)
	slices.Sort(p99Ratios)
	c.rpsRatio, c.p99Ratio = rpsRatios[len(rpsRatios)/2], p99Ratios[len(p99Ratios)/2]
	c.rpsSpread = [2]float64{rpsRatios[0], rpsRatios[len(rpsRatios)-1]}
	c.p99Spread = [2]float64{p99Ratios[0], p99Ratios[len(p99Ratios)-1]}
	return c
}

// log logs the comparison, and fails the benchmark on the reader's errors.
func (c comparison) log(b *testing.B) {
	b.Helper()
	b.Logf("%s ceiling %v", c.name, c.ceil)
	b.Logf("%s reader  %v", c.name, c.reader)
	b.Logf("%s ratio (median of %d rounds of %d s): %.2f of the ceiling's req/s (rounds %.2f–%.2f); p99 %.2fx the ceiling's (rounds %.2f–%.2fx)",
		c.name, c.rounds, c.duration, c.rpsRatio, c.rpsSpread[0], c.rpsSpread[1], c.p99Ratio, c.p99Spread[0], c.p99Spread[1])
	if c.reader.cpuPerReq > 0 && c.ceil.cpuPerReq > 0 {
		b.Logf("%s CPU per request: reader %v, ceiling %v (%.2fx)", c.name, c.reader.cpuPerReq, c.ceil.cpuPerReq,
			float64(c.reader.cpuPerReq)/float64(c.ceil.cpuPerReq))
	}
	// 404s are the expected answer of the flood; wrk counts them as errors.
	if c.reader.errors > 0 && c.name != "unknown" {
		b.Errorf("%s: %d errors", c.name, c.reader.errors)
	}
}

// report reports c's figures as the benchmark's metrics, each unit with
// prefix in front (the benchmark's targets are the units without one).
func (c comparison) report(b *testing.B, prefix string) {
	b.Helper()
	b.ReportMetric(c.reader.rps, prefix+"req/s")
	b.ReportMetric(c.ceil.rps, prefix+"ceiling-req/s")
	b.ReportMetric(c.rpsRatio, prefix+"rps-ratio")
	b.ReportMetric(c.p99Ratio, prefix+"p99-ratio")
	b.ReportMetric(float64(c.reader.p99.Microseconds())/1000, prefix+"p99-ms")
	b.ReportMetric(float64(c.ceil.p99.Microseconds())/1000, prefix+"ceiling-p99-ms")
	if c.reader.cpuPerReq > 0 && c.ceil.cpuPerReq > 0 {
		b.ReportMetric(float64(c.reader.cpuPerReq.Nanoseconds())/1000, prefix+"cpu-us/req")
		b.ReportMetric(float64(c.ceil.cpuPerReq.Nanoseconds())/1000, prefix+"ceiling-cpu-us/req")
	}
	b.ReportMetric(0, "ns/op")
}

// benchRounds is the number of rounds of a comparison:
// READER_BENCH_ROUNDS, 5 by default. A round's p99 ratio moves by a
// factor of two with the machine's other load, so the median needs more
// than three.
func benchRounds() int {
	if n, err := strconv.Atoi(os.Getenv("READER_BENCH_ROUNDS")); err == nil && n > 0 {
		return n
	}
	return 5
}

// compare measures the ceiling and the reader with the same client (wrk
// when installed, else Go) in rounds, after an unmeasured second of load
// on each (connections opened, the server's goroutines and pools grown).
// Each round measures both, one right after the other; the order
// alternates (ceiling first in odd rounds, reader first in even ones),
// so that neither side always follows the other's load. Each load window
// lasts a third of READER_BENCH_SECONDS.
//
// READER_BENCH_CPUPROFILE=prefix writes one CPU profile per load window
// (wrk only): prefix.NAME-SIDE-ROUND.pprof, e.g. cpu.cached-reader-1.pprof;
// `go tool pprof cpu.cached-reader-*.pprof` merges a side's rounds.
func compare(b *testing.B, name, readerBase, token string, paths []string, body []byte) comparison {
	b.Helper()
	ceil := ceiling(b, body)
	rounds := benchRounds()
	d := max(time.Second, benchDuration()/3)
	measure := func(base, side string, round int, d time.Duration) loadResult {
		profile := ""
		if round > 0 {
			profile = benchProfile(name+"-"+side, round)
		}
		if r, ok := wrkLoad(b, base, token, paths, d, compareThreads, profile); ok {
			return r
		}
		return goLoad(b, base, token, paths, d, false)
	}
	if _, err := exec.LookPath("wrk"); err != nil {
		b.Log("wrk not installed: measuring with the Go client (apt-get install wrk for lower client overhead)")
	}
	measure(ceil, "ceiling", 0, time.Second)
	measure(readerBase, "reader", 0, time.Second)
	cs, rs := make([]loadResult, rounds), make([]loadResult, rounds)
	for i := range rounds {
		if i%2 == 0 {
			cs[i] = measure(ceil, "ceiling", i+1, d)
			rs[i] = measure(readerBase, "reader", i+1, d)
		} else {
			rs[i] = measure(readerBase, "reader", i+1, d)
			cs[i] = measure(ceil, "ceiling", i+1, d)
		}
	}
	for i := range rounds {
		b.Logf("%s round %d: ceiling %.0f req/s p99 %v; reader %.0f req/s p99 %v (%.2f, %.2fx)", name, i+1,
			cs[i].rps, cs[i].p99.Round(10*time.Microsecond), rs[i].rps, rs[i].p99.Round(10*time.Microsecond),
			rs[i].rps/cs[i].rps, float64(rs[i].p99)/float64(cs[i].p99))
	}
	c := newComparison(name, rs, cs, d)
	c.log(b)
	return c
}

// benchProfile is the CPU profile file of one load window, or "" when
// READER_BENCH_CPUPROFILE is not set.
func benchProfile(what string, round int) string {
	prefix := os.Getenv("READER_BENCH_CPUPROFILE")
	if prefix == "" {
		return ""
	}
	return fmt.Sprintf("%s.%s-%d.pprof", prefix, strings.ReplaceAll(what, " ", "_"), round)
}

// median takes the median req/s, p99, CPU and allocations per request of
// rounds, and sums the counts.
func median(rounds []loadResult) loadResult {
	rps := make([]float64, len(rounds))
	p99 := make([]time.Duration, len(rounds))
	out := loadResult{tool: rounds[0].tool}
	for i, r := range rounds {
		rps[i], p99[i] = r.rps, r.p99
		out.requests += r.requests
		out.errors += r.errors
	}
	slices.Sort(rps)
	slices.Sort(p99)
	out.rps, out.p99 = rps[len(rps)/2], p99[len(p99)/2]
	cpu, client := make([]time.Duration, len(rounds)), make([]time.Duration, len(rounds))
	for i, r := range rounds {
		cpu[i], client[i] = r.cpuPerReq, r.clientCPUPerReq
	}
	slices.Sort(cpu)
	slices.Sort(client)
	out.cpuPerReq, out.clientCPUPerReq = cpu[len(cpu)/2], client[len(client)/2]
	allocs, bytes := make([]float64, len(rounds)), make([]float64, len(rounds))
	for i, r := range rounds {
		allocs[i], bytes[i] = r.allocsPerReq, r.bytesPerReq
		out.gcs += r.gcs
	}
	slices.Sort(allocs)
	slices.Sort(bytes)
	out.allocsPerReq, out.bytesPerReq = allocs[len(allocs)/2], bytes[len(bytes)/2]
	return out
}

// BenchmarkGetCached: GET of one order from the local tier, with an API
// key: "cached" with orders:read (the masked view), "cached-pii" with
// orders:pii (the order as ingested, and an audit record per answer).
// Each view's figures are reported with its prefix (masked-, full-); the
// targets' units, rps-ratio and p99-ratio, are the worse view's.
func BenchmarkGetCached(b *testing.B) {
	o := testenv.Sample(b)
	body, err := o.Canonical()
	if err != nil {
		b.Fatal(err)
	}
	masked, err := pii.MaskJSON(body)
	if err != nil {
		b.Fatal(err)
	}
	base, _, keys := benchReader(b, nil, []*model.Order{o})
	paths := []string{"/order/" + o.OrderUID}
	if resp := mustGet(b, base+paths[0], keys.read); resp != "local" {
		b.Fatalf("warmed order answered from %q, not local", resp)
	}
	for b.Loop() {
		m := compare(b, "cached", base, keys.read, paths, masked)
		f := compare(b, "cached-pii", base, keys.pii, paths, body)
		m.report(b, "masked-")
		f.report(b, "full-")
		// The targets hold for both views: the lower req/s ratio and
		// the higher p99 ratio of the two.
		b.ReportMetric(min(m.rpsRatio, f.rpsRatio), "rps-ratio")
		b.ReportMetric(max(m.p99Ratio, f.p99Ratio), "p99-ratio")
	}
}

// BenchmarkGetUnknownFlood: 1,000 unknown uids requested over and over:
// the negative cache answers 404 without the database.
func BenchmarkGetUnknownFlood(b *testing.B) {
	base, ops, keys := benchReader(b, nil, nil)
	paths := make([]string, 1000)
	for i := range paths {
		paths[i] = fmt.Sprintf("/order/unknown_%d", i)
	}
	body := []byte(`{"type":"about:blank","title":"Not Found","status":404,"detail":"no order with this order_uid","instance":"/order/unknown_0","request_id":"0123456789ab-1"}`)
	for b.Loop() {
		compare(b, "unknown", base, keys.read, paths, body).report(b, "")
	}
	b.Logf("negative-cache hits %v, database misses %v",
		scrape(b, ops, `reader_cache_lookups_total{result="hit",tier="negative"}`),
		scrape(b, ops, `reader_cache_lookups_total{result="miss",tier="db"}`))
}

// BenchmarkGetUncached: rounds of 10,000 distinct orders, none cached (no
// warm-up, an empty Redis prefix), each asked for exactly once over 64
// connections by the Go client: every answer is a local miss, a Redis miss
// and a PostgreSQL lookup (checked against the tier metrics). Each round
// asks for its own 10,000 orders, never asked before, and lasts about a
// second, so one burst of load from elsewhere moves one round: the figure
// is the median of three. wrk cannot stop after a set of requests and
// report the rate of those alone, and a longer wrk run would turn into
// cache hits; the Go client costs this 2-core machine more CPU per request
// than wrk, so the figure is conservative.
func BenchmarkGetUncached(b *testing.B) {
	const rounds, perRound = 3, 10_000
	gen := ordergen.New(99)
	orders := gen.Orders(rounds * perRound)
	paths := make([]string, len(orders))
	for i, o := range orders {
		paths[i] = "/order/" + o.OrderUID
	}
	base, ops, keys := benchReader(b, map[string]string{"READER_WARM_COUNT": "0"}, orders)
	for b.Loop() {
		var rs []loadResult
		for round := range rounds {
			loaded0 := scrape(b, ops, `reader_cache_lookups_total{result="hit",tier="db"}`)
			queries0 := scrape(b, ops, `reader_db_query_duration_seconds_count{query="get"}`)
			cpu0 := cpuTime()
			r := goLoad(b, base, keys.read, paths[round*perRound:(round+1)*perRound], time.Minute, true)
			r.cpuPerReq = (cpuTime() - cpu0) / time.Duration(max(1, r.requests))
			if r.errors > 0 {
				b.Fatalf("%d errors", r.errors)
			}
			loaded := scrape(b, ops, `reader_cache_lookups_total{result="hit",tier="db"}`) - loaded0
			queries := scrape(b, ops, `reader_db_query_duration_seconds_count{query="get"}`) - queries0
			b.Logf("uncached round %d: %v; %v orders loaded by %v queries (%.1f per query)",
				round+1, r, loaded, queries, loaded/queries)
			if int(loaded) < r.requests {
				b.Errorf("only %v of %d requests reached the database: the round was not all uncached", loaded, r.requests)
			}
			rs = append(rs, r)
		}
		m := median(rs)
		b.Logf("uncached median of %d rounds: %.0f req/s, p99 %v", rounds, m.rps, m.p99.Round(10*time.Microsecond))
		b.ReportMetric(m.rps, "req/s")
		b.ReportMetric(float64(m.p99.Microseconds())/1000, "p99-ms")
		b.ReportMetric(0, "ns/op")
	}
}

func mustGet(b *testing.B, url, token string) string {
	b.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Authorization", authtest.Bearer(token))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, bufio.NewReader(resp.Body))
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	return resp.Header.Get("X-Cache")
}

func scrape(b *testing.B, ops, series string) float64 {
	b.Helper()
	resp, err := http.Get(ops + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			v, _ := strconv.ParseFloat(rest, 64)
			return v
		}
	}
	return 0
}
