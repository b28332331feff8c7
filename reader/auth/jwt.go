package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"github.com/orderservice/orders/reader/auth/ratelimit"
)

// JWTConfig configures the checking of JWT access tokens (RFC 9068)
// issued by an identity provider. JWKSURL, Issuer and Audience are
// required; the zero value of every other field is its default.
type JWTConfig struct {
	// JWKSURL is the identity provider's JWK Set (its jwks_uri). It must
	// be https, except on a loopback host.
	JWKSURL string
	// Issuer must equal a token's iss claim.
	Issuer string
	// Audience must be one of a token's aud claim: this API's identifier
	// at the identity provider.
	Audience string
	// Leeway is the clock skew allowed on exp, nbf and iat (default 30s).
	Leeway time.Duration
	// RefreshInterval is how often the JWK Set is fetched (default 15m).
	RefreshInterval time.Duration
	// MinRefreshInterval is the shortest time between two fetches: a
	// token with an unknown kid fetches the set again (the provider
	// rotated its keys) at most this often, so that a flood of forged
	// kids cannot hammer the provider (default 1m).
	MinRefreshInterval time.Duration
	// FetchTimeout bounds one fetch of the set (default 5s).
	FetchTimeout time.Duration
	// HTTPClient fetches the set (default: a client of its own).
	HTTPClient *http.Client
}

// Enabled reports whether JWTs are configured at all.
func (c JWTConfig) Enabled() bool { return c.JWKSURL != "" || c.Issuer != "" || c.Audience != "" }

// acceptedAlgs are the asymmetric JWS algorithms. "none" and the HMAC
// ones are never accepted: with a public key as the HMAC secret anybody
// could sign.
var acceptedAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// JWTVerifier checks JWT access tokens against an identity provider's
// JWK Set, which it caches and refreshes.
type JWTVerifier struct {
	cfg         JWTConfig
	defaultRate ratelimit.Rate
	log         *slog.Logger
	metrics     Metrics
	parser      *jwt.Parser
	client      *http.Client

	keys     atomic.Pointer[jwks]
	verified verifiedTokens

	mu          sync.Mutex
	inflight    chan struct{} // closed when the fetch under way ends
	lastAttempt time.Time
	fetches     atomic.Int64 // for tests
}

// jwks is one fetch of the JWK Set.
type jwks struct {
	byKID map[string]verificationKey
	all   []verificationKey
}

type verificationKey struct {
	key any    // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
	alg string // the JWK's alg, if it has one
}

// NewJWTVerifier checks cfg and fetches the JWK Set once. An identity
// provider that does not answer yet is logged, not an error: API keys go
// on working, and the set is fetched again by Run and on the first token.
// log and m may be nil.
func NewJWTVerifier(ctx context.Context, cfg JWTConfig, defaultRate ratelimit.Rate, log *slog.Logger, m Metrics) (*JWTVerifier, error) {
	if cfg.JWKSURL == "" || cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("jwt: the JWKS URL, the issuer and the audience are all required")
	}
	u, err := url.Parse(cfg.JWKSURL)
	if err != nil || u.Host == "" || !(u.Scheme == "https" || u.Scheme == "http" && isLoopback(u.Hostname())) {
		return nil, errors.New("jwt: the JWKS URL must be an https:// URL (http:// only on a loopback host)")
	}
	if cfg.Leeway <= 0 {
		cfg.Leeway = 30 * time.Second
	}
	if cfg.RefreshInterval <= 0 {
		cfg.RefreshInterval = 15 * time.Minute
	}
	if cfg.MinRefreshInterval <= 0 {
		cfg.MinRefreshInterval = time.Minute
	}
	if cfg.FetchTimeout <= 0 {
		cfg.FetchTimeout = 5 * time.Second
	}
	v := &JWTVerifier{
		cfg: cfg, defaultRate: defaultRate, log: orDiscard(log), metrics: orNop(m),
		client: cfg.HTTPClient,
		parser: jwt.NewParser(
			jwt.WithValidMethods(acceptedAlgs),
			jwt.WithIssuer(cfg.Issuer),
			jwt.WithAudience(cfg.Audience),
			jwt.WithLeeway(cfg.Leeway),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
		),
	}
	if v.client == nil {
		v.client = &http.Client{Timeout: cfg.FetchTimeout}
	}
	v.keys.Store(&jwks{})
	v.mu.Lock()
	v.lastAttempt = time.Now()
	v.mu.Unlock()
	_ = v.refresh(ctx)
	return v, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Run refreshes the JWK Set every RefreshInterval (after a failure, every
// MinRefreshInterval) until ctx ends.
func (v *JWTVerifier) Run(ctx context.Context) error {
	failed := len(v.keys.Load().all) == 0
	for {
		wait := v.cfg.RefreshInterval
		if failed {
			wait = v.cfg.MinRefreshInterval
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		v.mu.Lock()
		v.lastAttempt = time.Now()
		v.mu.Unlock()
		// A failed fetch keeps the keys it would have replaced.
		failed = v.refresh(ctx) != nil
	}
}

// refresh fetches the set and, when it holds usable keys, replaces the
// cached one.
func (v *JWTVerifier) refresh(ctx context.Context) error {
	v.fetches.Add(1)
	set, err := v.fetch(ctx)
	if err != nil {
		v.metrics.JWKSRefreshed(false)
		v.log.Warn("jwt: fetching the JWK Set failed, the keys fetched before stay in use",
			"url", v.cfg.JWKSURL, "err", err)
		return err
	}
	v.keys.Store(set)
	v.metrics.JWKSRefreshed(true)
	v.log.Debug("jwt: JWK Set fetched", "url", v.cfg.JWKSURL, "keys", len(set.all))
	return nil
}

func (v *JWTVerifier) fetch(ctx context.Context) (*jwks, error) {
	ctx, cancel := context.WithTimeout(ctx, v.cfg.FetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.cfg.JWKSURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := v.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	var m jwkset.JWKSMarshal
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("not a JWK Set: %w", err)
	}
	set := &jwks{byKID: make(map[string]verificationKey)}
	var skipped int
	for _, km := range m.Keys {
		if km.USE != "" && km.USE != jwkset.UseSig {
			continue // an encryption key
		}
		j, err := jwkset.NewJWKFromMarshal(km, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
		if err != nil {
			skipped++
			continue
		}
		vk := verificationKey{alg: km.ALG.String()}
		switch k := j.Key().(type) {
		case *rsa.PublicKey:
			if k.N.BitLen() < 2048 {
				skipped++
				continue
			}
			vk.key = k
		case *ecdsa.PublicKey, ed25519.PublicKey:
			vk.key = k
		default: // symmetric or key agreement keys verify no signature here
			skipped++
			continue
		}
		set.all = append(set.all, vk)
		if km.KID != "" {
			set.byKID[km.KID] = vk
		}
	}
	if skipped > 0 {
		v.log.Warn("jwt: JWK Set keys left out (unsupported, invalid or too weak)", "url", v.cfg.JWKSURL, "skipped", skipped)
	}
	if len(set.all) == 0 {
		return nil, errors.New("the JWK Set has no usable signing key")
	}
	return set, nil
}

// refreshForKID fetches the set again for a kid that seen lacks, unless
// another request just did or the last fetch was less than
// MinRefreshInterval ago. Requests that find a fetch under way wait for
// it instead of starting their own.
func (v *JWTVerifier) refreshForKID(ctx context.Context, seen *jwks) *jwks {
	v.mu.Lock()
	if cur := v.keys.Load(); cur != seen {
		v.mu.Unlock()
		return cur
	}
	if ch := v.inflight; ch != nil {
		v.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
		}
		return v.keys.Load()
	}
	if time.Since(v.lastAttempt) < v.cfg.MinRefreshInterval {
		v.mu.Unlock()
		return seen
	}
	ch := make(chan struct{})
	v.inflight, v.lastAttempt = ch, time.Now()
	v.mu.Unlock()

	// Detached: the requests waiting for this fetch outlive the one
	// that started it.
	_ = v.refresh(context.WithoutCancel(ctx))
	v.mu.Lock()
	v.inflight = nil
	v.mu.Unlock()
	close(ch)
	return v.keys.Load()
}

// TokenError is why a JWT was refused. Its text is the JWT library's
// (which never quotes the token); Reason is a short label for metrics.
type TokenError struct {
	Reason string
	err    error
}

func (e *TokenError) Error() string { return "jwt: " + e.Reason + ": " + e.err.Error() }
func (e *TokenError) Unwrap() error { return e.err }

// Expired reports whether the token was refused for its exp only: the
// client should get a new one.
func (e *TokenError) Expired() bool { return e.Reason == "jwt_expired" }

var (
	errUnknownKey = errors.New("no key of the JWK Set has the token's kid")
	errKeyAlg     = errors.New("the key's alg differs from the token's")
	errTyp        = errors.New("typ is neither at+jwt nor JWT")
	errSubject    = errors.New("sub is missing or longer than 255 bytes")
)

type accessClaims struct {
	jwt.RegisteredClaims
	Scope    string `json:"scope"`
	ClientID string `json:"client_id"`
}

// Verify checks a JWT access token: signature with a key of the JWK Set
// (by kid), alg one of the asymmetric ones, typ at+jwt or JWT, iss, aud,
// exp (required), nbf and iat with the leeway, and a sub. It returns the
// principal, named by sub and granted the scope claim's scopes. Errors
// are *TokenError.
//
// A signature check costs tens of microseconds, several times a cached
// order's whole request, so a verified token is remembered (by its
// SHA-256) until it expires, for at most a minute, and only while the
// JWK Set it was checked against is the current one.
func (v *JWTVerifier) Verify(ctx context.Context, token string) (*Principal, error) {
	sum := sha256.Sum256([]byte(token))
	now := time.Now()
	set := v.keys.Load()
	if p, ok := v.verified.get(sum, set, now); ok {
		return p, nil
	}
	var claims accessClaims
	_, err := v.parser.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) { return v.keyFor(ctx, t) })
	if err != nil {
		return nil, &TokenError{Reason: tokenReason(err), err: err}
	}
	if claims.Subject == "" || len(claims.Subject) > 255 {
		return nil, &TokenError{Reason: "jwt_claims", err: errSubject}
	}
	p := &Principal{
		Name: claims.Subject, Kind: KindJWT, Scopes: strings.Fields(claims.Scope),
		RateLimit: v.defaultRate, ClientID: claims.ClientID, limitKey: "cred:jwt:" + claims.Subject,
	}
	// The set is the one loaded before the check: a refresh for this
	// token's kid makes a new one, and the next request checks again.
	until := claims.ExpiresAt.Add(v.cfg.Leeway)
	if limit := now.Add(time.Minute); limit.Before(until) {
		until = limit
	}
	v.verified.put(sum, verifiedToken{p: p, set: set, until: until})
	return p, nil
}

// verifiedTokens remembers verified tokens, by the SHA-256 of each.
type verifiedTokens struct {
	mu sync.RWMutex
	m  map[[sha256.Size]byte]verifiedToken
}

type verifiedToken struct {
	p     *Principal
	set   *jwks // the JWK Set the token was checked against
	until time.Time
}

// maxVerified bounds the tokens remembered; only valid tokens get in, and
// when it is full the memory starts afresh.
const maxVerified = 10_000

func (c *verifiedTokens) get(sum [sha256.Size]byte, set *jwks, now time.Time) (*Principal, bool) {
	c.mu.RLock()
	e, ok := c.m[sum]
	c.mu.RUnlock()
	if !ok || e.set != set || !now.Before(e.until) {
		return nil, false
	}
	return e.p, true
}

func (c *verifiedTokens) put(sum [sha256.Size]byte, e verifiedToken) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxVerified {
		c.m = make(map[[sha256.Size]byte]verifiedToken)
	}
	c.m[sum] = e
}

func (v *JWTVerifier) keyFor(ctx context.Context, t *jwt.Token) (any, error) {
	if typ, ok := t.Header["typ"]; ok {
		s, _ := typ.(string)
		if !strings.EqualFold(s, "at+jwt") && !strings.EqualFold(s, "application/at+jwt") && !strings.EqualFold(s, "JWT") {
			return nil, errTyp
		}
	}
	alg := t.Method.Alg()
	set := v.keys.Load()
	kid, _ := t.Header["kid"].(string)
	if kid == "" {
		// Without a kid, every key that fits the alg is tried.
		var ks jwt.VerificationKeySet
		for _, k := range set.all {
			if fits(k, alg) {
				ks.Keys = append(ks.Keys, k.key)
			}
		}
		if len(ks.Keys) == 0 {
			return nil, errUnknownKey
		}
		return ks, nil
	}
	k, ok := set.byKID[kid]
	if !ok {
		if k, ok = v.refreshForKID(ctx, set).byKID[kid]; !ok {
			return nil, errUnknownKey
		}
	}
	if !fits(k, alg) {
		return nil, errKeyAlg
	}
	return k.key, nil
}

// fits reports whether k may verify a signature made with alg.
func fits(k verificationKey, alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	switch k.key.(type) {
	case *rsa.PublicKey:
		return alg[:2] == "RS" || alg[:2] == "PS"
	case *ecdsa.PublicKey:
		return alg[:2] == "ES"
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

// tokenReason labels a refusal for metrics.
func tokenReason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "jwt_expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "jwt_not_yet_valid"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "jwt_audience"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "jwt_issuer"
	case errors.Is(err, errUnknownKey):
		return "jwt_unknown_key"
	case errors.Is(err, errTyp), errors.Is(err, errKeyAlg):
		return "jwt_header"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "jwt_malformed"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return "jwt_signature"
	}
	return "jwt_claims"
}
