package model

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/invopop/validation"
	"github.com/invopop/validation/is"
)

// Limits enforced by Validate. The database schema mirrors them in CHECK
// constraints (see the migrations module).
const (
	MaxStringLen = 255
	MaxUIDLen    = 64
	MaxItems     = 1000
	// MaxMoney bounds every amount so that the sum of MaxItems items cannot
	// overflow int64 and every figure stays exact in a JavaScript number.
	MaxMoney int64 = 1_000_000_000_000_000
	// MaxID is the largest integer a JavaScript client can hold exactly.
	MaxID int64 = 1<<53 - 1
)

// UIDPattern is what an order_uid may look like. Readers use it to reject a
// malformed uid before touching any storage.
var UIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ErrInvalid is matched (errors.Is) by every *ValidationError.
var ErrInvalid = errors.New("invalid order")

// FieldError is one failing field: its JSON path (payment.currency,
// items[2].price) and the reason.
type FieldError struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// ValidationError lists every failing field of an order, sorted by path.
type ValidationError struct {
	Fields []FieldError
}

// Error joins every field error: "payment.currency: must be a valid currency
// code; items[0].price: must be no less than 0".
func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Reason
	}
	return strings.Join(parts, "; ")
}

// Is reports whether target is ErrInvalid.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// Validator checks orders. The zero value applies every rule.
type Validator struct {
	// SkipConsistency turns off the three cross-field rules: goods_total is
	// the sum of the items' total_price, amount is goods_total +
	// delivery_cost + custom_fee, and every item carries the order's
	// track_number. Feeds that compute totals differently need this.
	SkipConsistency bool
}

// Validate checks o with every rule; see Validator.
func (o *Order) Validate() error { return Validator{}.Validate(o) }

// Validate returns nil or a *ValidationError naming every failing field.
func (v Validator) Validate(o *Order) error {
	var fields []FieldError
	if err := structureRules(o); err != nil {
		fields = flatten("", err, fields)
	}
	if !v.SkipConsistency {
		fields = append(fields, consistency(o)...)
	}
	if len(fields) == 0 {
		return nil
	}
	sort.SliceStable(fields, func(i, j int) bool { return fields[i].Field < fields[j].Field })
	return &ValidationError{Fields: fields}
}

var (
	noNUL = validation.NewStringRuleWithError(
		func(s string) bool { return !strings.ContainsRune(s, 0) },
		validation.NewError("validation_no_nul", "must not contain NUL characters"))
	uidRule      = validation.Match(UIDPattern).Error("must be 1-64 characters of A-Z, a-z, 0-9, _ or -")
	emailRule    = is.EmailFormat.Error("must be a valid e-mail address")
	currencyRule = is.CurrencyCode.Error("must be a valid currency code")
	moneyRules   = []validation.Rule{validation.Min(int64(0)), validation.Max(MaxMoney)}
	idRules      = []validation.Rule{validation.Min(int64(0)), validation.Max(MaxID)}
	// dateRule keeps date_created encodable. Canonical writes it in UTC and
	// JSON times have four-digit years, so a time that decodes fine with its
	// own offset (0000-01-01T00:00:00+01:00) but falls outside years
	// 1-9999 in UTC could not be encoded, cached or hashed.
	dateRule = validation.By(func(v any) error {
		t, _ := v.(time.Time)
		if y := t.UTC().Year(); y < 1 || y > 9999 {
			return validation.NewError("validation_date_range", "must be between years 0001 and 9999 in UTC")
		}
		return nil
	})
)

// required is a mandatory string: present, at most MaxStringLen characters.
func required(extra ...validation.Rule) []validation.Rule {
	return append([]validation.Rule{validation.Required, validation.RuneLength(1, MaxStringLen), noNUL}, extra...)
}

// optional is a string that may be empty.
func optional() []validation.Rule {
	return []validation.Rule{validation.RuneLength(0, MaxStringLen), noNUL}
}

func structureRules(o *Order) error {
	return validation.ValidateStruct(o,
		validation.Field(&o.OrderUID, validation.Required, uidRule),
		validation.Field(&o.TrackNumber, required()...),
		validation.Field(&o.Entry, required()...),
		validation.Field(&o.Delivery, validation.By(func(any) error { return deliveryRules(&o.Delivery) })),
		validation.Field(&o.Payment, validation.By(func(any) error { return paymentRules(&o.Payment) })),
		validation.Field(&o.Items,
			validation.Required.Error("must have at least one item"),
			validation.Length(1, MaxItems).Error(fmt.Sprintf("must have 1 to %d items", MaxItems)),
			validation.By(func(any) error { return itemsRules(o.Items) })),
		validation.Field(&o.Locale, required()...),
		validation.Field(&o.InternalSignature, optional()...),
		validation.Field(&o.CustomerID, required()...),
		validation.Field(&o.DeliveryService, required()...),
		validation.Field(&o.ShardKey, required()...),
		validation.Field(&o.SmID, idRules...),
		validation.Field(&o.DateCreated, validation.Required.Error("must be set"), dateRule),
		validation.Field(&o.OofShard, required()...),
	)
}

func deliveryRules(d *Delivery) error {
	return validation.ValidateStruct(d,
		validation.Field(&d.Name, required()...),
		validation.Field(&d.Phone, required()...),
		validation.Field(&d.Zip, required()...),
		validation.Field(&d.City, required()...),
		validation.Field(&d.Address, required()...),
		validation.Field(&d.Region, required()...),
		validation.Field(&d.Email, required(emailRule)...),
	)
}

func paymentRules(p *Payment) error {
	return validation.ValidateStruct(p,
		validation.Field(&p.Transaction, required()...),
		validation.Field(&p.RequestID, optional()...),
		validation.Field(&p.Currency, required(currencyRule)...),
		validation.Field(&p.Provider, required()...),
		validation.Field(&p.Amount, moneyRules...),
		validation.Field(&p.PaymentDT, validation.Required.Error("must be a positive Unix time"), validation.Min(int64(1)).Error("must be a positive Unix time")),
		validation.Field(&p.Bank, required()...),
		validation.Field(&p.DeliveryCost, moneyRules...),
		validation.Field(&p.GoodsTotal, moneyRules...),
		validation.Field(&p.CustomFee, moneyRules...),
	)
}

func itemsRules(items []Item) error {
	errs := validation.Errors{}
	for i := range items {
		it := &items[i]
		err := validation.ValidateStruct(it,
			validation.Field(&it.ChrtID, idRules...),
			validation.Field(&it.TrackNumber, required()...),
			validation.Field(&it.Price, moneyRules...),
			validation.Field(&it.RID, required()...),
			validation.Field(&it.Name, required()...),
			validation.Field(&it.Sale, validation.Min(int64(0)), validation.Max(int64(100))),
			validation.Field(&it.Size, required()...),
			validation.Field(&it.TotalPrice, moneyRules...),
			validation.Field(&it.NmID, idRules...),
			validation.Field(&it.Brand, required()...),
			validation.Field(&it.Status, idRules...),
		)
		if err != nil {
			errs[strconv.Itoa(i)] = err
		}
	}
	return errs.Filter()
}

// consistency applies the cross-field rules. Sums are computed only when the
// terms are in range, so hostile values cannot overflow them.
func consistency(o *Order) []FieldError {
	var out []FieldError
	var sum int64
	sumOK := true
	items := o.Items
	if len(items) > MaxItems {
		// The items rule already fails and the items themselves are not
		// checked; a 1 MiB message of empty items would otherwise yield
		// hundreds of thousands of track_number errors.
		items = nil
	}
	for i, it := range items {
		if it.TrackNumber != o.TrackNumber {
			out = append(out, FieldError{
				Field:  fmt.Sprintf("items[%d].track_number", i),
				Reason: "must equal the order's track_number",
			})
		}
		if it.TotalPrice < 0 || it.TotalPrice > MaxMoney {
			sumOK = false
			continue
		}
		sum += it.TotalPrice
	}
	p := o.Payment
	if sumOK && len(items) > 0 && p.GoodsTotal != sum {
		out = append(out, FieldError{
			Field:  "payment.goods_total",
			Reason: fmt.Sprintf("must equal the sum of items' total_price (%d), got %d", sum, p.GoodsTotal),
		})
	}
	inRange := func(v int64) bool { return v >= 0 && v <= MaxMoney }
	if inRange(p.GoodsTotal) && inRange(p.DeliveryCost) && inRange(p.CustomFee) {
		if want := p.GoodsTotal + p.DeliveryCost + p.CustomFee; p.Amount != want {
			out = append(out, FieldError{
				Field:  "payment.amount",
				Reason: fmt.Sprintf("must equal goods_total + delivery_cost + custom_fee (%d), got %d", want, p.Amount),
			})
		}
	}
	return out
}

// flatten turns invopop/validation's nested error maps into JSON paths.
func flatten(prefix string, err error, out []FieldError) []FieldError {
	var errs validation.Errors
	if !errors.As(err, &errs) {
		return append(out, FieldError{Field: prefix, Reason: err.Error()})
	}
	for key, sub := range errs {
		var path string
		switch {
		case isIndex(key):
			path = prefix + "[" + key + "]"
		case prefix == "":
			path = key
		default:
			path = prefix + "." + key
		}
		out = flatten(path, sub, out)
	}
	return out
}

func isIndex(s string) bool {
	_, err := strconv.Atoi(s)
	return err == nil
}
