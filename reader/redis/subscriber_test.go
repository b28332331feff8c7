package redis_test

import (
	"context"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/orderservice/orders/reader/cache"
	"github.com/orderservice/orders/reader/redis"
	"github.com/orderservice/orders/shared/model"
	"github.com/orderservice/orders/shared/testenv"
)

// recorder is a cache.Invalidator that keeps what it is told.
type recorder struct {
	mu      sync.Mutex
	changes []cache.Changes
	resyncs int
}

func (r *recorder) Invalidate(_ context.Context, c cache.Changes) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.changes = append(r.changes, c)
}

func (r *recorder) Resync() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.resyncs++
}

func (r *recorder) state() ([]cache.Changes, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.changes), r.resyncs
}

// subscriber runs a Subscriber on a cache reaching Redis through a proxy.
type subscriber struct {
	rd    *testenv.RedisEnv
	proxy *testenv.Proxy
	rec   *recorder
	gauge prometheus.Gauge
	logs  *testenv.Buffer
	sub   *redis.Subscriber
}

func newSubscriber(t *testing.T) *subscriber {
	t.Helper()
	rd := testenv.Redis(t)
	url, proxy := testenv.ProxyURL(t, rd.URL)
	c, err := redis.New(redis.Options{URL: url, Prefix: rd.Prefix, TTL: time.Minute, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s := &subscriber{rd: rd, proxy: proxy, rec: &recorder{}, logs: &testenv.Buffer{},
		gauge: prometheus.NewGauge(prometheus.GaugeOpts{Name: "subscribed"})}
	s.sub = redis.NewSubscriber(c, s.rec, redis.SubscriberOptions{
		Logger: slog.New(slog.NewJSONHandler(s.logs, nil)), Subscribed: s.gauge, HealthInterval: 200 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.sub.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
	return s
}

func (s *subscriber) publish(t *testing.T, payload string) {
	t.Helper()
	if err := s.rd.Client.Publish(context.Background(), model.EventsChannel(s.rd.Prefix), payload).Err(); err != nil {
		t.Fatal(err)
	}
}

func (s *subscriber) awaitSubscribed(t *testing.T, want float64, resyncs int) {
	t.Helper()
	testenv.Await(t, "the subscription gauge and resyncs", 15*time.Second, func() bool {
		_, n := s.rec.state()
		return testutil.ToFloat64(s.gauge) == want && n >= resyncs
	})
}

func (s *subscriber) awaitChanges(t *testing.T, n int) []cache.Changes {
	t.Helper()
	testenv.Await(t, "announcements", 10*time.Second, func() bool { c, _ := s.rec.state(); return len(c) >= n })
	c, _ := s.rec.state()
	return c
}

// Announcements reach the invalidator, each subscription starts with a
// resync, and a message that does not decode is dropped and logged.
func TestSubscriberHandsAnnouncementsOn(t *testing.T) {
	t.Parallel()
	s := newSubscriber(t)
	if want := s.rd.Prefix + "orders:events"; s.sub.Channel() != want {
		t.Errorf("Channel() = %q, want %q", s.sub.Channel(), want)
	}
	select {
	case <-s.sub.Subscribed():
	case <-time.After(10 * time.Second):
		t.Fatal("never subscribed")
	}
	s.awaitSubscribed(t, 1, 1)
	s.publish(t, `{"stored":["a1","b2"]}`)
	s.publish(t, `{"stored":["bad uid!"]}`)
	s.publish(t, `not json`)
	s.publish(t, `{"erased":["c3"]}`)
	got := s.awaitChanges(t, 2)
	want := []cache.Changes{{Stored: []string{"a1", "b2"}}, {Erased: []string{"c3"}}}
	if len(got) != 2 || !slices.Equal(got[0].Stored, want[0].Stored) || !slices.Equal(got[1].Erased, want[1].Erased) || len(got[1].Stored) != 0 {
		t.Errorf("changes %+v, want %+v", got, want)
	}
	if n := strings.Count(s.logs.String(), "message dropped"); n != 2 {
		t.Errorf("%d dropped messages logged, want 2:\n%s", n, s.logs)
	}
	if strings.Contains(s.logs.String(), "bad uid!") {
		t.Error("the log repeats a dropped message's content")
	}
}

// A cut subscription is reported (gauge 0) and comes back by itself once
// Redis does, with a resync (what was announced meanwhile is lost), and
// announcements flow again.
func TestSubscriberResubscribesAfterACut(t *testing.T) {
	t.Parallel()
	s := newSubscriber(t)
	s.awaitSubscribed(t, 1, 1)

	s.proxy.Cut()
	s.awaitSubscribed(t, 0, 1)
	s.publish(t, `{"stored":["lost"]}`) // nobody listens: gone
	time.Sleep(300 * time.Millisecond)  // several reconnection attempts, all refused
	if g := testutil.ToFloat64(s.gauge); g != 0 {
		t.Fatalf("gauge %v while Redis is cut off", g)
	}

	s.proxy.Restore()
	s.awaitSubscribed(t, 1, 2)
	s.publish(t, `{"stored":["after"]}`)
	got := s.awaitChanges(t, 1)
	if len(got) != 1 || !slices.Equal(got[0].Stored, []string{"after"}) {
		t.Errorf("changes %+v, want only the one published after the restore", got)
	}
	if !strings.Contains(s.logs.String(), "events channel lost") {
		t.Errorf("the loss was not logged:\n%s", s.logs)
	}
}

// freezer forwards TCP connections to target until freeze, after which the
// connections open at that moment stay open and carry nothing more, like a
// peer that vanished without a reset; new connections pass again.
type freezer struct {
	addr   string
	mu     sync.Mutex
	frozen map[net.Conn]bool // the client sides of the frozen connections
	conns  []net.Conn
}

func newFreezer(t *testing.T, target string) *freezer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{addr: ln.Addr().String(), frozen: map[net.Conn]bool{}}
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, c := range f.conns {
			c.Close()
		}
	})
	go func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", target)
			if err != nil {
				client.Close()
				continue
			}
			f.mu.Lock()
			f.conns = append(f.conns, client, server)
			f.mu.Unlock()
			go f.pipe(client, server, client)
			go f.pipe(server, client, client)
		}
	}()
	return f
}

// pipe copies src to dst until the connection of client side is frozen.
func (f *freezer) pipe(dst, src, client net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		f.mu.Lock()
		frozen := f.frozen[client]
		f.mu.Unlock()
		if frozen {
			continue // swallowed
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}

func (f *freezer) freeze() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := 0; i < len(f.conns); i += 2 {
		f.frozen[f.conns[i]] = true
	}
}

// A connection that stops answering without failing is noticed by the
// health pings and replaced.
func TestSubscriberNoticesASilentConnection(t *testing.T) {
	t.Parallel()
	rd := testenv.Redis(t)
	u, err := url.Parse(rd.URL)
	if err != nil {
		t.Fatal(err)
	}
	f := newFreezer(t, u.Host)
	u.Host = f.addr
	c, err := redis.New(redis.Options{URL: u.String(), Prefix: rd.Prefix, TTL: time.Minute, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rec := &recorder{}
	gauge := prometheus.NewGauge(prometheus.GaugeOpts{Name: "subscribed"})
	sub := redis.NewSubscriber(c, rec, redis.SubscriberOptions{Subscribed: gauge, HealthInterval: 100 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); sub.Run(ctx) }()
	defer func() { cancel(); <-done }()
	testenv.Await(t, "the first subscription", 10*time.Second, func() bool { return testutil.ToFloat64(gauge) == 1 })

	f.freeze()
	// Unnoticed, the subscription would stay "up" and deaf forever; the
	// ping goes unanswered and a new connection subscribes.
	testenv.Await(t, "a second subscription", 10*time.Second, func() bool { _, n := rec.state(); return n == 2 })
	if err := rd.Client.Publish(ctx, model.EventsChannel(rd.Prefix), `{"stored":["x1"]}`).Err(); err != nil {
		t.Fatal(err)
	}
	testenv.Await(t, "the announcement on the new connection", 10*time.Second, func() bool { ch, _ := rec.state(); return len(ch) == 1 })
}
