package web

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/orderservice/orders/shared/model"
)

func TestHandler(t *testing.T) {
	h := Handler()
	tests := []struct {
		name        string
		method      string
		path        string
		wantStatus  int
		wantType    string // prefix of Content-Type; "" = not checked
		wantBody    string // substring of the body; "" = not checked
		wantNoBody  bool
		wantCaching bool // Cache-Control no-cache and an ETag
	}{
		{"page", "GET", "/", 200, "text/html; charset=utf-8", `<script type="module" src="/static/app.js"></script>`, false, true},
		{"page with deep link", "GET", "/?uid=b563feb7b2b84b6test", 200, "text/html", `id="uid-input"`, false, true},
		{"module", "GET", "/static/app.js", 200, "text/javascript", "import", false, true},
		{"imported module", "GET", "/static/render.js", 200, "text/javascript", "textContent", false, true},
		{"search module", "GET", "/static/search.js", 200, "text/javascript", "ordersQuery", false, true},
		{"stylesheet", "GET", "/static/style.css", 200, "text/css", "prefers-color-scheme: dark", false, true},
		{"icon", "GET", "/static/favicon.svg", 200, "image/svg+xml", "<svg", false, true},
		{"head", "HEAD", "/", 200, "text/html", "", true, true},
		{"unknown asset", "GET", "/static/nope.js", 404, "text/plain", "not found", false, false},
		{"index only at root", "GET", "/index.html", 404, "", "", false, false},
		{"other path", "GET", "/orders.html", 404, "", "", false, false},
		{"traversal", "GET", "/static/../web.go", 404, "", "", false, false},
		{"source not served", "GET", "/web.go", 404, "", "", false, false},
		{"post", "POST", "/", 405, "", "", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.path, nil)
			// httptest.NewRequest cleans nothing, so "/static/../web.go"
			// reaches the handler as is, as a raw client could send it.
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			res := rec.Result()

			if res.StatusCode != tc.wantStatus {
				t.Fatalf("status = %d, want %d", res.StatusCode, tc.wantStatus)
			}
			// Every response, errors included, carries the security headers.
			if got := res.Header.Get("Content-Security-Policy"); got != ContentSecurityPolicy {
				t.Errorf("Content-Security-Policy = %q, want %q", got, ContentSecurityPolicy)
			}
			if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options = %q, want nosniff", got)
			}
			if tc.wantType != "" && !strings.HasPrefix(res.Header.Get("Content-Type"), tc.wantType) {
				t.Errorf("Content-Type = %q, want prefix %q", res.Header.Get("Content-Type"), tc.wantType)
			}
			body := rec.Body.String()
			if tc.wantBody != "" && !strings.Contains(body, tc.wantBody) {
				t.Errorf("body does not contain %q", tc.wantBody)
			}
			if tc.wantNoBody && body != "" {
				t.Errorf("HEAD returned a body of %d bytes", len(body))
			}
			if tc.wantCaching {
				if got := res.Header.Get("Cache-Control"); got != "no-cache" {
					t.Errorf("Cache-Control = %q, want no-cache", got)
				}
				if res.Header.Get("ETag") == "" {
					t.Error("no ETag")
				}
			}
			if tc.wantStatus == 405 && res.Header.Get("Allow") != "GET, HEAD" {
				t.Errorf("Allow = %q, want %q", res.Header.Get("Allow"), "GET, HEAD")
			}
		})
	}
}

// A browser that revalidates with the ETag it holds gets a 304 and no body;
// a stale ETag gets the full asset.
func TestHandlerRevalidation(t *testing.T) {
	h := Handler()
	first := httptest.NewRecorder()
	h.ServeHTTP(first, httptest.NewRequest(http.MethodGet, "/static/app.js", nil))
	etag := first.Header().Get("ETag")
	if etag == "" {
		t.Fatal("no ETag on the first response")
	}

	tests := []struct {
		name       string
		ifNoneMat  string
		wantStatus int
	}{
		{"current etag", etag, http.StatusNotModified},
		{"stale etag", `"0123"`, http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/static/app.js", nil)
			req.Header.Set("If-None-Match", tc.ifNoneMat)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.wantStatus {
				t.Fatalf("status = %d, want %d", rec.Code, tc.wantStatus)
			}
			if tc.wantStatus == http.StatusNotModified && rec.Body.Len() != 0 {
				t.Errorf("304 with a body of %d bytes", rec.Body.Len())
			}
		})
	}
}

// The page must satisfy its own policy: no inline script or style, and no
// reference to anything outside the origin (the page must work offline).
func TestPageSatisfiesPolicy(t *testing.T) {
	page := mustRead(t, "index.html")
	checks := []struct {
		name string
		re   *regexp.Regexp
	}{
		{"inline script", regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]`)},
		{"style element", regexp.MustCompile(`<style`)},
		{"style attribute", regexp.MustCompile(`\sstyle=`)},
		{"event handler attribute", regexp.MustCompile(`\son[a-z]+=`)},
		{"javascript: URL", regexp.MustCompile(`javascript:`)},
		{"external URL", regexp.MustCompile(`(?:src|href)="(?:https?:)?//`)},
	}
	for _, c := range checks {
		if loc := c.re.FindStringIndex(page); loc != nil {
			t.Errorf("index.html has %s: %q", c.name, page[loc[0]:min(loc[1]+40, len(page))])
		}
	}

	for _, tag := range regexp.MustCompile(`<script[^>]*>`).FindAllString(page, -1) {
		if !strings.Contains(tag, ` src="/static/`) {
			t.Errorf("index.html has a script that is not a local file: %s", tag)
		}
	}

	// Every local asset the page names is embedded.
	h := Handler()
	for _, m := range regexp.MustCompile(`(?:src|href)="(/static/[^"]+)"`).FindAllStringSubmatch(page, -1) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, m[1], nil))
		if rec.Code != http.StatusOK {
			t.Errorf("index.html refers to %s, which answers %d", m[1], rec.Code)
		}
	}
}

// Order data is rendered with DOM text APIs only. This guards against a
// later edit that reaches for an HTML sink; the browser test checks the
// behaviour with hostile data.
func TestScriptsUseNoHTMLSinks(t *testing.T) {
	sinks := regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function\(|createContextualFragment|\bsrcdoc\b`)
	imports := regexp.MustCompile(`from '\./([^']+)'`)
	scripts := 0
	err := fs.WalkDir(files, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".js") {
			return err
		}
		scripts++
		src := mustRead(t, p)
		if m := sinks.FindString(src); m != "" {
			t.Errorf("%s uses %s", p, m)
		}
		// Relative imports must resolve to embedded modules.
		for _, m := range imports.FindAllStringSubmatch(src, -1) {
			if _, err := fs.Stat(files, "static/"+m[1]); err != nil {
				t.Errorf("%s imports ./%s, which is not embedded", p, m[1])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if scripts == 0 {
		t.Fatal("no scripts found under static/")
	}
}

// The page rejects a malformed uid before sending it; its rule must be the
// one the server applies.
func TestUIDPatternMatchesModel(t *testing.T) {
	src := mustRead(t, "static/format.js")
	m := regexp.MustCompile(`UID_PATTERN = /(.+)/;`).FindStringSubmatch(src)
	if m == nil {
		t.Fatal("UID_PATTERN not found in static/format.js")
	}
	if got, want := m[1], model.UIDPattern.String(); got != want {
		t.Errorf("format.js UID_PATTERN = /%s/, model.UIDPattern = /%s/", got, want)
	}
}

func mustRead(t *testing.T, name string) string {
	t.Helper()
	b, err := fs.ReadFile(files, name)
	if err != nil {
		t.Fatalf("read embedded %s: %v", name, err)
	}
	return string(b)
}
