package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orderservice/orders/reader/auth/authtest"
	"github.com/orderservice/orders/shared/model"
	"github.com/orderservice/orders/shared/ordergen"
	"github.com/orderservice/orders/shared/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// reader is one running reader process (its run function).
type reader struct {
	base  string // the public port
	ops   string // the ops port (/metrics)
	logs  *testenv.Buffer
	audit *testenv.Buffer // stderr: the audit stream unless READER_AUDIT_LOG names a file
	// token is sent as the bearer credential of do and get, unless a
	// request names its own Authorization ("" sends none).
	token string
	stop  func(t *testing.T) // stops the reader and waits for run; the test's end does too
	// cancel cancels run's context (what SIGTERM does) without waiting;
	// finished is closed when run has returned, with err its result.
	cancel   context.CancelFunc
	finished <-chan struct{}
	err      func() error
}

// env is a reader's environment: a real database (as order_reader), a
// Redis key prefix of the test's own and a keys file (authtest) with a
// key of each grant.
type env struct {
	pg    *testenv.PG
	redis *testenv.RedisEnv
	keys  *authtest.Keys
	vars  map[string]string
	// secrets never appear in what a reader of this env writes: its log
	// and its audit stream are searched for each when it stops.
	secrets []string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	pg := testenv.Postgres(t)
	rd := testenv.Redis(t)
	keys := authtest.NewKeys(t)
	e := &env{pg: pg, redis: rd, keys: keys, vars: map[string]string{
		"READER_LISTEN_ADDR":         testenv.FreeAddr(t),
		"READER_OPS_ADDR":            testenv.FreeAddr(t),
		"DATABASE_URL":               pg.URLAs("order_reader"),
		"REDIS_URL":                  rd.URL,
		"READER_REDIS_KEY_PREFIX":    rd.Prefix,
		"READER_API_KEYS_FILE":       keys.File,
		"READER_WARM_COUNT":          "1000",
		"READER_LOG_LEVEL":           "debug",
		"READER_REDIS_TIMEOUT":       "200ms",
		"READER_DB_QUERY_TIMEOUT":    "3s",
		"READER_NEGATIVE_TTL":        "2s",
		"READER_SHUTDOWN_TIMEOUT":    "5s",
		"READER_WARM_TIMEOUT":        "20s",
		"READER_READ_HEADER_TIMEOUT": "5s",
	}}
	e.secret(keys.Read, keys.PII, keys.NoRead)
	e.secretLines(keys.Lines...)
	return e
}

// secret adds values that the reader must never log.
func (e *env) secret(values ...string) { e.secrets = append(e.secrets, values...) }

// secretLines adds the hashes of keys file lines (name:scopes:hash[:rate]).
func (e *env) secretLines(lines ...string) {
	for _, l := range lines {
		for f := range strings.SplitSeq(l, ":") {
			if len(f) == 64 {
				e.secrets = append(e.secrets, f)
			}
		}
	}
}

// start runs the reader until the test ends, and waits until /readyz
// answers 200 when ready is true, or until it answers at all otherwise.
func (e *env) start(t *testing.T, ready bool) *reader {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs, audit := &testenv.Buffer{}, &testenv.Buffer{}
	finished := make(chan struct{})
	var runErr error
	vars := maps.Clone(e.vars)
	go func() {
		defer close(finished)
		runErr = run(ctx, []string{"reader"}, func(k string) string { return vars[k] }, logs, audit)
	}()
	var once sync.Once
	stop := func(t *testing.T) {
		t.Helper()
		once.Do(func() {
			cancel()
			select {
			case <-finished:
				if runErr != nil {
					t.Errorf("run: %v", runErr)
				}
			case <-time.After(15 * time.Second):
				t.Errorf("run did not return after cancel")
			}
			// Everything the reader wrote, from its start to its end.
			requireNoSecrets(t, "log", logs.String(), e.secrets)
			requireNoSecrets(t, "audit stream", audit.String(), e.secrets)
		})
	}
	t.Cleanup(func() { stop(t) })
	r := &reader{base: "http://" + e.vars["READER_LISTEN_ADDR"], ops: "http://" + e.vars["READER_OPS_ADDR"],
		logs: logs, audit: audit, token: e.keys.PII, stop: stop,
		cancel: cancel, finished: finished, err: func() error { <-finished; return runErr }}
	want := http.StatusOK
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-finished:
			t.Fatalf("run ended early: %v\nlogs:\n%s", runErr, logs)
		default:
		}
		resp, err := http.Get(r.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if !ready || resp.StatusCode == want {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("reader not ready after 30s (last: %v)\nlogs:\n%s", err, logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// requireNoSecrets fails the test if text holds any of secrets.
func requireNoSecrets(t *testing.T, what, text string, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("the reader's %s holds a secret (%d bytes starting %.6q)", what, len(s), s)
		}
	}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r *reader) do(t *testing.T, method, path string, hdr ...string) response {
	t.Helper()
	return r.request(t, method, r.base+path, hdr...)
}

// get GETs a full URL (the ops port's, say).
func (r *reader) get(t *testing.T, url string) response {
	t.Helper()
	return r.request(t, http.MethodGet, url)
}

func (r *reader) request(t *testing.T, method, url string, hdr ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.token != "" {
		req.Header.Set("Authorization", authtest.Bearer(r.token))
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: body}
}

// metric returns the value of one series from /metrics, 0 when absent.
// labels is the exact label set as Prometheus prints it (sorted).
func (r *reader) metric(t *testing.T, series string) float64 {
	t.Helper()
	resp := r.get(t, r.ops+"/metrics")
	sc := bufio.NewScanner(bytes.NewReader(resp.body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", line, err)
			}
			return v
		}
	}
	return 0
}

func canonical(t *testing.T, o *model.Order) []byte {
	t.Helper()
	b, err := o.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// requireJSONEqual compares two JSON documents as values.
func requireJSONEqual(t *testing.T, got, want []byte) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("answer is not JSON: %v: %s", err, got)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if !bytes.Equal(gb, wb) {
		t.Fatalf("order differs from the ingested one:\n got %s\nwant %s", got, want)
	}
}

func requireProblem(t *testing.T, resp response, status int) {
	t.Helper()
	if resp.status != status {
		t.Fatalf("status %d, want %d; body %s", resp.status, status, resp.body)
	}
	if ct := resp.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json", ct)
	}
	var p struct {
		Type   string `json:"type"`
		Title  string `json:"title"`
		Status int    `json:"status"`
	}
	if len(resp.body) > 0 {
		if err := json.Unmarshal(resp.body, &p); err != nil || p.Status != status || p.Title == "" || p.Type == "" {
			t.Fatalf("not a problem detail for %d: %s (%v)", status, resp.body, err)
		}
	}
}

func TestGetOrderStatuses(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sample := testenv.Sample(t)
	gen := ordergen.New(1)
	other := gen.Order()
	testenv.InsertOrders(t, e.pg.Pool, sample, other)
	r := e.start(t, true)

	for _, o := range []*model.Order{sample, other} {
		resp := r.do(t, http.MethodGet, "/order/"+o.OrderUID)
		if resp.status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", o.OrderUID, resp.status, resp.body)
		}
		if ct := resp.header.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("Content-Type %q", ct)
		}
		requireJSONEqual(t, resp.body, canonical(t, o))
		if !bytes.Equal(resp.body, canonical(t, o)) {
			t.Fatalf("bytes differ from the canonical encoding:\n got %s\nwant %s", resp.body, canonical(t, o))
		}
		if resp.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatal("missing X-Content-Type-Options: nosniff")
		}
		etag := resp.header.Get("ETag")
		if !strings.HasPrefix(etag, `"`) || len(etag) < 10 {
			t.Fatalf("ETag %q is not a strong validator", etag)
		}
		if cc := resp.header.Get("Cache-Control"); !strings.Contains(cc, "immutable") ||
			!strings.Contains(cc, "private") || strings.Contains(cc, "public") {
			t.Fatalf("Cache-Control %q", cc)
		}
		if resp.header.Get("X-PII") != "full" || resp.header.Get("Vary") != "Authorization" {
			t.Fatalf("X-PII %q, Vary %q", resp.header.Get("X-PII"), resp.header.Get("Vary"))
		}
		nm := r.do(t, http.MethodGet, "/order/"+o.OrderUID, "If-None-Match", etag)
		if nm.status != http.StatusNotModified || len(nm.body) != 0 || nm.header.Get("ETag") != etag {
			t.Fatalf("If-None-Match: %d %q etag %q", nm.status, nm.body, nm.header.Get("ETag"))
		}
		if other := r.do(t, http.MethodGet, "/order/"+o.OrderUID, "If-None-Match", `"other"`); other.status != http.StatusOK {
			t.Fatalf("non-matching If-None-Match: %d", other.status)
		}
		head := r.do(t, http.MethodHead, "/order/"+o.OrderUID)
		if head.status != http.StatusOK || len(head.body) != 0 || head.header.Get("ETag") != etag ||
			head.header.Get("Content-Length") != strconv.Itoa(len(resp.body)) {
			t.Fatalf("HEAD: %d len %d etag %q length %q", head.status, len(head.body), head.header.Get("ETag"), head.header.Get("Content-Length"))
		}
	}

	for name, path := range map[string]string{
		"empty":     "/order/",
		"too long":  "/order/" + strings.Repeat("a", 65),
		"bad char":  "/order/abc.def",
		"space":     "/order/abc%20def",
		"unicode":   "/order/%C3%A9",
		"slash-ish": "/order/abc%2Fdef",
	} {
		t.Run(name, func(t *testing.T) {
			requireProblem(t, r.do(t, http.MethodGet, path), http.StatusBadRequest)
		})
	}
	requireProblem(t, r.do(t, http.MethodGet, "/order/"+strings.Repeat("a", 64)), http.StatusNotFound)
	requireProblem(t, r.do(t, http.MethodGet, "/order/no_such_order"), http.StatusNotFound)
	requireProblem(t, r.do(t, http.MethodHead, "/order/no_such_order"), http.StatusNotFound)
	requireProblem(t, r.do(t, http.MethodGet, "/nowhere"), http.StatusNotFound)
	// Metrics and profiles are on the ops port only.
	requireProblem(t, r.do(t, http.MethodGet, "/metrics"), http.StatusNotFound)
	requireProblem(t, r.do(t, http.MethodGet, "/debug/pprof/"), http.StatusNotFound)
	if m := r.get(t, r.ops+"/metrics"); m.status != http.StatusOK || !bytes.Contains(m.body, []byte("reader_http_requests_total")) {
		t.Fatalf("ops /metrics: %d %.200s", m.status, m.body)
	}
	requireProblem(t, r.do(t, http.MethodPost, "/order/"+sample.OrderUID), http.StatusMethodNotAllowed)
}

func TestListOrders(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	gen := ordergen.New(2)
	orders := gen.Orders(30)
	testenv.InsertOrders(t, e.pg.Pool, orders...)
	r := e.start(t, true)

	type summary struct {
		OrderUID    string    `json:"order_uid"`
		TrackNumber string    `json:"track_number"`
		DateCreated time.Time `json:"date_created"`
		Amount      int64     `json:"amount"`
		Currency    string    `json:"currency"`
		ItemCount   int       `json:"item_count"`
	}
	byUID := map[string]*model.Order{}
	for _, o := range orders {
		byUID[o.OrderUID] = o
	}
	for _, tc := range []struct {
		query string
		want  int
	}{{"", 20}, {"?limit=1", 1}, {"?limit=25", 25}, {"?limit=100", 30}} {
		resp := r.do(t, http.MethodGet, "/orders"+tc.query)
		if resp.status != http.StatusOK {
			t.Fatalf("/orders%s: %d %s", tc.query, resp.status, resp.body)
		}
		var list struct{ Orders []summary }
		if err := json.Unmarshal(resp.body, &list); err != nil {
			t.Fatal(err)
		}
		if len(list.Orders) != tc.want {
			t.Fatalf("/orders%s: %d orders, want %d", tc.query, len(list.Orders), tc.want)
		}
		for i, s := range list.Orders {
			o := byUID[s.OrderUID]
			if o == nil {
				t.Fatalf("unknown order %q listed", s.OrderUID)
			}
			if s.TrackNumber != o.TrackNumber || s.Amount != o.Payment.Amount || s.Currency != o.Payment.Currency ||
				s.ItemCount != len(o.Items) || !s.DateCreated.Equal(o.DateCreated) {
				t.Fatalf("summary %+v does not match order %+v", s, o)
			}
			if i > 0 && s.DateCreated.After(list.Orders[i-1].DateCreated) {
				t.Fatalf("not newest first at %d", i)
			}
		}
	}
	for _, q := range []string{"?limit=0", "?limit=101", "?limit=abc", "?limit=", "?limit=-1"} {
		requireProblem(t, r.do(t, http.MethodGet, "/orders"+q), http.StatusBadRequest)
	}
}

// TestTiersAndWarmUp: the warm-up fills both tiers and gates readiness;
// every tier is seen answering through the metrics.
func TestTiersAndWarmUp(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	gen := ordergen.New(3)
	warm := gen.Orders(40)
	testenv.InsertOrders(t, e.pg.Pool, warm...)
	e.vars["READER_WARM_COUNT"] = "25"
	r := e.start(t, true)

	if got := r.metric(t, "reader_warmup_orders"); got != 25 {
		t.Fatalf("reader_warmup_orders = %v, want 25", got)
	}
	if logs := r.logs.String(); !strings.Contains(logs, `"msg":"warm-up done"`) || !strings.Contains(logs, `"orders":25,"duration":`) {
		t.Fatalf("no warm-up log line with the count:\n%s", r.logs)
	}
	// The 25 most recent are in Redis under the test's prefix once the
	// fill that follows the warm-up has ended (it logs when).
	ctx := context.Background()
	testenv.Await(t, "the warm-up's Redis fill", 10*time.Second, func() bool {
		logs := r.logs.String()
		return strings.Contains(logs, `"msg":"warm-up: redis filled"`) && strings.Contains(logs, `"written":25,"left":0,`)
	})
	keys, err := e.redis.Client.Keys(ctx, e.redis.Prefix+"order:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 25 {
		t.Fatalf("%d orders in redis after the warm-up's fill, want 25", len(keys))
	}
	if got := r.metric(t, "reader_warmup_redis_duration_seconds"); got <= 0 {
		t.Fatalf("reader_warmup_redis_duration_seconds = %v", got)
	}
	newest := mostRecent(warm)
	resp := r.do(t, http.MethodGet, "/order/"+newest.OrderUID)
	if resp.status != 200 || resp.header.Get("X-Cache") != "local" {
		t.Fatalf("warmed order: %d X-Cache %q", resp.status, resp.header.Get("X-Cache"))
	}
	// The access log line of that request, found by its request id.
	testenv.Await(t, "the access log line", 5*time.Second, func() bool {
		for line := range strings.Lines(r.logs.String()) {
			var entry map[string]any
			if json.Unmarshal([]byte(line), &entry) != nil {
				continue
			}
			if entry["request_id"] == resp.header.Get("X-Request-Id") {
				return entry["msg"] == "request" && entry["route"] == "/order/{order_uid}" &&
					entry["status"] == 200.0 && entry["x_cache"] == "local" && entry["service"] == "reader"
			}
		}
		return false
	})

	// A Redis-only order (as the ingestor would have cached it) comes from
	// Redis, then from the local tier.
	redisOnly := gen.Order()
	if err := e.redis.Client.Set(ctx, e.redis.Prefix+"order:"+redisOnly.OrderUID, canonical(t, redisOnly), time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"redis", "local"} {
		resp := r.do(t, http.MethodGet, "/order/"+redisOnly.OrderUID)
		if resp.status != 200 || resp.header.Get("X-Cache") != want {
			t.Fatalf("redis order, request %d: %d X-Cache %q, want %s", i, resp.status, resp.header.Get("X-Cache"), want)
		}
		requireJSONEqual(t, resp.body, canonical(t, redisOnly))
	}

	// An order only in the database: db, then local, and Redis is filled.
	dbOnly := gen.Order()
	testenv.InsertOrders(t, e.pg.Pool, dbOnly)
	for i, want := range []string{"db", "local"} {
		resp := r.do(t, http.MethodGet, "/order/"+dbOnly.OrderUID)
		if resp.status != 200 || resp.header.Get("X-Cache") != want {
			t.Fatalf("db order, request %d: %d X-Cache %q, want %s", i, resp.status, resp.header.Get("X-Cache"), want)
		}
	}
	testenv.Await(t, "redis filled from the database", 5*time.Second, func() bool {
		b, err := e.redis.Client.Get(ctx, e.redis.Prefix+"order:"+dbOnly.OrderUID).Bytes()
		return err == nil && bytes.Equal(b, canonical(t, dbOnly))
	})

	for series, want := range map[string]float64{
		`reader_cache_lookups_total{result="hit",tier="redis"}`:  1,
		`reader_cache_lookups_total{result="hit",tier="db"}`:     1,
		`reader_cache_lookups_total{result="miss",tier="redis"}`: 1,
		`reader_cache_lookups_total{result="hit",tier="local"}`:  3,
		`reader_db_query_duration_seconds_count{query="get"}`:    1,
	} {
		if got := r.metric(t, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if got := r.metric(t, `reader_http_requests_total{code="200",method="GET",route="/order/{order_uid}"}`); got != 5 {
		t.Errorf("requests counted by route: %v, want 5", got)
	}
}

func mostRecent(orders []*model.Order) *model.Order {
	best := orders[0]
	for _, o := range orders[1:] {
		if o.DateCreated.After(best.DateCreated) || o.DateCreated.Equal(best.DateCreated) && o.OrderUID > best.OrderUID {
			best = o
		}
	}
	return best
}

// TestWarmUpGatesReadiness: while the warm-up cannot finish (the database
// accepts connections and never answers), /readyz is 503; when its timeout
// passes the reader logs it and becomes ready.
func TestWarmUpGatesReadiness(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	hole := blackHole(t)
	e.vars["DATABASE_URL"] = e.pg.URLVia(hole)
	e.vars["READER_WARM_TIMEOUT"] = "1500ms"
	r := e.start(t, false)
	if resp := r.do(t, http.MethodGet, "/readyz"); resp.status != http.StatusServiceUnavailable {
		t.Fatalf("/readyz during warm-up: %d %s", resp.status, resp.body)
	}
	if resp := r.do(t, http.MethodGet, "/healthz"); resp.status != http.StatusOK {
		t.Fatalf("/healthz during warm-up: %d", resp.status)
	}
	testenv.Await(t, "ready after the warm-up timeout", 10*time.Second, func() bool {
		return r.do(t, http.MethodGet, "/readyz").status == http.StatusOK
	})
	if !strings.Contains(r.logs.String(), "warm-up ended early") {
		t.Fatalf("warm-up timeout not logged:\n%s", r.logs)
	}
}

// blackHole accepts TCP connections and never answers.
func blackHole(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// TestSingleflight: 50 concurrent requests for one uncached order cost one
// database query. The test holds a lock on items so that the first query
// waits, and releases it only once all 50 requests have missed the local
// tier and joined the load.
func TestSingleflight(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.vars["READER_WARM_COUNT"] = "0"
	r := e.start(t, true)
	o := ordergen.New(4).Order()
	testenv.InsertOrders(t, e.pg.Pool, o)

	release := e.pg.LockTable(t, "items")

	const n = 50
	var wg sync.WaitGroup
	results := make(chan response, n)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	for range n {
		wg.Go(func() {
			req, err := http.NewRequest(http.MethodGet, r.base+"/order/"+o.OrderUID, nil)
			if err != nil {
				t.Error(err)
				return
			}
			req.Header.Set("Authorization", authtest.Bearer(r.token))
			resp, err := client.Do(req)
			if err != nil {
				t.Errorf("GET: %v", err)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			results <- response{status: resp.StatusCode, header: resp.Header, body: body}
		})
	}
	testenv.Await(t, "50 local misses", 10*time.Second, func() bool {
		return r.metric(t, `reader_cache_lookups_total{result="miss",tier="local"}`) == n
	})
	release()
	wg.Wait()
	close(results)
	for resp := range results {
		if resp.status != 200 {
			t.Fatalf("status %d: %s", resp.status, resp.body)
		}
		requireJSONEqual(t, resp.body, canonical(t, o))
	}
	if got := r.metric(t, `reader_db_query_duration_seconds_count{query="get"}`); got != 1 {
		t.Fatalf("%v database queries for 50 concurrent requests, want 1", got)
	}
	// Requests that reached the flight after it ended found the local
	// tier filled; the others joined the one load.
	if got := r.metric(t, "reader_singleflight_shared_total"); got < 1 || got > n-1 {
		t.Errorf("shared loads %v, want 1..%d", got, n-1)
	}
}

// TestNegativeCache: a flood of requests for an unknown uid costs one
// query; the order, once ingested, is served after the negative TTL.
func TestNegativeCache(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.vars["READER_WARM_COUNT"] = "0"
	e.vars["READER_NEGATIVE_TTL"] = "1s"
	r := e.start(t, true)
	o := ordergen.New(5).Order()
	for range 20 {
		requireProblem(t, r.do(t, http.MethodGet, "/order/"+o.OrderUID), http.StatusNotFound)
	}
	if got := r.metric(t, `reader_db_query_duration_seconds_count{query="get"}`); got > 2 {
		// One query, or two if the first entry expired on a slow machine.
		t.Fatalf("%v database queries for 20 requests of one unknown uid", got)
	}
	if got := r.metric(t, `reader_cache_lookups_total{result="hit",tier="negative"}`); got < 18 {
		t.Fatalf("negative cache hits %v, want >= 18", got)
	}
	testenv.InsertOrders(t, e.pg.Pool, o)
	testenv.Await(t, "the ingested order served after the negative TTL", 10*time.Second, func() bool {
		return r.do(t, http.MethodGet, "/order/"+o.OrderUID).status == http.StatusOK
	})
}

// TestRedisOutage: with Redis cut, orders are still served (no 5xx), and
// Redis is used again once it is back, without a restart.
func TestRedisOutage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	redisURL, proxy := testenv.ProxyURL(t, e.redis.URL)
	e.vars["REDIS_URL"] = redisURL
	e.vars["READER_WARM_COUNT"] = "0"
	r := e.start(t, true)
	gen := ordergen.New(6)
	orders := []*model.Order{gen.Order(), gen.Order(), gen.Order()}
	testenv.InsertOrders(t, e.pg.Pool, orders...)

	proxy.Cut()
	for _, o := range orders {
		start := time.Now()
		resp := r.do(t, http.MethodGet, "/order/"+o.OrderUID)
		if resp.status != 200 || resp.header.Get("X-Cache") != "db" {
			t.Fatalf("with redis down: %d X-Cache %q %s", resp.status, resp.header.Get("X-Cache"), resp.body)
		}
		requireJSONEqual(t, resp.body, canonical(t, o))
		t.Logf("uncached GET with redis down took %v", time.Since(start))
	}
	requireProblem(t, r.do(t, http.MethodGet, "/order/unknown_while_redis_down"), http.StatusNotFound)
	if up := r.metric(t, "reader_redis_up"); up != 0 {
		t.Fatalf("reader_redis_up = %v while cut", up)
	}

	proxy.Restore()
	back := gen.Order()
	ctx := context.Background()
	if err := e.redis.Client.Set(ctx, e.redis.Prefix+"order:"+back.OrderUID, canonical(t, back), time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	// Not in the database: only Redis can answer it.
	testenv.Await(t, "redis used again", 15*time.Second, func() bool {
		resp := r.do(t, http.MethodGet, "/order/"+back.OrderUID)
		if resp.status >= 500 {
			t.Fatalf("5xx after restore: %d %s", resp.status, resp.body)
		}
		return resp.status == 200 && resp.header.Get("X-Cache") == "redis"
	})
}

// TestDatabaseOutage: with PostgreSQL cut, cached orders are 200 and an
// uncached one is 503; after the database is back it is served.
func TestDatabaseOutage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dbURL, proxy := testenv.ProxyURL(t, e.pg.URLAs("order_reader"))
	e.vars["DATABASE_URL"] = dbURL
	gen := ordergen.New(7)
	warm := gen.Order()
	testenv.InsertOrders(t, e.pg.Pool, warm)
	r := e.start(t, true)
	later := gen.Order()
	testenv.InsertOrders(t, e.pg.Pool, later)

	proxy.Cut()
	if resp := r.do(t, http.MethodGet, "/order/"+warm.OrderUID); resp.status != 200 {
		t.Fatalf("cached order with the database down: %d %s", resp.status, resp.body)
	}
	resp := r.do(t, http.MethodGet, "/order/"+later.OrderUID)
	requireProblem(t, resp, http.StatusServiceUnavailable)
	if resp.header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	requireProblem(t, r.do(t, http.MethodGet, "/orders"), http.StatusServiceUnavailable)
	if resp := r.do(t, http.MethodGet, "/readyz"); resp.status != 200 {
		t.Fatalf("/readyz with the database down: %d (the caches still serve)", resp.status)
	}

	proxy.Restore()
	testenv.Await(t, "served once the database is back", 15*time.Second, func() bool {
		return r.do(t, http.MethodGet, "/order/"+later.OrderUID).status == 200
	})
}

func TestBadConfig(t *testing.T) {
	t.Parallel()
	vars := map[string]string{"DATABASE_URL": "mysql://x", "READER_NEGATIVE_TTL": "soon"}
	err := run(context.Background(), []string{"reader"}, func(k string) string { return vars[k] }, io.Discard, io.Discard)
	if err == nil {
		t.Fatal("run accepted a bad configuration")
	}
	for _, want := range []string{"REDIS_URL", "READER_NEGATIVE_TTL", "not a duration", "READER_API_KEYS_FILE: required"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	if errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}

// TestGracefulShutdown: a request in flight when the reader is told to stop
// still gets its answer, and run returns nil.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.vars["READER_WARM_COUNT"] = "0"
	o := ordergen.New(8).Order()
	testenv.InsertOrders(t, e.pg.Pool, o)
	r := e.start(t, true)
	base := r.base

	release := e.pg.LockTable(t, "items")
	answer := make(chan response, 1)
	go func() {
		req, err := http.NewRequest(http.MethodGet, base+"/order/"+o.OrderUID, nil)
		if err != nil {
			t.Error(err)
			answer <- response{}
			return
		}
		req.Header.Set("Authorization", authtest.Bearer(e.keys.PII))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Errorf("in-flight request: %v", err)
			answer <- response{}
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answer <- response{status: resp.StatusCode, body: body}
	}()
	// The request is in flight once the reader's query waits for the lock.
	testenv.Await(t, "the reader's query to wait on the lock", 10*time.Second, func() bool {
		return e.pg.LockWaiters(t, "order_reader") == 1
	})
	r.cancel()
	select {
	case <-r.finished:
		t.Fatalf("run returned (%v) with a request in flight", r.err())
	case <-time.After(100 * time.Millisecond):
	}
	release()
	if resp := <-answer; resp.status != http.StatusOK || !bytes.Equal(resp.body, canonical(t, o)) {
		t.Fatalf("in-flight request answered %d: %s", resp.status, resp.body)
	}
	if err := r.err(); err != nil {
		t.Fatalf("run: %v", err)
	}
}

// TestAccessLogKeepsEveryLineAtShutdown: the access log is buffered, and
// stopping the reader (SIGTERM cancels run's context) right after the
// last answer still writes a line for every request.
func TestAccessLogKeepsEveryLineAtShutdown(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.vars["READER_WARM_COUNT"] = "0"
	e.vars["READER_LOG_LEVEL"] = "info"
	r := e.start(t, true)
	base, logs := r.base, r.logs
	const n = 500
	for i := range n {
		resp, err := http.Get(fmt.Sprintf("%s/order/unknown%d", base, i))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	r.cancel()
	if err := r.err(); err != nil {
		t.Fatalf("run: %v", err)
	}
	got := 0
	for line := range strings.Lines(logs.String()) {
		if strings.Contains(line, `"msg":"request"`) && strings.Contains(line, `"path":"/order/unknown`) {
			got++
		}
	}
	if got != n {
		t.Errorf("%d access log lines after the stop, want %d", got, n)
	}
}

// Past the grace period the reader cuts what is left and still stops
// cleanly: a connection that never sends a request (which net/http waits on
// for up to 5 s) must not turn a stop into a failure.
func TestShutdownGracePeriodOver(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.vars["READER_WARM_COUNT"] = "0"
	e.vars["READER_SHUTDOWN_TIMEOUT"] = "200ms"
	r := e.start(t, true)
	base, logs := r.base, r.logs
	silent, err := net.Dial("tcp", e.vars["READER_LISTEN_ADDR"])
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	// The server has accepted it once a request on another connection
	// is answered after it (Accept is sequential).
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	r.cancel()
	select {
	case <-r.finished:
		if err := r.err(); err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(4 * time.Second):
		t.Fatal("run did not return within 4s of a 200ms grace period")
	}
	if !strings.Contains(logs.String(), "shutdown grace period over") {
		t.Errorf("no grace-period log line in:\n%s", logs.String())
	}
}
