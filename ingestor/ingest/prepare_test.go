package ingest

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"testing"

	"github.com/orderservice/orders/shared/model"
	"github.com/orderservice/orders/shared/ordergen"
)

// However an order is encoded on the topic, its entry carries the same
// canonical bytes (what is cached) and their hash (what is stored): the
// message's own bytes when they are canonical, encoded again otherwise.
func TestPrepareCanonical(t *testing.T) {
	p := &Pipeline{decoder: model.Decoder{}}
	gen := ordergen.New(3)
	for i := range 50 {
		o := gen.Order()
		want, err := o.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		indented, err := json.MarshalIndent(o, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		extra := append(bytes.TrimSuffix(bytes.Clone(want), []byte("}")), `,"x":1}`...)
		for _, value := range [][]byte{want, indented, extra, append([]byte("\n"), want...)} {
			e := p.prepareOne(&Message{Value: value})
			if e.reason != "" {
				t.Fatalf("order %d: %s: %s", i, e.reason, e.err)
			}
			if !bytes.Equal(e.canonical, want) || e.sha != sha256.Sum256(want) {
				t.Fatalf("order %d encoded as %.60q: canonical %.80q, want %.80q", i, value, e.canonical, want)
			}
		}
	}
}
