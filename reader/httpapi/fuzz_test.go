package httpapi_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/orderservice/orders/reader/auth"
	"github.com/orderservice/orders/reader/auth/authtest"
	"github.com/orderservice/orders/reader/auth/ratelimit"
	"github.com/orderservice/orders/reader/httpapi"
	"github.com/orderservice/orders/reader/web"
	"github.com/orderservice/orders/shared/model"
	"github.com/orderservice/orders/shared/ordergen"
	"github.com/orderservice/orders/shared/testenv"
)

// requestIDPattern is what every X-Request-Id answered must look like,
// whatever the client sent as its own.
var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)

// FuzzPublicAPI sends arbitrary requests (method, request target, one
// header, with or without a valid credential) to the public handler over
// real tiers (PostgreSQL and Redis) with the web UI mounted, as net/http's
// server would hand them over: the request is parsed by http.ReadRequest,
// and what it refuses never reaches a handler. Whatever the input, the
// answer is never a 5xx (both dependencies are up) nor a panic, carries a
// well-formed request id and nosniff, is a problem detail when it is an
// API error, and a 200 order is one of the stored orders, byte for byte
// (the credential may read personal data).
//
// The credential's key has no rate limit and failed authentications are
// not limited either: a 429 would end the fuzzer's way into the handlers
// behind the authentication.
func FuzzPublicAPI(f *testing.F) {
	pg := testenv.Postgres(f)
	rd := testenv.Redis(f)
	stored := map[string][]byte{}
	sample, other := testenv.Sample(f), ordergen.New(21).Order()
	testenv.InsertOrders(f, pg.Pool, sample, other)
	for _, o := range []*model.Order{sample, other} {
		b, err := o.Canonical()
		if err != nil {
			f.Fatal(err)
		}
		stored[o.OrderUID] = b
	}
	key, line := authtest.NewKey(f, "fuzz", "0", auth.ScopeRead, auth.ScopePII)
	keys := authtest.NewKeys(f, line)
	ks, err := auth.NewKeyStore(keys.File, ratelimit.Rate{}, nil, nil)
	if err != nil {
		f.Fatal(err)
	}
	unlimited, err := auth.New(auth.Config{Keys: ks})
	if err != nil {
		f.Fatal(err)
	}
	logs := &testenv.Buffer{}
	deps := newDeps(f, pg.URLAs("order_reader"), rd, keys)
	deps.Auth = unlimited
	deps.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	deps.Web = web.Handler()
	h := httpapi.NewServer(deps)
	credential := "Authorization: " + authtest.Bearer(key) + "\r\n"

	f.Add("GET", "/order/"+sample.OrderUID, "If-None-Match", "*", true)
	f.Add("HEAD", "/orders?limit=3", "X-Request-Id", "caller-1", false)
	f.Fuzz(func(t *testing.T, method, target, name, value string, authenticated bool) {
		head := method + " " + target + " HTTP/1.1\r\nHost: reader\r\n"
		if authenticated {
			head += credential
		}
		raw := head + name + ": " + value + "\r\n\r\n"
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		if err != nil {
			return // net/http answers 400 itself
		}
		req.RemoteAddr = "192.0.2.1:1234"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		resp := w.Result()
		body := w.Body.Bytes()
		where := req.Method + " " + req.RequestURI

		if resp.StatusCode >= 500 {
			t.Fatalf("%s: status %d: %s", where, resp.StatusCode, body)
		}
		if strings.Contains(logs.String(), "panic") {
			t.Fatalf("%s: a handler panicked:\n%s", where, logs)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("%s: no X-Content-Type-Options: nosniff", where)
		}
		if id := resp.Header.Get("X-Request-Id"); !requestIDPattern.MatchString(id) {
			t.Fatalf("%s: X-Request-Id %q", where, id)
		}
		if req.Method == http.MethodHead && len(body) > 0 {
			t.Fatalf("%s: a HEAD answered with a body", where)
		}
		if resp.StatusCode == http.StatusMethodNotAllowed && resp.Header.Get("Allow") == "" {
			t.Fatalf("%s: 405 without Allow", where)
		}
		// The web UI (at / and /static/) and Swagger UI's file server
		// answer their own errors in text; everything else is the API's.
		p := req.URL.Path
		files := p == "" || p == "/" || strings.HasPrefix(p, "/static/") || strings.HasPrefix(p, "/swagger/")
		if resp.StatusCode >= 400 && !files {
			requireProblem(t, where, resp, body)
		}
		rc := chi.NewRouteContext()
		if resp.StatusCode == http.StatusOK && req.Method == http.MethodGet &&
			h.(chi.Routes).Match(rc, req.Method, req.URL.Path) && rc.RoutePattern() == "/order/{order_uid}" {
			uid := strings.TrimPrefix(req.URL.Path, "/order/")
			if want, ok := stored[uid]; !ok || !bytes.Equal(body, want) {
				t.Fatalf("%s: 200 with %.200s; stored: %v", where, body, ok)
			}
		}
	})
}

func requireProblem(t *testing.T, where string, resp *http.Response, body []byte) {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("%s: status %d with Content-Type %q", where, resp.StatusCode, ct)
	}
	if len(body) == 0 {
		return // HEAD
	}
	var p struct {
		Type, Title string
		Status      int
	}
	if err := json.Unmarshal(body, &p); err != nil || p.Status != resp.StatusCode || p.Title == "" || p.Type == "" {
		t.Fatalf("%s: not a problem detail for %d: %s (%v)", where, resp.StatusCode, body, err)
	}
}
