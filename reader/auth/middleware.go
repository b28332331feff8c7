package auth

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/orderservice/orders/reader/auth/ratelimit"
	"github.com/orderservice/orders/reader/problem"
	"github.com/orderservice/orders/shared/redisconn"
)

// Config is what an Authenticator is made of. At least one of Keys and
// JWT is required.
type Config struct {
	// Keys are the API keys; nil accepts none.
	Keys *KeyStore
	// JWT checks JWT access tokens; nil accepts none.
	JWT *JWTVerifier
	// Limiter enforces the credentials' rates (Principal.RateLimit) and
	// FailureRate; nil limits nothing.
	Limiter *ratelimit.Limiter
	// FailureRate bounds the failed authentications (a wrong key or an
	// invalid token) of one client address (an IPv6 client's /64). Past
	// it the address gets 429 for everything, before any credential of
	// it is checked, until the limit allows again: guessing keys gets
	// nowhere. The zero Rate disables it.
	FailureRate ratelimit.Rate
	// TrustedProxies are the proxies whose X-Forwarded-For is believed
	// (see ClientAddr); none by default.
	TrustedProxies []netip.Prefix
	// Realm is the WWW-Authenticate realm (default "orders").
	Realm string
	// Log receives a debug line per refusal (never a credential).
	Log *slog.Logger
	// Metrics is told of refusals; nil counts nothing.
	Metrics Metrics
	// Problem writes the body of a refusal, after the middleware has set
	// its headers (WWW-Authenticate, Retry-After, RateLimit-*). The
	// default writes RFC 9457 problem+json shaped like the reader's
	// other errors.
	Problem func(w http.ResponseWriter, r *http.Request, status int, detail string)
}

// Authenticator is the HTTP middleware that authenticates requests.
type Authenticator struct {
	keys        *KeyStore
	jwt         *JWTVerifier
	limiter     *ratelimit.Limiter
	failureRate ratelimit.Rate
	trusted     []netip.Prefix
	log         *slog.Logger
	metrics     Metrics
	problem     func(w http.ResponseWriter, r *http.Request, status int, detail string)
	debug       bool

	challenge      []string // WWW-Authenticate without an error code
	invalidRequest []string
	invalidToken   []string
	expiredToken   []string

	blocked blocklist
}

// New returns an Authenticator; its Require makes the middleware.
func New(cfg Config) (*Authenticator, error) {
	if cfg.Keys == nil && cfg.JWT == nil {
		return nil, errors.New("auth: neither API keys nor JWTs are configured: nobody could authenticate")
	}
	realm := cmp.Or(cfg.Realm, "orders")
	if strings.ContainsAny(realm, "\"\\\r\n") {
		return nil, errors.New("auth: the realm may not contain quotes, backslashes or line breaks")
	}
	a := &Authenticator{
		keys: cfg.Keys, jwt: cfg.JWT, limiter: cfg.Limiter, failureRate: cfg.FailureRate,
		trusted: cfg.TrustedProxies, log: orDiscard(cfg.Log), metrics: orNop(cfg.Metrics),
		problem: cfg.Problem,
	}
	if a.problem == nil {
		a.problem = writeProblem
	}
	a.debug = a.log.Enabled(context.Background(), slog.LevelDebug)
	base := `Bearer realm="` + realm + `"`
	a.challenge = []string{base}
	a.invalidRequest = []string{base + `, error="invalid_request", error_description="the Authorization header must be one 'Bearer <token>'"`}
	a.invalidToken = []string{base + `, error="invalid_token", error_description="the token is unknown, revoked or invalid"`}
	a.expiredToken = []string{base + `, error="invalid_token", error_description="the token has expired"`}
	a.blocked.until = make(map[netip.Prefix]time.Time)
	return a, nil
}

// Run watches the keys file and refreshes the JWK Set until ctx ends.
func (a *Authenticator) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	var keysErr error
	if a.keys != nil {
		wg.Go(func() { keysErr = a.keys.Watch(ctx) })
	}
	if a.jwt != nil {
		wg.Go(func() { _ = a.jwt.Run(ctx) })
	}
	wg.Wait()
	return keysErr
}

// Reload reads the keys file again (on SIGHUP); see KeyStore.Reload.
func (a *Authenticator) Reload() error {
	if a.keys == nil {
		return nil
	}
	return a.keys.Reload()
}

// ClientAddr is the client address of r, with the configured trusted
// proxies (see the function ClientAddr).
func (a *Authenticator) ClientAddr(r *http.Request) netip.Addr { return ClientAddr(r, a.trusted) }

var varyAuthorization = []string{"Authorization"}

// wwwAuthenticate is WWW-Authenticate as net/http keys its header maps.
const wwwAuthenticate = "Www-Authenticate"

// Require returns the middleware of a route: the request must carry a
// valid credential granted scope (any valid credential when scope is
// ""), within its rate limit. The Principal is then in the request's
// context (FromContext, HasScope). See Authorize for the answers.
func (a *Authenticator) Require(scope string) func(http.Handler) http.Handler {
	authorize := a.Authorizer(scope)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if p, r, ok := authorize(w, r); ok {
				next.ServeHTTP(w, r.WithContext(NewContext(r.Context(), p)))
			}
		})
	}
}

// Authorizer returns the check of Require as a function, for a handler
// that takes the Principal directly: the middleware's copy of the request
// (to carry the Principal in its context) is then saved, which matters on
// a route answered from memory in a few microseconds. The function
// returns the Principal of a request carrying a valid credential granted
// scope (any valid credential when scope is ""), within its rate limit;
// otherwise it has answered the request and returns false. Every answer
// varies by Authorization; the refusals are 401 (no, malformed, unknown,
// invalid or expired credential), 403 (scope missing) and 429 (rate
// limit), as RFC 6750 and the RateLimit header fields draft describe.
//
// It returns the request to go on with: r itself, or, when the rate limit
// waited for Redis, r with that wait noted on its context
// (redisconn.WithWaited), so that the handler's own Redis lookups get only
// what is left of one Redis timeout.
func (a *Authenticator) Authorizer(scope string) func(w http.ResponseWriter, r *http.Request) (*Principal, *http.Request, bool) {
	insufficient := []string{a.challenge[0] + `, error="insufficient_scope", scope="` + scope + `"`}
	return func(w http.ResponseWriter, r *http.Request) (*Principal, *http.Request, bool) {
		h := w.Header()
		if v := h["Vary"]; v == nil {
			h["Vary"] = varyAuthorization
		} else {
			h["Vary"] = append(v, "Authorization")
		}
		p, ok := a.authenticate(w, r)
		if !ok {
			return nil, r, false
		}
		if a.limiter != nil && !p.RateLimit.Unlimited() {
			res := a.limiter.Allow(r.Context(), p.limitKey, p.RateLimit)
			if !res.Allowed {
				a.metrics.RateLimited(string(p.Kind), p.MetricName())
				a.tooManyRequests(w, r, res, "the credential's rate limit is reached")
				return nil, r, false
			}
			if res.Waited > 0 { // rare: most events are decided locally
				r = r.WithContext(redisconn.WithWaited(r.Context(), res.Waited))
			}
		}
		if scope != "" && !p.Has(scope) {
			a.refused(w, r, "insufficient_scope", nil)
			h[wwwAuthenticate] = insufficient
			a.problem(w, r, http.StatusForbidden, "the credential is not granted the scope "+scope)
			return nil, r, false
		}
		return p, r, true
	}
}

// authenticate returns the principal of r's credential, or answers the
// request and returns false.
func (a *Authenticator) authenticate(w http.ResponseWriter, r *http.Request) (*Principal, bool) {
	token, err := ParseAuthorization(r.Header["Authorization"])
	if errors.Is(err, ErrNoCredentials) {
		a.refused(w, r, "missing", nil)
		w.Header()[wwwAuthenticate] = a.challenge
		a.problem(w, r, http.StatusUnauthorized, "this API needs an Authorization: Bearer <token> header")
		return nil, false
	}
	var addr netip.Addr
	if a.blocked.active.Load() > 0 {
		addr = a.ClientAddr(r)
		if retry, blocked := a.blocked.check(addr, time.Now()); blocked {
			a.refused(w, r, "blocked", nil)
			a.tooManyRequests(w, r, ratelimit.Result{Limit: a.failureRate.Burst, RetryAfter: retry, ResetAfter: retry},
				"too many failed authentications from this address")
			return nil, false
		}
	}
	if err != nil {
		a.failed(w, r, addr, "malformed", a.invalidRequest, nil)
		return nil, false
	}
	switch {
	case strings.HasPrefix(token, KeyPrefix) && a.keys != nil:
		if p, ok := a.keys.Lookup(token); ok {
			return p, true
		}
		a.failed(w, r, addr, "unknown_key", a.invalidToken, nil)
	case strings.Count(token, ".") == 2 && a.jwt != nil:
		p, err := a.jwt.Verify(r.Context(), token)
		if err == nil {
			return p, true
		}
		var te *TokenError
		if errors.As(err, &te) && te.Expired() {
			a.failed(w, r, addr, te.Reason, a.expiredToken, err)
		} else if te != nil {
			a.failed(w, r, addr, te.Reason, a.invalidToken, err)
		} else {
			a.failed(w, r, addr, "jwt_claims", a.invalidToken, err)
		}
	default:
		// An API key where none are configured, a JWT where JWTs are
		// not, or neither.
		a.failed(w, r, addr, "unrecognised", a.invalidToken, nil)
	}
	return nil, false
}

// failed answers a failed authentication: it counts against the client
// address's FailureRate, and one too many blocks the address.
func (a *Authenticator) failed(w http.ResponseWriter, r *http.Request, addr netip.Addr, reason string, challenge []string, err error) {
	a.refused(w, r, reason, err)
	if a.limiter != nil && !a.failureRate.Unlimited() {
		if !addr.IsValid() {
			addr = a.ClientAddr(r)
		}
		if res := a.limiter.Allow(r.Context(), failureKey(addr), a.failureRate); !res.Allowed {
			a.blocked.add(addr, time.Now().Add(res.RetryAfter))
			a.metrics.RateLimited("address", "")
			a.tooManyRequests(w, r, res, "too many failed authentications from this address")
			return
		}
	}
	w.Header()[wwwAuthenticate] = challenge
	a.problem(w, r, http.StatusUnauthorized, "the bearer token is not valid")
}

// refused counts a refusal and logs it at debug level: the reason, and
// for a JWT the library's error (which never quotes the token). No
// credential, hash or claim value is ever logged.
func (a *Authenticator) refused(w http.ResponseWriter, r *http.Request, reason string, err error) {
	a.metrics.AuthFailure(reason)
	if !a.debug {
		return
	}
	attrs := []slog.Attr{slog.String("reason", reason), slog.String("path", r.URL.Path)}
	// The reader's outermost middleware puts the request id on the
	// response.
	if id := w.Header()["X-Request-Id"]; len(id) > 0 {
		attrs = append(attrs, slog.String("request_id", id[0]))
	}
	if err != nil {
		attrs = append(attrs, slog.String("err", err.Error()))
	}
	a.log.LogAttrs(r.Context(), slog.LevelDebug, "authentication refused", attrs...)
}

// tooManyRequests answers 429 with Retry-After (whole seconds, at least
// 1) and the RateLimit-Limit, -Remaining and -Reset fields.
func (a *Authenticator) tooManyRequests(w http.ResponseWriter, r *http.Request, res ratelimit.Result, detail string) {
	h := w.Header()
	retry := ceilSeconds(res.RetryAfter)
	h["Retry-After"] = []string{strconv.Itoa(retry)}
	h["Ratelimit-Limit"] = []string{strconv.Itoa(res.Limit)}
	h["Ratelimit-Remaining"] = []string{"0"}
	h["Ratelimit-Reset"] = []string{strconv.Itoa(max(ceilSeconds(res.ResetAfter), retry))}
	a.problem(w, r, http.StatusTooManyRequests, detail)
}

func ceilSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

// blocklist remembers the client addresses over their failure limit, so
// that their requests are refused without checking a credential or
// asking Redis. It is empty, and costs one atomic load, unless someone
// is guessing.
type blocklist struct {
	active atomic.Int32 // len(until)
	mu     sync.RWMutex
	until  map[netip.Prefix]time.Time
}

// maxBlocked bounds the blocklist; past it, blocked addresses are only
// refused once their next failure reaches the limiter.
const maxBlocked = 100_000

func blockUnit(a netip.Addr) netip.Prefix {
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}

func (b *blocklist) check(a netip.Addr, now time.Time) (time.Duration, bool) {
	b.mu.RLock()
	until, ok := b.until[blockUnit(a)]
	b.mu.RUnlock()
	if !ok || !now.Before(until) {
		return 0, false
	}
	return until.Sub(now), true
}

func (b *blocklist) add(a netip.Addr, until time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.until) >= maxBlocked {
		now := time.Now()
		for k, t := range b.until {
			if !now.Before(t) {
				delete(b.until, k)
			}
		}
		if len(b.until) >= maxBlocked {
			return
		}
	}
	b.until[blockUnit(a)] = until
	b.active.Store(int32(len(b.until)))
	// Expired entries go when the next one is added past the bound, or
	// all at once when every one has expired.
	time.AfterFunc(time.Until(until)+time.Second, b.expire)
}

// expire empties the list once every entry has expired, so that the
// request path goes back to its single atomic load.
func (b *blocklist) expire() {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	for k, t := range b.until {
		if !now.Before(t) {
			delete(b.until, k)
		}
	}
	b.active.Store(int32(len(b.until)))
}

// writeProblem is the default Problem: the reader's problem+json.
func writeProblem(w http.ResponseWriter, r *http.Request, status int, detail string) {
	problem.Write(w, r, status, "", detail)
}
