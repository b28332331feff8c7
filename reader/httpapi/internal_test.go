package httpapi

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/orderservice/orders/reader/cache"

	"github.com/orderservice/orders/shared/model"
)

// TestValidUIDMatchesModel keeps the hand-written check equal to the
// model's pattern.
func TestValidUIDMatchesModel(t *testing.T) {
	t.Parallel()
	cases := []string{"", "a", "b563feb7b2b84b6test", "A-Z_0-9", strings.Repeat("x", 64), strings.Repeat("x", 65),
		"a.b", "a b", "é", "a/b", "a\x00", "-", "_", "abc\n", "ABC%", "Ж"}
	for c := range 256 {
		cases = append(cases, "a"+string(rune(c)))
	}
	for _, s := range cases {
		if got, want := validUID(s), model.UIDPattern.MatchString(s); got != want {
			t.Errorf("validUID(%q) = %v, model.UIDPattern says %v", s, got, want)
		}
	}
}

func FuzzValidUID(f *testing.F) {
	f.Add("b563feb7b2b84b6test")
	f.Add("a.b")
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := validUID(s), model.UIDPattern.MatchString(s); got != want {
			t.Fatalf("validUID(%q) = %v, model.UIDPattern says %v", s, got, want)
		}
	})
}

func TestETagMatches(t *testing.T) {
	t.Parallel()
	const etag = `"abc"`
	for _, tc := range []struct {
		header string
		want   bool
	}{
		{"", false}, {`"abc"`, true}, {`W/"abc"`, true}, {`"x", "abc"`, true}, {`*`, true},
		{`"abcd"`, false}, {`abc`, false}, {`"x" , W/"abc" `, true},
	} {
		if got := etagMatches(tc.header, etag); got != tc.want {
			t.Errorf("etagMatches(%q) = %v, want %v", tc.header, got, tc.want)
		}
	}
}

func TestValidRequestID(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"abc-123": true, "": false, strings.Repeat("a", 65): false, "a\nb": false, "a b": false, "trace:1.2_x": true,
	} {
		if got := validRequestID(s); got != want {
			t.Errorf("validRequestID(%q) = %v, want %v", s, got, want)
		}
	}
}

type panicky struct{}

func (panicky) Cached(string) (*cache.Order, error) { panic("boom") }
func (panicky) Get(context.Context, string) (*cache.Order, cache.Source, error) {
	panic("boom")
}

// TestPanicRecovery: a panicking handler answers 500 as a problem detail,
// logs the panic, and the server goes on serving.
func TestPanicRecovery(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	h := NewServer(Deps{Logger: slog.New(slog.NewJSONHandler(&logs, nil)), Orders: panicky{}})
	for range 2 {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/order/abc", nil))
		if w.Code != http.StatusInternalServerError || w.Header().Get("Content-Type") != "application/problem+json" {
			t.Fatalf("panic answered %d %q: %s", w.Code, w.Header().Get("Content-Type"), w.Body)
		}
	}
	if !strings.Contains(logs.String(), `"msg":"panic serving request"`) || !strings.Contains(logs.String(), "boom") {
		t.Fatalf("panic not logged: %s", logs.String())
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if w.Code != http.StatusOK {
		t.Fatalf("healthz after a panic: %d", w.Code)
	}
}
