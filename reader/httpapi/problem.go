package httpapi

import (
	"encoding/json"
	"net/http"
)

// problem is an RFC 9457 problem details object. Type is about:blank (the
// status code says it all) except where a client may act on the kind.
type problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail,omitempty"`
	Instance  string `json:"instance,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

// writeProblem answers with a problem+json body. instance is the request
// path: it identifies this occurrence together with request_id.
func writeProblem(w http.ResponseWriter, r *http.Request, status int, detail string) {
	p := problem{
		Type:      "about:blank",
		Title:     http.StatusText(status),
		Status:    status,
		Detail:    detail,
		Instance:  r.URL.Path,
		RequestID: w.Header().Get("X-Request-Id"),
	}
	body, _ := json.Marshal(p) // cannot fail: strings and an int
	h := w.Header()
	h["Content-Type"] = []string{"application/problem+json"}
	h["Cache-Control"] = []string{"no-store"}
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}
