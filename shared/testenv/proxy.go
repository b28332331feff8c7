package testenv

import (
	"context"
	"errors"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Proxy forwards TCP connections to a target and injects the faults real
// networks have, to test how code behaves when a database, cache or broker
// goes away, hangs or slows down, and comes back. Its mode changes at run
// time and applies at once to the connections already open:
//
//   - Cut resets every connection and every new one (a refused port, a
//     crashed server): the client sees an error at once.
//   - Stall forwards nothing, either way, and closes nothing (a black hole:
//     a partition, a frozen server). New connections are accepted (the
//     kernel does that) but not passed on to the target. The client sees no
//     error, no byte and no end of stream: only its own timeouts end its
//     wait.
//   - Delay holds every chunk of bytes for a while before passing it on (a
//     slow network).
//   - Restore forwards normally again: stalled and delayed connections go
//     on where they were, bytes held meanwhile included; cut ones stay
//     closed.
type Proxy struct {
	target string
	ln     net.Listener
	ctx    context.Context // cancelled when the proxy closes
	cancel context.CancelFunc

	mu    sync.Mutex
	mode  *mode
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup

	accepted, chunks, bytes atomic.Int64
}

// mode is what the proxy does with bytes and connections. A mode is never
// changed in place: setMode replaces it and closes the old one's changed
// channel, which wakes everything waiting on it.
type mode struct {
	cut, stall bool
	delay      time.Duration
	changed    chan struct{}
}

// ProxyStats counts what clients sent to a Proxy, forwarded or not (bytes
// a stalled proxy holds are counted when it reads them).
type ProxyStats struct {
	Accepted int64 // connections accepted
	// Chunks counts reads from clients: about one per write the client
	// made, so one per command or pipeline of a request–response protocol
	// (Redis, PostgreSQL) that is not under load.
	Chunks int64
	Bytes  int64
}

// NewProxy starts a proxy on a free loopback port forwarding to target
// (host:port), and stops it when the test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := new(net.ListenConfig).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		t.Fatalf("testenv: proxy to %s: %v", target, err)
	}
	p := &Proxy{
		target: target, ln: ln, ctx: ctx, cancel: cancel,
		mode: &mode{changed: make(chan struct{})}, conns: make(map[net.Conn]struct{}),
	}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

// ProxyURL starts a Proxy in front of the host:port of rawURL (a
// postgres://, redis:// or any URL with a host) and returns rawURL pointed
// through it, user, database and options kept, with the proxy the test
// cuts and restores.
func ProxyURL(t testing.TB, rawURL string) (string, *Proxy) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		t.Fatalf("testenv: ProxyURL: %q has no host to proxy (%v)", rawURL, err)
	}
	p := NewProxy(t, u.Host)
	u.Host = p.Addr()
	return u.String(), p
}

// Addr is the proxy's address ("127.0.0.1:<port>"); it stays the same
// across every mode.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target is the address the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

// Stats returns the counts so far.
func (p *Proxy) Stats() ProxyStats {
	return ProxyStats{Accepted: p.accepted.Load(), Chunks: p.chunks.Load(), Bytes: p.bytes.Load()}
}

// Cut closes every open connection and makes new ones fail at once (they
// are reset as soon as they are accepted) until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.setMode(&mode{cut: true})
	for c := range p.conns {
		reset(c)
		delete(p.conns, c)
	}
}

// Stall stops forwarding, both ways, on the open connections and on new
// ones, and closes nothing, until another mode is set.
func (p *Proxy) Stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.setMode(&mode{stall: true})
}

// Delay forwards every chunk of bytes d after the proxy read it, each way,
// until another mode is set: a request–response round trip takes at least
// 2d longer. Bytes keep their order; throughput is not limited.
func (p *Proxy) Delay(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.setMode(&mode{delay: d})
}

// Restore forwards normally again. Stalled and delayed connections go on,
// with the bytes held meanwhile; connections closed by Cut stay closed:
// clients must reconnect, as after a real outage.
func (p *Proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.setMode(&mode{})
}

// setMode replaces the mode; p.mu must be held.
func (p *Proxy) setMode(m *mode) {
	m.changed = make(chan struct{})
	close(p.mode.changed)
	p.mode = m
}

func (p *Proxy) currentMode() *mode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

// await blocks until a chunk read at readAt may be forwarded and reports
// whether it may (false: the connection is cut, or ctx ended).
func (p *Proxy) await(ctx context.Context, readAt time.Time) bool {
	for {
		m := p.currentMode()
		switch {
		case m.cut:
			return false
		case m.stall:
			select {
			case <-m.changed:
				continue
			case <-ctx.Done():
				return false
			}
		}
		wait := time.Until(readAt.Add(m.delay))
		if wait <= 0 {
			return true
		}
		timer := time.NewTimer(wait)
		select {
		case <-timer.C: // checked again: the mode may have changed meanwhile
		case <-m.changed:
			timer.Stop()
		case <-ctx.Done():
			timer.Stop()
			return false
		}
	}
}

// The listener stays open in every mode, so that nobody else can take the
// port and Addr stays valid; a reset right after accept fails the client's
// first read or write, like a refused connection does.
func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		p.accepted.Add(1)
		p.mu.Lock()
		if p.mode.cut {
			p.mu.Unlock()
			reset(c)
			continue
		}
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(1)
		go p.forward(c)
	}
}

// forward connects client to the target, once no stall holds it back, and
// pipes bytes both ways until either side ends; then it closes both. The
// client's bytes are read (and counted) from the start, stalled or not.
func (p *Proxy) forward(client net.Conn) {
	defer p.wg.Done()
	ctx, cancel := context.WithCancel(p.ctx)
	var readers, writers sync.WaitGroup
	defer func() {
		cancel()
		readers.Wait() // they end once their connection is closed, below
	}()
	up := p.read(ctx, &readers, client, true)
	if !p.await(ctx, time.Now()) { // a stalled connection reaches nobody
		p.drop(client)
		return
	}
	server, err := new(net.Dialer).DialContext(ctx, "tcp", p.target)
	if err != nil {
		p.drop(client)
		return
	}
	p.mu.Lock()
	if p.mode.cut { // cut while dialling
		p.mu.Unlock()
		reset(server)
		p.drop(client)
		return
	}
	p.conns[server] = struct{}{}
	p.mu.Unlock()
	down := p.read(ctx, &readers, server, false)
	writers.Go(func() { p.write(ctx, cancel, server, up) })
	writers.Go(func() { p.write(ctx, cancel, client, down) })
	<-ctx.Done() // one side ended: end both
	p.drop(client)
	p.drop(server)
	writers.Wait()
}

// chunk is what one read from a connection returned.
type chunk struct {
	b  []byte
	at time.Time
}

// read reads src on a goroutine of its own (in readers) until it fails or
// ends, and sends what it reads; the channel closes at the end of src.
func (p *Proxy) read(ctx context.Context, readers *sync.WaitGroup, src net.Conn, fromClient bool) <-chan chunk {
	chunks := make(chan chunk, 64)
	readers.Go(func() {
		defer close(chunks)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				if fromClient {
					p.chunks.Add(1)
					p.bytes.Add(int64(n))
				}
				select {
				case chunks <- chunk{buf[:n], time.Now()}:
				case <-ctx.Done():
					return
				}
			}
			if err != nil {
				return
			}
		}
	})
	return chunks
}

// write writes the chunks to dst, each once await lets it through, until
// they end (the end of stream passes the same gate: a stalled connection is
// not closed), dst fails or ctx ends; then it calls end, which ends both
// directions.
func (p *Proxy) write(ctx context.Context, end context.CancelFunc, dst net.Conn, chunks <-chan chunk) {
	defer end()
	for c := range chunks {
		if !p.await(ctx, c.at) {
			return
		}
		if _, err := dst.Write(c.b); err != nil {
			return
		}
	}
	p.await(ctx, time.Now())
}

func (p *Proxy) drop(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

// close stops the proxy and waits for its goroutines.
func (p *Proxy) close() {
	p.cancel()
	_ = p.ln.Close()
	p.Cut()
	p.wg.Wait()
}

// reset closes c with an RST rather than a FIN, so that the peer sees an
// error at once instead of a clean end of stream.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}
