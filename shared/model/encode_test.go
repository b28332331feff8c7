package model_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/orderservice/orders/shared/model"
	"github.com/orderservice/orders/shared/ordergen"
)

// reference is the definition AppendCanonical must match: encoding/json over
// the normalised order.
func reference(o *model.Order) ([]byte, error) {
	c := *o
	c.DateCreated = c.DateCreated.UTC().Truncate(model.TimePrecision)
	if c.Items == nil {
		c.Items = []model.Item{}
	}
	return json.Marshal(&c)
}

func TestCanonicalMatchesEncodingJSON(t *testing.T) {
	sample := sample(t)
	odd := *sample
	odd.Items = nil
	odd.Delivery.Name = "<Ann & \"Bob\">\\\n\t\u2028 Ünïcödé \x01"
	odd.Delivery.City = "bad utf-8 \xff\xfe"
	odd.DateCreated = time.Date(2024, 2, 29, 23, 59, 59, 123456789, time.FixedZone("x", 3*3600))
	yearZero := *sample
	yearZero.DateCreated = time.Date(0, 6, 1, 0, 0, 0, 0, time.UTC)
	orders := []*model.Order{sample, &odd, &yearZero, {}}
	gen := ordergen.New(1)
	orders = append(orders, gen.Orders(2000)...)
	for i, o := range orders {
		want, err := reference(o)
		if err != nil {
			t.Fatal(err)
		}
		got, err := o.Canonical()
		if err != nil {
			t.Fatalf("order %d: %v", i, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("order %d:\n got %s\nwant %s", i, got, want)
		}
	}
	prefix := []byte("prefix")
	got, err := sample.AppendCanonical(prefix)
	if err != nil || !bytes.HasPrefix(got, prefix) {
		t.Fatalf("AppendCanonical dropped dst: %q, %v", got, err)
	}
}

func FuzzCanonical(f *testing.F) {
	f.Add("Test Testov", "WBIL", int64(1817), int64(1637907727))
	f.Add("<&>\"\\\u2028\xff", "", int64(-1), int64(-62135596801))
	f.Add("x", "y", int64(0), int64(253402300800)) // year 10000
	f.Fuzz(func(t *testing.T, s1, s2 string, n, unix int64) {
		o := &model.Order{
			OrderUID: s1, TrackNumber: s2, SmID: n, DateCreated: time.Unix(unix, n%1e9),
			Delivery: model.Delivery{Name: s2, Email: s1},
			Payment:  model.Payment{Amount: n, Bank: s1},
			Items:    []model.Item{{Name: s1, Price: n}, {Brand: s2}},
		}
		want, wantErr := reference(o)
		got, err := o.Canonical()
		if (err != nil) != (wantErr != nil) || (err == nil && !bytes.Equal(got, want)) {
			t.Fatalf("Canonical = %s, %v\nencoding/json = %s, %v", got, err, want, wantErr)
		}
	})
}
