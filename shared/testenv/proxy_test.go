package testenv

import (
	"bufio"
	"context"
	"net"
	"strconv"
	"strings"
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
