package auth

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/orderservice/orders/reader/auth/ratelimit"
)

// No key, hash or token ever reaches a log line or an error string, on
// any path: accepted and refused credentials, rate limits, blocked
// addresses, reloads of bad keys files, and every kind of bad JWT.
func TestNoSecretInLogs(t *testing.T) {
	f := newFixture(t, fixtureOpts{defaultRate: ratelimit.PerSecond(1000, 1000), failureRate: ratelimit.PerMinute(20, 20)})
	secrets := []string{f.read, f.pii, f.limited, f.free}
	for _, line := range f.keyLine {
		fields := strings.Split(line, ":")
		for _, fl := range fields {
			if len(fl) == 64 {
				secrets = append(secrets, fl, strings.ToUpper(fl))
			}
		}
	}
	guessed, guessedHash := newKey(t)
	secrets = append(secrets, guessed, guessedHash)

	other := rsaSigner(t, "other", 1)
	jwts := []string{
		f.signer.sign(t, claims("alice"), nil),
		f.signer.sign(t, with(claims("alice"), "exp", time.Now().Add(-time.Hour).Unix()), nil),
		f.signer.sign(t, with(claims("alice"), "nbf", time.Now().Add(time.Hour).Unix()), nil),
		f.signer.sign(t, with(claims("alice"), "aud", "other"), nil),
		f.signer.sign(t, with(claims("alice"), "iss", "other"), nil),
		f.signer.sign(t, claims("alice"), map[string]any{"typ": "logout+jwt"}),
		other.sign(t, claims("alice"), nil),                         // unknown kid
		other.sign(t, claims("alice"), map[string]any{"kid": "k1"}), // wrong key
	}
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, claims("mallory"))
	hs.Header["kid"] = "k1"
	hsToken, err := hs.SignedString([]byte("public key as secret"))
	if err != nil {
		t.Fatal(err)
	}
	jwts = append(jwts, hsToken)
	for _, tok := range jwts {
		// The header is no secret; the claims and signature are.
		secrets = append(append(secrets, tok), strings.Split(tok, ".")[1:]...)
	}

	var errs []string
	for _, authz := range []string{
		"Bearer " + f.read, "Bearer " + f.pii, "Bearer " + f.free,
		"Bearer " + guessed,
		"Bearer " + f.read + " " + f.pii, // malformed
		"Token " + f.read,                // another scheme
		f.read,                           // no scheme
		"Bearer " + f.read + "\"",
	} {
		f.call(ScopeRead, "GET", authz, "192.0.2.1:1")
		f.call(ScopePII, "GET", authz, "192.0.2.1:1")
	}
	for _, tok := range jwts {
		f.call(ScopeRead, "GET", "Bearer "+tok, "192.0.2.2:1")
		if _, err := f.a.jwt.Verify(context.Background(), tok); err != nil {
			errs = append(errs, err.Error())
		}
	}
	for range 3 { // rate limit
		f.call(ScopeRead, "GET", "Bearer "+f.limited, "192.0.2.3:1")
	}
	for range 25 { // blocked address
		f.call(ScopeRead, "GET", "Bearer "+guessed, "192.0.2.4:1")
	}
	f.call(ScopeRead, "GET", "Bearer "+f.read, "192.0.2.4:1")

	// Bad keys files, with hashes and keys where they do not belong.
	for _, content := range [][]string{
		{f.keyLine[f.read], "broken:orders:read:" + guessedHash[:60]},
		{guessedHash + ":orders:read"},
		{"x:" + guessed + ":" + guessedHash},
		{"x:orders:read:" + guessed},
		{"x:orders:read:" + guessedHash + ":rate=" + guessedHash},
		{f.keyLine[f.read], f.keyLine[f.read]},
		{f.keyLine[f.read], strings.Replace(f.keyLine[f.pii], "privileged", "support", 1)},
	} {
		writeFile(t, f.path, content...)
		if err := f.a.Reload(); err == nil {
			t.Fatalf("keys file %q accepted", content)
		} else {
			errs = append(errs, err.Error())
		}
	}
	if err := os.Remove(f.path); err != nil {
		t.Fatal(err)
	}
	if err := f.a.Reload(); err == nil {
		t.Fatal("a missing keys file accepted")
	}
	writeFile(t, f.path, f.keyLine[f.read])
	if err := f.a.Reload(); err != nil {
		t.Fatal(err)
	}

	logs := f.log.String()
	// The capture works: each kind of event was logged.
	for _, want := range []string{
		`"reason":"unknown_key"`, `"reason":"malformed"`, `"reason":"missing"`, `"reason":"insufficient_scope"`,
		`"reason":"jwt_expired"`, `"reason":"jwt_signature"`, `"reason":"jwt_unknown_key"`, `"reason":"blocked"`,
		`"reason":"jwt_header"`, `"reason":"jwt_audience"`, `"reason":"jwt_issuer"`, `"reason":"jwt_not_yet_valid"`,
		"the keys file was not reloaded", "api keys reloaded", `"request_id":"req-1"`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("no log line with %s", want)
		}
	}
	// Not even a part: every 16 bytes of each secret are looked for.
	for _, s := range secrets {
		for i := 0; i+16 <= len(s); i += 8 {
			part := s[i : i+16]
			if strings.Contains(logs, part) {
				t.Errorf("part of a secret (%d bytes, starting %.6s) is in the logs", len(s), s)
				break
			}
			for _, e := range errs {
				if strings.Contains(e, part) {
					t.Errorf("part of a secret (%d bytes, starting %.6s) is in the error %.60s…", len(s), s, e)
					break
				}
			}
		}
	}
	if t.Failed() {
		t.Logf("logs:\n%s", logs)
	}
}
