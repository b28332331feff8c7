package main

// End-to-end tests of the reader's security (issue 12) through run, with
// real PostgreSQL and Redis: the refusals and their headers, masked and
// full views, the audit stream, keys file reloads, JWTs against a JWK Set
// served over HTTP, rate limits shared by two readers, and the keys
// command. Every reader these tests start has its log and audit stream
// searched for every key, hash and token when it stops (env.start).

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/orderservice/orders/reader/auth"
	"github.com/orderservice/orders/reader/auth/authtest"
	"github.com/orderservice/orders/reader/pii"
	"github.com/orderservice/orders/shared/model"
	"github.com/orderservice/orders/shared/ordergen"
	"github.com/orderservice/orders/shared/testenv"
)

// problemBody is the problem+json of a refusal.
type problemBody struct {
	Type, Title, Detail, Instance string
	Status                        int
	RequestID                     string `json:"request_id"`
}

// requireRefusal checks a 401, 403 or 429: status, problem+json body,
// no-store, Vary: Authorization, and the WWW-Authenticate challenge
// matching challenge (a regexp; "" for none).
func requireRefusal(t *testing.T, resp response, status int, challenge string) {
	t.Helper()
	requireProblem(t, resp, status)
	if resp.header.Get("Cache-Control") != "no-store" || resp.header.Get("Vary") != "Authorization" {
		t.Errorf("%d: Cache-Control %q, Vary %q; want no-store, Authorization", status,
			resp.header.Get("Cache-Control"), resp.header.Get("Vary"))
	}
	if resp.header.Get("X-PII") != "" || resp.header.Get("ETag") != "" {
		t.Errorf("%d carries X-PII %q, ETag %q", status, resp.header.Get("X-PII"), resp.header.Get("ETag"))
	}
	got := resp.header.Get("WWW-Authenticate")
	switch {
	case challenge == "" && got != "":
		t.Errorf("%d: WWW-Authenticate %q, want none", status, got)
	case challenge != "" && !regexp.MustCompile(challenge).MatchString(got):
		t.Errorf("%d: WWW-Authenticate %q, want %s", status, got, challenge)
	}
	if len(resp.body) > 0 {
		var p problemBody
		if err := json.Unmarshal(resp.body, &p); err != nil || p.Status != status || p.RequestID == "" || p.Detail == "" {
			t.Errorf("%d: body %s", status, resp.body)
		}
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// requireRateLimited checks a 429's Retry-After and RateLimit-* fields.
func requireRateLimited(t *testing.T, resp response) {
	t.Helper()
	requireRefusal(t, resp, http.StatusTooManyRequests, "")
	for _, h := range []string{"Retry-After", "RateLimit-Limit", "RateLimit-Reset"} {
		if n, err := strconv.Atoi(resp.header.Get(h)); err != nil || n < 1 {
			t.Errorf("429: %s %q, want a whole number of at least 1", h, resp.header.Get(h))
		}
	}
	if resp.header.Get("RateLimit-Remaining") != "0" {
		t.Errorf("429: RateLimit-Remaining %q, want 0", resp.header.Get("RateLimit-Remaining"))
	}
}

const (
	challengeOnly  = `^Bearer realm="orders"$`
	invalidRequest = `^Bearer realm="orders", error="invalid_request", error_description="[^"]+"$`
	invalidToken   = `^Bearer realm="orders", error="invalid_token", error_description="[^"]+"$`
	expiredToken   = `^Bearer realm="orders", error="invalid_token", error_description="the token has expired"$`
	noReadScope    = `^Bearer realm="orders", error="insufficient_scope", scope="orders:read"$`
)

// TestAuthentication: every data endpoint refuses a request without a
// usable credential (401) or without orders:read (403), before looking
// at anything else of the request; the open endpoints need nothing.
func TestAuthentication(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// Each case below fails many times from one address; the limit on
	// that has its own test.
	e.vars["READER_AUTH_FAILURE_LIMIT"] = "0"
	sample := testenv.Sample(t)
	testenv.InsertOrders(t, e.pg.Pool, sample)
	r := e.start(t, true)
	unknown, _ := authtest.NewKey(t, "never-written", "", auth.ScopeRead)
	e.secret(unknown)

	paths := []string{"/order/" + sample.OrderUID, "/order/no_such_order", "/order/", "/order/a.b", "/orders", "/orders?limit=0"}
	for _, tc := range []struct {
		name          string
		authorization string // "" sends none
		status        int
		challenge     string
	}{
		{"no credentials", "", 401, challengeOnly},
		{"another scheme", "Basic dXNlcjpwYXNz", 401, challengeOnly},
		{"bearer without a token", "Bearer", 401, invalidRequest},
		{"bearer and spaces", "Bearer    ", 401, invalidRequest},
		{"two tokens", "Bearer a b", 401, invalidRequest},
		{"unknown key", authtest.Bearer(unknown), 401, invalidToken},
		{"a key's hash", authtest.Bearer(strings.Repeat("ab", 32)), 401, invalidToken},
		{"not a key nor a JWT", "Bearer opaque-token", 401, invalidToken},
		{"a JWT where none are configured", "Bearer aaa.bbb.ccc", 401, invalidToken},
		{"without orders:read", authtest.Bearer(e.keys.NoRead), 403, noReadScope},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, path := range paths {
				for _, method := range []string{http.MethodGet, http.MethodHead} {
					resp := r.do(t, method, path, "Authorization", tc.authorization)
					requireRefusal(t, resp, tc.status, tc.challenge)
				}
			}
		})
	}
	// The same requests with a credential get their own answers.
	for path, status := range map[string]int{
		"/order/" + sample.OrderUID: 200, "/order/no_such_order": 404, "/order/": 400, "/order/a.b": 400,
		"/orders": 200, "/orders?limit=0": 400,
	} {
		if resp := r.do(t, http.MethodGet, path); resp.status != status {
			t.Errorf("GET %s with a key: %d, want %d", path, resp.status, status)
		}
	}
	// Two Authorization headers are one malformed credential.
	req, err := http.NewRequest(http.MethodGet, r.base+"/orders", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Add("Authorization", authtest.Bearer(e.keys.PII))
	req.Header.Add("Authorization", authtest.Bearer(e.keys.PII))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !regexp.MustCompile(invalidRequest).MatchString(resp.Header.Get("WWW-Authenticate")) {
		t.Errorf("two Authorization headers: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}

	// The open endpoints: health, the spec, Swagger UI and the web UI.
	anon := *r
	anon.token = ""
	for _, path := range []string{"/healthz", "/readyz", "/openapi.yaml", "/swagger/", "/", "/static/app.js", "/static/style.css"} {
		if resp := anon.do(t, http.MethodGet, path); resp.status != http.StatusOK {
			t.Errorf("GET %s without credentials: %d", path, resp.status)
		}
	}
	if m := r.get(t, r.ops+"/metrics"); m.status != http.StatusOK {
		t.Errorf("ops /metrics without credentials: %d", m.status)
	}
	for series, atLeast := range map[string]float64{
		`reader_auth_failures_total{reason="missing"}`:            24,
		`reader_auth_failures_total{reason="malformed"}`:          36,
		`reader_auth_failures_total{reason="unknown_key"}`:        12,
		`reader_auth_failures_total{reason="unrecognised"}`:       36,
		`reader_auth_failures_total{reason="insufficient_scope"}`: 12,
		`reader_auth_api_keys`:                                    3,
	} {
		if got := r.metric(t, series); got < atLeast {
			t.Errorf("%s = %v, want at least %v", series, got, atLeast)
		}
	}
}

// TestMaskedAndFullViews: the same order is masked for orders:read and
// exactly as ingested for orders:pii, from every tier; each view has its
// own ETag; an unknown uid answers both alike; every answer is private.
func TestMaskedAndFullViews(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sample := testenv.Sample(t)
	gen := ordergen.New(12)
	dbOnly, redisOnly := gen.Order(), gen.Order()
	testenv.InsertOrders(t, e.pg.Pool, sample)
	r := e.start(t, true)
	testenv.InsertOrders(t, e.pg.Pool, dbOnly)
	if err := e.redis.Client.Set(context.Background(), e.redis.Prefix+"order:"+redisOnly.OrderUID,
		canonical(t, redisOnly), time.Minute).Err(); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		order *model.Order
		tier  string // of the first request, masked
	}{{sample, "local"}, {dbOnly, "db"}, {redisOnly, "redis"}} {
		t.Run(tc.tier, func(t *testing.T) {
			full := canonical(t, tc.order)
			wantMasked, err := pii.MaskJSON(full)
			if err != nil {
				t.Fatal(err)
			}
			masked := r.do(t, http.MethodGet, "/order/"+tc.order.OrderUID, "Authorization", authtest.Bearer(e.keys.Read))
			if masked.status != 200 || masked.header.Get("X-PII") != "masked" || masked.header.Get("X-Cache") != tc.tier {
				t.Fatalf("masked: %d X-PII %q X-Cache %q %s", masked.status, masked.header.Get("X-PII"), masked.header.Get("X-Cache"), masked.body)
			}
			if !bytes.Equal(masked.body, wantMasked) {
				t.Fatalf("masked body:\n got %s\nwant %s", masked.body, wantMasked)
			}
			d := tc.order.Delivery
			for _, personal := range []string{d.Name, d.Phone, d.Email, d.Address, d.Zip} {
				if bytes.Contains(masked.body, []byte(personal)) {
					t.Errorf("the masked view holds %q", personal)
				}
			}
			fullResp := r.do(t, http.MethodGet, "/order/"+tc.order.OrderUID, "Authorization", authtest.Bearer(e.keys.PII))
			if fullResp.status != 200 || fullResp.header.Get("X-PII") != "full" || fullResp.header.Get("X-Cache") != "local" {
				t.Fatalf("full: %d X-PII %q X-Cache %q", fullResp.status, fullResp.header.Get("X-PII"), fullResp.header.Get("X-Cache"))
			}
			if !bytes.Equal(fullResp.body, full) {
				t.Fatalf("full body is not the ingested order's canonical bytes:\n got %s\nwant %s", fullResp.body, full)
			}
			for _, resp := range []response{masked, fullResp} {
				if cc := resp.header.Get("Cache-Control"); !strings.HasPrefix(cc, "private,") || strings.Contains(cc, "public") ||
					resp.header.Get("Vary") != "Authorization" {
					t.Errorf("Cache-Control %q, Vary %q", cc, resp.header.Get("Vary"))
				}
			}
			// Two representations, two validators: a client's copy of one
			// never stands for the other.
			mtag, ftag := masked.header.Get("ETag"), fullResp.header.Get("ETag")
			if mtag == ftag {
				t.Fatalf("both views have the ETag %s", mtag)
			}
			for _, c := range []struct {
				token, etag string
				status      int
			}{{e.keys.Read, mtag, 304}, {e.keys.Read, ftag, 200}, {e.keys.PII, ftag, 304}, {e.keys.PII, mtag, 200}} {
				resp := r.do(t, http.MethodGet, "/order/"+tc.order.OrderUID, "Authorization", authtest.Bearer(c.token), "If-None-Match", c.etag)
				if resp.status != c.status {
					t.Errorf("If-None-Match %s: %d, want %d", c.etag, resp.status, c.status)
				}
			}
			head := r.do(t, http.MethodHead, "/order/"+tc.order.OrderUID, "Authorization", authtest.Bearer(e.keys.Read))
			if head.header.Get("Content-Length") != strconv.Itoa(len(wantMasked)) || head.header.Get("X-PII") != "masked" {
				t.Errorf("HEAD masked: Content-Length %q X-PII %q", head.header.Get("Content-Length"), head.header.Get("X-PII"))
			}
		})
	}

	// An unknown uid looks the same to either credential.
	var bodies [][]byte
	for _, token := range []string{e.keys.Read, e.keys.PII} {
		resp := r.do(t, http.MethodGet, "/order/unknown_to_all", "Authorization", authtest.Bearer(token), "X-Request-Id", "same-id")
		requireProblem(t, resp, http.StatusNotFound)
		if resp.header.Get("X-PII") != "" || resp.header.Get("Cache-Control") != "no-store" || resp.header.Get("Vary") != "Authorization" {
			t.Errorf("404: X-PII %q, Cache-Control %q, Vary %q", resp.header.Get("X-PII"), resp.header.Get("Cache-Control"), resp.header.Get("Vary"))
		}
		bodies = append(bodies, resp.body)
	}
	if !bytes.Equal(bodies[0], bodies[1]) {
		t.Errorf("unknown uid answered differently:\n%s\n%s", bodies[0], bodies[1])
	}
	list := r.do(t, http.MethodGet, "/orders", "Authorization", authtest.Bearer(e.keys.Read))
	if list.status != 200 || list.header.Get("Cache-Control") != "private, no-cache" || list.header.Get("Vary") != "Authorization" {
		t.Errorf("/orders: %d Cache-Control %q Vary %q", list.status, list.header.Get("Cache-Control"), list.header.Get("Vary"))
	}
}

// auditRecord is one line of the audit stream.
type auditRecord struct {
	Time       time.Time `json:"time"`
	Log        string    `json:"log"`
	Event      string    `json:"event"`
	Credential string    `json:"credential"`
	Kind       string    `json:"kind"`
	ClientID   string    `json:"client_id"`
	OrderUID   string    `json:"order_uid"`
	RequestID  string    `json:"request_id"`
	Client     string    `json:"client"`
}

func auditRecords(t *testing.T, stream string) []auditRecord {
	t.Helper()
	var out []auditRecord
	sc := bufio.NewScanner(strings.NewReader(stream))
	for sc.Scan() {
		var rec auditRecord
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil || rec.Log != "audit" {
			t.Fatalf("audit stream line %q: %v", sc.Text(), err)
		}
		out = append(out, rec)
	}
	return out
}

// TestAudit: only answers that carry personal data unmasked are audited,
// one record each, naming the credential, the order, the request and the
// client, never the data; a metric counts them by credential. With
// READER_AUDIT_LOG the records go to that file, all of them written by
// the time the reader has stopped.
func TestAudit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sample := testenv.Sample(t)
	testenv.InsertOrders(t, e.pg.Pool, sample)
	r := e.start(t, true)
	path := "/order/" + sample.OrderUID

	// Masked answers, a HEAD, a 304 and a 404 carry no personal data.
	etag := r.do(t, http.MethodGet, path, "Authorization", authtest.Bearer(e.keys.Read)).header.Get("ETag")
	r.do(t, http.MethodGet, path, "Authorization", authtest.Bearer(e.keys.Read), "If-None-Match", etag)
	r.do(t, http.MethodHead, path)
	full := r.do(t, http.MethodGet, path).header.Get("ETag")
	requireProblem(t, r.do(t, http.MethodGet, "/order/unknown_x"), http.StatusNotFound)
	if nm := r.do(t, http.MethodGet, path, "If-None-Match", full); nm.status != http.StatusNotModified {
		t.Fatalf("full If-None-Match: %d", nm.status)
	}
	// The GET of full above and this one carried the order unmasked.
	read := r.do(t, http.MethodGet, path, "X-Request-Id", "audit-me-1")
	if read.status != 200 || read.header.Get("X-PII") != "full" {
		t.Fatalf("full read: %d %q", read.status, read.header.Get("X-PII"))
	}
	var recs []auditRecord
	testenv.Await(t, "two audit records", 5*time.Second, func() bool {
		recs = auditRecords(t, r.audit.String())
		return len(recs) >= 2
	})
	if len(recs) != 2 {
		t.Fatalf("%d audit records, want 2: %+v", len(recs), recs)
	}
	rec := recs[1]
	if rec.Event != "pii_read" || rec.Credential != authtest.PIIName || rec.Kind != "api_key" || rec.OrderUID != sample.OrderUID ||
		rec.RequestID != "audit-me-1" || rec.Client != "127.0.0.1" || time.Since(rec.Time) > time.Minute || rec.Time.After(time.Now()) {
		t.Errorf("audit record %+v", rec)
	}
	for _, personal := range []string{sample.Delivery.Name, sample.Delivery.Phone, sample.Delivery.Email, sample.Delivery.Address} {
		if strings.Contains(r.audit.String(), personal) {
			t.Errorf("the audit stream holds %q", personal)
		}
	}
	if got := r.metric(t, `reader_pii_reads_total{credential="`+authtest.PIIName+`"}`); got != 2 {
		t.Errorf("reader_pii_reads_total = %v, want 2", got)
	}
	if got := r.metric(t, `reader_pii_reads_total{credential="`+authtest.ReadName+`"}`); got != 0 {
		t.Errorf("masked reads counted: %v", got)
	}
	if strings.Contains(r.logs.String(), `"log":"audit"`) {
		t.Error("audit records in the main log")
	}

	// To a file: the reader's last records are there once it has stopped.
	file := filepath.Join(t.TempDir(), "audit.jsonl")
	e.vars["READER_AUDIT_LOG"] = file
	e.vars["READER_LISTEN_ADDR"], e.vars["READER_OPS_ADDR"] = testenv.FreeAddr(t), testenv.FreeAddr(t)
	r2 := e.start(t, true)
	r2.do(t, http.MethodGet, path, "X-Request-Id", "to-the-file")
	r2.stop(t)
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	recs = auditRecords(t, string(data))
	if len(recs) != 1 || recs[0].RequestID != "to-the-file" || r2.audit.String() != "" {
		t.Fatalf("audit file %q, stderr %q", data, r2.audit.String())
	}
	if fi, err := os.Stat(file); err != nil {
		t.Error(err)
	} else if fi.Mode().Perm() != 0o600 {
		t.Errorf("audit file mode %v, want 0600", fi.Mode())
	}
}

// TestKeysFileReload: a key added to the keys file works within seconds,
// without a restart, and stops working when it is removed; SIGHUP reads
// the file again. The key comes from `reader keys new`, its line as the
// command prints it.
func TestKeysFileReload(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// The waits below send the new key many times before it is loaded:
	// failures that the per-address limit would otherwise stop.
	e.vars["READER_AUTH_FAILURE_LIMIT"] = "0"
	r := e.start(t, true)

	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"reader", "keys", "new", "--name", "late-comer", "--scopes", "orders:read,orders:pii"},
		func(string) string { return "" }, &stdout, &stderr); err != nil {
		t.Fatalf("keys new: %v\n%s", err, stderr.String())
	}
	out := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	key := out[len(out)-1]
	var line string
	for l := range strings.Lines(stderr.String()) {
		if strings.HasPrefix(l, "late-comer:") {
			line = strings.TrimSpace(l)
		}
	}
	e.secret(key)
	e.secretLines(line)
	if !strings.HasPrefix(key, auth.KeyPrefix) || line != "late-comer:orders:read,orders:pii:"+sha256Hex(key) {
		t.Fatalf("keys new printed key %q and line %q", key, line)
	}

	late := *r
	late.token = key
	requireRefusal(t, late.do(t, http.MethodGet, "/orders"), 401, invalidToken)
	e.keys.Write(t, line)
	testenv.Await(t, "the added key accepted", 10*time.Second, func() bool {
		return late.do(t, http.MethodGet, "/orders").status == http.StatusOK
	})
	if resp := late.do(t, http.MethodGet, "/order/"+testenv.Sample(t).OrderUID); resp.status != 404 {
		t.Fatalf("added key: %d", resp.status)
	}
	e.keys.Write(t)
	testenv.Await(t, "the removed key refused", 10*time.Second, func() bool {
		return late.do(t, http.MethodGet, "/orders").status == http.StatusUnauthorized
	})
	requireRefusal(t, late.do(t, http.MethodGet, "/orders"), 401, invalidToken)
	// The keys that stayed are still valid.
	if resp := r.do(t, http.MethodGet, "/orders"); resp.status != 200 {
		t.Fatalf("a key that stayed: %d", resp.status)
	}
	// A broken file keeps the keys loaded before.
	if err := os.WriteFile(e.keys.File, []byte("not a key line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	testenv.Await(t, "the refused reload counted", 10*time.Second, func() bool {
		return r.metric(t, "reader_auth_api_keys_reload_errors_total") >= 1
	})
	if resp := r.do(t, http.MethodGet, "/orders"); resp.status != 200 {
		t.Fatalf("after a broken keys file: %d", resp.status)
	}
	e.keys.Write(t)

	// SIGHUP: a forced reload says so even when nothing changed. Every
	// reader of this test binary has registered for it, so it ends none.
	before := strings.Count(r.logs.String(), "SIGHUP: reloading the api keys file")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testenv.Await(t, "the SIGHUP reload", 10*time.Second, func() bool {
		return strings.Count(r.logs.String(), "SIGHUP: reloading the api keys file") > before
	})
}

// TestKeysCommand: `reader keys new` checks its flags and puts the key
// alone on the last line of stdout.
func TestKeysCommand(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		ok   bool
	}{
		{[]string{"new", "--name", "support", "--scopes", "orders:read"}, true},
		{[]string{"new", "--name", "limited", "--scopes", "orders:read", "--rate", "5/10"}, true},
		{[]string{"new", "--name", "x", "--scopes", "orders:write"}, false},
		{[]string{"new", "--name", "bad name", "--scopes", "orders:read"}, false},
		{[]string{"new", "--scopes", "orders:read"}, false},
		{[]string{"old"}, false},
		{nil, false},
	} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), append([]string{"reader", "keys"}, tc.args...), func(string) string { return "" }, &stdout, &stderr)
		if (err == nil) != tc.ok {
			t.Errorf("keys %q: %v", tc.args, err)
			continue
		}
		if !tc.ok {
			if stdout.Len() != 0 {
				t.Errorf("keys %q failed and printed %q", tc.args, stdout.String())
			}
			continue
		}
		lines := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
		key := lines[len(lines)-1]
		if !regexp.MustCompile(`^ord_[0-9A-Za-z]{43}$`).MatchString(key) {
			t.Errorf("keys %q: last stdout line %q is not a key", tc.args, key)
		}
		if strings.Contains(stderr.String(), key) || !strings.Contains(stderr.String(), sha256Hex(key)) {
			t.Errorf("keys %q: stderr %q", tc.args, stderr.String())
		}
	}
}

// TestFailedAuthenticationLimit: past READER_AUTH_FAILURE_LIMIT failures
// a client address gets 429 for everything, a valid key included, so
// that guessing keys gets nowhere.
func TestFailedAuthenticationLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.vars["READER_AUTH_FAILURE_LIMIT"] = "3"
	r := e.start(t, true)
	for range 3 {
		guess, _ := authtest.NewKey(t, "guess", "", auth.ScopeRead)
		e.secret(guess)
		requireRefusal(t, r.do(t, http.MethodGet, "/orders", "Authorization", authtest.Bearer(guess)), 401, invalidToken)
	}
	guess, _ := authtest.NewKey(t, "guess", "", auth.ScopeRead)
	e.secret(guess)
	requireRateLimited(t, r.do(t, http.MethodGet, "/orders", "Authorization", authtest.Bearer(guess)))
	// Blocked before any credential is checked: a right guess would not
	// be confirmed either.
	requireRateLimited(t, r.do(t, http.MethodGet, "/orders"))
	// Requests without credentials are not failures, and the open
	// endpoints still answer.
	if resp := r.do(t, http.MethodGet, "/healthz", "Authorization", ""); resp.status != 200 {
		t.Fatalf("/healthz: %d", resp.status)
	}
	if got := r.metric(t, `reader_auth_rate_limited_total{credential="",kind="address"}`); got < 1 {
		t.Errorf("address rate limit not counted: %v", got)
	}
}

// TestRateLimitSharedByReaders: a key's rate limit holds across two
// readers sharing Redis: together they allow its burst and its rate, not
// twice that.
func TestRateLimitSharedByReaders(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// 1 request a second, bursts of 10: its own entry overrides
	// READER_RATE_LIMIT (100/s), which would allow all of them.
	key, line := authtest.NewKey(t, "slow", "1/10", auth.ScopeRead)
	e.secret(key)
	e.secretLines(line)
	e.keys.Write(t, line)
	a := e.start(t, true)
	e.vars["READER_LISTEN_ADDR"], e.vars["READER_OPS_ADDR"] = testenv.FreeAddr(t), testenv.FreeAddr(t)
	b := e.start(t, true)

	const n = 40
	allowed := map[string]int{}
	limited := map[string]int{}
	start := time.Now()
	for i := range n {
		r := a
		if i%2 == 1 {
			r = b
		}
		resp := r.do(t, http.MethodGet, "/orders", "Authorization", authtest.Bearer(key))
		switch resp.status {
		case 200:
			allowed[r.base]++
		case 429:
			limited[r.base]++
			requireRateLimited(t, resp)
			if resp.header.Get("RateLimit-Limit") != "10" {
				t.Errorf("RateLimit-Limit %q, want the key's burst 10", resp.header.Get("RateLimit-Limit"))
			}
		default:
			t.Fatalf("status %d: %s", resp.status, resp.body)
		}
	}
	elapsed := time.Since(start)
	total := allowed[a.base] + allowed[b.base]
	// The burst, the tokens refilled meanwhile, and one for rounding.
	most := 10 + int(elapsed.Seconds()) + 1
	t.Logf("allowed %d of %d in %v (a %d, b %d)", total, n, elapsed, allowed[a.base], allowed[b.base])
	if total > most || total < 10 {
		t.Fatalf("the two readers allowed %d requests in %v, want 10..%d", total, elapsed, most)
	}
	if allowed[a.base] == 0 || allowed[b.base] == 0 || limited[a.base] == 0 || limited[b.base] == 0 {
		t.Fatalf("each reader should allow and refuse some: allowed %v, limited %v", allowed, limited)
	}
	if got := a.metric(t, `reader_auth_rate_limited_total{credential="slow",kind="api_key"}`); got < 1 {
		t.Errorf("rate limited requests not counted: %v", got)
	}
	// Other keys have limits of their own.
	if resp := a.do(t, http.MethodGet, "/orders"); resp.status != 200 {
		t.Fatalf("another key: %d", resp.status)
	}
}

// TestJWT: a reader that trusts an identity provider alone (no keys file)
// accepts its access tokens with their scopes, refuses expired ones and
// ones for another audience or from another issuer, and accepts a token
// of a new signing key once the provider has published it.
func TestJWT(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	iss := authtest.NewIssuer(t)
	delete(e.vars, "READER_API_KEYS_FILE")
	e.vars["READER_JWT_JWKS_URL"] = iss.JWKSURL
	e.vars["READER_JWT_ISSUER"] = iss.Issuer
	e.vars["READER_JWT_AUDIENCE"] = iss.Audience
	e.vars["READER_JWT_MIN_REFRESH_INTERVAL"] = "1s"
	// The rotation below is awaited with a token the reader refuses
	// until it has the new key: failures the per-address limit would
	// otherwise stop.
	e.vars["READER_AUTH_FAILURE_LIMIT"] = "0"
	sample := testenv.Sample(t)
	testenv.InsertOrders(t, e.pg.Pool, sample)
	r := e.start(t, true)
	path := "/order/" + sample.OrderUID
	token := func(c map[string]any) string {
		tok := iss.Token(t, c)
		e.secret(tok, tok[strings.LastIndexByte(tok, '.')+1:])
		return tok
	}

	support := token(iss.Claims("support@example", "orders:read", time.Hour))
	resp := r.do(t, http.MethodGet, path, "Authorization", authtest.Bearer(support))
	if resp.status != 200 || resp.header.Get("X-PII") != "masked" {
		t.Fatalf("support JWT: %d X-PII %q", resp.status, resp.header.Get("X-PII"))
	}
	billing := token(iss.Claims("billing@example", "openid orders:read orders:pii", time.Hour))
	resp = r.do(t, http.MethodGet, path, "Authorization", authtest.Bearer(billing), "X-Request-Id", "jwt-read")
	if resp.status != 200 || resp.header.Get("X-PII") != "full" || !bytes.Equal(resp.body, canonical(t, sample)) {
		t.Fatalf("pii JWT: %d X-PII %q", resp.status, resp.header.Get("X-PII"))
	}
	testenv.Await(t, "the JWT read's audit record", 5*time.Second, func() bool { return len(auditRecords(t, r.audit.String())) == 1 })
	if rec := auditRecords(t, r.audit.String())[0]; rec.Credential != "billing@example" || rec.Kind != "jwt" ||
		rec.ClientID != "test-client" || rec.RequestID != "jwt-read" {
		t.Errorf("audit record %+v", rec)
	}
	if got := r.metric(t, `reader_pii_reads_total{credential="jwt:test-client"}`); got != 1 {
		t.Errorf("reader_pii_reads_total{credential=jwt:test-client} = %v", got)
	}

	expired := iss.Claims("support@example", "orders:read", time.Hour)
	expired["exp"] = time.Now().Add(-10 * time.Minute).Unix()
	expired["iat"] = time.Now().Add(-time.Hour).Unix()
	wrongAud := iss.Claims("support@example", "orders:read", time.Hour)
	wrongAud["aud"] = "https://another-api.test.invalid"
	wrongIss := iss.Claims("support@example", "orders:read", time.Hour)
	wrongIss["iss"] = "https://another-idp.test.invalid/"
	for _, tc := range []struct {
		name      string
		token     string
		status    int
		challenge string
	}{
		{"expired", token(expired), 401, expiredToken},
		{"wrong audience", token(wrongAud), 401, invalidToken},
		{"wrong issuer", token(wrongIss), 401, invalidToken},
		{"no orders:read", token(iss.Claims("auditor@example", "orders:pii", time.Hour)), 403, noReadScope},
		{"an API key where only JWTs are accepted", e.keys.PII, 401, invalidToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			requireRefusal(t, r.do(t, http.MethodGet, path, "Authorization", authtest.Bearer(tc.token)), tc.status, tc.challenge)
		})
	}

	// The provider rotates: a token signed with its next key is refused
	// while the reader's JWK Set lacks the kid, and accepted once the
	// provider publishes the key, without a restart.
	next := iss.NewKey(t)
	rotated := iss.Sign(t, next, iss.Claims("support@example", "orders:read", time.Hour))
	e.secret(rotated)
	requireRefusal(t, r.do(t, http.MethodGet, path, "Authorization", authtest.Bearer(rotated)), 401, invalidToken)
	fetched := iss.Fetches()
	iss.Publish(next)
	testenv.Await(t, "the rotated key's token accepted", 15*time.Second, func() bool {
		return r.do(t, http.MethodGet, path, "Authorization", authtest.Bearer(rotated)).status == http.StatusOK
	})
	if iss.Fetches() <= fetched {
		t.Errorf("the JWK Set was not fetched again (%d fetches)", iss.Fetches())
	}
	// The old key is gone from the set: its tokens are refused once their
	// remembered verification is of an older set.
	requireRefusal(t, r.do(t, http.MethodGet, path, "Authorization", authtest.Bearer(token(iss.Claims("late@example", "orders:read", time.Hour)))), 401, invalidToken)
	if got := r.metric(t, `reader_auth_failures_total{reason="jwt_expired"}`); got != 1 {
		t.Errorf("jwt_expired failures %v, want 1", got)
	}
}
