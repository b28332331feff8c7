package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/orderservice/orders/reader/auth/authtest"
	"github.com/orderservice/orders/reader/cache"
	"github.com/orderservice/orders/reader/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// oneOrder holds one order, abc, with its masked view; every other uid is
// unknown.
type oneOrder struct{ o *cache.Order }

func (s oneOrder) Cached(uid string) (*cache.Order, error) {
	if uid == "abc" {
		return s.o, nil
	}
	return nil, cache.ErrNotFound
}

func (s oneOrder) Get(_ context.Context, uid string) (*cache.Order, cache.Source, error) {
	o, err := s.Cached(uid)
	return o, cache.Local, err
}

// TestOrderFastPath: the public handler answers every request exactly as
// its router alone would (status, headers, body, the access log line and
// the route it names), whether it took the order route's fast path or
// not; and it takes the fast path for the plain GETs and HEADs of an
// order, so that the comparison covers it.
func TestOrderFastPath(t *testing.T) {
	t.Parallel()
	a, keys := testAuth(t)
	o := cache.NewOrder([]byte(`{"order_uid":"abc","delivery":{"name":"Ivan Petrov"}}`),
		[]byte(`{"order_uid":"abc","delivery":{"name":"I*** P***"}}`))
	masked, _ := o.Masked()
	newDeps := func(log io.Writer) Deps {
		return Deps{
			Logger:    slog.New(slog.DiscardHandler),
			AccessLog: NewAccessLog(log, "service", "reader"),
			Orders:    oneOrder{o},
			Metrics:   metrics.New(prometheus.NewRegistry()),
			Auth:      a,
			Audit:     NewAuditLog(io.Discard, nil),
		}
	}
	var publicLog, routerLog bytes.Buffer
	public := NewServer(newDeps(&publicLog))
	d := newDeps(&routerLog)
	router := router(d, newObserver(d.Logger, d.AccessLog, d.Metrics),
		newOrderHandler(d.Logger, d.Orders, d.RequestTimeout, d.Audit, d.Auth))

	for _, tc := range []struct {
		method, target, token string
		header                map[string]string
		fast                  bool
	}{
		{method: "GET", target: "/order/abc", token: keys.Read, fast: true},
		{method: "GET", target: "/order/abc", token: keys.PII, fast: true},
		{method: "HEAD", target: "/order/abc", token: keys.Read, fast: true},
		{method: "GET", target: "/order/abc?x=1", token: keys.Read, fast: true},
		{method: "GET", target: "/order/abc", token: keys.Read, header: map[string]string{"If-None-Match": masked.ETag}, fast: true},
		{method: "GET", target: "/order/abc", token: keys.Read, header: map[string]string{}, fast: true},
		{method: "GET", target: "/order/abc", fast: true},
		{method: "GET", target: "/order/abc", token: "ord_unknown", fast: true},
		{method: "GET", target: "/order/unknown", token: keys.Read, fast: true},
		{method: "GET", target: "/order/a.b", token: keys.Read, fast: true},
		{method: "GET", target: "/order/a%20b", token: keys.Read, fast: true},
		{method: "GET", target: "/order/..", token: keys.Read, fast: true},
		{method: "GET", target: "/order/", token: keys.Read},
		{method: "GET", target: "/order/abc/", token: keys.Read},
		{method: "GET", target: "/order/abc/x", token: keys.Read},
		{method: "GET", target: "/order/a%2Fb", token: keys.Read},
		{method: "GET", target: "/order", token: keys.Read},
		{method: "GET", target: "/orderabc", token: keys.Read},
		{method: "POST", target: "/order/abc", token: keys.Read},
		{method: "OPTIONS", target: "/order/abc", token: keys.Read},
		{method: "BREW", target: "/order/abc", token: keys.Read},
		{method: "GET", target: "/healthz"},
	} {
		request := func() *http.Request {
			r := httptest.NewRequest(tc.method, tc.target, nil)
			if tc.token != "" {
				r.Header.Set("Authorization", authtest.Bearer(tc.token))
			}
			// The caller's request id, so that the two answers'
			// problem details name the same; one case has none, and
			// the ids the two handlers make differ in their random
			// prefixes alone.
			if tc.header == nil {
				r.Header.Set("X-Request-Id", "caller-1")
			}
			for k, v := range tc.header {
				r.Header.Set(k, v)
			}
			return r
		}
		where := tc.method + " " + tc.target
		if got := orderFastPath(request()); got != tc.fast {
			t.Errorf("%s: fast path %v, want %v", where, got, tc.fast)
		}
		publicLog.Reset()
		routerLog.Reset()
		got, want := httptest.NewRecorder(), httptest.NewRecorder()
		public.ServeHTTP(got, request())
		router.ServeHTTP(want, request())
		for _, w := range []*httptest.ResponseRecorder{got, want} {
			if id := w.Header().Get("X-Request-Id"); len(id) > 13 && id[12] == '-' {
				w.Header().Set("X-Request-Id", id[13:])
			}
		}
		if got.Code != want.Code || !reflect.DeepEqual(got.Header(), want.Header()) || !bytes.Equal(got.Body.Bytes(), want.Body.Bytes()) {
			t.Errorf("%s:\n got %d %v %s\nwant %d %v %s", where, got.Code, got.Header(), got.Body, want.Code, want.Header(), want.Body)
		}
		if g, w := logLine(t, publicLog.Bytes()), logLine(t, routerLog.Bytes()); !reflect.DeepEqual(g, w) {
			t.Errorf("%s: access log\n got %v\nwant %v", where, g, w)
		}
	}
}

// logLine decodes one access log line, less the members that differ from
// one request to the next (time, duration, the request id's prefix).
func logLine(t *testing.T, line []byte) map[string]any {
	t.Helper()
	if len(line) == 0 {
		return nil // not logged (a probe)
	}
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("access log line %q: %v", line, err)
	}
	delete(m, "time")
	delete(m, "duration")
	if id, _ := m["request_id"].(string); len(id) > 13 && id[12] == '-' {
		m["request_id"] = id[13:]
	}
	return m
}

// TestContentLength: over a real connection, every order answer states
// its length and none is chunked, whether the handler set Content-Length
// (a body over autoLengthMax, any HEAD) or left it to net/http, the masked
// view (written in three pieces) as the full one; and the bytes are the
// view's.
func TestContentLength(t *testing.T) {
	t.Parallel()
	a, keys := testAuth(t)
	for _, size := range []int{16, autoLengthMax - 1, autoLengthMax, autoLengthMax + 1, 3 * autoLengthMax} {
		body := []byte(`{"order_uid":"` + strings.Repeat("x", size-16) + `"}`)
		if len(body) != size {
			t.Fatalf("body of %d bytes, want %d", len(body), size)
		}
		// The masked view differs in one byte in the middle: three
		// pieces, as a real order's.
		masked := bytes.Clone(body)
		masked[size/2] = '*'
		srv := httptest.NewServer(NewServer(Deps{Orders: oneOrder{cache.NewOrder(body, masked)}, Auth: a}))
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			for _, token := range []string{keys.Read, keys.PII} {
				req, err := http.NewRequest(method, srv.URL+"/order/abc", nil)
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Authorization", authtest.Bearer(token))
				resp, err := srv.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					t.Fatal(err)
				}
				wantBody := body
				if token == keys.Read {
					wantBody = masked
				}
				if method == http.MethodHead {
					wantBody = nil
				}
				if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Length") != strconv.Itoa(size) ||
					resp.TransferEncoding != nil || !bytes.Equal(got, wantBody) {
					t.Errorf("%s of a %d-byte order: %d, Content-Length %q, Transfer-Encoding %v, %d bytes of body",
						method, size, resp.StatusCode, resp.Header.Get("Content-Length"), resp.TransferEncoding, len(got))
				}
			}
		}
		srv.Close()
	}
}
