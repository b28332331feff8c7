package problem

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestProblemJSON: the hand-written encoding decodes to what
// encoding/json makes of the same problem.
func TestProblemJSON(t *testing.T) {
	t.Parallel()
	for _, p := range []Details{
		{Type: "about:blank", Title: "Not Found", Status: 404, Detail: "no order", Instance: "/order/x", RequestID: "r-1"},
		{Type: "about:blank", Title: "Bad Request", Status: 400, Instance: "/order/\"<&>\\\x01\xff\u2028é"},
		{Type: "about:blank", Title: "Internal Server Error", Status: 500},
		{Type: "about:blank", Title: "Bad Request", Status: 400, Detail: "limit must be", Parameter: "limit"},
	} {
		var got, want map[string]any
		if err := json.Unmarshal(p.AppendJSON(nil), &got); err != nil {
			t.Fatalf("%+v: %v: %s", p, err, p.AppendJSON(nil))
		}
		std, _ := json.Marshal(p)
		_ = json.Unmarshal(std, &want)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
	}
}
