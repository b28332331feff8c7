package source

import (
	"context"
	"testing"
)

// BenchmarkGenerate measures making and encoding one order, the CPU cost
// that bounds the producer's throughput.
func BenchmarkGenerate(b *testing.B) {
	for _, workers := range []int{1, 4} {
		b.Run(map[int]string{1: "workers=1", 4: "workers=4"}[workers], func(b *testing.B) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			g := Generate(ctx, 1, 0, workers) // endless: b.Loop decides
			b.ReportAllocs()
			for b.Loop() {
				if _, err := g.Next(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
