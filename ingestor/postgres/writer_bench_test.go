package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/orderservice/orders/ingestor/ingest"
	"github.com/orderservice/orders/shared/ordergen"
	"github.com/orderservice/orders/shared/testenv"
)

// BenchmarkWrite measures the database side alone: b.N generated orders
// written in batches of 2000 through Writer.Write (the COPY fast path),
// one transaction at a time, as the ingestor does.
//
//	go test -run XXX -bench BenchmarkWrite -benchtime=100000x ./postgres
func BenchmarkWrite(b *testing.B) {
	pg := testenv.Postgres(b)
	pool, err := Connect(context.Background(), pg.URLAs("order_ingestor"), 2)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	w := NewWriter(pool, time.Minute, nil)
	gen := ordergen.New(int64(b.N))
	orders := make([]ingest.StoredOrder, b.N)
	for i := range orders {
		o := gen.Order()
		c, err := o.Canonical()
		if err != nil {
			b.Fatal(err)
		}
		orders[i] = ingest.StoredOrder{Order: o}
		copy(orders[i].SHA256[:], c) // any 32 bytes will do here
	}
	const batch = 2000
	b.ResetTimer()
	start := time.Now()
	for lo := 0; lo < len(orders); lo += batch {
		res, err := w.Write(context.Background(), orders[lo:min(lo+batch, len(orders))])
		if err != nil {
			b.Fatal(err)
		}
		if res[0].Status != ingest.Inserted {
			b.Fatalf("status %s", res[0].Status)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "orders/s")
}
