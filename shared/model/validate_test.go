package model_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/orderservice/orders/shared/model"
)

// assertFields checks that err is a *ValidationError naming exactly the
// given field paths (each may appear more than once, with several reasons),
// and that its message names each of them.
func assertFields(t *testing.T, err error, want []string) *model.ValidationError {
	t.Helper()
	if err == nil {
		t.Fatalf("Validate() = nil, want errors for %v", want)
	}
	if !errors.Is(err, model.ErrInvalid) {
		t.Errorf("error %v does not match ErrInvalid", err)
	}
	var ve *model.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %T %v is not a *ValidationError", err, err)
	}
	var got []string
	for _, f := range ve.Fields {
		if f.Reason == "" {
			t.Errorf("field %q has no reason", f.Field)
		}
		if len(got) == 0 || got[len(got)-1] != f.Field {
			got = append(got, f.Field)
		}
	}
	if !slices.IsSorted(got) {
		t.Errorf("fields not sorted by path: %v", got)
	}
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(got, slices.Compact(want)) {
		t.Fatalf("failing fields %v, want %v (error: %v)", got, want, err)
	}
	for _, f := range want {
		if !strings.Contains(err.Error(), f+": ") {
			t.Errorf("message %q does not name %s", err, f)
		}
	}
	return ve
}

// reasonFor returns every reason given for field, joined.
func reasonFor(ve *model.ValidationError, field string) string {
	var rs []string
	for _, f := range ve.Fields {
		if f.Field == field {
			rs = append(rs, f.Reason)
		}
	}
	return strings.Join(rs, "; ")
}

func TestValidateRules(t *testing.T) {
	long := strings.Repeat("a", model.MaxStringLen+1)
	max := strings.Repeat("ж", model.MaxStringLen)
	type rule struct {
		name   string
		set    func(o *model.Order)
		fields []string // nil: the order stays valid
		reason string   // substring of the first field's reason
	}
	cases := []rule{
		{"sample is valid", func(o *model.Order) {}, nil, ""},

		{"order_uid empty", func(o *model.Order) { o.OrderUID = "" }, []string{"order_uid"}, "cannot be blank"},
		{"order_uid 64 chars", func(o *model.Order) { o.OrderUID = strings.Repeat("A_-9", 16) }, nil, ""},
		{"order_uid 65 chars", func(o *model.Order) { o.OrderUID = strings.Repeat("a", 65) }, []string{"order_uid"}, "1-64 characters"},
		{"order_uid with space", func(o *model.Order) { o.OrderUID = "b563 feb7" }, []string{"order_uid"}, "1-64 characters"},
		{"order_uid with dot", func(o *model.Order) { o.OrderUID = "b563.feb7" }, []string{"order_uid"}, "A-Z, a-z, 0-9, _ or -"},

		{"internal_signature may be empty", func(o *model.Order) { o.InternalSignature = "" }, nil, ""},
		{"request_id may be empty", func(o *model.Order) { o.Payment.RequestID = "" }, nil, ""},
		{"255 runes is fine", func(o *model.Order) { o.Entry = max; o.Payment.RequestID = max }, nil, ""},
		{"internal_signature too long", func(o *model.Order) { o.InternalSignature = long }, []string{"internal_signature"}, "length must be no more than 255"},
		{"request_id too long", func(o *model.Order) { o.Payment.RequestID = long }, []string{"payment.request_id"}, "no more than 255"},
		{"sm_id negative", func(o *model.Order) { o.SmID = -1 }, []string{"sm_id"}, "no less than 0"},
		{"sm_id above MaxID", func(o *model.Order) { o.SmID = model.MaxID + 1 }, []string{"sm_id"}, "no greater than"},
		{"date_created unset", func(o *model.Order) { o.DateCreated = time.Time{} }, []string{"date_created"}, "must be set"},
		{"date_created unset in another zone", func(o *model.Order) { o.DateCreated = time.Time{}.In(time.FixedZone("X", 3600)) }, []string{"date_created"}, "must be set"},
		{"date_created before year 1 in UTC", func(o *model.Order) {
			o.DateCreated = time.Date(0, 1, 1, 0, 0, 0, 0, time.FixedZone("X", 3600))
		}, []string{"date_created"}, "between years 0001 and 9999"},
		{"date_created after 9999 in UTC", func(o *model.Order) {
			o.DateCreated = time.Date(9999, 12, 31, 23, 30, 0, 0, time.FixedZone("X", -3600))
		}, []string{"date_created"}, "between years 0001 and 9999"},
		{"date_created far past but encodable", func(o *model.Order) { o.DateCreated = time.Date(1, 1, 1, 0, 0, 1, 0, time.UTC) }, nil, ""},

		{"delivery.email invalid", func(o *model.Order) { o.Delivery.Email = "test.gmail.com" }, []string{"delivery.email"}, "must be a valid e-mail address"},
		{"delivery.email two ats", func(o *model.Order) { o.Delivery.Email = "a@b@c.com" }, []string{"delivery.email"}, "e-mail"},
		{"delivery.email empty", func(o *model.Order) { o.Delivery.Email = "" }, []string{"delivery.email"}, "cannot be blank"},

		{"payment.currency unknown", func(o *model.Order) { o.Payment.Currency = "XYZ" }, []string{"payment.currency"}, "must be a valid currency code"},
		{"payment.currency lower case", func(o *model.Order) { o.Payment.Currency = "usd" }, []string{"payment.currency"}, "must be a valid currency code"},
		{"payment.currency too long", func(o *model.Order) { o.Payment.Currency = "USDT" }, []string{"payment.currency"}, "currency code"},
		{"payment.currency empty", func(o *model.Order) { o.Payment.Currency = "" }, []string{"payment.currency"}, "cannot be blank"},
		{"payment.currency RUB", func(o *model.Order) { o.Payment.Currency = "RUB" }, nil, ""},

		{"payment.payment_dt zero", func(o *model.Order) { o.Payment.PaymentDT = 0 }, []string{"payment.payment_dt"}, "positive Unix time"},
		{"payment.payment_dt negative", func(o *model.Order) { o.Payment.PaymentDT = -1 }, []string{"payment.payment_dt"}, "positive Unix time"},
		{"payment.delivery_cost negative", func(o *model.Order) { o.Payment.DeliveryCost = -1 }, []string{"payment.delivery_cost"}, "no less than 0"},
		{"payment.custom_fee negative", func(o *model.Order) { o.Payment.CustomFee = -5 }, []string{"payment.custom_fee"}, "no less than 0"},
		{"payment.amount negative", func(o *model.Order) { o.Payment.Amount = -1817 }, []string{"payment.amount"}, "no less than 0"},
		{"payment.amount above MaxMoney", func(o *model.Order) { o.Payment.Amount = model.MaxMoney + 1 }, []string{"payment.amount"}, "no greater than"},
		{"payment.goods_total negative", func(o *model.Order) { o.Payment.GoodsTotal = -317 }, []string{"payment.goods_total"}, "no less than 0"},
		{"zero money is fine", func(o *model.Order) {
			o.Items[0].Price, o.Items[0].TotalPrice = 0, 0
			o.Payment.GoodsTotal, o.Payment.DeliveryCost, o.Payment.Amount = 0, 0, 0
		}, nil, ""},

		{"items nil", func(o *model.Order) { o.Items = nil }, []string{"items"}, "at least one item"},
		{"items empty", func(o *model.Order) { o.Items = []model.Item{} }, []string{"items"}, "at least one item"},
		{"items 1000", func(o *model.Order) { setItems(o, model.MaxItems) }, nil, ""},
		{"items 1001", func(o *model.Order) { setItems(o, model.MaxItems+1) }, []string{"items"}, "1 to 1000 items"},
		{"items 1001 are not checked one by one", func(o *model.Order) {
			setItems(o, model.MaxItems+1)
			for i := range o.Items {
				o.Items[i].TrackNumber, o.Items[i].Price = "OTHER", -1
			}
		}, []string{"items"}, "1 to 1000 items"},
		{"items[0].price negative", func(o *model.Order) { o.Items[0].Price = -1 }, []string{"items[0].price"}, "no less than 0"},
		{"items[0].total_price negative", func(o *model.Order) { o.Items[0].TotalPrice = -1 }, []string{"items[0].total_price"}, "no less than 0"},
		{"items[0].sale above 100", func(o *model.Order) { o.Items[0].Sale = 101 }, []string{"items[0].sale"}, "no greater than 100"},
		{"items[0].sale negative", func(o *model.Order) { o.Items[0].Sale = -1 }, []string{"items[0].sale"}, "no less than 0"},
		{"items[0].sale 100", func(o *model.Order) { o.Items[0].Sale = 100 }, nil, ""},
		{"items[0].chrt_id negative", func(o *model.Order) { o.Items[0].ChrtID = -1 }, []string{"items[0].chrt_id"}, "no less than 0"},
		{"items[0].nm_id above MaxID", func(o *model.Order) { o.Items[0].NmID = model.MaxID + 1 }, []string{"items[0].nm_id"}, "no greater than"},
		{"items[0].status negative", func(o *model.Order) { o.Items[0].Status = -1 }, []string{"items[0].status"}, "no less than 0"},
		{"items[1].name empty", func(o *model.Order) {
			o.Items = append(o.Items, o.Items[0])
			o.Items[1].Name = ""
			o.Payment.GoodsTotal, o.Payment.Amount = 2*317, 2*317+1500
		}, []string{"items[1].name"}, "cannot be blank"},

		{"consistency: goods_total", func(o *model.Order) { o.Payment.GoodsTotal, o.Payment.Amount = 316, 1816 }, []string{"payment.goods_total"}, "must equal the sum of items' total_price (317), got 316"},
		{"consistency: amount", func(o *model.Order) { o.Payment.Amount = 1818 }, []string{"payment.amount"}, "must equal goods_total + delivery_cost + custom_fee (1817), got 1818"},
		{"consistency: custom_fee counts", func(o *model.Order) { o.Payment.CustomFee = 3 }, []string{"payment.amount"}, "(1820), got 1817"},
		{"consistency: item track_number", func(o *model.Order) { o.Items[0].TrackNumber = "OTHER" }, []string{"items[0].track_number"}, "must equal the order's track_number"},
		{"consistency: track_number case matters", func(o *model.Order) { o.Items[0].TrackNumber = "wbilmtesttrack" }, []string{"items[0].track_number"}, "order's track_number"},
		{"consistency: hostile sums do not overflow", func(o *model.Order) {
			o.Items = append(o.Items, o.Items[0])
			o.Items[0].TotalPrice, o.Items[1].TotalPrice = model.MaxMoney, model.MaxMoney
			o.Payment.GoodsTotal, o.Payment.DeliveryCost, o.Payment.CustomFee = model.MaxMoney, model.MaxMoney, model.MaxMoney
			o.Payment.Amount = model.MaxMoney
		}, []string{"payment.amount", "payment.goods_total"}, "(3000000000000000), got 1000000000000000"},
	}

	// Every required string: empty, too long, NUL.
	required := map[string]func(o *model.Order) *string{
		"track_number":          func(o *model.Order) *string { return &o.TrackNumber },
		"entry":                 func(o *model.Order) *string { return &o.Entry },
		"locale":                func(o *model.Order) *string { return &o.Locale },
		"customer_id":           func(o *model.Order) *string { return &o.CustomerID },
		"delivery_service":      func(o *model.Order) *string { return &o.DeliveryService },
		"shardkey":              func(o *model.Order) *string { return &o.ShardKey },
		"oof_shard":             func(o *model.Order) *string { return &o.OofShard },
		"delivery.name":         func(o *model.Order) *string { return &o.Delivery.Name },
		"delivery.phone":        func(o *model.Order) *string { return &o.Delivery.Phone },
		"delivery.zip":          func(o *model.Order) *string { return &o.Delivery.Zip },
		"delivery.city":         func(o *model.Order) *string { return &o.Delivery.City },
		"delivery.address":      func(o *model.Order) *string { return &o.Delivery.Address },
		"delivery.region":       func(o *model.Order) *string { return &o.Delivery.Region },
		"payment.transaction":   func(o *model.Order) *string { return &o.Payment.Transaction },
		"payment.provider":      func(o *model.Order) *string { return &o.Payment.Provider },
		"payment.bank":          func(o *model.Order) *string { return &o.Payment.Bank },
		"items[0].rid":          func(o *model.Order) *string { return &o.Items[0].RID },
		"items[0].name":         func(o *model.Order) *string { return &o.Items[0].Name },
		"items[0].size":         func(o *model.Order) *string { return &o.Items[0].Size },
		"items[0].brand":        func(o *model.Order) *string { return &o.Items[0].Brand },
		"items[0].track_number": func(o *model.Order) *string { return &o.Items[0].TrackNumber },
	}
	for path, field := range required {
		// Changing the order's track_number breaks the item's copy, and
		// the other way round; keep them equal so one rule is tested.
		sync := func(o *model.Order) {
			switch path {
			case "track_number":
				o.Items[0].TrackNumber = o.TrackNumber
			case "items[0].track_number":
				o.TrackNumber = o.Items[0].TrackNumber
			}
		}
		fields := []string{path}
		if path == "track_number" || path == "items[0].track_number" {
			fields = []string{"track_number", "items[0].track_number"}
		}
		cases = append(cases,
			rule{path + " empty", func(o *model.Order) { *field(o) = ""; sync(o) }, fields, "cannot be blank"},
			rule{path + " too long", func(o *model.Order) { *field(o) = long; sync(o) }, fields, "length must be between 1 and 255"},
			rule{path + " 255 runes", func(o *model.Order) { *field(o) = max; sync(o) }, nil, ""},
			rule{path + " with NUL", func(o *model.Order) { *field(o) = "a\x00b"; sync(o) }, fields, "must not contain NUL"},
		)
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := sample(t)
			tc.set(o)
			err := o.Validate()
			checkLibraryAgrees(t, o, err)
			if tc.fields == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			ve := assertFields(t, err, tc.fields)
			if r := reasonFor(ve, tc.fields[0]); !strings.Contains(r, tc.reason) {
				t.Errorf("%s: reason %q does not contain %q", tc.fields[0], r, tc.reason)
			}
		})
	}
}

// setItems gives o n copies of its first item, with consistent totals.
func setItems(o *model.Order, n int) {
	it := o.Items[0]
	o.Items = make([]model.Item, n)
	for i := range o.Items {
		o.Items[i] = it
	}
	o.Payment.GoodsTotal = int64(n) * it.TotalPrice
	o.Payment.Amount = o.Payment.GoodsTotal + o.Payment.DeliveryCost + o.Payment.CustomFee
}

func TestValidateListsEveryField(t *testing.T) {
	o := sample(t)
	o.OrderUID = "not a uid!"
	o.Delivery.Email = "nope"
	o.Payment.Currency = "EURO"
	o.Payment.PaymentDT = 0
	o.Items = append(o.Items, o.Items[0], o.Items[0])
	o.Items[0].Price = -1
	o.Items[2].Brand = ""
	o.Items[2].TrackNumber = "ELSEWHERE"
	o.Locale = ""
	o.DateCreated = time.Time{}
	err := o.Validate()
	ve := assertFields(t, err, []string{
		"date_created", "delivery.email", "items[0].price", "items[2].brand", "items[2].track_number",
		"locale", "order_uid", "payment.currency", "payment.goods_total", "payment.payment_dt",
	})
	want := "payment.currency: must be a valid currency code"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("message %q lacks %q", err, want)
	}
	if n := strings.Count(err.Error(), "; "); n != len(ve.Fields)-1 {
		t.Errorf("message joins %d parts with \"; \", have %d fields: %q", n+1, len(ve.Fields), err)
	}

	// With the consistency rules off, only the structural fields remain.
	err = model.Validator{SkipConsistency: true}.Validate(o)
	_ = assertFields(t, err, []string{
		"date_created", "delivery.email", "items[0].price", "items[2].brand",
		"locale", "order_uid", "payment.currency", "payment.payment_dt",
	})
}

func TestSkipConsistency(t *testing.T) {
	cases := []struct {
		name string
		set  func(o *model.Order)
	}{
		{"goods_total differs from the items", func(o *model.Order) { o.Payment.GoodsTotal, o.Payment.Amount = 1000, 2500 }},
		{"amount differs from the parts", func(o *model.Order) { o.Payment.Amount = 1 }},
		{"item track_number differs", func(o *model.Order) { o.Items[0].TrackNumber = "OTHER" }},
		{"all three", func(o *model.Order) {
			o.Payment.GoodsTotal, o.Payment.Amount, o.Items[0].TrackNumber = 5, 7, "X"
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := sample(t)
			tc.set(o)
			if err := o.Validate(); err == nil {
				t.Fatal("the default Validate accepted an inconsistent order")
			}
			if err := (model.Validator{SkipConsistency: true}).Validate(o); err != nil {
				t.Fatalf("SkipConsistency still failed: %v", err)
			}
		})
	}
	// SkipConsistency does not skip anything else.
	o := sample(t)
	o.Payment.Amount = -1
	o.Items[0].TrackNumber = ""
	_ = assertFields(t, model.Validator{SkipConsistency: true}.Validate(o), []string{"items[0].track_number", "payment.amount"})
}

func TestValidationErrorFormat(t *testing.T) {
	ve := &model.ValidationError{Fields: []model.FieldError{
		{Field: "items[0].price", Reason: "must be no less than 0"},
		{Field: "payment.currency", Reason: "must be a valid currency code"},
	}}
	want := "items[0].price: must be no less than 0; payment.currency: must be a valid currency code"
	if ve.Error() != want {
		t.Errorf("Error() = %q, want %q", ve.Error(), want)
	}
	if !errors.Is(ve, model.ErrInvalid) || errors.Is(ve, model.ErrMalformed) {
		t.Errorf("ValidationError must match ErrInvalid and only it")
	}
	wrapped := errors.Join(errors.New("ingest"), ve)
	var got *model.ValidationError
	if !errors.As(wrapped, &got) || !errors.Is(wrapped, model.ErrInvalid) {
		t.Errorf("a wrapped ValidationError is not found by errors.Is/As")
	}
}

// A ValidationError names the consistency rules an order breaks, and
// matches ErrInconsistent only when they are all it breaks.
func TestConsistencyRulesAreNamed(t *testing.T) {
	cases := []struct {
		name         string
		set          func(o *model.Order)
		rules        []model.Rule
		inconsistent bool
	}{
		{"goods_total", func(o *model.Order) { o.Payment.GoodsTotal, o.Payment.Amount = 316, 1816 }, []model.Rule{model.RuleGoodsTotal}, true},
		{"amount", func(o *model.Order) { o.Payment.Amount = 1818 }, []model.Rule{model.RuleAmount}, true},
		{"track_number", func(o *model.Order) { o.Items[0].TrackNumber = "OTHER" }, []model.Rule{model.RuleTrackNumber}, true},
		{"track_number on two items, named once", func(o *model.Order) {
			setItems(o, 2)
			o.Items[0].TrackNumber, o.Items[1].TrackNumber = "A", "B"
		}, []model.Rule{model.RuleTrackNumber}, true},
		// The upstream project's sample producer: goods_total 900, one item
		// of total_price 1000 (and an amount that matches neither).
		{"all three, in ConsistencyRules order", func(o *model.Order) {
			o.Payment.GoodsTotal, o.Payment.Amount, o.Items[0].TrackNumber = 900, 1, "X"
		}, []model.Rule{model.RuleGoodsTotal, model.RuleAmount, model.RuleTrackNumber}, true},
		{"a structural failure beside a consistency one", func(o *model.Order) {
			o.Payment.Amount = 1818
			o.Delivery.Email = "nope"
		}, []model.Rule{model.RuleAmount}, false},
		{"an empty item track_number is structural too", func(o *model.Order) { o.Items[0].TrackNumber = "" }, []model.Rule{model.RuleTrackNumber}, false},
		{"structural only", func(o *model.Order) { o.Payment.Currency = "usd" }, nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := sample(t)
			tc.set(o)
			err := o.Validate()
			var ve *model.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Validate = %v, want a *ValidationError", err)
			}
			if got := ve.Rules(); !slices.Equal(got, tc.rules) {
				t.Errorf("Rules() = %v, want %v", got, tc.rules)
			}
			if got := errors.Is(err, model.ErrInconsistent); got != tc.inconsistent {
				t.Errorf("errors.Is(err, ErrInconsistent) = %v, want %v (%v)", got, tc.inconsistent, err)
			}
			if !errors.Is(err, model.ErrInvalid) {
				t.Error("an inconsistent order must still match ErrInvalid")
			}
			for _, f := range ve.Fields {
				if f.Rule != "" && !slices.Contains(model.ConsistencyRules(), f.Rule) {
					t.Errorf("%s names an unknown rule %q", f.Field, f.Rule)
				}
			}
			// Through wrapping, as the ingestor sees it.
			if got := errors.Is(fmt.Errorf("message 7: %w", err), model.ErrInconsistent); got != tc.inconsistent {
				t.Errorf("wrapped: errors.Is(ErrInconsistent) = %v, want %v", got, tc.inconsistent)
			}
		})
	}
	if (&model.ValidationError{}).Is(model.ErrInconsistent) {
		t.Error("an empty ValidationError matches ErrInconsistent")
	}
}

// The rule is part of a field error's JSON only where there is one.
func TestFieldErrorJSON(t *testing.T) {
	for _, tc := range []struct {
		f    model.FieldError
		want string
	}{
		{model.FieldError{Field: "payment.currency", Reason: "must be a valid currency code"}, `{"field":"payment.currency","reason":"must be a valid currency code"}`},
		{model.FieldError{Field: "payment.amount", Reason: "must equal", Rule: model.RuleAmount}, `{"field":"payment.amount","reason":"must equal","rule":"amount"}`},
	} {
		b, err := json.Marshal(tc.f)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tc.want {
			t.Errorf("json = %s, want %s", b, tc.want)
		}
	}
}

// checkLibraryAgrees checks that err, what Validate said of o, is what the
// library's rules say with no shortcut taken.
func checkLibraryAgrees(t *testing.T, o *model.Order, err error) {
	t.Helper()
	lib := model.ValidateLibrary(o)
	if (err == nil) != (lib == nil) || err != nil && err.Error() != lib.Error() {
		t.Fatalf("Validate and the library's rules disagree:\n%v\n%v", err, lib)
	}
}
