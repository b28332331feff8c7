package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"github.com/orderservice/orders/shared/testenv"
)

const (
	testIssuer   = "https://idp.example.test/"
	testAudience = "https://orders.example.test"
)

// signer is a signing key of the test identity provider.
type signer struct {
	kid    string
	alg    jwt.SigningMethod
	key    crypto.Signer
	pubJWK jwkset.JWKMarshal
}

var (
	rsaOnce sync.Once
	rsaKeys []*rsa.PrivateKey
)

// rsaKey returns one of a few RSA keys made once per test binary: making
// them is slow.
func rsaKey(t testing.TB, i int) *rsa.PrivateKey {
	t.Helper()
	rsaOnce.Do(func() {
		for range 3 {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			rsaKeys = append(rsaKeys, k)
		}
	})
	return rsaKeys[i]
}

func newSigner(t testing.TB, kid string, alg jwt.SigningMethod, key crypto.Signer) *signer {
	t.Helper()
	j, err := jwkset.NewJWKFromKey(key.Public(), jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{
		KID: kid, ALG: jwkset.ALG(alg.Alg()), USE: jwkset.UseSig,
	}})
	if err != nil {
		t.Fatal(err)
	}
	return &signer{kid: kid, alg: alg, key: key, pubJWK: j.Marshal()}
}

func rsaSigner(t testing.TB, kid string, i int) *signer {
	return newSigner(t, kid, jwt.SigningMethodRS256, rsaKey(t, i))
}

func ecSigner(t testing.TB, kid string) *signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return newSigner(t, kid, jwt.SigningMethodES256, k)
}

func edSigner(t testing.TB, kid string) *signer {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return newSigner(t, kid, jwt.SigningMethodEdDSA, k)
}

// idp serves a JWK Set that a test changes, and counts the fetches.
type idp struct {
	srv     *httptest.Server
	mu      sync.Mutex
	keys    []jwkset.JWKMarshal
	status  int
	fetches atomic.Int64
}

func newIDP(t testing.TB, signers ...*signer) *idp {
	t.Helper()
	p := &idp{status: http.StatusOK}
	p.publish(signers...)
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		p.fetches.Add(1)
		p.mu.Lock()
		status, keys := p.status, p.keys
		p.mu.Unlock()
		if status != http.StatusOK {
			http.Error(w, "down", status)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_ = json.NewEncoder(w).Encode(jwkset.JWKSMarshal{Keys: keys})
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *idp) publish(signers ...*signer) {
	keys := make([]jwkset.JWKMarshal, 0, len(signers))
	for _, s := range signers {
		keys = append(keys, s.pubJWK)
	}
	p.publishRaw(keys...)
}

func (p *idp) publishRaw(keys ...jwkset.JWKMarshal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys = keys
}

func (p *idp) setStatus(status int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.status = status
}

func (p *idp) config() JWTConfig {
	return JWTConfig{JWKSURL: p.srv.URL + "/jwks", Issuer: testIssuer, Audience: testAudience}
}

// claims are a valid access token's claims for sub, expiring in 5 minutes.
func claims(sub string) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"iss": testIssuer, "aud": testAudience, "sub": sub, "client_id": "support-portal",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
		"jti": strconv.FormatInt(now.UnixNano(), 36), "scope": "openid orders:read",
	}
}

func (s *signer) sign(t testing.TB, c jwt.MapClaims, header map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(s.alg, c)
	tok.Header["kid"] = s.kid
	tok.Header["typ"] = "at+jwt"
	for k, v := range header {
		if v == nil {
			delete(tok.Header, k)
		} else {
			tok.Header[k] = v
		}
	}
	str, err := tok.SignedString(s.key)
	if err != nil {
		t.Fatal(err)
	}
	return str
}

func with(c jwt.MapClaims, kv ...any) jwt.MapClaims {
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(c, kv[i].(string))
		} else {
			c[kv[i].(string)] = kv[i+1]
		}
	}
	return c
}

func newVerifier(t testing.TB, cfg JWTConfig, m Metrics) *JWTVerifier {
	t.Helper()
	v, err := NewJWTVerifier(context.Background(), cfg, defaultRate, nil, m)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestJWTVerify(t *testing.T) {
	rs := rsaSigner(t, "rsa-1", 0)
	es := ecSigner(t, "ec-1")
	ed := edSigner(t, "ed-1")
	foreign := rsaSigner(t, "rsa-1", 1) // another key claiming rsa-1's kid
	p := newIDP(t, rs, es, ed)
	v := newVerifier(t, p.config(), nil)

	pubDER, err := x509.MarshalPKIXPublicKey(rs.key.Public())
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	hmacWith := func(secret []byte) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims("mallory"))
		tok.Header["kid"] = rs.kid
		s, err := tok.SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	none := func() string {
		tok := jwt.NewWithClaims(jwt.SigningMethodNone, claims("mallory"))
		tok.Header["kid"] = rs.kid
		s, err := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	good := rs.sign(t, claims("alice"), nil)
	parts := strings.Split(good, ".")
	tampered := parts[0] + "." + strings.TrimRight(jwtPayload(t, with(claims("alice"), "scope", "orders:read orders:pii")), "=") + "." + parts[2]
	now := time.Now()

	for _, tc := range []struct {
		name   string
		token  string
		reason string // "" for accepted
		scopes []string
	}{
		{"RS256 at+jwt", good, "", []string{"openid", "orders:read"}},
		{"ES256 typ JWT", es.sign(t, claims("alice"), map[string]any{"typ": "JWT"}), "", nil},
		{"EdDSA without typ", ed.sign(t, claims("alice"), map[string]any{"typ": nil}), "", nil},
		{"application/at+jwt", rs.sign(t, claims("alice"), map[string]any{"typ": "application/at+jwt"}), "", nil},
		{"audience list", rs.sign(t, with(claims("alice"), "aud", []string{"other", testAudience}), nil), "", nil},
		{"no kid", rs.sign(t, claims("alice"), map[string]any{"kid": nil}), "", nil},
		{"expired within the leeway", rs.sign(t, with(claims("alice"), "exp", now.Add(-10*time.Second).Unix()), nil), "", nil},
		{"no scope", rs.sign(t, with(claims("alice"), "scope", nil), nil), "", []string{}},

		{"expired", rs.sign(t, with(claims("alice"), "exp", now.Add(-2*time.Minute).Unix()), nil), "jwt_expired", nil},
		{"not yet valid", rs.sign(t, with(claims("alice"), "nbf", now.Add(2*time.Minute).Unix()), nil), "jwt_not_yet_valid", nil},
		{"issued in the future", rs.sign(t, with(claims("alice"), "iat", now.Add(2*time.Minute).Unix()), nil), "jwt_not_yet_valid", nil},
		{"no exp", rs.sign(t, with(claims("alice"), "exp", nil), nil), "jwt_claims", nil},
		{"wrong audience", rs.sign(t, with(claims("alice"), "aud", "https://other.example.test"), nil), "jwt_audience", nil},
		{"no audience", rs.sign(t, with(claims("alice"), "aud", nil), nil), "jwt_claims", nil},
		{"wrong issuer", rs.sign(t, with(claims("alice"), "iss", "https://evil.example.test/"), nil), "jwt_issuer", nil},
		{"no subject", rs.sign(t, with(claims("alice"), "sub", nil), nil), "jwt_claims", nil},
		{"ID token typ", rs.sign(t, claims("alice"), map[string]any{"typ": "dpop+jwt"}), "jwt_header", nil},
		{"alg none", none(), "jwt_signature", nil},
		{"HS256 with the public key PEM as secret", hmacWith(pubPEM), "jwt_signature", nil},
		{"HS256 with the public key DER as secret", hmacWith(pubDER), "jwt_signature", nil},
		{"another key with a known kid", foreign.sign(t, claims("alice"), nil), "jwt_signature", nil},
		{"unknown kid", rsaSigner(t, "rsa-unknown", 1).sign(t, claims("alice"), nil), "jwt_unknown_key", nil},
		{"kid of a key of another alg", rs.sign(t, claims("alice"), map[string]any{"kid": es.kid}), "jwt_header", nil},
		{"tampered payload", tampered, "jwt_signature", nil},
		{"garbage", "a.b.c", "jwt_malformed", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pr, err := v.Verify(context.Background(), tc.token)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if pr.Name != "alice" || pr.Kind != KindJWT || pr.ClientID != "support-portal" || pr.RateLimit != defaultRate ||
					pr.limitKey != "cred:jwt:alice" {
					t.Fatalf("principal %+v", pr)
				}
				if tc.scopes != nil && !slices.Equal(pr.Scopes, tc.scopes) {
					t.Fatalf("scopes %q, want %q", pr.Scopes, tc.scopes)
				}
				return
			}
			var te *TokenError
			if !errors.As(err, &te) || te.Reason != tc.reason {
				t.Fatalf("Verify = %+v, %v; want reason %s", pr, err, tc.reason)
			}
			if te.Expired() != (tc.reason == "jwt_expired") {
				t.Fatalf("Expired() = %v for %s", te.Expired(), tc.reason)
			}
			for _, part := range strings.Split(tc.token, ".") {
				if len(part) > 8 && strings.Contains(err.Error(), part) {
					t.Fatalf("the error %q quotes the token", err)
				}
			}
		})
	}
}

func jwtPayload(t testing.TB, c jwt.MapClaims) string {
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestJWTConfig(t *testing.T) {
	for _, cfg := range []JWTConfig{
		{Issuer: testIssuer, Audience: testAudience},
		{JWKSURL: "https://idp.example.test/jwks", Audience: testAudience},
		{JWKSURL: "https://idp.example.test/jwks", Issuer: testIssuer},
		{JWKSURL: "http://idp.example.test/jwks", Issuer: testIssuer, Audience: testAudience},
		{JWKSURL: "ftp://127.0.0.1/jwks", Issuer: testIssuer, Audience: testAudience},
		{JWKSURL: "/jwks", Issuer: testIssuer, Audience: testAudience},
	} {
		if _, err := NewJWTVerifier(context.Background(), cfg, defaultRate, nil, nil); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
	if (JWTConfig{}).Enabled() || !(JWTConfig{Issuer: "x"}).Enabled() {
		t.Error("Enabled is wrong")
	}
}

// The provider rotates its keys: a token with a new kid fetches the set
// again, at most once per MinRefreshInterval however many unknown kids
// arrive, and concurrent requests share that one fetch.
func TestJWTKeyRotation(t *testing.T) {
	a := rsaSigner(t, "a", 0)
	b := ecSigner(t, "b")
	c := edSigner(t, "c")
	p := newIDP(t, a)
	cfg := p.config()
	// Long enough that the flood below lands inside it on a loaded machine;
	// the forged tokens are signed beforehand for the same reason.
	cfg.MinRefreshInterval = 2 * time.Second
	m := newRecMetrics()
	v := newVerifier(t, cfg, m)
	if _, err := v.Verify(context.Background(), a.sign(t, claims("alice"), nil)); err != nil {
		t.Fatal(err)
	}

	forged := make([]string, 50)
	for i := range forged {
		forged[i] = rsaSigner(t, "forged-"+strconv.Itoa(i), 1).sign(t, claims("mallory"), nil)
	}
	p.publish(a, b)
	tokB := b.sign(t, claims("alice"), nil)
	testenv.Await(t, "a token of the rotated-in key to verify", 5*time.Second, func() bool {
		_, err := v.Verify(context.Background(), tokB)
		return err == nil
	})
	fetches := p.fetches.Load()

	// A flood of forged kids right after: refused, no fetch.
	var wg sync.WaitGroup
	var accepted atomic.Int64
	for _, tok := range forged {
		wg.Go(func() {
			if _, err := v.Verify(context.Background(), tok); err == nil {
				accepted.Add(1)
			}
		})
	}
	wg.Wait()
	if accepted.Load() > 0 {
		t.Fatalf("%d forged tokens accepted", accepted.Load())
	}
	if got := p.fetches.Load() - fetches; got > 1 {
		t.Fatalf("a flood of unknown kids fetched the set %d times within the minimum interval", got)
	}

	// Once the interval has passed, concurrent tokens of a new key share
	// one fetch.
	p.publish(a, b, c)
	before := p.fetches.Load()
	testenv.Await(t, "the minimum refresh interval to pass", 10*time.Second, func() bool {
		v.mu.Lock()
		defer v.mu.Unlock()
		return time.Since(v.lastAttempt) > cfg.MinRefreshInterval
	})
	tokC := c.sign(t, claims("alice"), nil)
	var refused atomic.Int64
	for range 20 {
		wg.Go(func() {
			if _, err := v.Verify(context.Background(), tokC); err != nil {
				refused.Add(1)
			}
		})
	}
	wg.Wait()
	if refused.Load() > 0 {
		t.Fatalf("%d of 20 tokens of the new key refused", refused.Load())
	}
	if got := p.fetches.Load() - before; got != 1 {
		t.Fatalf("20 concurrent tokens of a new key fetched the set %d times, want 1", got)
	}
	if ok := get(m, func(m *recMetrics) int { return m.jwksOK }); ok < 3 {
		t.Fatalf("%d successful fetches counted", ok)
	}
}

// Run refreshes the set: a key the provider drops stops verifying, and a
// provider that is down keeps the keys fetched before.
func TestJWTRunRefreshes(t *testing.T) {
	a := rsaSigner(t, "a", 0)
	b := ecSigner(t, "b")
	p := newIDP(t, a, b)
	cfg := p.config()
	cfg.RefreshInterval = 20 * time.Millisecond
	cfg.MinRefreshInterval = 20 * time.Millisecond
	m := newRecMetrics()
	v := newVerifier(t, cfg, m)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = v.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	tokA := a.sign(t, claims("alice"), nil)
	tokB := b.sign(t, claims("alice"), nil)
	p.setStatus(http.StatusServiceUnavailable)
	testenv.Await(t, "a failed refresh", 5*time.Second, func() bool { return get(m, func(m *recMetrics) int { return m.jwksE }) > 0 })
	if _, err := v.Verify(context.Background(), tokA); err != nil {
		t.Fatalf("a failed refresh dropped the keys: %v", err)
	}
	p.setStatus(http.StatusOK)
	p.publish(b)
	testenv.Await(t, "the dropped key to stop verifying", 5*time.Second, func() bool {
		_, err := v.Verify(context.Background(), tokA)
		return err != nil
	})
	if _, err := v.Verify(context.Background(), tokB); err != nil {
		t.Fatal(err)
	}
}

// A provider that is down at start is no error; its keys are used once
// it answers.
func TestJWTProviderDownAtStart(t *testing.T) {
	a := rsaSigner(t, "a", 0)
	p := newIDP(t, a)
	p.setStatus(http.StatusInternalServerError)
	cfg := p.config()
	cfg.MinRefreshInterval = 50 * time.Millisecond
	m := newRecMetrics()
	v := newVerifier(t, cfg, m)
	tok := a.sign(t, claims("alice"), nil)
	if _, err := v.Verify(context.Background(), tok); err == nil {
		t.Fatal("verified without a key set")
	}
	if get(m, func(m *recMetrics) int { return m.jwksE }) == 0 {
		t.Fatal("the failed fetch was not counted")
	}
	p.setStatus(http.StatusOK)
	testenv.Await(t, "the token to verify once the provider answers", 5*time.Second, func() bool {
		_, err := v.Verify(context.Background(), tok)
		return err == nil
	})
}

// Keys that cannot verify an asymmetric signature are left out of the
// set: a symmetric key, a weak RSA key, an encryption key.
func TestJWTSetKeepsOnlySigningKeys(t *testing.T) {
	good := ecSigner(t, "good")
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	weakSigner := newSigner(t, "weak", jwt.SigningMethodRS256, weak)
	enc := rsaSigner(t, "enc", 2)
	enc.pubJWK.USE = jwkset.UseEnc
	secret := []byte("0123456789abcdef0123456789abcdef")
	oct, err := jwkset.NewJWKFromKey(secret, jwkset.JWKOptions{
		Marshal:  jwkset.JWKMarshalOptions{Private: true},
		Metadata: jwkset.JWKMetadataOptions{KID: "oct", ALG: jwkset.AlgHS256},
	})
	if err != nil {
		t.Fatal(err)
	}
	p := newIDP(t)
	p.publishRaw(good.pubJWK, weakSigner.pubJWK, enc.pubJWK, oct.Marshal())
	v := newVerifier(t, p.config(), nil)
	if got := len(v.keys.Load().all); got != 1 {
		t.Fatalf("%d keys kept, want only the EC one", got)
	}
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, claims("mallory"))
	hs.Header["kid"] = "oct"
	tok, err := hs.SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{
		"HS256 with the set's oct key": tok,
		"weak RSA key":                 weakSigner.sign(t, claims("mallory"), nil),
		"encryption key":               enc.sign(t, claims("mallory"), nil),
	} {
		if _, err := v.Verify(context.Background(), tok); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := v.Verify(context.Background(), good.sign(t, claims("alice"), nil)); err != nil {
		t.Fatal(err)
	}
}

// A verified token is remembered: the same Principal comes back without
// a signature check, until the token expires.
func TestJWTVerifiedTokensAreRemembered(t *testing.T) {
	s := rsaSigner(t, "a", 0)
	p := newIDP(t, s)
	cfg := p.config()
	cfg.Leeway = time.Millisecond
	v := newVerifier(t, cfg, nil)
	tok := s.sign(t, with(claims("alice"), "exp", time.Now().Add(2*time.Second).Unix()), nil)
	first, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	again, err := v.Verify(context.Background(), tok)
	if err != nil || again != first {
		t.Fatalf("second Verify: %p, %v; want the remembered %p", again, err, first)
	}
	testenv.Await(t, "the remembered token to expire", 5*time.Second, func() bool {
		_, err := v.Verify(context.Background(), tok)
		var te *TokenError
		return errors.As(err, &te) && te.Expired()
	})
	// Another token of the same subject is checked on its own.
	other := s.sign(t, with(claims("alice"), "aud", "elsewhere"), nil)
	if _, err := v.Verify(context.Background(), other); err == nil {
		t.Fatal("a token for another audience accepted after one of the subject's was remembered")
	}
}
