// Package authtest gives tests of the reader real credentials: a keys
// file with an API key of each kind of grant, and an identity provider
// that serves its JWK Set over HTTP and signs JWT access tokens. Nothing
// here is a mock: the reader checks these credentials exactly as it
// checks production ones.
package authtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"github.com/orderservice/orders/reader/auth"
	"github.com/orderservice/orders/reader/auth/ratelimit"
)

// Keys is a keys file in a test's temporary directory and the API keys
// it holds, one for each kind of grant.
type Keys struct {
	// File is the path of the keys file (READER_API_KEYS_FILE).
	File string
	// Read is granted orders:read alone: orders come back masked.
	Read string
	// PII is granted orders:read and orders:pii: orders come back as
	// ingested.
	PII string
	// NoRead is granted orders:pii alone: it authenticates, and reads
	// nothing (403).
	NoRead string
	// Lines are the file's lines for the three keys, which Write keeps.
	Lines []string
}

// The names of the keys in the file, as they appear in logs, metrics and
// audit records.
const (
	ReadName   = "test-read"
	PIIName    = "test-pii"
	NoReadName = "test-noread"
)

// NewKeys writes a keys file with a key of each kind and returns the
// keys. extra lines (say, from NewKey) are written after them.
func NewKeys(t testing.TB, extra ...string) *Keys {
	t.Helper()
	k := &Keys{File: filepath.Join(t.TempDir(), "api-keys")}
	var read, pii, noRead string
	k.Read, read = NewKey(t, ReadName, "", auth.ScopeRead)
	k.PII, pii = NewKey(t, PIIName, "", auth.ScopeRead, auth.ScopePII)
	k.NoRead, noRead = NewKey(t, NoReadName, "", auth.ScopePII)
	k.Lines = []string{read, pii, noRead}
	k.Write(t, extra...)
	return k
}

// NewKey makes an API key named name with scopes and returns it with its
// keys file line. rate is the key's own rate limit as the file writes it
// ("5/10", "0"), or "" for the reader's default.
func NewKey(t testing.TB, name, rate string, scopes ...string) (key, line string) {
	t.Helper()
	key, hash, err := auth.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	var r *ratelimit.Rate
	if rate != "" {
		parsed, err := ratelimit.ParseRate(rate)
		if err != nil {
			t.Fatal(err)
		}
		r = &parsed
	}
	return key, auth.KeyLine(name, scopes, hash, r)
}

// Write replaces the keys file with the three keys' lines and extra, as
// an editor or a Kubernetes Secret update does: a new file renamed over
// the old one.
func (k *Keys) Write(t testing.TB, extra ...string) {
	t.Helper()
	lines := append([]string{"# written by authtest"}, k.Lines...)
	lines = append(lines, extra...)
	tmp := filepath.Join(filepath.Dir(k.File), ".api-keys.tmp")
	if err := os.WriteFile(tmp, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, k.File); err != nil {
		t.Fatal(err)
	}
}

// Bearer is the Authorization header value of token.
func Bearer(token string) string { return "Bearer " + token }

// Issuer is an identity provider: it serves a JWK Set over HTTP (on
// loopback, which the reader accepts without TLS) and signs access
// tokens with ES256.
type Issuer struct {
	// JWKSURL, Issuer and Audience are the reader's READER_JWT_JWKS_URL,
	// READER_JWT_ISSUER and READER_JWT_AUDIENCE.
	JWKSURL, Issuer, Audience string
	// Key is the signing key published at start.
	Key *SigningKey

	mu        sync.Mutex
	published []jwkset.JWKMarshal
	fetches   atomic.Int64
	kids      atomic.Int64
}

// SigningKey is one key of the issuer.
type SigningKey struct {
	KID string
	key *ecdsa.PrivateKey
	jwk jwkset.JWKMarshal
}

// NewIssuer starts an identity provider publishing one key, until the
// test ends.
func NewIssuer(t testing.TB) *Issuer {
	t.Helper()
	iss := &Issuer{Issuer: "https://idp.test.invalid/", Audience: "https://orders.test.invalid"}
	iss.Key = iss.NewKey(t)
	iss.Publish(iss.Key)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		iss.fetches.Add(1)
		iss.mu.Lock()
		keys := iss.published
		iss.mu.Unlock()
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_ = json.NewEncoder(w).Encode(jwkset.JWKSMarshal{Keys: keys})
	}))
	t.Cleanup(srv.Close)
	iss.JWKSURL = srv.URL + "/.well-known/jwks.json"
	return iss
}

// NewKey makes a signing key with a kid of its own, not yet published.
func (iss *Issuer) NewKey(t testing.TB) *SigningKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	kid := "test-key-" + strconv.FormatInt(iss.kids.Add(1), 10)
	j, err := jwkset.NewJWKFromKey(k.Public(), jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{
		KID: kid, ALG: jwkset.AlgES256, USE: jwkset.UseSig,
	}})
	if err != nil {
		t.Fatal(err)
	}
	return &SigningKey{KID: kid, key: k, jwk: j.Marshal()}
}

// Publish makes keys the whole JWK Set: a key rotation.
func (iss *Issuer) Publish(keys ...*SigningKey) {
	set := make([]jwkset.JWKMarshal, len(keys))
	for i, k := range keys {
		set[i] = k.jwk
	}
	iss.mu.Lock()
	iss.published = set
	iss.mu.Unlock()
}

// Fetches is how many times the JWK Set was fetched.
func (iss *Issuer) Fetches() int64 { return iss.fetches.Load() }

// Claims are an access token's claims for sub with scopes (space
// separated, as the scope claim holds them), valid for ttl from now.
func (iss *Issuer) Claims(sub, scopes string, ttl time.Duration) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"iss": iss.Issuer, "aud": iss.Audience, "sub": sub, "scope": scopes, "client_id": "test-client",
		"iat": now.Unix(), "exp": now.Add(ttl).Unix(),
	}
}

// Token signs claims with the published key Key.
func (iss *Issuer) Token(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	return iss.Sign(t, iss.Key, claims)
}

// Sign signs claims with k as an RFC 9068 access token (typ at+jwt).
func (iss *Issuer) Sign(t testing.TB, k *SigningKey, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	tok.Header["kid"] = k.KID
	tok.Header["typ"] = "at+jwt"
	s, err := tok.SignedString(k.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
