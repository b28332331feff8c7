package auth

import (
	"context"
	"slices"

	"github.com/orderservice/orders/reader/auth/ratelimit"
)

// The scopes the reader knows. A keys file naming another is refused; a
// JWT may carry others, which grant nothing here.
const (
	// ScopeRead reads orders (/order/{uid}, /orders), personal data masked.
	ScopeRead = "orders:read"
	// ScopePII sees the customers' personal data unmasked.
	ScopePII = "orders:pii"
)

// knownScopes are the scopes a keys file may grant.
var knownScopes = []string{ScopeRead, ScopePII}

// Kind is the kind of credential a Principal presented.
type Kind string

const (
	// KindAPIKey is an API key from the keys file.
	KindAPIKey Kind = "api_key"
	// KindJWT is a JWT access token from the identity provider.
	KindJWT Kind = "jwt"
)

// Principal is the authenticated caller of a request. API key principals
// are made once per keys file load and shared by every request: treat a
// Principal as read-only.
type Principal struct {
	// Name identifies the credential: the key's name in the keys file, or
	// a JWT's sub claim. It is not secret, and goes into logs and audits.
	Name string
	// Kind is how the caller authenticated.
	Kind Kind
	// Scopes are the grants of the credential.
	Scopes []string
	// RateLimit is the credential's request rate (the key's own or the
	// default); its zero value is no limit.
	RateLimit ratelimit.Rate
	// ClientID is a JWT's client_id claim (the OAuth client); empty for
	// API keys.
	ClientID string

	limitKey string // the rate limiter's key
}

// Has reports whether p was granted scope.
func (p *Principal) Has(scope string) bool {
	return p != nil && slices.Contains(p.Scopes, scope)
}

// MetricName is the credential label of p in metrics: API key names are
// bounded by the keys file, JWT subjects are not, so a JWT counts under
// its OAuth client ("jwt:<client_id>", or "jwt" without one).
func (p *Principal) MetricName() string {
	if p.Kind == KindJWT {
		if p.ClientID == "" {
			return "jwt"
		}
		return "jwt:" + p.ClientID
	}
	return p.Name
}

type principalKey struct{}

// NewContext returns ctx carrying p.
func NewContext(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the Principal the middleware put in ctx.
func FromContext(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*Principal)
	return p, ok && p != nil
}

// HasScope reports whether the request of ctx was authenticated with
// scope granted.
func HasScope(ctx context.Context, scope string) bool {
	p, _ := FromContext(ctx)
	return p.Has(scope)
}
