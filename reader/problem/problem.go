// Package problem writes the reader's error answers: RFC 9457 problem
// details (application/problem+json), one shape for the API's handlers
// and for the authentication middleware's refusals.
package problem

import (
	"net/http"
	"strconv"

	"github.com/orderservice/orders/shared/model"
)

// Details is an RFC 9457 problem details object. Type is about:blank (the
// status code says it all) except where a client may act on the kind.
type Details struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail,omitempty"`
	Instance  string `json:"instance,omitempty"`
	RequestID string `json:"request_id,omitempty"`
	// Parameter names the query parameter a 400 is about, for clients
	// that point their user at the field to correct.
	Parameter string `json:"parameter,omitempty"`
}

// Write answers with a problem+json body about the query parameter param
// ("" when it is about none). The instance is the request path: it
// identifies this occurrence together with the request id, taken from the
// response's X-Request-Id header.
func Write(w http.ResponseWriter, r *http.Request, status int, param, detail string) {
	p := Details{
		Type:      "about:blank",
		Title:     http.StatusText(status),
		Status:    status,
		Detail:    detail,
		Instance:  r.URL.Path,
		RequestID: w.Header().Get("X-Request-Id"),
		Parameter: param,
	}
	body := p.AppendJSON(make([]byte, 0, 256))
	h := w.Header()
	h["Content-Type"] = []string{"application/problem+json"}
	h["Cache-Control"] = []string{"no-store"}
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// AppendJSON encodes p as encoding/json's Marshal does, by hand: a flood of unknown order_uids is answered with these, and
// reflection would be a good part of the cost of each.
func (p *Details) AppendJSON(b []byte) []byte {
	b = append(b, `{"type":`...)
	b = model.AppendJSONString(b, p.Type)
	b = append(b, `,"title":`...)
	b = model.AppendJSONString(b, p.Title)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(p.Status), 10)
	for _, f := range [...]struct{ key, value string }{
		{`,"detail":`, p.Detail}, {`,"instance":`, p.Instance}, {`,"request_id":`, p.RequestID},
		{`,"parameter":`, p.Parameter},
	} {
		if f.value != "" { // omitempty
			b = append(b, f.key...)
			b = model.AppendJSONString(b, f.value)
		}
	}
	return append(b, '}')
}
