package testenv

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// echoServer answers each line with the same line, until the test ends.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(line)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// roundTrip sends a line over c and reads the echo back.
func roundTrip(c net.Conn, r *bufio.Reader, msg string) error {
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(msg + "\n")); err != nil {
		return err
	}
	_, err := r.ReadString('\n')
	return err
}

func dialEcho(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	return roundTrip(c, bufio.NewReader(c), "hello")
}

func TestProxyCutAndRestore(t *testing.T) {
	t.Parallel()
	p := NewProxy(t, echoServer(t))

	live, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	liveR := bufio.NewReader(live)

	steps := []struct {
		name     string
		action   func()
		liveOK   bool // the connection opened before the first cut works
		newConOK bool // a connection opened now works
	}{
		{"before cut", func() {}, true, true},
		{"cut", p.Cut, false, false},
		{"cut twice", p.Cut, false, false},
		{"restored", p.Restore, false, true},
		{"cut again", p.Cut, false, false},
		{"restored again", p.Restore, false, true},
	}
	for _, s := range steps {
		s.action()
		if err := roundTrip(live, liveR, s.name); (err == nil) != s.liveOK {
			t.Errorf("%s: old connection: got err %v, want ok=%v", s.name, err, s.liveOK)
		}
		if err := dialEcho(p.Addr()); (err == nil) != s.newConOK {
			t.Errorf("%s: new connection: got err %v, want ok=%v", s.name, err, s.newConOK)
		}
	}
}

func TestProxyToPostgres(t *testing.T) {
	t.Parallel()
	pg := Postgres(t)
	srv, err := pgServerOnce()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pgx.ParseConfig(srv.url)
	if err != nil {
		t.Fatal(err)
	}
	p := NewProxy(t, net.JoinHostPort(cfg.Host, itoa(cfg.Port)))
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg.URLVia(p.Addr()))
	if err != nil {
		t.Fatalf("connect through proxy: %v", err)
	}
	defer conn.Close(ctx)
	if err := conn.Ping(ctx); err != nil {
		t.Fatalf("ping through proxy: %v", err)
	}
	p.Cut()
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := conn.Ping(qctx); err == nil {
		t.Fatal("ping succeeded through a cut proxy")
	}
	if c, err := pgx.Connect(qctx, pg.URLVia(p.Addr())); err == nil {
		c.Close(ctx)
		t.Fatal("connected through a cut proxy")
	}
	p.Restore()
	c, err := pgx.Connect(ctx, pg.URLVia(p.Addr()))
	if err != nil {
		t.Fatalf("connect after restore: %v", err)
	}
	defer c.Close(ctx)
	var db string
	if err := c.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil || db != pg.Name {
		t.Fatalf("after restore: database %q, err %v; want %s", db, err, pg.Name)
	}
}

func itoa(n uint16) string { return strconv.Itoa(int(n)) }

// TestProxyURL: the URL keeps everything but its host, which becomes the
// proxy's, and the proxy forwards to the original host.
func TestProxyURL(t *testing.T) {
	t.Parallel()
	target := echoServer(t)
	for _, raw := range []string{
		"postgres://order_reader@" + target + "/t_abc?sslmode=disable",
		"redis://:secret@" + target + "/3",
	} {
		got, p := ProxyURL(t, raw)
		if want := strings.Replace(raw, target, p.Addr(), 1); got != want || p.target != target {
			t.Errorf("ProxyURL(%q) = %q to %s, want %q to %s", raw, got, p.target, want, target)
		}
	}
}

// conn is one end of a connection through a proxy.
type conn struct {
	net.Conn
	r *bufio.Reader
}

// readLine reads one line within limit; a timeout is os.ErrDeadlineExceeded.
func (c *conn) readLine(limit time.Duration) (string, error) {
	_ = c.SetReadDeadline(time.Now().Add(limit))
	line, err := c.r.ReadString('\n')
	return strings.TrimSuffix(line, "\n"), err
}

func (c *conn) send(t *testing.T, msg string) {
	t.Helper()
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(msg + "\n")); err != nil {
		t.Fatalf("write %q: %v", msg, err)
	}
}

// quiet is how long a test watches for bytes that must not arrive.
const quiet = 250 * time.Millisecond

// wait is how long to wait for something that should arrive (or not).
func wait(arrives bool) time.Duration {
	if arrives {
		return 5 * time.Second
	}
	return quiet
}

// namingServer accepts connections whose first line is a name, and gives
// the test the server's end of the connection of a name once it arrived,
// so that the test can write from the server's side as well as read, and
// tell connections apart whatever order they arrive in.
type namingServer struct {
	addr    string
	mu      sync.Mutex
	arrived map[string]*conn
}

func newNamingServer(t *testing.T) *namingServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &namingServer{addr: ln.Addr().String(), arrived: map[string]*conn{}}
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, c := range s.arrived {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				sc := &conn{c, bufio.NewReader(c)}
				name, err := sc.readLine(time.Minute)
				if err != nil {
					c.Close()
					return
				}
				s.mu.Lock()
				s.arrived[name] = sc
				s.mu.Unlock()
			}()
		}
	}()
	return s
}

// conn returns the server's end of the connection named name, waiting up to
// limit for it; nil if it did not arrive.
func (s *namingServer) conn(name string, limit time.Duration) *conn {
	var c *conn
	deadline := time.Now().Add(limit)
	for c == nil && time.Now().Before(deadline) {
		s.mu.Lock()
		c = s.arrived[name]
		s.mu.Unlock()
		time.Sleep(5 * time.Millisecond) // polling the map the accept goroutines fill
	}
	return c
}

// dialNamed connects to addr and sends name as the first line.
func dialNamed(t *testing.T, addr, name string) *conn {
	t.Helper()
	return dialNamedTo(t, addr, name, false)
}

// dialNamedTo is dialNamed; when mayBeReset, the proxy may reset the
// connection before the name is written (a cut proxy resets what it
// accepts, and the reset can come first), and the write may fail. The
// reset may even come before the dial sees its connection established
// (Go reads the socket's error after the handshake, and a loaded machine
// reads it after the reset): the dial then fails with ECONNRESET, and
// there is no connection (nil).
func dialNamedTo(t *testing.T, addr, name string, mayBeReset bool) *conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if mayBeReset && errors.Is(err, syscall.ECONNRESET) {
		return nil
	}
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	cc := &conn{c, bufio.NewReader(c)}
	if mayBeReset {
		_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte(name + "\n")); err != nil && !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
			t.Fatalf("write %q: %v", name, err)
		}
		return cc
	}
	cc.send(t, name)
	return cc
}

// TestProxyModes switches one proxy through every mode while a connection
// made before the first switch stays open, and checks each direction of
// that connection, and a connection made in each mode: what arrives, what
// is held (and arrives once the mode ends), how late, and whether the
// connection survives.
func TestProxyModes(t *testing.T) {
	t.Parallel()
	srv := newNamingServer(t)
	p := NewProxy(t, srv.addr)
	const d = 80 * time.Millisecond

	liveClient := dialNamed(t, p.Addr(), "live")
	liveServer := srv.conn("live", 5*time.Second)
	if liveServer == nil {
		t.Fatal("the first connection never reached the server")
	}

	steps := []struct {
		name     string
		set      func()
		through  bool          // bytes sent now arrive now (else they are held, or the connection is gone)
		minDelay time.Duration // ...and no sooner than this after they were sent
		alive    bool          // the live connection survives
		cut      bool          // new connections are reset as soon as accepted
	}{
		{"normal", p.Restore, true, 0, true, false},
		{"delay", func() { p.Delay(d) }, true, d, true, false},
		{"stall", p.Stall, false, 0, true, false},
		{"restore after stall", p.Restore, true, 0, true, false},
		{"stall from delay", func() { p.Delay(d); p.Stall() }, false, 0, true, false},
		{"delay after stall", func() { p.Delay(d) }, true, d, true, false},
		{"stall again", p.Stall, false, 0, true, false},
		{"cut while stalled", p.Cut, false, 0, false, true},
		{"restore after cut", p.Restore, true, 0, false, false},
	}
	var held []string      // sent on the live connection during a stall, not delivered yet
	var heldConns []string // connections made during a stall, not arrived yet
	for i, s := range steps {
		s.set()
		msg := strconv.Itoa(i)
		fresh := "fresh " + msg // a connection made in this mode
		freshClient := dialNamedTo(t, p.Addr(), fresh, s.cut)
		if s.through {
			// Connections held by a stall arrive when it ends (not after a cut).
			for _, name := range heldConns {
				if c := srv.conn(name, wait(s.alive)); (c != nil) != s.alive {
					t.Fatalf("%s: %q, made during a stall, reached the server: %v, want %v", s.name, name, c != nil, s.alive)
				}
			}
			heldConns = nil
		}
		freshServer := srv.conn(fresh, wait(s.through))
		if (freshServer != nil) != s.through {
			t.Fatalf("%s: a new connection reached the server: %v, want %v", s.name, freshServer != nil, s.through)
		}
		if !s.through {
			heldConns = append(heldConns, fresh)
		}

		if s.alive {
			// Bytes held by an earlier stall come first, in order.
			for _, h := range held {
				if got, err := liveServer.readLine(5 * time.Second); err != nil || got != h+" up" {
					t.Fatalf("%s: held bytes to the server: %q, %v; want %q", s.name, got, err, h+" up")
				}
				if got, err := liveClient.readLine(5 * time.Second); err != nil || got != h+" down" {
					t.Fatalf("%s: held bytes to the client: %q, %v; want %q", s.name, got, err, h+" down")
				}
			}
			held = nil
			for _, dir := range []struct {
				name     string
				from, to *conn
				text     string
			}{
				{"client to server", liveClient, liveServer, msg + " up"},
				{"server to client", liveServer, liveClient, msg + " down"},
			} {
				sent := time.Now()
				dir.from.send(t, dir.text)
				if !s.through {
					got, err := dir.to.readLine(quiet)
					if !errors.Is(err, os.ErrDeadlineExceeded) {
						t.Fatalf("%s, %s: read %q, %v; want nothing and no error (a stalled connection is held open)", s.name, dir.name, got, err)
					}
					continue
				}
				got, err := dir.to.readLine(5 * time.Second)
				if err != nil || got != dir.text {
					t.Fatalf("%s, %s: read %q, %v; want %q", s.name, dir.name, got, err, dir.text)
				}
				if took := time.Since(sent); took < s.minDelay {
					t.Errorf("%s, %s: arrived after %v, want at least %v", s.name, dir.name, took, s.minDelay)
				}
			}
			if !s.through {
				held = append(held, msg)
			}
		} else {
			// Gone: the client's read fails at once (not a timeout).
			if _, err := liveClient.readLine(5 * time.Second); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("%s: read on the old connection: %v, want it reset", s.name, err)
			}
		}

		if s.through { // the new connection works both ways too
			freshClient.send(t, "hello")
			if got, err := freshServer.readLine(5 * time.Second); err != nil || got != "hello" {
				t.Fatalf("%s: new connection to the server: %q, %v", s.name, got, err)
			}
			freshServer.send(t, "hi")
			if got, err := freshClient.readLine(5 * time.Second); err != nil || got != "hi" {
				t.Fatalf("%s: new connection to the client: %q, %v", s.name, got, err)
			}
		}
	}
}

// The counters see what clients send, forwarded or not: during a stall the
// proxy reads (and holds) the bytes of connections it has not passed on.
func TestProxyStats(t *testing.T) {
	t.Parallel()
	srv := newNamingServer(t)
	p := NewProxy(t, srv.addr)
	p.Stall()
	dialNamed(t, p.Addr(), "early")
	Await(t, "the proxy to read the stalled client's bytes", 5*time.Second, func() bool {
		return p.Stats().Bytes == int64(len("early\n"))
	})
	if st := p.Stats(); st.Accepted != 1 || st.Chunks != 1 {
		t.Errorf("stats %+v, want 1 connection and 1 chunk", st)
	}
	if srv.conn("early", quiet) != nil {
		t.Fatal("a connection made during the stall reached the server")
	}
	p.Restore()
	if srv.conn("early", 5*time.Second) == nil {
		t.Fatal("the connection made during the stall never reached the server")
	}
}
