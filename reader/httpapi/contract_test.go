package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/go-chi/chi/v5"
	"github.com/orderservice/orders/reader/auth"
	"github.com/orderservice/orders/reader/auth/authtest"
	"github.com/orderservice/orders/reader/auth/ratelimit"
	"github.com/orderservice/orders/reader/cache"
	"github.com/orderservice/orders/reader/httpapi"
	"github.com/orderservice/orders/reader/metrics"
	"github.com/orderservice/orders/reader/pii"
	"github.com/orderservice/orders/reader/postgres"
	"github.com/orderservice/orders/reader/redis"
	"github.com/orderservice/orders/shared/ordergen"
	"github.com/orderservice/orders/shared/testenv"
	"github.com/prometheus/client_golang/prometheus"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func init() {
	openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.PlainBodyDecoder)
}

// stack is the API over real tiers.
type stack struct {
	srv   *httptest.Server // the public port
	ops   *httptest.Server // the ops port
	ready atomic.Bool
}

// newStack serves the API of the keys of keys, rate-limited through
// Redis as the reader is.
func newStack(t *testing.T, dbURL string, rd *testenv.RedisEnv, keys *authtest.Keys) *stack {
	t.Helper()
	s := &stack{}
	s.ready.Store(true)
	deps := newDeps(t, dbURL, rd, keys)
	deps.Ready = s.ready.Load
	s.srv = httptest.NewServer(httpapi.NewServer(deps))
	t.Cleanup(s.srv.Close)
	s.ops = httptest.NewServer(httpapi.NewOps(deps))
	t.Cleanup(s.ops.Close)
	return s
}

// newDeps builds the API's dependencies over real tiers, authenticating
// the keys of keys and rate-limiting them through Redis as the reader
// does.
func newDeps(t testing.TB, dbURL string, rd *testenv.RedisEnv, keys *authtest.Keys) httpapi.Deps {
	t.Helper()
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	store, err := postgres.Open(ctx, postgres.Options{URL: dbURL, MaxConns: 4, Latency: m.DBQueryDuration})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	rc, err := redis.New(redis.Options{URL: rd.URL, Prefix: rd.Prefix, TTL: 60e9, Timeout: 200e6, Up: m.RedisUp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close() })
	tiers, err := cache.New(cache.Options{Store: store, Remote: rc, LocalBytes: 1 << 20, NegativeTTL: 1e9,
		Mask: pii.MaskJSON, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tiers.Close)
	ks, err := auth.NewKeyStore(keys.File, ratelimit.PerSecond(100, 200), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(auth.Config{Keys: ks, FailureRate: ratelimit.PerMinute(20, 20),
		Limiter: ratelimit.New(rc.Client(), ratelimit.Options{Prefix: rd.Prefix + "ratelimit:"})})
	if err != nil {
		t.Fatal(err)
	}
	return httpapi.Deps{
		Orders: tiers, Summaries: tiers, Metrics: m, Gatherer: reg, RedisUp: rc.Up,
		Auth: a, Audit: httpapi.NewAuditLog(io.Discard, m.PIIReads),
	}
}

// loadSpec loads openapi.yaml and a router for it, and names the paths
// documented on the ops port's server.
func loadSpec(t *testing.T) (*openapi3.T, routers.Router, map[string]bool) {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(httpapi.OpenAPI)
	if err != nil {
		t.Fatalf("openapi.yaml does not load: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.yaml is not valid OpenAPI 3: %v", err)
	}
	// The spec's servers are relative ("/") or the ops port's; match any
	// host the test uses.
	doc.Servers = nil
	opsPaths := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		if len(item.Servers) > 0 {
			opsPaths[path] = true
		}
		item.Servers = nil
	}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return doc, router, opsPaths
}

// TestContract sends real requests to the real handler stack and validates
// every response (status, headers, content type, body) against
// openapi.yaml, so that the spec and the code cannot drift apart.
func TestContract(t *testing.T) {
	t.Parallel()
	_, router, _ := loadSpec(t)
	pg := testenv.Postgres(t)
	rd := testenv.Redis(t)
	gen := ordergen.New(11)
	o := gen.Order()
	testenv.InsertOrders(t, pg.Pool, testenv.Sample(t), o, gen.Order(), gen.Order())
	limited, limitedLine := authtest.NewKey(t, "test-limited", "1/1", auth.ScopeRead)
	keys := authtest.NewKeys(t, limitedLine)
	up := newStack(t, pg.URLAs("order_reader"), rd, keys)
	// A stack whose database is a closed port: every uncached order is 503.
	down := newStack(t, pg.URLVia(testenv.FreeAddr(t)), rd, keys)

	// get is a request with the PII key, or with the headers hdr names
	// (an empty value drops the header).
	get := func(s *stack, method, path string, hdr ...string) *http.Request {
		base := s.srv.URL
		if path == "/metrics" {
			base = s.ops.URL
		}
		req, err := http.NewRequest(method, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", authtest.Bearer(keys.PII))
		for i := 0; i+1 < len(hdr); i += 2 {
			if hdr[i+1] == "" {
				req.Header.Del(hdr[i])
				continue
			}
			req.Header.Set(hdr[i], hdr[i+1])
		}
		return req
	}
	// spend uses up the limited key's burst (one request) on the order.
	spend := func() {
		resp, err := http.DefaultClient.Do(get(up, http.MethodGet, "/orders", "Authorization", authtest.Bearer(limited)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	first, err := http.DefaultClient.Do(get(up, http.MethodGet, "/order/"+o.OrderUID))
	if err != nil {
		t.Fatal(err)
	}
	first.Body.Close()
	etag := first.Header.Get("ETag")
	// A cursor: the store holds four orders, pages of one.
	page, err := http.DefaultClient.Do(get(up, http.MethodGet, "/orders?limit=1"))
	if err != nil {
		t.Fatal(err)
	}
	var firstPage struct {
		NextCursor string `json:"next_cursor"`
	}
	err = json.NewDecoder(page.Body).Decode(&firstPage)
	page.Body.Close()
	if err != nil || firstPage.NextCursor == "" {
		t.Fatalf("no next_cursor on the first page: %v", err)
	}
	cursor := url.QueryEscape(firstPage.NextCursor)
	filters := "track_number=" + url.QueryEscape(o.TrackNumber) + "&customer_id=" + url.QueryEscape(o.CustomerID) +
		"&currency=" + o.Payment.Currency + "&created_from=2000-01-01T00:00:00Z&created_to=2100-01-01T00:00:00%2B03:00"

	read := authtest.Bearer(keys.Read)
	cases := []struct {
		name       string
		stack      *stack
		req        *http.Request
		status     int
		badRequest bool // the request itself breaks the spec on purpose
		notReady   bool
		before     func() // runs just before the request
	}{
		{"order", up, get(up, "GET", "/order/"+o.OrderUID), 200, false, false, nil},
		{"order masked", up, get(up, "GET", "/order/"+o.OrderUID, "Authorization", read), 200, false, false, nil},
		{"sample order", up, get(up, "GET", "/order/b563feb7b2b84b6test"), 200, false, false, nil},
		{"sample order masked", up, get(up, "GET", "/order/b563feb7b2b84b6test", "Authorization", read), 200, false, false, nil},
		{"order not modified", up, get(up, "GET", "/order/"+o.OrderUID, "If-None-Match", etag), 304, false, false, nil},
		{"order head", up, get(up, "HEAD", "/order/"+o.OrderUID), 200, false, false, nil},
		{"order head unknown", up, get(up, "HEAD", "/order/nope"), 404, false, false, nil},
		{"order malformed", up, get(up, "GET", "/order/"+strings.Repeat("x", 65)), 400, true, false, nil},
		{"order bad char", up, get(up, "GET", "/order/a.b"), 400, true, false, nil},
		{"order unknown", up, get(up, "GET", "/order/unknown_uid"), 404, false, false, nil},
		{"order without credentials", up, get(up, "GET", "/order/"+o.OrderUID, "Authorization", ""), 401, false, false, nil},
		{"order head without credentials", up, get(up, "HEAD", "/order/"+o.OrderUID, "Authorization", ""), 401, false, false, nil},
		{"order malformed credentials", up, get(up, "GET", "/order/"+o.OrderUID, "Authorization", "Basic dXNlcjpwYXNz"), 401, false, false, nil},
		{"order unknown key", up, get(up, "GET", "/order/"+o.OrderUID, "Authorization", "Bearer ord_unknownunknownunknownunknownunknownunknow"), 401, false, false, nil},
		{"order without orders:read", up, get(up, "GET", "/order/"+o.OrderUID, "Authorization", authtest.Bearer(keys.NoRead)), 403, false, false, nil},
		{"order rate limited", up, get(up, "GET", "/order/"+o.OrderUID, "Authorization", authtest.Bearer(limited)), 429, false, false, spend},
		{"orders without credentials", up, get(up, "GET", "/orders", "Authorization", ""), 401, false, false, nil},
		{"orders without orders:read", up, get(up, "GET", "/orders", "Authorization", authtest.Bearer(keys.NoRead)), 403, false, false, nil},
		{"orders rate limited", up, get(up, "GET", "/orders", "Authorization", authtest.Bearer(limited)), 429, false, false, spend},
		{"order db down", down, get(down, "GET", "/order/"+gen.Order().OrderUID), 503, false, false, nil},
		{"orders", up, get(up, "GET", "/orders"), 200, false, false, nil},
		{"orders limit", up, get(up, "GET", "/orders?limit=2"), 200, false, false, nil},
		{"orders head", up, get(up, "HEAD", "/orders?limit=2"), 200, false, false, nil},
		{"orders bad limit", up, get(up, "GET", "/orders?limit=0"), 400, true, false, nil},
		{"orders every filter", up, get(up, "GET", "/orders?"+filters+"&limit=5"), 200, false, false, nil},
		{"orders with a next page", up, get(up, "GET", "/orders?limit=1"), 200, false, false, nil},
		{"orders next page", up, get(up, "GET", "/orders?limit=2&cursor="+cursor), 200, false, false, nil},
		{"orders head with filters", up, get(up, "HEAD", "/orders?"+filters), 200, false, false, nil},
		{"orders unknown parameter", up, get(up, "GET", "/orders?page=2"), 400, true, false, nil},
		{"orders parameter twice", up, get(up, "GET", "/orders?limit=1&limit=2"), 400, true, false, nil},
		{"orders bad date", up, get(up, "GET", "/orders?created_from=2026-01-01"), 400, true, false, nil},
		{"orders from after to", up, get(up, "GET",
			"/orders?created_from=2026-02-01T00:00:00Z&created_to=2026-01-01T00:00:00Z"), 400, false, false, nil},
		{"orders track number too long", up, get(up, "GET", "/orders?track_number="+strings.Repeat("x", 256)), 400, true, false, nil},
		{"orders bad currency", up, get(up, "GET", "/orders?currency=usd"), 400, true, false, nil},
		{"orders altered cursor", up, get(up, "GET", "/orders?cursor=B"+cursor[1:]), 400, false, false, nil},
		{"orders cursor of other filters", up, get(up, "GET", "/orders?customer_id=x&cursor="+cursor), 400, false, false, nil},
		{"orders head bad cursor", up, get(up, "HEAD", "/orders?cursor=x"), 400, false, false, nil},
		{"orders db down", down, get(down, "GET", "/orders"), 503, false, false, nil},
		{"orders head db down", down, get(down, "HEAD", "/orders?customer_id=x"), 503, false, false, nil},
		// The open endpoints answer without a credential.
		{"healthz", up, get(up, "GET", "/healthz", "Authorization", ""), 200, false, false, nil},
		{"readyz", up, get(up, "GET", "/readyz", "Authorization", ""), 200, false, false, nil},
		{"readyz warming", down, get(down, "GET", "/readyz", "Authorization", ""), 503, false, true, nil},
		{"metrics (ops port)", up, get(up, "GET", "/metrics", "Authorization", ""), 200, false, false, nil},
		{"openapi", up, get(up, "GET", "/openapi.yaml", "Authorization", ""), 200, false, false, nil},
		{"swagger", up, get(up, "GET", "/swagger/", "Authorization", ""), 200, false, false, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.stack.ready.Store(!tc.notReady)
			defer tc.stack.ready.Store(true)
			if tc.before != nil {
				tc.before()
			}
			resp, err := http.DefaultClient.Do(tc.req)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Error("no X-Content-Type-Options: nosniff")
			}
			route, params, err := router.FindRoute(tc.req)
			if err != nil {
				t.Fatalf("%s %s is not in openapi.yaml: %v", tc.req.Method, tc.req.URL.Path, err)
			}
			reqIn := &openapi3filter.RequestValidationInput{
				Request: tc.req, PathParams: params, Route: route,
				Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
			}
			ctx := context.Background()
			if !tc.badRequest {
				if err := openapi3filter.ValidateRequest(ctx, reqIn); err != nil {
					t.Fatalf("request does not match the spec: %v", err)
				}
			}
			out := &openapi3filter.ResponseValidationInput{
				RequestValidationInput: reqIn,
				Status:                 resp.StatusCode,
				Header:                 resp.Header,
				Body:                   io.NopCloser(bytes.NewReader(body)),
				Options:                &openapi3filter.Options{IncludeResponseStatus: true},
			}
			if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
				t.Fatalf("response does not match the spec: %v\nbody: %.500s", err, body)
			}
			requireCaching(t, tc.req, resp)
		})
	}
}

// requireCaching checks the caching headers of an answer: an answer to a
// credential is private and varies by it, a refusal is not stored, and
// nothing that needs a credential is ever public.
func requireCaching(t *testing.T, req *http.Request, resp *http.Response) {
	t.Helper()
	cc := resp.Header.Get("Cache-Control")
	open := req.URL.Path == "/healthz" || req.URL.Path == "/readyz" || req.URL.Path == "/metrics" ||
		req.URL.Path == "/openapi.yaml" || strings.HasPrefix(req.URL.Path, "/swagger/")
	if open {
		if resp.Header.Get("Vary") == "Authorization" {
			t.Errorf("open endpoint %s varies by Authorization", req.URL.Path)
		}
		return
	}
	if resp.Header.Get("Vary") != "Authorization" {
		t.Errorf("Vary %q, want Authorization", resp.Header.Get("Vary"))
	}
	switch {
	case strings.Contains(cc, "public"):
		t.Errorf("Cache-Control %q of a data endpoint is public", cc)
	case resp.StatusCode < 300 || resp.StatusCode == http.StatusNotModified:
		if !strings.HasPrefix(cc, "private") {
			t.Errorf("Cache-Control %q, want private", cc)
		}
	case cc != "no-store":
		t.Errorf("Cache-Control %q of a %d, want no-store", cc, resp.StatusCode)
	}
}

// TestEveryRouteDocumented walks the router and requires a spec path for
// every API route, and a route for every spec path.
func TestEveryRouteDocumented(t *testing.T) {
	t.Parallel()
	doc, _, opsPaths := loadSpec(t)
	h := httpapi.NewServer(httpapi.Deps{Gatherer: prometheus.NewRegistry()})
	r, ok := h.(chi.Routes)
	if !ok {
		t.Fatalf("NewServer returned %T, not a chi router", h)
	}
	routed := map[string]bool{}
	err := chi.Walk(r, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		switch route {
		case "/order/", "/swagger", "/swagger/*", "/", "/static/*":
			// /order/ is the empty-uid 400; /swagger redirects; the
			// Swagger UI assets and the web UI are not API.
			if route == "/swagger/*" {
				routed["/swagger/"] = true
			}
			return nil
		}
		routed[route] = true
		item := doc.Paths.Find(route)
		if item == nil {
			t.Errorf("route %s %s is not in openapi.yaml", method, route)
		} else if item.GetOperation(method) == nil {
			t.Errorf("openapi.yaml has %s but not its method %s", route, method)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The paths documented on the ops port's server are NewOps's (a
	// ServeMux, which cannot be walked): each must answer there.
	ops := httpapi.NewOps(httpapi.Deps{Gatherer: prometheus.NewRegistry()})
	for path := range doc.Paths.Map() {
		if opsPaths[path] {
			w := httptest.NewRecorder()
			ops.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
			if w.Code != http.StatusOK {
				t.Errorf("openapi.yaml documents %s on the ops port, which answers %d", path, w.Code)
			}
			if routed[path] {
				t.Errorf("openapi.yaml documents %s on the ops port, but the public port routes it too", path)
			}
			continue
		}
		if !routed[path] {
			t.Errorf("openapi.yaml documents %s, which no route serves", path)
		}
	}
}
