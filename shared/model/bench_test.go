package model_test

import (
	"testing"

	"github.com/orderservice/orders/shared/model"
)

// benchOrders are the benchmark inputs: the upstream sample and a 5-item
// order (the generator's upper bound), both valid.
func benchOrders(b *testing.B) []struct {
	name  string
	order *model.Order
	json  []byte
} {
	b.Helper()
	s, f := sample(b), fiveItems(b)
	sj, err := s.Canonical()
	if err != nil {
		b.Fatal(err)
	}
	fj, err := f.Canonical()
	if err != nil {
		b.Fatal(err)
	}
	return []struct {
		name  string
		order *model.Order
		json  []byte
	}{{"sample", s, sj}, {"5items", f, fj}}
}

func BenchmarkDecode(b *testing.B) {
	for _, bo := range benchOrders(b) {
		b.Run(bo.name, func(b *testing.B) {
			b.SetBytes(int64(len(bo.json)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := model.Decode(bo.json); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkValidate(b *testing.B) {
	for _, bo := range benchOrders(b) {
		b.Run(bo.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := bo.order.Validate(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkCanonical(b *testing.B) {
	for _, bo := range benchOrders(b) {
		b.Run(bo.name, func(b *testing.B) {
			b.SetBytes(int64(len(bo.json)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bo.order.Canonical(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
