package auth

import (
	"errors"
	"strings"
	"testing"
)

func TestParseAuthorization(t *testing.T) {
	key := "ord_" + strings.Repeat("A1b2", 10) + "xyz"
	for _, tc := range []struct {
		name   string
		values []string
		want   string
		err    error
	}{
		{"no header", nil, "", ErrNoCredentials},
		{"bearer", []string{"Bearer " + key}, key, nil},
		{"scheme in lower case", []string{"bearer " + key}, key, nil},
		{"scheme in upper case", []string{"BEARER " + key}, key, nil},
		{"several spaces", []string{"Bearer   " + key}, key, nil},
		{"jwt", []string{"Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln-_"}, "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln-_", nil},
		{"every b64token character and padding", []string{"Bearer aZ09-._~+/=="}, "aZ09-._~+/==", nil},
		{"longest token", []string{"Bearer " + strings.Repeat("a", MaxTokenLength)}, strings.Repeat("a", MaxTokenLength), nil},
		{"another scheme", []string{"Basic dXNlcjpwYXNz"}, "", ErrNoCredentials},
		{"another scheme alone", []string{"Negotiate"}, "", ErrNoCredentials},
		{"key without a scheme", []string{key}, "", ErrNoCredentials},
		{"empty header", []string{""}, "", ErrMalformed},
		{"two headers", []string{"Bearer " + key, "Bearer " + key}, "", ErrMalformed},
		{"scheme alone", []string{"Bearer"}, "", ErrMalformed},
		{"scheme and space", []string{"Bearer "}, "", ErrMalformed},
		{"tab instead of space", []string{"Bearer\t" + key}, "", ErrMalformed},
		{"two tokens", []string{"Bearer " + key + " " + key}, "", ErrMalformed},
		{"padding alone", []string{"Bearer ==="}, "", ErrMalformed},
		{"padding inside", []string{"Bearer ab=cd"}, "", ErrMalformed},
		{"comma", []string{"Bearer " + key + ", Basic x"}, "", ErrMalformed},
		{"quote", []string{`Bearer "` + key + `"`}, "", ErrMalformed},
		{"non-ASCII", []string{"Bearer ключ"}, "", ErrMalformed},
		{"NUL", []string{"Bearer a\x00b"}, "", ErrMalformed},
		{"too long", []string{"Bearer " + strings.Repeat("a", MaxTokenLength+1)}, "", ErrMalformed},
		{"scheme with bad characters", []string{"Bear(er) " + key}, "", ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseAuthorization(tc.values)
			if got != tc.want || !errors.Is(err, tc.err) {
				t.Fatalf("ParseAuthorization(%q) = %q, %v; want %q, %v", tc.values, got, err, tc.want, tc.err)
			}
			if err != nil && tc.want == "" && len(tc.values) == 1 && tc.values[0] != "" &&
				strings.Contains(err.Error(), tc.values[0]) {
				t.Fatalf("the error %q quotes the header", err)
			}
		})
	}
}

// FuzzParseAuthorization checks that the parser never panics, that what
// it accepts is a b64token that parses back to itself, and that it
// rejects exactly the headers that are not "Bearer" 1*SP b64token.
func FuzzParseAuthorization(f *testing.F) {
	for _, s := range []string{
		"Bearer ord_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG",
		"bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln",
		"Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Bearer a==", "Bearer =", "", "Bearer  a b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		token, err := ParseAuthorization([]string{header})
		if err != nil {
			if token != "" {
				t.Fatalf("token %q with error %v", token, err)
			}
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrNoCredentials) {
				t.Fatalf("unexpected error %v", err)
			}
			if errors.Is(err, ErrNoCredentials) && len(header) >= 6 && strings.EqualFold(header[:6], "bearer") &&
				(len(header) == 6 || header[6] == ' ') {
				t.Fatalf("%q: a bearer header reported as no credentials", header)
			}
			return
		}
		if !isB64Token(token) || len(token) > MaxTokenLength {
			t.Fatalf("accepted %q, not a b64token", token)
		}
		if !strings.HasSuffix(header, " "+token) || !strings.EqualFold(header[:7], "bearer ") {
			t.Fatalf("%q: token %q is not the header's credentials", header, token)
		}
		if again, err := ParseAuthorization([]string{"Bearer " + token}); err != nil || again != token {
			t.Fatalf("token %q does not parse back: %q, %v", token, again, err)
		}
	})
}
