package model_test

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/orderservice/orders/shared/model"
)

const samplePath = "testdata/model.json"

// sampleJSON returns the upstream sample as it is on disk.
func sampleJSON(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(samplePath)
	if err != nil {
		t.Fatalf("read sample: %v", err)
	}
	return b
}

// sample returns the decoded upstream sample; it is valid.
func sample(t testing.TB) *model.Order {
	t.Helper()
	o, err := model.Decode(sampleJSON(t))
	if err != nil {
		t.Fatalf("decode sample: %v", err)
	}
	return o
}

// wantSample is what the sample must decode to, field by field.
func wantSample() *model.Order {
	return &model.Order{
		OrderUID:    "b563feb7b2b84b6test",
		TrackNumber: "WBILMTESTTRACK",
		Entry:       "WBIL",
		Delivery: model.Delivery{
			Name:    "Test Testov",
			Phone:   "+9720000000",
			Zip:     "2639809",
			City:    "Kiryat Mozkin",
			Address: "Ploshad Mira 15",
			Region:  "Kraiot",
			Email:   "test@gmail.com",
		},
		Payment: model.Payment{
			Transaction:  "b563feb7b2b84b6test",
			RequestID:    "",
			Currency:     "USD",
			Provider:     "wbpay",
			Amount:       1817,
			PaymentDT:    1637907727,
			Bank:         "alpha",
			DeliveryCost: 1500,
			GoodsTotal:   317,
			CustomFee:    0,
		},
		Items: []model.Item{{
			ChrtID:      9934930,
			TrackNumber: "WBILMTESTTRACK",
			Price:       453,
			RID:         "ab4219087a764ae0btest",
			Name:        "Mascaras",
			Sale:        30,
			Size:        "0",
			TotalPrice:  317,
			NmID:        2389212,
			Brand:       "Vivienne Sabo",
			Status:      202,
		}},
		Locale:            "en",
		InternalSignature: "",
		CustomerID:        "test",
		DeliveryService:   "meest",
		ShardKey:          "9",
		SmID:              99,
		DateCreated:       time.Date(2021, time.November, 26, 6, 22, 19, 0, time.UTC),
		OofShard:          "1",
	}
}

// fiveItems returns a valid order with five items.
func fiveItems(t testing.TB) *model.Order {
	t.Helper()
	o := sample(t)
	o.Items = nil
	o.Payment.GoodsTotal = 0
	for i := range 5 {
		it := wantSample().Items[0]
		it.ChrtID += int64(i)
		it.Price = 1000 * int64(i+1)
		it.Sale = 10 * int64(i)
		it.TotalPrice = it.Price * (100 - it.Sale) / 100
		it.Name = "Item " + strconv.Itoa(i)
		o.Items = append(o.Items, it)
		o.Payment.GoodsTotal += it.TotalPrice
	}
	o.Payment.Amount = o.Payment.GoodsTotal + o.Payment.DeliveryCost + o.Payment.CustomFee
	if err := o.Validate(); err != nil {
		t.Fatalf("five-item order is invalid: %v", err)
	}
	return o
}

// equalOrders compares orders as values: date_created by instant, since the
// same instant may carry different locations.
func equalOrders(a, b *model.Order) bool {
	if !a.DateCreated.Equal(b.DateCreated) {
		return false
	}
	ac, bc := *a, *b
	ac.DateCreated, bc.DateCreated = time.Time{}, time.Time{}
	if len(ac.Items) == 0 && len(bc.Items) == 0 {
		ac.Items, bc.Items = nil, nil
	}
	return reflect.DeepEqual(ac, bc)
}

func TestSampleDecodesExactly(t *testing.T) {
	got := sample(t)
	want := wantSample()
	if !reflect.DeepEqual(got, want) {
		gj, _ := json.MarshalIndent(got, "", " ")
		wj, _ := json.MarshalIndent(want, "", " ")
		t.Fatalf("sample decoded to\n%s\nwant\n%s", gj, wj)
	}
	if got.DateCreated.Location() != time.UTC {
		t.Errorf("date_created location %v, want UTC", got.DateCreated.Location())
	}
	if err := got.Validate(); err != nil {
		t.Fatalf("sample is invalid: %v", err)
	}
	if at := got.Payment.PaidAt(); !at.Equal(time.Unix(1637907727, 0)) || at.Location() != time.UTC {
		t.Errorf("PaidAt() = %v, want 2021-11-26T06:22:07Z", at)
	}
}

func TestSampleRoundTrip(t *testing.T) {
	var want bytes.Buffer
	if err := json.Compact(&want, sampleJSON(t)); err != nil {
		t.Fatal(err)
	}
	got, err := sample(t).Canonical()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("Canonical() of the sample differs from the compacted file:\n got %s\nwant %s", got, want.Bytes())
	}
	again, err := model.Decode(got)
	if err != nil {
		t.Fatalf("decode canonical: %v", err)
	}
	if !reflect.DeepEqual(again, wantSample()) {
		t.Fatalf("canonical bytes decode to %+v", again)
	}
}

func TestCanonicalDeterministicAndUTC(t *testing.T) {
	base := sample(t)
	want, err := base.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	// The same instant in other zones, and with a monotonic clock reading,
	// encodes identically.
	for _, loc := range []*time.Location{
		time.FixedZone("MSK", 3*3600),
		time.FixedZone("minus", -(9*3600 + 30*60)),
		time.Local,
	} {
		o := sample(t)
		o.DateCreated = base.DateCreated.In(loc)
		got, err := o.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("zone %v: canonical\n%s\nwant\n%s", loc, got, want)
		}
		if o.DateCreated.Location() != loc {
			t.Errorf("Canonical changed the order's own date_created location to %v", o.DateCreated.Location())
		}
	}
	now := time.Now()
	a, b := sample(t), sample(t)
	a.DateCreated, b.DateCreated = now, now.Round(0).In(time.FixedZone("X", 7200))
	ab, _ := a.Canonical()
	bb, _ := b.Canonical()
	if !bytes.Equal(ab, bb) {
		t.Errorf("monotonic reading or zone changed the encoding:\n%s\n%s", ab, bb)
	}
	if want := now.UTC().Truncate(model.TimePrecision).Format(time.RFC3339Nano); !bytes.Contains(ab, []byte(want)) {
		t.Errorf("canonical %s does not carry date_created %s in UTC", ab, want)
	}

	// Repeated calls, and nil versus empty items.
	for range 50 {
		again, _ := base.Canonical()
		if !bytes.Equal(again, want) {
			t.Fatalf("Canonical is not stable:\n%s\n%s", again, want)
		}
	}
	n, e := sample(t), sample(t)
	n.Items, e.Items = nil, []model.Item{}
	nb, _ := n.Canonical()
	eb, _ := e.Canonical()
	if !bytes.Equal(nb, eb) || !bytes.Contains(nb, []byte(`"items":[]`)) {
		t.Errorf("nil items %s and empty items %s must both encode as []", nb, eb)
	}
	if n.Items != nil {
		t.Errorf("Canonical replaced the order's nil items")
	}

	// Field order follows the upstream sample, whatever the input order.
	shuffled := `{"oof_shard":"1","date_created":"2021-11-26T09:22:19+03:00","sm_id":99,"shardkey":"9",` +
		`"delivery_service":"meest","customer_id":"test","internal_signature":"","locale":"en","items":[{"status":202,` +
		`"brand":"Vivienne Sabo","nm_id":2389212,"total_price":317,"size":"0","sale":30,"name":"Mascaras",` +
		`"rid":"ab4219087a764ae0btest","price":453,"track_number":"WBILMTESTTRACK","chrt_id":9934930}],` +
		`"payment":{"custom_fee":0,"goods_total":317,"delivery_cost":1500,"bank":"alpha","payment_dt":1637907727,` +
		`"amount":1817,"provider":"wbpay","currency":"USD","request_id":"","transaction":"b563feb7b2b84b6test"},` +
		`"delivery":{"email":"test@gmail.com","region":"Kraiot","address":"Ploshad Mira 15","city":"Kiryat Mozkin",` +
		`"zip":"2639809","phone":"+9720000000","name":"Test Testov"},"entry":"WBIL","track_number":"WBILMTESTTRACK",` +
		`"order_uid":"b563feb7b2b84b6test","extra":{"ignored":true}}`
	o, err := model.Decode([]byte(shuffled))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := o.Canonical()
	if !bytes.Equal(got, want) {
		t.Errorf("reordered input with +03:00 and an unknown field:\n got %s\nwant %s", got, want)
	}
}

func TestHostileStrings(t *testing.T) {
	long := strings.Repeat("界", model.MaxStringLen) // 255 runes, 765 bytes
	emoji := strings.Repeat("🦊", model.MaxStringLen)
	cases := []struct {
		name      string
		set       func(o *model.Order)
		wantField string // "" means the order stays valid
	}{
		{"script tag kept verbatim", func(o *model.Order) { o.Items[0].Name = `<script>alert("x")</script>&amp;` }, ""},
		{"SQL-looking text", func(o *model.Order) { o.Delivery.Address = `'); DROP TABLE orders; --` }, ""},
		{"255 three-byte runes", func(o *model.Order) { o.Delivery.City = long }, ""},
		{"255 four-byte runes", func(o *model.Order) { o.Items[0].Brand = emoji }, ""},
		{"256 runes", func(o *model.Order) { o.Delivery.City = long + "x" }, "delivery.city"},
		{"NUL in a required string", func(o *model.Order) { o.Delivery.Name = "Test\x00Testov" }, "delivery.name"},
		{"NUL in an optional string", func(o *model.Order) { o.InternalSignature = "\x00" }, "internal_signature"},
		{"control and bidi characters", func(o *model.Order) { o.CustomerID = "a\u202eb\tc\u0001" }, ""},
		{"unicode order_uid", func(o *model.Order) { o.OrderUID = "заказ1" }, "order_uid"},
		{"order_uid with slash", func(o *model.Order) { o.OrderUID = "../etc/passwd" }, "order_uid"},
		{"order_uid with newline", func(o *model.Order) { o.OrderUID = "abc\n" }, "order_uid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := sample(t)
			tc.set(o)
			err := o.Validate()
			if tc.wantField != "" {
				_ = assertFields(t, err, []string{tc.wantField})
				return
			}
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			// A valid hostile order must survive encode and decode unchanged.
			b, err := o.Canonical()
			if err != nil {
				t.Fatal(err)
			}
			back, err := model.Decode(b)
			if err != nil {
				t.Fatalf("decode canonical %s: %v", b, err)
			}
			if !equalOrders(o, back) {
				t.Fatalf("round trip changed the order:\n%+v\n%+v", o, back)
			}
			if bytes.Contains(b, []byte("<script>")) {
				t.Errorf("canonical JSON carries a raw <script> tag: %s", b)
			}
		})
	}
}

func TestHostileDecodedStrings(t *testing.T) {
	// A 300,000-rune value inside the size limit decodes, and Validate
	// names the field instead of passing it on to the database.
	huge := strings.Repeat("ф", 300_000)
	o, err := model.Decode(patch(t, "delivery.city", strconv.Quote(huge)))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if o.Delivery.City != huge {
		t.Fatalf("city decoded to %d bytes, want %d", len(o.Delivery.City), len(huge))
	}
	ve := assertFields(t, o.Validate(), []string{"delivery.city"})
	if r := reasonFor(ve, "delivery.city"); !strings.Contains(r, "between 1 and 255") {
		t.Errorf("reason %q", r)
	}
	if len(ve.Error()) > 200 {
		t.Errorf("the message repeats the hostile value: %d bytes", len(ve.Error()))
	}

	// An escaped NUL decodes to a real NUL and is then rejected.
	o, err = model.Decode(patch(t, "items.0.name", `"Masc\u0000aras"`))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	_ = assertFields(t, o.Validate(), []string{"items[0].name"})

	// A lone surrogate escape cannot be stored as such: encoding/json
	// turns it into U+FFFD, valid UTF-8 that PostgreSQL accepts.
	o, err = model.Decode(patch(t, "items.0.brand", `"Viv\ud800"`))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if o.Items[0].Brand != "Viv\uFFFD" {
		t.Errorf("brand = %q, want the replacement character", o.Items[0].Brand)
	}
}

// PostgreSQL keeps microseconds: an order must encode the same before and
// after a trip through the database.
func TestDateCreatedKeepsMicroseconds(t *testing.T) {
	in := []byte(`{"order_uid":"a","date_created":"2021-11-26T06:22:19.123456789+03:00"}`)
	o, err := model.Decode(in)
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2021, 11, 26, 3, 22, 19, 123456000, time.UTC)
	if !o.DateCreated.Equal(want) {
		t.Fatalf("decoded date_created %v, want %v", o.DateCreated, want)
	}
	direct := *o
	direct.DateCreated = want.Add(789 * time.Nanosecond)
	a, err := o.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	b, err := direct.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != string(b) {
		t.Fatalf("canonical differs by sub-microsecond time:\n%s\n%s", a, b)
	}
}
