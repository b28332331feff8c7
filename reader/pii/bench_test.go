package pii

import (
	"testing"

	"github.com/orderservice/orders/shared/model"
	"github.com/orderservice/orders/shared/ordergen"
	"github.com/orderservice/orders/shared/testenv"
)

// BenchmarkMaskJSON is the cost the reader pays once per order entering its
// cache: the upstream sample, and a generated order of five items (the
// generator's largest).
func BenchmarkMaskJSON(b *testing.B) {
	five := ordergen.New(1)
	var big *model.Order
	for big == nil || len(big.Items) < ordergen.MaxItems {
		big = five.Order()
	}
	for _, bc := range []struct {
		name  string
		order *model.Order
	}{{"sample", testenv.Sample(b)}, {"5items", big}} {
		data, err := bc.order.Canonical()
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := MaskJSON(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMaskCanonical is the path of a caller that already holds the
// decoded order (a PostgreSQL load): Mask, then Canonical, no decoding.
func BenchmarkMaskCanonical(b *testing.B) {
	o := testenv.Sample(b)
	b.ReportAllocs()
	for b.Loop() {
		m := Mask(*o)
		if _, err := m.Canonical(); err != nil {
			b.Fatal(err)
		}
	}
}
