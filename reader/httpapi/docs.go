package httpapi

import (
	"embed"
	"io/fs"
	"net/http"
	"unicode/utf8"
)

// OpenAPI is the API's OpenAPI 3 description, served at /openapi.yaml and
// checked against real responses by the contract test.
//
//go:embed openapi.yaml
var OpenAPI []byte

//go:embed swagger
var swaggerFiles embed.FS

func openAPISpec() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = []string{"application/yaml"}
		w.Header()["Cache-Control"] = []string{"no-cache"}
		_, _ = w.Write(OpenAPI)
	})
}

// swaggerUI serves the embedded Swagger UI. Its own policy allows only
// same-origin scripts; Swagger UI sets inline styles and data: images.
func swaggerUI() http.Handler {
	sub, _ := fs.Sub(swaggerFiles, "swagger") // cannot fail: the directory is embedded
	files := http.StripPrefix("/swagger/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A name that is not UTF-8 is not a valid fs path: the file
		// server would answer 500 (fs.ErrInvalid), not 404.
		if !utf8.ValidString(r.URL.Path) {
			writeProblem(w, r, http.StatusNotFound, "no such resource")
			return
		}
		w.Header()["Content-Security-Policy"] = []string{
			"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"}
		w.Header()["Cache-Control"] = []string{"public, max-age=3600"}
		files.ServeHTTP(w, r)
	})
}
