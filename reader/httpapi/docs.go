package httpapi

import (
	"embed"
	"io/fs"
	"net/http"
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
		w.Header()["Content-Security-Policy"] = []string{
			"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"}
		w.Header()["Cache-Control"] = []string{"public, max-age=3600"}
		files.ServeHTTP(w, r)
	})
}
