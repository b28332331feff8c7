// Package auth authenticates the reader's API requests: bearer API keys
// and JWT access tokens, scopes, per-credential rate limits and a limit
// on failed authentications per client address.
//
// # Credentials
//
// A request carries one "Authorization: Bearer <token>" header (RFC 6750;
// the scheme in any case). The token is either
//
//   - an API key: "ord_" and 43 base-62 digits (256 random bits), made by
//     `reader keys new` (KeysNew). The prefix makes a leaked key easy to
//     find for secret scanners and people; or
//   - a JWT access token (RFC 9068) of the organisation's identity
//     provider, when JWTConfig's JWKS URL, issuer and audience are set.
//
// # The keys file
//
// The reader never holds an API key, only its SHA-256, in a file of one
// key per line:
//
//	# name:scope[,scope…]:sha256hex[:rate=R[/B]]
//	support-desk:orders:read:5f0c…e1
//	billing:orders:read,orders:pii:9a41…07:rate=20/40
//	nightly-export:orders:read:c3d2…8b:rate=0
//
// Blank lines and lines starting with "#" are ignored. A name is 1 to 64
// letters, digits, ".", "_" or "-" (it names the caller in logs, metrics
// and audit records); the scopes are orders:read and orders:pii. The
// optional fourth field is the key's own rate limit: R requests a second
// in bursts of up to B ("rate=R" is a burst of R, "rate=0" no limit);
// without it the key gets the default rate. Scopes contain colons, so a
// line is read from both ends: the name up to the first colon, the rate
// field if the last field starts with "rate=", the hash before it, the
// scopes in between. A bad line is an error naming its line number and
// never its content, which could be a hash or a key put in the wrong
// place.
//
// KeyStore.Watch reloads the file when it changes, watching its
// directory (a Kubernetes Secret volume swaps its "..data" symlink; an
// editor renames a new file over the old one); KeyStore.Reload does it on
// demand (SIGHUP). A new file that is missing or invalid is logged and
// counted, and the keys loaded before stay in use. Adding or revoking a
// key takes effect within a second of the file's change.
//
// A lookup hashes the presented key once and reads a map from an
// immutable snapshot behind an atomic pointer; the stored hash is then
// compared in constant time (crypto/subtle). The map is keyed by the
// hash, so its timing says nothing about any stored key.
//
// # JWT access tokens
//
// A JWT is accepted when its signature verifies with a key of the
// identity provider's JWK Set (the key with the token's kid, or every
// key fitting the alg when there is no kid), its alg is asymmetric
// (RS256/384/512, PS256/384/512, ES256/384/512, EdDSA; never "none" or
// HMAC), its typ is at+jwt, application/at+jwt or JWT (or absent), iss
// equals the issuer, aud holds the audience, exp is present and not
// past, nbf and iat are not in the future (30 s of clock skew allowed
// on each), and sub is present. The principal is named by sub and
// granted the space-separated scopes of the scope claim. The JWK Set is
// fetched at start, every 15 minutes (JWTVerifier.Run), and again for a
// token with an unknown kid (the provider rotated its keys), but at most
// once a minute, so that forged kids cannot hammer the provider;
// concurrent requests share one fetch. Only RSA (2048 bits or more),
// ECDSA and Ed25519 signing keys of the set are used. A verified token
// is remembered by its SHA-256 for at most a minute (never past its exp,
// nor past a change of the JWK Set), so a client's requests after its
// first cost a hash instead of a signature check.
//
// # Answers
//
// Authenticator.Require(scope) is the middleware of a route. It sets
// "Vary: Authorization" on every answer and refuses with
// application/problem+json (the reader's problem shape, or
// Config.Problem):
//
//   - 401 with `WWW-Authenticate: Bearer realm="orders"` when there is no
//     bearer credential;
//   - 401 with error="invalid_request" when the header is malformed;
//   - 401 with error="invalid_token" for an unknown or revoked key and an
//     invalid JWT (error_description says when it has expired);
//   - 403 with error="insufficient_scope" scope="…" for a valid
//     credential without the route's scope;
//   - 429 with Retry-After and RateLimit-Limit, RateLimit-Remaining and
//     RateLimit-Reset (draft-ietf-httpapi-ratelimit-headers) past a rate
//     limit.
//
// Otherwise the request goes on with its Principal in the context
// (FromContext, HasScope).
//
// # Rate limits
//
// Each credential has a rate (Principal.RateLimit: the key's own or the
// default; 0 is none), and each client address a limit on failed
// authentications (Config.FailureRate; an IPv6 client's /64 counts as
// one address). Requests without credentials are not failures. An
// address past its failure limit gets 429 for every request, before any
// of its credentials is checked, until the limit allows again: a guessed
// key is never confirmed. The limits are shared by every reader instance
// through Redis, with leases that spare a Redis call per request, and
// fall back to local limits while Redis is down (package ratelimit).
//
// The client address is the direct peer, or, when the peer is one of
// Config.TrustedProxies, the right-most address of X-Forwarded-For that
// is not a trusted proxy (ClientAddr).
//
// # Secrets
//
// No key, hash, token or claim value goes into a log line, an error
// string or a metric. Refusals are logged at debug level with their
// reason and the request id; metrics count them by reason (Metrics,
// NewPrometheusMetrics).
//
// # Wiring
//
//	keys, err := auth.NewKeyStore(cfg.APIKeysFile, defaultRate, log, m)
//	jwt, err := auth.NewJWTVerifier(ctx, jwtConfig, defaultRate, log, m)  // when configured
//	limiter := ratelimit.New(redisClient, ratelimit.Options{Prefix: prefix + "ratelimit:",
//		Breaker: cacheBreaker, Log: log, Metrics: m})  // the breaker of the cache's client
//	a, err := auth.New(auth.Config{Keys: keys, JWT: jwt, Limiter: limiter,
//		FailureRate: ratelimit.PerMinute(10, 20), TrustedProxies: proxies, Log: log, Metrics: m})
//	go a.Run(ctx)                      // watch the keys file, refresh the JWK Set
//	// on SIGHUP: a.Reload()
//	r.With(a.Require(auth.ScopeRead)).Get("/order/{order_uid}", getOrder)
package auth
