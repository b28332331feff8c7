package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orderservice/orders/reader/auth/authtest"
	"github.com/orderservice/orders/reader/cache"
	"github.com/orderservice/orders/reader/metrics"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orderservice/orders/shared/model"
	"github.com/orderservice/orders/shared/testenv"
)

// TestValidUIDMatchesModel keeps the hand-written check equal to the
// model's pattern.
func TestValidUIDMatchesModel(t *testing.T) {
	t.Parallel()
	cases := []string{"", "a", "b563feb7b2b84b6test", "A-Z_0-9", strings.Repeat("x", 64), strings.Repeat("x", 65),
		"a.b", "a b", "é", "a/b", "a\x00", "-", "_", "abc\n", "ABC%", "Ж"}
	for c := range 256 {
		cases = append(cases, "a"+string(rune(c)))
	}
	for _, s := range cases {
		if got, want := validUID(s), model.UIDPattern.MatchString(s); got != want {
			t.Errorf("validUID(%q) = %v, model.UIDPattern says %v", s, got, want)
		}
	}
}

func FuzzValidUID(f *testing.F) {
	f.Add("b563feb7b2b84b6test")
	f.Add("a.b")
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := validUID(s), model.UIDPattern.MatchString(s); got != want {
			t.Fatalf("validUID(%q) = %v, model.UIDPattern says %v", s, got, want)
		}
	})
}

func TestETagMatches(t *testing.T) {
	t.Parallel()
	const etag = `"abc"`
	for _, tc := range []struct {
		header string
		want   bool
	}{
		{"", false}, {`"abc"`, true}, {`W/"abc"`, true}, {`"x", "abc"`, true}, {`*`, true},
		{`"abcd"`, false}, {`abc`, false}, {`"x" , W/"abc" `, true},
	} {
		if got := etagMatches(tc.header, etag); got != tc.want {
			t.Errorf("etagMatches(%q) = %v, want %v", tc.header, got, tc.want)
		}
	}
}

func TestValidRequestID(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"abc-123": true, "": false, strings.Repeat("a", 65): false, "a\nb": false, "a b": false, "trace:1.2_x": true,
	} {
		if got := validRequestID(s); got != want {
			t.Errorf("validRequestID(%q) = %v, want %v", s, got, want)
		}
	}
}

// A method a route does not serve is 405 with the route's methods in
// Allow, however the path is written; a path no route serves is 404 with
// any method, one chi does not know (BREW) included.
func TestMethodNotAllowed(t *testing.T) {
	t.Parallel()
	h := NewServer(Deps{})
	for _, tc := range []struct {
		method, target string
		status         int
		allow          string
	}{
		{"POST", "/order/abc", http.StatusMethodNotAllowed, "GET, HEAD"},
		{"POST", "/order/a%2Fb", http.StatusMethodNotAllowed, "GET, HEAD"},
		{"BREW", "/order/abc", http.StatusMethodNotAllowed, "GET, HEAD"},
		{"PUT", "/healthz", http.StatusMethodNotAllowed, "GET"},
		{"BREW", "/nowhere", http.StatusNotFound, ""},
		{"DELETE", "/nowhere", http.StatusNotFound, ""},
		{"CONNECT", "reader:443", http.StatusNotFound, ""},
	} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(tc.method, tc.target, nil))
		if w.Code != tc.status || w.Header().Get("Allow") != tc.allow ||
			w.Header().Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s %s: %d Allow %q %s, want %d Allow %q", tc.method, tc.target,
				w.Code, w.Header().Get("Allow"), w.Header().Get("Content-Type"), tc.status, tc.allow)
		}
	}
}

type panicky struct{}

func (panicky) Cached(string) (*cache.Order, error) { panic("boom") }
func (panicky) Get(context.Context, string) (*cache.Order, cache.Source, error) {
	panic("boom")
}

// TestPanicRecovery: a panicking handler answers 500 as a problem detail,
// logs the panic, and the server goes on serving.
func TestPanicRecovery(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	a, keys := testAuth(t)
	h := NewServer(Deps{Logger: slog.New(slog.NewJSONHandler(&logs, nil)), Orders: panicky{}, Auth: a})
	for range 2 {
		w := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/order/abc", nil)
		req.Header.Set("Authorization", authtest.Bearer(keys.Read))
		h.ServeHTTP(w, req)
		if w.Code != http.StatusInternalServerError || w.Header().Get("Content-Type") != "application/problem+json" {
			t.Fatalf("panic answered %d %q: %s", w.Code, w.Header().Get("Content-Type"), w.Body)
		}
	}
	if !strings.Contains(logs.String(), `"msg":"panic serving request"`) || !strings.Contains(logs.String(), "boom") {
		t.Fatalf("panic not logged: %s", logs.String())
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if w.Code != http.StatusOK {
		t.Fatalf("healthz after a panic: %d", w.Code)
	}
}

// TestAccessLogMatchesSlog: the hand-written access log line is byte for
// byte what slog's JSONHandler writes for the same record, whatever the
// request's strings hold.
func TestAccessLogMatchesSlog(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 25, 21, 0, 0, 123456789, time.UTC)
	for _, path := range []string{
		"/order/abc", `/order/"quoted"\back`, "/order/\x00\x01\x1f\x7f", "/order/<&>", "/order/é日本",
		"/order/\xff\xfe", "/order/\u2028\u2029", "/order/\n\r\t", "",
	} {
		e := accessEntry{time: at, requestID: "id-1", method: "GET", path: path, route: "/order/{order_uid}",
			status: 404, bytes: 151, duration: 1234567 * time.Nanosecond, remote: "127.0.0.1:5555", xCache: ""}
		var fast bytes.Buffer
		NewAccessLog(&fast, "service", "reader").write(&e)

		var want bytes.Buffer
		h := slog.NewJSONHandler(&want, nil).WithAttrs([]slog.Attr{slog.String("service", "reader")})
		r := slog.NewRecord(at, slog.LevelInfo, "request", 0)
		r.AddAttrs(slog.String("request_id", e.requestID), slog.String("method", e.method),
			slog.String("path", e.path), slog.String("route", e.route), slog.Int("status", e.status),
			slog.Int("bytes", e.bytes), slog.Duration("duration", e.duration),
			slog.String("remote", e.remote), slog.String("x_cache", e.xCache))
		if err := h.Handle(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		if fast.String() != want.String() {
			t.Errorf("path %q:\n got %s\nwant %s", path, fast.String(), want.String())
		}
	}
}

func BenchmarkAccessLog(b *testing.B) {
	a := NewAccessLog(io.Discard, "service", "reader")
	e := accessEntry{time: time.Now(), requestID: "0123456789ab-1", method: "GET", path: "/order/b563feb7b2b84b6test",
		route: "/order/{order_uid}", status: 200, bytes: 700, duration: time.Millisecond, remote: "127.0.0.1:5555", xCache: "local"}
	b.ReportAllocs()
	for b.Loop() {
		a.write(&e)
	}
}

// TestMethodNotAllowedSetsAllow: a 405 names the methods the path has
// (RFC 9110 15.5.6), as a problem detail.
func TestMethodNotAllowedSetsAllow(t *testing.T) {
	t.Parallel()
	h := NewServer(Deps{})
	for _, tc := range []struct{ method, path, allow string }{
		{http.MethodPost, "/order/abc", "GET, HEAD"},
		{http.MethodDelete, "/order/", "GET, HEAD"},
		{http.MethodPut, "/orders", "GET, HEAD"},
		{http.MethodPost, "/healthz", "GET"},
		{http.MethodHead, "/readyz", "GET"},
		{"BREW", "/openapi.yaml", "GET"},
	} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(tc.method, tc.path, nil))
		if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != tc.allow ||
			w.Header().Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s %s: %d, Allow %q, %q; want 405, Allow %q, problem+json", tc.method, tc.path,
				w.Code, w.Header().Get("Allow"), w.Header().Get("Content-Type"), tc.allow)
		}
	}
}

// TestProbesLoggedOnlyWhenFailingOrDebug: health checks and scrapes that
// succeed stay out of the access log at level info; a failing one, any
// other request, and every request at level debug are logged.
func TestProbesLoggedOnlyWhenFailingOrDebug(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	for _, tc := range []struct {
		name   string
		level  slog.Level
		path   string
		ready  bool
		logged bool
	}{
		{"healthz", slog.LevelInfo, "/healthz", true, false},
		{"readyz ok", slog.LevelInfo, "/readyz", true, false},
		{"readyz failing", slog.LevelInfo, "/readyz", false, true},
		{"metrics is not public", slog.LevelInfo, "/metrics", true, true},
		{"order", slog.LevelInfo, "/order/abc.def", true, true},
		{"unknown path", slog.LevelInfo, "/healthz/x", true, true},
		{"healthz at debug", slog.LevelDebug, "/healthz", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			a, keys := testAuth(t)
			h := NewServer(Deps{
				Logger:    slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: tc.level})),
				AccessLog: NewAccessLog(&out, "service", "reader"),
				Gatherer:  reg, Ready: func() bool { return tc.ready }, Auth: a,
			})
			w := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodGet, tc.path, nil)
			req.Header.Set("Authorization", authtest.Bearer(keys.Read))
			h.ServeHTTP(w, req)
			if got := strings.Contains(out.String(), `"path":"`+tc.path+`"`); got != tc.logged {
				t.Fatalf("GET %s answered %d: logged %v, want %v: %q", tc.path, w.Code, got, tc.logged, out.String())
			}
		})
	}
}

// TestOpsPort: metrics and profiles are served on the ops handler only;
// health endpoints on both.
func TestOpsPort(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	deps := Deps{Metrics: m, Gatherer: reg, Ready: func() bool { return false }}
	public, ops := NewServer(deps), NewOps(deps)
	for _, tc := range []struct {
		path         string
		public, opsC int
		opsBody      string
	}{
		{"/metrics", 404, 200, "reader_http_requests_total"},
		{"/debug/pprof/", 404, 200, "goroutine"},
		{"/debug/pprof/cmdline", 404, 200, ""},
		{"/healthz", 200, 200, `"ok"`},
		{"/readyz", 503, 503, "warming up"},
	} {
		w := httptest.NewRecorder()
		public.ServeHTTP(w, httptest.NewRequest(http.MethodGet, tc.path, nil))
		if w.Code != tc.public {
			t.Errorf("public %s: %d, want %d", tc.path, w.Code, tc.public)
		}
		w = httptest.NewRecorder()
		ops.ServeHTTP(w, httptest.NewRequest(http.MethodGet, tc.path, nil))
		if w.Code != tc.opsC || !strings.Contains(w.Body.String(), tc.opsBody) {
			t.Errorf("ops %s: %d, want %d with %q: %.200s", tc.path, w.Code, tc.opsC, tc.opsBody, w.Body)
		}
		if w.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("ops %s: no nosniff", tc.path)
		}
	}
}

// TestMethodLabelBounded: made-up methods share one series.
func TestMethodLabelBounded(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	h := NewServer(Deps{Metrics: metrics.New(reg), Gatherer: reg})
	for i := range 50 {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(fmt.Sprintf("X%d", i), "/order/abc", nil))
	}
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/nowhere", nil))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "reader_http_requests_total" {
			continue
		}
		if n := len(f.GetMetric()); n != 2 {
			t.Fatalf("%d series for 50 made-up methods and one GET, want 2", n)
		}
		return
	}
	t.Fatal("reader_http_requests_total not found")
}

// FuzzAppendJSONString: whatever the string, the encoding is valid JSON
// and decodes to what encoding/json's own encoding decodes to.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", `"\`, "\x00\x1f\x7f", "\xff", "\u2028", "日本", "<&>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var got, want string
		if err := json.Unmarshal(appendJSONString(nil, s), &got); err != nil {
			t.Fatalf("%q: invalid JSON %s: %v", s, appendJSONString(nil, s), err)
		}
		std, _ := json.Marshal(s)
		_ = json.Unmarshal(std, &want)
		if got != want {
			t.Fatalf("%q: decodes to %q, encoding/json's to %q", s, got, want)
		}
	})
}

// TestBufferedAccessLog: lines wait for the timer or Close, keep their
// order, and a line written after Close appears at once.
func TestBufferedAccessLog(t *testing.T) {
	t.Parallel()
	entry := func(i int) *accessEntry {
		return &accessEntry{time: time.Now(), requestID: strconv.Itoa(i), method: "GET", path: "/order/x", status: 200}
	}
	ids := func(out string) []string {
		var got []string
		for line := range strings.Lines(out) {
			var e struct {
				RequestID string `json:"request_id"`
			}
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				t.Fatalf("not a JSON line: %q: %v", line, err)
			}
			got = append(got, e.RequestID)
		}
		return got
	}

	t.Run("close writes what waits", func(t *testing.T) {
		t.Parallel()
		out := &testenv.Buffer{}
		a := NewBufferedAccessLog(out, time.Hour, "service", "reader")
		const n = 1000
		for i := range n {
			a.write(entry(i))
		}
		if len(out.String()) != 0 {
			t.Fatalf("%d bytes written before the timer or Close", len(out.String()))
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		got := ids(out.String())
		if len(got) != n {
			t.Fatalf("%d lines after Close, want %d", len(got), n)
		}
		for i, id := range got {
			if id != strconv.Itoa(i) {
				t.Fatalf("line %d is request %s: out of order", i, id)
			}
		}
		a.write(entry(n))
		if got := ids(out.String()); len(got) != n+1 {
			t.Errorf("a line written after Close is not there at once: %d lines", len(got))
		}
		if err := a.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})
	t.Run("the timer writes", func(t *testing.T) {
		t.Parallel()
		out := &testenv.Buffer{}
		a := NewBufferedAccessLog(out, 10*time.Millisecond, "service", "reader")
		defer a.Close()
		a.write(entry(1))
		testenv.Await(t, "the timer to write the line", 5*time.Second, func() bool { return len(out.String()) > 0 })
	})
	t.Run("a burst is written before the timer", func(t *testing.T) {
		t.Parallel()
		out := &testenv.Buffer{}
		a := NewBufferedAccessLog(out, time.Hour, "service", "reader")
		defer a.Close()
		for i := 0; len(out.String()) == 0; i++ {
			if i > accessLogMaxPending {
				t.Fatal("nothing written after more than the pending limit of lines")
			}
			a.write(entry(i))
		}
	})
	t.Run("concurrent writers lose nothing", func(t *testing.T) {
		t.Parallel()
		out := &testenv.Buffer{}
		a := NewBufferedAccessLog(out, time.Millisecond, "service", "reader")
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				for i := range 2000 {
					a.write(entry(w*10000 + i))
				}
			})
		}
		wg.Wait()
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		if got := len(ids(out.String())); got != 8000 {
			t.Errorf("%d lines, want 8000", got)
		}
	})
}

// BenchmarkAccessLogSink: what writing the lines costs, against io.Discard
// (the formatting alone), to a file one write per line, and to the same
// file buffered as the reader runs it.
func BenchmarkAccessLogSink(b *testing.B) {
	e := accessEntry{time: time.Now(), requestID: "0123456789ab-1", method: "GET", path: "/order/b563feb7b2b84b6test",
		route: "/order/{order_uid}", status: 200, bytes: 700, duration: time.Millisecond, remote: "127.0.0.1:5555", xCache: "local"}
	file := func(b *testing.B) io.Writer {
		f, err := os.Create(filepath.Join(b.TempDir(), "access.log"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = f.Close() })
		return f
	}
	for _, tc := range []struct {
		name string
		log  func(b *testing.B) *AccessLog
	}{
		{"discard", func(*testing.B) *AccessLog { return NewAccessLog(io.Discard, "service", "reader") }},
		{"file-unbuffered", func(b *testing.B) *AccessLog { return NewAccessLog(file(b), "service", "reader") }},
		{"file-buffered", func(b *testing.B) *AccessLog {
			return NewBufferedAccessLog(file(b), 200*time.Millisecond, "service", "reader")
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			a := tc.log(b)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					a.write(&e)
				}
			})
			b.StopTimer()
			if err := a.Close(); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// TestTimeText: the log lines' time is what time.RFC3339Nano gives, for
// lines of the same second (its cached date and zone) and of the next, in
// any zone, with and without a fraction.
func TestTimeText(t *testing.T) {
	t.Parallel()
	var tt timeText
	east := time.FixedZone("east", 5*3600+30*60)
	west := time.FixedZone("west", -8*3600)
	base := time.Date(2026, 12, 1, 23, 59, 59, 0, time.UTC)
	for _, tc := range []time.Time{
		base,
		base.Add(123456789),
		base.Add(1),
		base.Add(500 * time.Millisecond),
		base.Add(999999999),
		base.Add(time.Second), // the next second, and the next day
		base.Add(time.Second + 10),
		base.In(east),
		base.Add(120000).In(east),
		base.In(west),
		base.Add(time.Second).In(west),
		time.Now(),
		time.Now().Add(time.Hour),
		time.Date(0, 1, 1, 0, 0, 0, 1, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, east),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		for range 2 { // formatted, then from the second's cache
			if got, want := string(tt.append(nil, tc)), tc.Format(time.RFC3339Nano); got != want {
				t.Errorf("%v: %s, want %s", tc, got, want)
			}
		}
	}
}
