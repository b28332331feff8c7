package auth

import (
	"errors"
	"strings"
)

// MaxTokenLength bounds a bearer token. API keys are 47 bytes; identity
// providers' access tokens stay well under this even with many claims.
const MaxTokenLength = 8192

var (
	// ErrNoCredentials is a request without bearer credentials: no
	// Authorization header, or one of another scheme (RFC 6750 §3.1: no
	// error code then).
	ErrNoCredentials = errors.New("no bearer token")
	// ErrMalformed is an Authorization header that is not one
	// "Bearer <b64token>" (RFC 6750 §2.1): error code invalid_request.
	ErrMalformed = errors.New("malformed bearer Authorization header")
)

// ParseAuthorization returns the bearer token of a request's
// Authorization header values (r.Header["Authorization"]). The scheme is
// case-insensitive (RFC 9110 §11.1); the token is b64token characters
// (letters, digits, "-._~+/", then any "=" padding), at most
// MaxTokenLength. Several Authorization headers are malformed. The
// errors never contain the header.
func ParseAuthorization(values []string) (string, error) {
	switch len(values) {
	case 0:
		return "", ErrNoCredentials
	case 1:
	default:
		return "", ErrMalformed
	}
	v := values[0]
	scheme, token, hasSpace := strings.Cut(v, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		if v == "" || !isToken(scheme) {
			return "", ErrMalformed
		}
		return "", ErrNoCredentials
	}
	if !hasSpace {
		return "", ErrMalformed
	}
	token = strings.TrimLeft(token, " ") // 1*SP
	if !isB64Token(token) {
		return "", ErrMalformed
	}
	return token, nil
}

// isB64Token reports whether s is an RFC 6750 b64token of at most
// MaxTokenLength bytes.
func isB64Token(s string) bool {
	if s == "" || len(s) > MaxTokenLength {
		return false
	}
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/') {
			return false
		}
	}
	return true
}

// isToken reports whether s is an RFC 9110 token (an auth-scheme).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}
