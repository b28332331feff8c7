package ingest

import (
	"encoding/json"
	"testing"

	"github.com/orderservice/orders/shared/model"
	"github.com/orderservice/orders/shared/ordergen"
)

// BenchmarkPrepare measures the CPU-bound part of a batch: decode,
// validate, canonical encoding and hashing of one order.
func BenchmarkPrepare(b *testing.B) {
	gen := ordergen.New(1)
	msgs := make([]Message, 1000)
	for i := range msgs {
		v, err := json.Marshal(gen.Order())
		if err != nil {
			b.Fatal(err)
		}
		msgs[i] = Message{Value: v}
	}
	p := &Pipeline{decoder: model.Decoder{}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if e := p.prepareOne(&msgs[i%len(msgs)]); e.reason != "" {
			b.Fatal(e.err)
		}
	}
}
