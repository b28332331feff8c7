// Package web serves the reader's browser UI: one HTML page and its static
// assets (ES modules, CSS, an icon), embedded in the binary so that the page
// works offline and needs nothing but the reader itself.
//
// The page talks only to the reader's JSON API (GET /order/{uid} and
// GET /orders). Every response of this package carries a strict
// Content-Security-Policy that the page satisfies: no inline scripts or
// styles, no third-party origins, no framing.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"time"
)

// ContentSecurityPolicy is sent with every response of Handler. The page
// loads its scripts and styles from its own origin only and fetches data only
// from the reader, so everything else is denied. The reader may send the same
// policy with its API responses.
const ContentSecurityPolicy = "default-src 'self'; " +
	"script-src 'self'; " +
	"style-src 'self'; " +
	"img-src 'self' data:; " +
	"font-src 'self'; " +
	"connect-src 'self'; " +
	"object-src 'none'; " +
	"frame-ancestors 'none'; " +
	"base-uri 'none'; " +
	"form-action 'self'"

//go:embed index.html static
var files embed.FS

// asset is one embedded file, read once at start-up, with the validator that
// lets browsers revalidate it cheaply.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

// Handler returns the handler of the UI. It serves the page at "/" and the
// assets at "/static/<name>"; any other path is 404. Mount it at "/" and
// "/static/*" of the reader's router.
//
// Caching: the asset names carry no content hash, so every response is
// "no-cache" with a strong ETag of its content. A browser revalidates on each
// load and gets a 304 without a body when nothing changed, and a new release
// is picked up at once without mixing old and new modules.
func Handler() http.Handler {
	assets, err := loadAssets(files)
	if err != nil {
		// The files are embedded at build time, so this cannot fail at run
		// time unless the binary itself is broken.
		panic(fmt.Sprintf("web: loading embedded assets: %v", err))
	}
	return &handler{assets: assets}
}

func loadAssets(fsys fs.FS) (map[string]asset, error) {
	assets := map[string]asset{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(fsys, p)
		if err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		sum := sha256.Sum256(body)
		ct := mime.TypeByExtension(path.Ext(p))
		switch path.Ext(p) {
		// Set explicitly: the system MIME table may be missing or map .js
		// to text/plain, and browsers refuse modules without a JavaScript
		// type when nosniff is on.
		case ".js":
			ct = "text/javascript; charset=utf-8"
		case ".css":
			ct = "text/css; charset=utf-8"
		case ".html":
			ct = "text/html; charset=utf-8"
		case ".svg":
			ct = "image/svg+xml"
		}
		if ct == "" {
			ct = "application/octet-stream"
		}
		assets["/"+p] = asset{
			body:        body,
			contentType: ct,
			etag:        `"` + hex.EncodeToString(sum[:16]) + `"`,
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	index, ok := assets["/index.html"]
	if !ok {
		return nil, fmt.Errorf("index.html is missing")
	}
	// The page lives at "/" only, so that deep links have one form.
	assets["/"] = index
	delete(assets, "/index.html")
	return assets, nil
}

type handler struct {
	assets map[string]asset
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", ContentSecurityPolicy)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Cross-Origin-Opener-Policy", "same-origin")

	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	// Only the embedded names exist: a path with "..", a directory or a
	// source file simply is not in the map.
	a, ok := h.assets[r.URL.Path]
	if !ok {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	hdr.Set("Content-Type", a.contentType)
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("ETag", a.etag)
	// ServeContent answers If-None-Match with 304, handles HEAD and Range,
	// and sets Content-Length. The zero time leaves Last-Modified out: the
	// ETag is the validator.
	http.ServeContent(w, r, r.URL.Path, time.Time{}, bytes.NewReader(a.body))
}
