package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/orderservice/orders/reader/auth/authtest"
	"github.com/orderservice/orders/shared/model"
	"github.com/orderservice/orders/shared/ordergen"
	"github.com/orderservice/orders/shared/testenv"
)

// Hostile HTTP clients against the real reader (run, real PostgreSQL and
// Redis): connections that trickle their headers or body, connections held
// open idle by the thousand, heads too large, pipelined requests, and a
// client that never reads its answer. Each kind is checked against the
// server's limits, while normal clients are served alongside and the
// process's memory and goroutines are watched. RELIABILITY.md lists the
// figures.
//
// The test is not parallel on purpose: it measures the whole process's
// goroutines and heap, which other tests running at once would blur. The
// idle connections' client ends are in a process of their own
// (TestIdleClients), so that the measure is the server's alone and each
// process needs one descriptor per idle connection, not two.

// abuseSize is how much of each abuse a run throws at the reader.
type abuseSize struct {
	idle       int           // keep-alive connections held idle after one request
	silent     int           // connections that never send a byte
	slowloris  int           // connections trickling their headers, one byte a second
	slowBodies int           // connections trickling a request body
	idleFor    time.Duration // READER_IDLE_TIMEOUT: longer than setting up the idle connections takes
}

// The timeouts of the reader under test: short, so that the test sees each
// of them end a connection.
const (
	abuseReadHeaderTimeout = 2 * time.Second
	// ReadTimeout well above ReadHeaderTimeout, which net/http falls back
	// to when ReadHeaderTimeout is 0: the slowloris check tells them apart.
	abuseReadTimeout  = 4 * time.Second
	abuseWriteTimeout = 3 * time.Second
	// closeSlack is how late past its timeout the server may close a
	// connection on a shared, loaded machine (and under the race detector).
	closeSlack = 1500 * time.Millisecond
	// The head (request line and headers) net/http reads at most:
	// MaxHeaderBytes (16 KiB in listen) plus the 4 KiB it allows on top.
	headLimit = 16<<10 + 4096
	// perConnBudget bounds the memory one idle connection may cost the
	// server.
	perConnBudget = 32 << 10
	// dialers is how many connections the test opens (or checks) at once.
	dialers = 32
)

// TestHTTPAbuse is the size make test runs; TestSoakHTTPAbuse (make soak)
// is the full one.
func TestHTTPAbuse(t *testing.T) {
	abuse(t, abuseSize{idle: 1000, silent: 100, slowloris: 50, slowBodies: 10, idleFor: 10 * time.Second})
}

func TestSoakHTTPAbuse(t *testing.T) {
	if os.Getenv("SOAK") == "" {
		t.Skip("the full-size abuse runs under make soak (SOAK=1)")
	}
	abuse(t, abuseSize{idle: 10_000, silent: 1000, slowloris: 500, slowBodies: 100, idleFor: 40 * time.Second})
}

func abuse(t *testing.T, size abuseSize) {
	fitFDLimit(t, size.idle+2*(size.silent+size.slowloris+size.slowBodies))
	e := newEnv(t)
	e.vars["READER_READ_HEADER_TIMEOUT"] = abuseReadHeaderTimeout.String()
	e.vars["READER_READ_TIMEOUT"] = abuseReadTimeout.String()
	e.vars["READER_WRITE_TIMEOUT"] = abuseWriteTimeout.String()
	e.vars["READER_IDLE_TIMEOUT"] = size.idleFor.String()
	e.vars["READER_REQUEST_TIMEOUT"] = "2s" // under WriteTimeout, as config requires
	// Debug logging would keep a line per request in the test's memory,
	// which is measured.
	e.vars["READER_LOG_LEVEL"] = "warn"
	orders := ordergen.New(16).Orders(20)
	testenv.InsertOrders(t, e.pg.Pool, orders...)
	r := e.start(t, true)
	addr := e.vars["READER_LISTEN_ADDR"]

	base := liveMemory()
	t.Logf("baseline: %d goroutines, %.1f MiB heap and stacks", base.goroutines, mib(base.bytes))
	load := startLoad(r.base, e.keys.Read, orders)

	// Phase 1: the idle connections, alone, so that what they cost can be
	// read off the process.
	idle := startIdleClients(t, addr, size.idle, size.idleFor)
	held := liveMemory()
	perConn := float64(held.bytes-min(held.bytes, base.bytes)) / float64(size.idle)
	t.Logf("%d idle connections held: %d goroutines, %.1f MiB (%.1f KiB a connection)",
		size.idle, held.goroutines, mib(held.bytes), perConn/1024)
	if perConn > perConnBudget {
		t.Errorf("an idle connection costs %.1f KiB, budget %d KiB", perConn/1024, perConnBudget>>10)
	}
	// Phase 2: everything else at once, while the idle connections are
	// held and the normal clients go on.
	peak := watchMemory()
	t.Run("abuse", func(t *testing.T) {
		t.Run("silent", func(t *testing.T) {
			t.Parallel()
			openSilent(t, addr, size.silent).requireClosed(t, abuseReadHeaderTimeout)
		})
		t.Run("slowloris", func(t *testing.T) { t.Parallel(); slowloris(t, addr, size.slowloris) })
		t.Run("slow body", func(t *testing.T) { t.Parallel(); slowBody(t, addr, size.slowBodies) })
		t.Run("oversized heads", func(t *testing.T) { t.Parallel(); oversized(t, addr, e.keys.PII) })
		t.Run("pipelining", func(t *testing.T) { t.Parallel(); pipelining(t, addr, e.keys.PII, orders) })
		t.Run("never reads", func(t *testing.T) { t.Parallel(); neverReads(t, addr) })
	})
	peakBytes := peak()
	t.Logf("live memory during the abuse: at most %.1f MiB", mib(peakBytes))
	if limit := base.bytes + uint64(size.idle)*perConnBudget + 64<<20; peakBytes > limit {
		t.Errorf("live memory reached %.1f MiB during the abuse, bound %.1f MiB", mib(peakBytes), mib(limit))
	}

	// Phase 3: the server ends the idle connections itself.
	t.Run("idle connections closed", func(t *testing.T) { idle.wait(t, size.idleFor) })

	stats := load.stop()
	t.Logf("normal clients during the abuse: %d requests, %d failed; p50 %v, p99 %v, max %v",
		stats.n, stats.failed, stats.p50, stats.p99, stats.max)
	if stats.failed > 0 || stats.n < 100 {
		t.Errorf("normal clients: %d of %d requests failed (first: %v)", stats.failed, stats.n, stats.firstErr)
	}

	// Everything the abuse started is gone again.
	var after memory
	testenv.Await(t, "the server's goroutines to return to the baseline", 10*time.Second, func() bool {
		after = liveMemory()
		return after.goroutines <= base.goroutines+10
	})
	t.Logf("after: %d goroutines, %.1f MiB", after.goroutines, mib(after.bytes))
	// The runtime keeps a descriptor of every goroutine it ever ran for
	// reuse: a few hundred bytes for each connection the abuse opened.
	if after.bytes > base.bytes+16<<20+uint64(size.idle)<<10 {
		t.Errorf("live memory %.1f MiB after the abuse, baseline %.1f MiB", mib(after.bytes), mib(base.bytes))
	}
}

// fitFDLimit makes sure the process may open conns more descriptors than
// it has open now: it raises the soft limit (to the hard one at most, which
// only a privileged process can raise) or fails the test saying why.
func fitFDLimit(t *testing.T, conns int) {
	t.Helper()
	need := uint64(conns + 1000) // the test's own files, PostgreSQL, Redis
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur >= need {
		return
	}
	raised := syscall.Rlimit{Cur: need, Max: max(lim.Max, need)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
		t.Fatalf("the test needs %d open files; the limit is %d (hard %d) and raising it failed: %v "+
			"(ulimit -n %d before the test)", need, lim.Cur, lim.Max, err, need)
	}
	t.Logf("open-file limit raised from %d to %d", lim.Cur, need)
	t.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim) })
}

// idleClients is the process holding the idle connections
// (TestIdleClients).
type idleClients struct {
	out  *testenv.Buffer
	done chan error
}

// startIdleClients runs TestIdleClients in a process of its own and
// returns once its n connections are open and idle.
func startIdleClients(t *testing.T, addr string, n int, idleFor time.Duration) *idleClients {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestIdleClients$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "ABUSE_IDLE_ADDR="+addr, "ABUSE_IDLE_CONNS="+strconv.Itoa(n),
		"ABUSE_IDLE_TIMEOUT="+idleFor.String())
	c := &idleClients{out: &testenv.Buffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = c.out, c.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.done <- cmd.Wait() }()
	t.Cleanup(func() {
		// Ended already when the test got as far as wait; killed otherwise.
		_ = cmd.Process.Kill()
		err := <-c.done
		c.done <- err
	})
	testenv.Await(t, "the idle connections to be open", 2*time.Minute, func() bool {
		select {
		case err := <-c.done:
			c.done <- err
			t.Fatalf("the idle clients ended early (%v):\n%s", err, c.out)
		default:
		}
		return strings.Contains(c.out.String(), idleHeld)
	})
	return c
}

// wait waits for the idle clients to report that the server closed every
// one of their connections at its idle timeout.
func (c *idleClients) wait(t *testing.T, idleFor time.Duration) {
	t.Helper()
	select {
	case err := <-c.done:
		c.done <- err
		if err != nil {
			t.Fatalf("idle clients: %v\n%s", err, c.out)
		}
		t.Logf("idle clients:\n%s", c.out)
	case <-time.After(idleFor + time.Minute):
		t.Fatalf("the idle clients did not end:\n%s", c.out)
	}
}

// idleHeld is what TestIdleClients prints once its connections are idle.
const idleHeld = "idle connections held"

// TestIdleClients is the client side of TestHTTPAbuse's idle connections,
// run by it in a process of its own: it opens ABUSE_IDLE_CONNS keep-alive
// connections to ABUSE_IDLE_ADDR, sends one request on each, and checks
// that the server closes each at ABUSE_IDLE_TIMEOUT.
func TestIdleClients(t *testing.T) {
	addr := os.Getenv("ABUSE_IDLE_ADDR")
	if addr == "" {
		t.Skip("run by TestHTTPAbuse in a process of its own")
	}
	n, err := strconv.Atoi(os.Getenv("ABUSE_IDLE_CONNS"))
	if err != nil {
		t.Fatal(err)
	}
	idleFor, err := time.ParseDuration(os.Getenv("ABUSE_IDLE_TIMEOUT"))
	if err != nil {
		t.Fatal(err)
	}
	fitFDLimit(t, n)
	h := openIdle(t, addr, n)
	fmt.Printf("%d %s\n", n, idleHeld)
	h.requireClosed(t, idleFor)
}

// memory is a count of the process's goroutines and its live heap and
// stacks.
type memory struct {
	goroutines int
	bytes      uint64
}

func liveMemory() memory {
	// Twice: sync.Pool's victim cache (net/http's buffers) survives one.
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return memory{goroutines: runtime.NumGoroutine(), bytes: m.HeapInuse + m.StackInuse}
}

// watchMemory samples the live memory until the returned function is
// called, which returns the largest sample.
func watchMemory() func() uint64 {
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			if b := liveMemory().bytes; b > peak.Load() {
				peak.Store(b)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 {
		close(stop)
		<-done
		return peak.Load()
	}
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// load is normal clients: four keep-alive clients, each asking for an order
// (and every fourth time the recent list) every 50 ms, with a key granted
// orders:read: 80 requests a second, within its rate limit (the reader's
// default, 100 a second).
type load struct {
	stopc chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	lat   []time.Duration
	fails int
	first error
}

type loadStats struct {
	n, failed     int
	p50, p99, max time.Duration
	firstErr      error
}

func startLoad(base, key string, orders []*model.Order) *load {
	l := &load{stopc: make(chan struct{})}
	for c := range 4 {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			defer client.CloseIdleConnections()
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for i := c; ; i++ {
				select {
				case <-l.stopc:
					return
				case <-tick.C:
				}
				path := "/order/" + orders[i%len(orders)].OrderUID
				if i%4 == 3 {
					path = "/orders?limit=10"
				}
				start := time.Now()
				err := getOK(client, base+path, key)
				l.record(time.Since(start), err)
			}
		}()
	}
	return l
}

func getOK(c *http.Client, url, key string) error {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", authtest.Bearer(key))
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	return nil
}

func (l *load) record(d time.Duration, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lat = append(l.lat, d)
	if err != nil {
		l.fails++
		if l.first == nil {
			l.first = err
		}
	}
}

func (l *load) stop() loadStats {
	close(l.stopc)
	l.wg.Wait()
	slices.Sort(l.lat)
	s := loadStats{n: len(l.lat), failed: l.fails, firstErr: l.first}
	if s.n > 0 {
		s.p50, s.p99, s.max = l.lat[s.n/2], l.lat[s.n*99/100], l.lat[s.n-1]
	}
	return s
}

// held are connections the test keeps open, each with the time from which
// the server's timeout runs.
type held struct {
	conns []net.Conn
	since []time.Time
}

// openIdle opens n connections, sends one request on each and reads its
// answer, and leaves them idle: net/http keeps them for IdleTimeout.
func openIdle(t *testing.T, addr string, n int) *held {
	t.Helper()
	h := &held{conns: make([]net.Conn, n), since: make([]time.Time, n)}
	t.Cleanup(h.close)
	req := []byte("GET /healthz HTTP/1.1\r\nHost: reader\r\n\r\n")
	parallelDo(t, n, dialers, func(i int) error {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			return err
		}
		h.conns[i] = c
		// The idle timeout starts after the answer, so later than this.
		h.since[i] = time.Now()
		if _, err := c.Write(req); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReaderSize(c, 512), nil)
		if err != nil {
			return fmt.Errorf("idle connection %d: %w", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Close {
			return fmt.Errorf("idle connection %d: status %d, close %v", i, resp.StatusCode, resp.Close)
		}
		return nil
	})
	return h
}

// openSilent opens n connections that never send a byte: net/http ends
// them at ReadHeaderTimeout.
func openSilent(t *testing.T, addr string, n int) *held {
	t.Helper()
	h := &held{conns: make([]net.Conn, n), since: make([]time.Time, n)}
	t.Cleanup(h.close)
	parallelDo(t, n, dialers, func(i int) error {
		// The server's timeout starts after the dial, so later than this.
		h.since[i] = time.Now()
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		h.conns[i] = c
		return err
	})
	return h
}

// requireClosed checks that the server closed every connection (the
// client reads EOF) by timeout after its since, give or take closeSlack,
// and not before.
func (h *held) requireClosed(t *testing.T, timeout time.Duration) {
	t.Helper()
	var early, late, worst atomic.Int64
	parallelDo(t, len(h.conns), dialers, func(i int) error {
		c := h.conns[i]
		deadline := h.since[i].Add(timeout + closeSlack)
		if time.Now().After(deadline) {
			// A read past its deadline fails at once, closed or not.
			// After a late one, this one is late too; else the test
			// came too late.
			if late.Load() > 0 {
				late.Add(1)
				return nil
			}
			return fmt.Errorf("connection %d checked too late to tell when it closed", i)
		}
		_ = c.SetReadDeadline(deadline)
		n, err := c.Read(make([]byte, 1))
		closedAfter := time.Since(h.since[i])
		switch {
		case n > 0:
			return fmt.Errorf("connection %d: the server sent a byte unasked", i)
		case errors.Is(err, os.ErrDeadlineExceeded):
			late.Add(1)
		case closedAfter < timeout:
			early.Add(1)
		default:
			worst.Store(max(worst.Load(), int64(closedAfter-timeout)))
		}
		return nil
	})
	t.Logf("%d connections closed by the server at most %v after their %v timeout",
		len(h.conns)-int(late.Load()+early.Load()), time.Duration(worst.Load()), timeout)
	if late.Load() > 0 || early.Load() > 0 {
		t.Errorf("of %d connections, %d were still open %v after the %v timeout and %d were closed before it",
			len(h.conns), late.Load(), closeSlack, timeout, early.Load())
	}
}

func (h *held) close() {
	for _, c := range h.conns {
		if c != nil {
			c.Close()
		}
	}
}

// parallelDo runs f(0..n-1) on workers goroutines and fails the test with
// the first error.
func parallelDo(t *testing.T, n, workers int, f func(i int) error) {
	t.Helper()
	var next atomic.Int64
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					select {
					case errs <- err:
					default:
					}
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}

// trickle writes b, then 'a's, one byte a second until the connection
// fails or stop closes.
func trickle(c net.Conn, b []byte, stop <-chan struct{}) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for i := 0; ; i++ {
		next := byte('a')
		if i < len(b) {
			next = b[i]
		}
		if _, err := c.Write([]byte{next}); err != nil {
			return
		}
		select {
		case <-stop:
			return
		case <-tick.C:
		}
	}
}

// closedWithin reads c (through r, which may hold buffered bytes of it)
// until the server closes it and returns how long that took from start and
// what the server sent; a deadline means the server did not close it.
func closedWithin(r io.Reader, c net.Conn, start time.Time, limit time.Duration) (time.Duration, []byte, error) {
	_ = c.SetReadDeadline(start.Add(limit))
	got, err := io.ReadAll(r)
	if errors.Is(err, syscall.ECONNRESET) {
		err = nil
	}
	return time.Since(start), got, err
}

// slowloris: connections sending their headers one byte a second. The
// server closes each at ReadHeaderTimeout, with a 400 or without a word;
// on a kept alive connection the timeout starts once the next request's
// first four bytes are in (net/http waits for them under IdleTimeout).
func slowloris(t *testing.T, addr string, n int) {
	head := []byte("GET /healthz HTTP/1.1\r\nHost: reader\r\nX-Slow: ")
	var worst atomic.Int64
	parallelDo(t, n, n, func(i int) error {
		// The server's timeout starts after the dial, so later than this.
		start := time.Now()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		keepAlive := i%2 == 1
		br := bufio.NewReader(c)
		timeout := abuseReadHeaderTimeout
		if keepAlive {
			if _, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: reader\r\n\r\n")); err != nil {
				return err
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			timeout += 3 * time.Second // the four bytes net/http peeks at, one a second
			start = time.Now()
		}
		stop := make(chan struct{})
		defer close(stop)
		go trickle(c, head, stop)
		took, got, err := closedWithin(br, c, start, timeout+closeSlack)
		if err != nil {
			return fmt.Errorf("slowloris %d (keep-alive %v): still open after %v: %w", i, keepAlive, took, err)
		}
		if took < timeout-100*time.Millisecond || len(got) > 0 && !bytes.HasPrefix(got, []byte("HTTP/1.1 400 ")) {
			return fmt.Errorf("slowloris %d (keep-alive %v): closed after %v (timeout %v), sent %q", i, keepAlive, took, timeout, got)
		}
		worst.Store(max(worst.Load(), int64(took-timeout)))
		return nil
	})
	t.Logf("%d slowloris connections closed by the server at most %v after ReadHeaderTimeout", n, time.Duration(worst.Load()))
}

// slowBody: GETs that announce a body and send it one byte a second. No
// handler reads a body; net/http discards it before sending the answer (up
// to 256 KiB), bounded by ReadTimeout from the start of the request, then
// answers with Connection: close and closes. A body announced larger is
// not read at all: the answer and the close come at once. The client may
// not see the answer: it is still writing when the server closes, and the
// reset that follows can discard what it had not read yet (RFC 9112
// 9.6); the close is what the server promises.
func slowBody(t *testing.T, addr string, n int) {
	cases := []struct {
		name, head string
		within     time.Duration
	}{
		{"content-length", "Content-Length: 1000\r\n", abuseReadTimeout},
		{"chunked", "Transfer-Encoding: chunked\r\n", abuseReadTimeout},
		{"over 256 KiB", "Content-Length: 10485760\r\n", 0},
	}
	var worst, answered [3]atomic.Int64
	parallelDo(t, n*len(cases), n*len(cases), func(i int) error {
		tc := cases[i%len(cases)]
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		start := time.Now() // the request's first byte: ReadTimeout runs from later
		if _, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: reader\r\n" + tc.head + "\r\n")); err != nil {
			return err
		}
		stop := make(chan struct{})
		defer close(stop)
		var body []byte // trickle's 'a's: the announced bytes
		if strings.Contains(tc.head, "chunked") {
			body = []byte(strings.Repeat("1\r\na\r\n", 100))
		}
		go trickle(c, body, stop)
		took, got, err := closedWithin(c, c, start, tc.within+closeSlack)
		if err != nil {
			return fmt.Errorf("slow body (%s): still open after %v: %w", tc.name, took, err)
		}
		if len(got) > 0 {
			resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(got)), nil)
			if err != nil {
				return fmt.Errorf("slow body (%s): sent %q: %w", tc.name, got, err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !resp.Close {
				return fmt.Errorf("slow body (%s): status %d, Connection: close %v", tc.name, resp.StatusCode, resp.Close)
			}
			answered[i%len(cases)].Add(1)
		}
		w := &worst[i%len(cases)]
		w.Store(max(w.Load(), int64(took)))
		return nil
	})
	for i, tc := range cases {
		t.Logf("slow body (%s): %d connections closed within %v of the request (ReadTimeout %v), %d saw the answer",
			tc.name, n, time.Duration(worst[i].Load()), abuseReadTimeout, answered[i].Load())
	}
}

// oversized: heads over net/http's limit get 431 and a closed connection;
// large ones under it reach the router, whose uid check answers 400. The
// URI counts in the head: net/http has no separate URI limit (no 414).
func oversized(t *testing.T, addr, key string) {
	credential := "Authorization: " + authtest.Bearer(key) + "\r\n"
	long := func(n int) string { return strings.Repeat("a", n) }
	many := strings.Repeat("X-A: b\r\n", 3000) // 24 KB of small headers
	for _, tc := range []struct {
		name, head string
		status     int
	}{
		{"header under the limit", "GET /healthz HTTP/1.1\r\nHost: r\r\nX-Big: " + long(headLimit-200) + "\r\n\r\n", http.StatusOK},
		{"header over the limit", "GET /healthz HTTP/1.1\r\nHost: r\r\nX-Big: " + long(headLimit) + "\r\n\r\n", http.StatusRequestHeaderFieldsTooLarge},
		{"many small headers", "GET /healthz HTTP/1.1\r\nHost: r\r\n" + many + "\r\n", http.StatusRequestHeaderFieldsTooLarge},
		{"1 MiB header", "GET /healthz HTTP/1.1\r\nHost: r\r\nX-Big: " + long(1<<20) + "\r\n\r\n", http.StatusRequestHeaderFieldsTooLarge},
		{"uid of 10 KB", "GET /order/" + long(10_000) + " HTTP/1.1\r\nHost: r\r\n" + credential + "\r\n", http.StatusBadRequest},
		{"path of 10 KB", "GET /" + long(10_000) + " HTTP/1.1\r\nHost: r\r\n\r\n", http.StatusNotFound},
		{"URI over the limit", "GET /order/" + long(headLimit) + " HTTP/1.1\r\nHost: r\r\n\r\n", http.StatusRequestHeaderFieldsTooLarge},
		{"query over the limit", "GET /orders?limit=" + long(headLimit) + " HTTP/1.1\r\nHost: r\r\n\r\n", http.StatusRequestHeaderFieldsTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// The server may answer and close before it has read all of
			// a large head: the write's error is not the test's concern.
			go func() { _, _ = c.Write([]byte(tc.head)) }()
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %.200s", resp.StatusCode, tc.status, body)
			}
			if tc.status == http.StatusRequestHeaderFieldsTooLarge {
				if _, err := br.ReadByte(); !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
					t.Fatalf("connection not closed after the 431: %v", err)
				}
			}
		})
	}
}

// pipelining: requests written at once on one connection are answered in
// order, each in full, and the last one's Connection: close ends it.
func pipelining(t *testing.T, addr, key string, orders []*model.Order) {
	type call struct {
		method, path string
		status       int
		body         []byte // nil: not checked
	}
	var calls []call
	for i := range 40 {
		o := orders[i%len(orders)]
		switch i % 5 {
		case 0, 1:
			calls = append(calls, call{http.MethodGet, "/order/" + o.OrderUID, http.StatusOK, canonical(t, o)})
		case 2:
			calls = append(calls, call{http.MethodHead, "/order/" + o.OrderUID, http.StatusOK, []byte{}})
		case 3:
			calls = append(calls, call{http.MethodGet, "/order/unknown_" + strconv.Itoa(i), http.StatusNotFound, nil})
		case 4:
			calls = append(calls, call{http.MethodGet, "/order/bad.uid", http.StatusBadRequest, nil})
		}
	}
	var batch bytes.Buffer
	for i, c := range calls {
		fmt.Fprintf(&batch, "%s %s HTTP/1.1\r\nHost: reader\r\nAuthorization: %s\r\nX-Request-Id: pipe-%d\r\n",
			c.method, c.path, authtest.Bearer(key), i)
		if i == len(calls)-1 {
			batch.WriteString("Connection: close\r\n")
		}
		batch.WriteString("\r\n")
	}
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(batch.Bytes()); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(conn)
	for i, c := range calls {
		resp, err := http.ReadResponse(br, &http.Request{Method: c.method})
		if err != nil {
			t.Fatalf("answer %d of %d: %v", i, len(calls), err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		if id := resp.Header.Get("X-Request-Id"); id != "pipe-"+strconv.Itoa(i) {
			t.Fatalf("answer %d is for request %q: out of order", i, id)
		}
		if resp.StatusCode != c.status || (c.body != nil && !bytes.Equal(body, c.body)) {
			t.Fatalf("answer %d (%s %s): status %d, body %.100s", i, c.method, c.path, resp.StatusCode, body)
		}
	}
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("connection not closed after Connection: close: %v", err)
	}
}

// neverReads: a client asks for the largest resource (Swagger UI's bundle,
// 1.7 MB) forty times on one connection and never reads. The server's
// write blocks once the socket buffers are full; WriteTimeout fails it,
// the handler returns and the server closes the connection, which the
// client sees as a reset when it writes.
func neverReads(t *testing.T, addr string) {
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			// A small receive window, set before connecting.
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		return errors.Join(err, serr)
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := "GET /swagger/swagger-ui-bundle.js HTTP/1.1\r\nHost: reader\r\n\r\n"
	start := time.Now()
	if _, err := c.Write([]byte(strings.Repeat(req, 40))); err != nil {
		t.Fatal(err)
	}
	probe := []byte("GET /healthz HTTP/1.1\r\nHost: reader\r\n\r\n")
	testenv.Await(t, "the server to close the connection it cannot write to", abuseWriteTimeout+closeSlack+time.Second, func() bool {
		_ = c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
		_, err := c.Write(probe)
		return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
	})
	took := time.Since(start)
	if took < abuseWriteTimeout-100*time.Millisecond {
		t.Fatalf("connection closed after %v, before WriteTimeout (%v)", took, abuseWriteTimeout)
	}
	t.Logf("a client that never reads: connection closed by the server %v after its requests (WriteTimeout %v)", took, abuseWriteTimeout)
}
