package httpapi

import (
	"net/http"

	"github.com/orderservice/orders/reader/problem"
)

// writeProblem answers with a problem+json body (see problem.Write).
func writeProblem(w http.ResponseWriter, r *http.Request, status int, detail string) {
	problem.Write(w, r, status, "", detail)
}

// writeProblemParam is writeProblem about the query parameter param.
func writeProblemParam(w http.ResponseWriter, r *http.Request, status int, param, detail string) {
	problem.Write(w, r, status, param, detail)
}
