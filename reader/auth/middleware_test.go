package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/orderservice/orders/reader/auth/ratelimit"
	"github.com/orderservice/orders/reader/problem"
	"github.com/orderservice/orders/shared/testenv"
	"github.com/redis/go-redis/v9"
)

// fixture is an Authenticator with API keys, JWTs and Redis-backed rate
// limits, and the credentials to call it with.
type fixture struct {
	a       *Authenticator
	m       *recMetrics
	path    string // the keys file
	idp     *idp
	signer  *signer
	read    string // API key granted orders:read
	pii     string // orders:read and orders:pii
	limited string // orders:read at rate=1/2
	free    string // orders:read, rate=0
	keyLine map[string]string
	log     *testenv.Buffer
}

type fixtureOpts struct {
	defaultRate ratelimit.Rate
	failureRate ratelimit.Rate
	redisURL    string // "" for the test's own Redis
	prefix      string
	keysPath    string // reuse another fixture's keys file
	noLimiter   bool
}

func redisClient(t testing.TB, url string) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	opts.MaxRetries = -1
	opts.ContextTimeoutEnabled = true
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func newFixture(t testing.TB, o fixtureOpts) *fixture {
	t.Helper()
	f := &fixture{m: newRecMetrics(), log: &testenv.Buffer{}, keyLine: map[string]string{}}
	log := logger(f.log)
	if o.keysPath == "" {
		f.path = filepath.Join(t.TempDir(), "keys")
		var lines []string
		for _, k := range []struct {
			dst  *string
			line string
		}{
			{&f.read, "support:orders:read:%s"},
			{&f.pii, "privileged:orders:read,orders:pii:%s"},
			{&f.limited, "limited:orders:read:%s:rate=1/2"},
			{&f.free, "free:orders:read:%s:rate=0"},
		} {
			key, hash := newKey(t)
			*k.dst = key
			f.keyLine[key] = fmt.Sprintf(k.line, hash)
			lines = append(lines, f.keyLine[key])
		}
		writeFile(t, f.path, lines...)
	} else {
		f.path = o.keysPath
	}
	keys, err := NewKeyStore(f.path, o.defaultRate, log, f.m)
	if err != nil {
		t.Fatal(err)
	}
	f.signer = rsaSigner(t, "k1", 0)
	f.idp = newIDP(t, f.signer)
	v, err := NewJWTVerifier(context.Background(), f.idp.config(), o.defaultRate, log, f.m)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Keys: keys, JWT: v, FailureRate: o.failureRate, Log: log, Metrics: f.m,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")},
	}
	if !o.noLimiter {
		url, prefix := o.redisURL, o.prefix
		if url == "" {
			env := testenv.Redis(t)
			url, prefix = env.URL, env.Prefix
		}
		cfg.Limiter = ratelimit.New(redisClient(t, url), ratelimit.Options{Timeout: 5 * time.Second, Prefix: prefix, Log: log, Metrics: f.m})
	}
	f.a, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// handler answers 200 with who called and whether personal data is
// visible, as the order handlers will.
var handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	p, ok := FromContext(r.Context())
	if !ok {
		http.Error(w, "no principal", http.StatusInternalServerError)
		return
	}
	fmt.Fprintf(w, "%s %s pii=%v", p.Kind, p.Name, HasScope(r.Context(), ScopePII))
})

// call sends one request through the middleware requiring scope.
func (f *fixture) call(scope, method, authorization, remote string, xff ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, "/order/b563feb7b2b84b6test", nil)
	r.RemoteAddr = remote
	if authorization != "" {
		r.Header.Set("Authorization", authorization)
	}
	for _, v := range xff {
		r.Header.Add("X-Forwarded-For", v)
	}
	w := httptest.NewRecorder()
	w.Header().Set("X-Request-Id", "req-1") // as the reader's outer middleware does
	f.a.Require(scope)(handler).ServeHTTP(w, r)
	return w
}

func TestMiddlewareAnswers(t *testing.T) {
	f := newFixture(t, fixtureOpts{defaultRate: ratelimit.PerSecond(1000, 1000)})
	good := f.signer.sign(t, with(claims("alice"), "scope", "orders:read"), nil)
	goodPII := f.signer.sign(t, with(claims("bob"), "scope", "orders:read orders:pii"), nil)
	expired := f.signer.sign(t, with(claims("alice"), "exp", time.Now().Add(-time.Hour).Unix()), nil)
	wrongAud := f.signer.sign(t, with(claims("alice"), "aud", "other"), nil)
	const (
		challenge = `Bearer realm="orders"`
		invalid   = `Bearer realm="orders", error="invalid_token", error_description="the token is unknown, revoked or invalid"`
	)
	for _, tc := range []struct {
		name          string
		scope, method string
		authorization string
		status        int
		body          string // the handler's answer, for 200
		challenge     string // WWW-Authenticate
		reason        string // counted failure
	}{
		{"no credentials", ScopeRead, "GET", "", 401, "", challenge, "missing"},
		{"another scheme", ScopeRead, "GET", "Basic dXNlcjpwYXNz", 401, "", challenge, "missing"},
		{"malformed", ScopeRead, "GET", "Bearer", 401, "",
			`Bearer realm="orders", error="invalid_request", error_description="the Authorization header must be one 'Bearer <token>'"`, "malformed"},
		{"unknown key", ScopeRead, "GET", "Bearer ord_" + strings.Repeat("x", 43), 401, "", invalid, "unknown_key"},
		{"neither key nor JWT", ScopeRead, "GET", "Bearer abcdef", 401, "", invalid, "unrecognised"},
		{"expired JWT", ScopeRead, "GET", "Bearer " + expired, 401, "",
			`Bearer realm="orders", error="invalid_token", error_description="the token has expired"`, "jwt_expired"},
		{"JWT for another audience", ScopeRead, "GET", "Bearer " + wrongAud, 401, "", invalid, "jwt_audience"},
		{"HEAD without credentials", ScopeRead, "HEAD", "", 401, "", challenge, "missing"},
		{"read key", ScopeRead, "GET", "Bearer " + f.read, 200, "api_key support pii=false", "", ""},
		{"pii key", ScopeRead, "GET", "Bearer " + f.pii, 200, "api_key privileged pii=true", "", ""},
		{"pii key on a pii route", ScopePII, "GET", "bearer " + f.pii, 200, "api_key privileged pii=true", "", ""},
		{"read key on a pii route", ScopePII, "GET", "Bearer " + f.read, 403, "",
			`Bearer realm="orders", error="insufficient_scope", scope="orders:pii"`, "insufficient_scope"},
		{"any credential", "", "GET", "Bearer " + f.read, 200, "api_key support pii=false", "", ""},
		{"JWT", ScopeRead, "GET", "Bearer " + good, 200, "jwt alice pii=false", "", ""},
		{"JWT with pii", ScopeRead, "GET", "Bearer " + goodPII, 200, "jwt bob pii=true", "", ""},
		{"JWT without the scope", ScopePII, "GET", "Bearer " + good, 403, "",
			`Bearer realm="orders", error="insufficient_scope", scope="orders:pii"`, "insufficient_scope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := get(f.m, func(m *recMetrics) int { return m.failures[tc.reason] })
			w := f.call(tc.scope, tc.method, tc.authorization, "192.0.2.1:4711")
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if got := w.Header().Values("Vary"); len(got) != 1 || got[0] != "Authorization" {
				t.Errorf("Vary %q", got)
			}
			if got := w.Header().Get("WWW-Authenticate"); got != tc.challenge {
				t.Errorf("WWW-Authenticate %q, want %q", got, tc.challenge)
			}
			if tc.status == 200 {
				if w.Body.String() != tc.body {
					t.Errorf("body %q, want %q", w.Body, tc.body)
				}
				return
			}
			if get(f.m, func(m *recMetrics) int { return m.failures[tc.reason] }) != before+1 {
				t.Errorf("failure %q not counted", tc.reason)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" || w.Header().Get("Cache-Control") != "no-store" {
				t.Errorf("Content-Type %q, Cache-Control %q", ct, w.Header().Get("Cache-Control"))
			}
			if tc.method == "HEAD" {
				if w.Body.Len() != 0 {
					t.Errorf("HEAD answered with a body")
				}
				return
			}
			var p problem.Details
			if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
				t.Fatalf("body %q: %v", w.Body, err)
			}
			if p.Type != "about:blank" || p.Status != tc.status || p.Title != http.StatusText(tc.status) ||
				p.Instance != "/order/b563feb7b2b84b6test" || p.RequestID != "req-1" || p.Detail == "" {
				t.Errorf("problem %+v", p)
			}
		})
	}
}

func TestNewNeedsACredentialSource(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("an Authenticator without keys or JWTs")
	}
	keys, err := NewKeyStore(filepath.Join("testdata", "no-keys"), ratelimit.Rate{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Keys: keys, Realm: `a"b`}); err == nil {
		t.Fatal("a realm with a quote")
	}
	// API keys alone: a JWT is not recognised.
	a, err := New(Config{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "/orders", nil)
	r.Header.Set("Authorization", "Bearer "+rsaSigner(t, "k", 0).sign(t, claims("alice"), nil))
	a.Require(ScopeRead)(handler).ServeHTTP(w, r)
	if w.Code != 401 {
		t.Fatalf("a JWT without a verifier: %d", w.Code)
	}
}

// tooMany checks a 429's headers.
func tooMany(t *testing.T, w *httptest.ResponseRecorder, limit int) {
	t.Helper()
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("status %d, want 429: %s", w.Code, w.Body)
	}
	h := w.Header()
	retry, err := strconv.Atoi(h.Get("Retry-After"))
	if err != nil || retry < 1 {
		t.Errorf("Retry-After %q", h.Get("Retry-After"))
	}
	reset, err := strconv.Atoi(h.Get("RateLimit-Reset"))
	if err != nil || reset < retry {
		t.Errorf("RateLimit-Reset %q with Retry-After %d", h.Get("RateLimit-Reset"), retry)
	}
	if h.Get("RateLimit-Limit") != strconv.Itoa(limit) || h.Get("RateLimit-Remaining") != "0" {
		t.Errorf("RateLimit-Limit %q, -Remaining %q; want %d, 0", h.Get("RateLimit-Limit"), h.Get("RateLimit-Remaining"), limit)
	}
	if h.Get("Content-Type") != "application/problem+json" {
		t.Errorf("Content-Type %q", h.Get("Content-Type"))
	}
}

func TestRateLimitPerCredential(t *testing.T) {
	f := newFixture(t, fixtureOpts{defaultRate: ratelimit.PerMinute(3, 3)})
	// A key's own rate: 1/s in bursts of 2.
	for i, want := range []int{200, 200, 429} {
		w := f.call(ScopeRead, "GET", "Bearer "+f.limited, "192.0.2.1:1")
		if w.Code != want {
			t.Fatalf("request %d: %d, want %d", i+1, w.Code, want)
		}
		if want == 429 {
			tooMany(t, w, 2)
		}
	}
	if n := get(f.m, func(m *recMetrics) int { return m.limited["api_key/limited"] }); n != 1 {
		t.Fatalf("rate-limited counted %d times for the key", n)
	}
	// The default: 3 a minute; other credentials are not affected.
	for i, want := range []int{200, 200, 200, 429, 429} {
		if w := f.call(ScopeRead, "GET", "Bearer "+f.read, "192.0.2.1:1"); w.Code != want {
			t.Fatalf("default rate, request %d: %d, want %d", i+1, w.Code, want)
		}
	}
	// rate=0: no limit.
	for i := range 20 {
		if w := f.call(ScopeRead, "GET", "Bearer "+f.free, "192.0.2.1:1"); w.Code != 200 {
			t.Fatalf("unlimited key, request %d: %d", i+1, w.Code)
		}
	}
	// JWTs are limited per subject.
	alice := f.signer.sign(t, claims("alice"), nil)
	for i, want := range []int{200, 200, 200, 429} {
		w := f.call(ScopeRead, "GET", "Bearer "+alice, "192.0.2.1:1")
		if w.Code != want {
			t.Fatalf("JWT, request %d: %d, want %d", i+1, w.Code, want)
		}
		if want == 429 {
			tooMany(t, w, 3)
		}
	}
	if w := f.call(ScopeRead, "GET", "Bearer "+f.signer.sign(t, claims("bob"), nil), "192.0.2.1:1"); w.Code != 200 {
		t.Fatalf("another subject: %d", w.Code)
	}
	if n := get(f.m, func(m *recMetrics) int { return m.limited["jwt/jwt:support-portal"] }); n != 1 {
		t.Fatalf("JWT rate-limited counted %d times", n)
	}
}

// Two reader instances sharing Redis share each credential's limit.
func TestRateLimitAcrossInstances(t *testing.T) {
	env := testenv.Redis(t)
	opts := fixtureOpts{defaultRate: ratelimit.PerMinute(4, 4), redisURL: env.URL, prefix: env.Prefix}
	a := newFixture(t, opts)
	opts.keysPath = a.path
	b := newFixture(t, opts)
	var ok, limited [2]int
	for i := range 10 {
		f := [2]*fixture{a, b}[i%2]
		switch w := f.call(ScopeRead, "GET", "Bearer "+a.read, "192.0.2.1:1"); w.Code {
		case 200:
			ok[i%2]++
		case 429:
			limited[i%2]++
		default:
			t.Fatalf("request %d: %d", i, w.Code)
		}
	}
	if ok[0]+ok[1] != 4 || ok[0] == 0 || ok[1] == 0 || limited[0] == 0 || limited[1] == 0 {
		t.Fatalf("allowed %v, limited %v by the two instances: want 4 allowed in all", ok, limited)
	}
}

// Failed authentications are limited per client address: past the
// limit the address is refused before its credentials are checked, so
// a guessed key is never confirmed.
func TestFailureLimitPerAddress(t *testing.T) {
	f := newFixture(t, fixtureOpts{defaultRate: ratelimit.PerSecond(1000, 1000), failureRate: ratelimit.PerMinute(3, 3)})
	bad := "Bearer ord_" + strings.Repeat("y", 43)

	// Requests without credentials are no guesses.
	for range 5 {
		if w := f.call(ScopeRead, "GET", "", "192.0.2.1:1"); w.Code != 401 {
			t.Fatalf("no credentials: %d", w.Code)
		}
	}
	for i, want := range []int{401, 401, 401, 429} {
		w := f.call(ScopeRead, "GET", bad, "192.0.2.1:1")
		if w.Code != want {
			t.Fatalf("bad key %d: %d, want %d", i+1, w.Code, want)
		}
		if want == 429 {
			tooMany(t, w, 3)
			if w.Header().Get("WWW-Authenticate") != "" {
				t.Error("a 429 with WWW-Authenticate")
			}
		}
	}
	// Blocked: even a good key gets 429, and is not checked.
	unknownBefore := get(f.m, func(m *recMetrics) int { return m.failures["unknown_key"] })
	for _, authz := range []string{"Bearer " + f.read, bad, "Bearer"} {
		if w := f.call(ScopeRead, "GET", authz, "192.0.2.1:2"); w.Code != 429 {
			t.Fatalf("blocked address: %d", w.Code)
		} else {
			tooMany(t, w, 3)
		}
	}
	if get(f.m, func(m *recMetrics) int { return m.failures["unknown_key"] }) != unknownBefore {
		t.Fatal("a blocked address's key was checked")
	}
	if n := get(f.m, func(m *recMetrics) int { return m.failures["blocked"] }); n != 3 {
		t.Fatalf("blocked counted %d times, want 3", n)
	}
	if n := get(f.m, func(m *recMetrics) int { return m.limited["address/"] }); n != 1 {
		t.Fatalf("address rate-limited counted %d times, want 1", n)
	}
	// Other addresses are not affected.
	if w := f.call(ScopeRead, "GET", "Bearer "+f.read, "192.0.2.2:1"); w.Code != 200 {
		t.Fatalf("another address: %d", w.Code)
	}
	// An IPv6 client's whole /64 is one address.
	for i, want := range []int{401, 401, 401, 429} {
		host := fmt.Sprintf("[2001:db8:1:2::%x]:1", i+1)
		if w := f.call(ScopeRead, "GET", bad, host); w.Code != want {
			t.Fatalf("IPv6 bad key %d: %d, want %d", i+1, w.Code, want)
		}
	}
	if w := f.call(ScopeRead, "GET", "Bearer "+f.read, "[2001:db8:1:3::1]:1"); w.Code != 200 {
		t.Fatalf("another /64: %d", w.Code)
	}
}

// Behind a trusted proxy the client is the right-most untrusted address
// of X-Forwarded-For; from anyone else the header is ignored.
func TestFailureLimitBehindProxies(t *testing.T) {
	f := newFixture(t, fixtureOpts{defaultRate: ratelimit.PerSecond(1000, 1000), failureRate: ratelimit.PerMinute(2, 2)})
	bad := "Bearer ord_" + strings.Repeat("z", 43)
	// A client behind the proxy guesses, spoofing addresses on the left.
	for i, want := range []int{401, 401, 429} {
		xff := fmt.Sprintf("203.0.113.%d, 198.51.100.7", i)
		if w := f.call(ScopeRead, "GET", bad, "10.1.2.3:1", xff); w.Code != want {
			t.Fatalf("guess %d through the proxy: %d, want %d", i+1, w.Code, want)
		}
	}
	// Another client of the same proxy is not blocked.
	if w := f.call(ScopeRead, "GET", "Bearer "+f.read, "10.1.2.3:1", "198.51.100.8"); w.Code != 200 {
		t.Fatalf("another client of the proxy: %d", w.Code)
	}
	// The blocked client through another proxy hop is still blocked.
	if w := f.call(ScopeRead, "GET", "Bearer "+f.read, "10.9.9.9:1", "198.51.100.7", "10.1.2.3"); w.Code != 429 {
		t.Fatalf("the blocked client through two proxies: %d", w.Code)
	}
	// An untrusted peer cannot pose as someone else.
	for i, want := range []int{401, 401, 429} {
		if w := f.call(ScopeRead, "GET", bad, "192.0.2.50:1", fmt.Sprintf("198.51.100.%d", 100+i)); w.Code != want {
			t.Fatalf("guess %d with a forged header: %d, want %d", i+1, w.Code, want)
		}
	}
}

// With Redis cut off, the limits hold per instance and requests go on
// being served at once.
func TestRateLimitWithoutRedis(t *testing.T) {
	env := testenv.Redis(t)
	url, proxy := testenv.ProxyURL(t, env.URL)
	f := newFixture(t, fixtureOpts{defaultRate: ratelimit.PerMinute(3, 3), redisURL: url, prefix: env.Prefix})
	if w := f.call(ScopeRead, "GET", "Bearer "+f.read, "192.0.2.1:1"); w.Code != 200 {
		t.Fatalf("with Redis: %d", w.Code)
	}
	proxy.Cut()
	start := time.Now()
	var codes []int
	for range 5 {
		codes = append(codes, f.call(ScopeRead, "GET", "Bearer "+f.read, "192.0.2.1:1").Code)
	}
	if fmt.Sprint(codes) != "[200 200 200 429 429]" {
		t.Fatalf("without Redis: %v, want the local limit of 3", codes)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatalf("5 requests took %v without Redis", time.Since(start))
	}
	if up := get(f.m, func(m *recMetrics) []bool { return m.redisUp }); len(up) < 2 || up[len(up)-1] {
		t.Fatalf("Redis fallback not reported: %v", up)
	}
}

func TestClientAddr(t *testing.T) {
	trusted, err := ParseTrustedProxies("10.0.0.0/8, 192.168.1.1, fd00::/8")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, remote string
		xff          []string
		want         string
	}{
		{"direct", "192.0.2.1:1", nil, "192.0.2.1"},
		{"direct ignores the header", "192.0.2.1:1", []string{"198.51.100.1"}, "192.0.2.1"},
		{"proxy without a header", "10.0.0.1:1", nil, "10.0.0.1"},
		{"proxy", "10.0.0.1:1", []string{"198.51.100.1"}, "198.51.100.1"},
		{"right-most untrusted", "10.0.0.1:1", []string{"203.0.113.9, 198.51.100.1, 10.0.0.2"}, "198.51.100.1"},
		{"several headers", "10.0.0.1:1", []string{"203.0.113.9", "198.51.100.1", "10.0.0.2"}, "198.51.100.1"},
		{"single trusted address", "192.168.1.1:1", []string{"198.51.100.1"}, "198.51.100.1"},
		{"a neighbour of it is not trusted", "192.168.1.2:1", []string{"198.51.100.1"}, "192.168.1.2"},
		{"all trusted", "10.0.0.1:1", []string{"10.0.0.3, 10.0.0.2"}, "10.0.0.3"},
		{"garbage on the right", "10.0.0.1:1", []string{"198.51.100.1, unknown"}, "10.0.0.1"},
		{"garbage on the left", "10.0.0.1:1", []string{"<script>, 198.51.100.1"}, "198.51.100.1"},
		{"with ports", "10.0.0.1:1", []string{"[2001:db8::1]:4711, 198.51.100.1:80"}, "198.51.100.1"},
		{"IPv6 client", "[fd00::1]:1", []string{"2001:db8::1"}, "2001:db8::1"},
		{"IPv4-mapped peer", "[::ffff:10.0.0.1]:1", []string{"198.51.100.1"}, "198.51.100.1"},
		{"empty elements", "10.0.0.1:1", []string{", ,198.51.100.1,"}, "10.0.0.1"},
		{"unreadable peer", "@", nil, "invalid IP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tc.remote
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := ClientAddr(r, trusted).String(); got != tc.want {
				t.Fatalf("ClientAddr = %s, want %s", got, tc.want)
			}
		})
	}
	if _, err := ParseTrustedProxies("10.0.0.0/8, nonsense"); err == nil || !strings.Contains(err.Error(), "nonsense") {
		t.Fatalf("bad trusted proxies: %v", err)
	}
	if p, err := ParseTrustedProxies(""); err != nil || len(p) != 0 {
		t.Fatalf("empty trusted proxies: %v, %v", p, err)
	}
}

// The problem writer can be the reader's own.
func TestCustomProblemWriter(t *testing.T) {
	keys, err := NewKeyStore(filepath.Join("testdata", "no-keys"), ratelimit.Rate{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{Keys: keys, Realm: "shop", Problem: func(w http.ResponseWriter, _ *http.Request, status int, detail string) {
		w.WriteHeader(status)
		_, _ = io.WriteString(w, "custom: "+detail)
	}})
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	a.Require(ScopeRead)(handler).ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/orders", nil))
	if w.Code != 401 || !strings.HasPrefix(w.Body.String(), "custom: ") || w.Header().Get("WWW-Authenticate") != `Bearer realm="shop"` {
		t.Fatalf("%d %q %q", w.Code, w.Body, w.Header().Get("WWW-Authenticate"))
	}
}
