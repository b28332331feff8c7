package auth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/orderservice/orders/reader/auth/ratelimit"
	"github.com/orderservice/orders/shared/testenv"
)

// benchWriter is the least a ResponseWriter can be, so that the figures
// are the middleware's own.
type benchWriter struct {
	h    http.Header
	code int
}

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *benchWriter) WriteHeader(code int)        { w.code = code }

// BenchmarkMiddleware is the cost of authenticating one request with a
// valid API key (one SHA-256, one map read, the Principal put in the
// context), without a rate limit, with a local one, and with one shared
// through Redis (leased tokens: Redis is asked about once per lease, not
// per request); and with a JWT, remembered after its first signature
// check.
func BenchmarkMiddleware(b *testing.B) {
	path := filepath.Join(b.TempDir(), "keys")
	key, hash := newKey(b)
	writeFile(b, path, "bench:orders:read,orders:pii:"+hash)
	fast := ratelimit.PerSecond(100_000_000, 100_000_000) // never reached: the cost of checking
	signer := rsaSigner(b, "k1", 0)
	jwtToken := signer.sign(b, with(claims("alice"), "scope", "orders:read orders:pii"), nil)
	// The floor: what putting a Principal in the context costs alone.
	b.Run("context_only", func(b *testing.B) {
		p := &Principal{Name: "bench", Kind: KindAPIKey, Scopes: []string{ScopeRead, ScopePII}}
		next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !HasScope(r.Context(), ScopePII) {
				w.WriteHeader(http.StatusInternalServerError)
			}
		})
		r := httptest.NewRequest(http.MethodGet, "/order/b563feb7b2b84b6test", nil)
		w := &benchWriter{h: http.Header{}}
		b.ReportAllocs()
		for b.Loop() {
			next.ServeHTTP(w, r.WithContext(NewContext(r.Context(), p)))
		}
		if w.code != 0 {
			b.Fatalf("status %d", w.code)
		}
	})
	for _, bc := range []struct {
		name     string
		rate     ratelimit.Rate
		redis    bool
		limiter  bool
		token    string
		parallel bool
	}{
		{name: "api_key", token: key},
		{name: "api_key/local_limit", rate: fast, limiter: true, token: key},
		{name: "api_key/redis_limit", rate: fast, limiter: true, redis: true, token: key},
		{name: "api_key/redis_limit/parallel", rate: fast, limiter: true, redis: true, token: key, parallel: true},
		{name: "jwt", token: jwtToken},
	} {
		b.Run(bc.name, func(b *testing.B) {
			keys, err := NewKeyStore(path, bc.rate, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			p := newIDP(b, signer)
			v, err := NewJWTVerifier(context.Background(), p.config(), bc.rate, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			cfg := Config{Keys: keys, JWT: v, FailureRate: ratelimit.PerMinute(10, 10)}
			if bc.limiter {
				var opts ratelimit.Options
				if bc.redis {
					env := testenv.Redis(b)
					opts.Prefix = env.Prefix
					cfg.Limiter = ratelimit.New(redisClient(b, env.URL), opts)
				} else {
					cfg.Limiter = ratelimit.New(nil, opts)
				}
			}
			a, err := New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			h := a.Require(ScopeRead)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if !HasScope(r.Context(), ScopePII) {
					w.WriteHeader(http.StatusInternalServerError)
				}
			}))
			request := func() *http.Request {
				r := httptest.NewRequest(http.MethodGet, "/order/b563feb7b2b84b6test", nil)
				r.RemoteAddr = "192.0.2.1:4711"
				r.Header.Set("Authorization", "Bearer "+bc.token)
				return r
			}
			run := func(r *http.Request, w *benchWriter) {
				clear(w.h)
				w.code = 0
				h.ServeHTTP(w, r)
				if w.code != 0 {
					b.Errorf("status %d", w.code)
				}
			}
			b.ReportAllocs()
			if bc.parallel {
				b.RunParallel(func(pb *testing.PB) {
					r, w := request(), &benchWriter{h: http.Header{}}
					for pb.Next() {
						run(r, w)
					}
				})
				return
			}
			r, w := request(), &benchWriter{h: http.Header{}}
			for b.Loop() {
				run(r, w)
			}
		})
	}
}
