package source

import (
	"bytes"
	"testing"
	"time"

	"github.com/orderservice/orders/shared/model"
	"github.com/orderservice/orders/shared/ordergen"
)

func TestAppendCanonical(t *testing.T) {
	sample, err := SampleOrder()
	if err != nil {
		t.Fatal(err)
	}
	odd := *sample
	odd.Items = nil
	odd.Delivery.Name = "<Ann & \"Bob\">\\\n\t\u2028 Ünïcödé \x01"
	odd.Delivery.City = "bad utf-8 \xff\xfe"
	odd.DateCreated = time.Date(2024, 2, 29, 23, 59, 59, 123456789, time.FixedZone("x", 3*3600))
	orders := []*model.Order{sample, &odd, {}}
	gen := ordergen.New(1)
	for range 5000 {
		orders = append(orders, gen.Order())
	}
	for i, o := range orders {
		want, err := o.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		got, err := appendCanonical(nil, o)
		if err != nil {
			t.Fatalf("order %d: %v", i, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("order %d:\n got %s\nwant %s", i, got, want)
		}
	}
}

func FuzzAppendCanonical(f *testing.F) {
	f.Add("Test Testov", "WBIL", int64(1817), int64(1637907727))
	f.Add("<&>\"\\\u2028\xff", "", int64(-1), int64(-62135596801))
	f.Fuzz(func(t *testing.T, s1, s2 string, n, unix int64) {
		o := &model.Order{
			OrderUID: s1, TrackNumber: s2, SmID: n, DateCreated: time.Unix(unix, n%1e9),
			Delivery: model.Delivery{Name: s2, Email: s1},
			Payment:  model.Payment{Amount: n, Bank: s1},
			Items:    []model.Item{{Name: s1, Price: n}, {Brand: s2}},
		}
		want, wantErr := o.Canonical()
		got, err := appendCanonical(nil, o)
		if (err != nil) != (wantErr != nil) || (err == nil && !bytes.Equal(got, want)) {
			t.Fatalf("appendCanonical = %s, %v\nCanonical = %s, %v", got, err, want, wantErr)
		}
	})
}
