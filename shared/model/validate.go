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

// ErrInconsistent is matched (errors.Is) by a *ValidationError whose every
// failing field breaks a consistency rule and none a structural one: the
// order is well formed, only its figures or track numbers disagree with
// each other. Such an order can be stored as sent, by a service that
// chooses to accept what its upstream computes differently.
var ErrInconsistent = errors.New("inconsistent order")

// Rule names a consistency rule: a check of fields against each other.
// Structural rules (presence, length, format, range) have no name: no
// caller relaxes them.
type Rule string

// The consistency rules.
const (
	// RuleGoodsTotal: payment.goods_total is the sum of the items'
	// total_price.
	RuleGoodsTotal Rule = "goods_total"
	// RuleAmount: payment.amount is goods_total + delivery_cost +
	// custom_fee.
	RuleAmount Rule = "amount"
	// RuleTrackNumber: every item carries the order's track_number.
	RuleTrackNumber Rule = "track_number"
)

// ConsistencyRules lists every consistency rule, in a fixed order.
func ConsistencyRules() []Rule { return []Rule{RuleGoodsTotal, RuleAmount, RuleTrackNumber} }

// FieldError is one failing field: its JSON path (payment.currency,
// items[2].price), the reason, and the consistency rule it breaks (empty
// for a structural rule).
type FieldError struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
	Rule   Rule   `json:"rule,omitempty"`
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

// Is reports whether target is ErrInvalid, or ErrInconsistent when every
// failing field breaks a consistency rule.
func (e *ValidationError) Is(target error) bool {
	switch target {
	case ErrInvalid:
		return true
	case ErrInconsistent:
		if len(e.Fields) == 0 {
			return false
		}
		for _, f := range e.Fields {
			if f.Rule == "" {
				return false
			}
		}
		return true
	}
	return false
}

// Rules returns the consistency rules the order breaks, each once, in the
// order of ConsistencyRules; nil when it breaks none.
func (e *ValidationError) Rules() []Rule {
	var out []Rule
	for _, r := range ConsistencyRules() {
		for _, f := range e.Fields {
			if f.Rule == r {
				out = append(out, r)
				break
			}
		}
	}
	return out
}

// Validator checks orders. The zero value applies every rule.
type Validator struct {
	// SkipConsistency turns off the three consistency rules (see Rule):
	// goods_total is the sum of the items' total_price, amount is
	// goods_total + delivery_cost + custom_fee, and every item carries the
	// order's track_number. Feeds that compute totals differently need
	// this. A caller that wants to know which rules an order breaks
	// validates with every rule and checks errors.Is(err, ErrInconsistent)
	// and ValidationError.Rules instead.
	SkipConsistency bool
}

// Validate checks o with every rule; see Validator.
func (o *Order) Validate() error { return Validator{}.Validate(o) }

// Validate returns nil or a *ValidationError naming every failing field.
func (v Validator) Validate(o *Order) error {
	fields := structureRules(o)
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

// The rule lists are built once: Validate runs for every ingested message.
var (
	requiredRules = required()
	emailRules    = required(emailRule)
	currencyRules = required(currencyRule)
	// optionalRules is a string that may be empty.
	optionalRules  = []validation.Rule{validation.RuneLength(0, MaxStringLen), noNUL}
	uidRules       = []validation.Rule{validation.Required, uidRule}
	saleRules      = []validation.Rule{validation.Min(int64(0)), validation.Max(int64(100))}
	paymentDTRules = []validation.Rule{
		validation.Required.Error("must be a positive Unix time"),
		validation.Min(int64(1)).Error("must be a positive Unix time"),
	}
	dateRules  = []validation.Rule{validation.Required.Error("must be set"), dateRule}
	itemsRules = []validation.Rule{
		validation.Required.Error("must have at least one item"),
		validation.Length(1, MaxItems).Error(fmt.Sprintf("must have 1 to %d items", MaxItems)),
	}
)

// checker collects failing fields. It applies invopop/validation rules to
// each field's value directly rather than through ValidateStruct, whose
// reflection over struct fields was most of the ingestor's CPU per message;
// paths are the JSON names written out here, and item paths are formatted
// only when an item fails.
type checker []FieldError

func (c *checker) check(field string, value any, rules []validation.Rule) {
	if err := validation.Validate(value, rules...); err != nil {
		*c = append(*c, FieldError{Field: field, Reason: err.Error()})
	}
}

func (c *checker) checkItem(i int, field string, value any, rules []validation.Rule) {
	if err := validation.Validate(value, rules...); err != nil {
		*c = append(*c, FieldError{Field: "items[" + strconv.Itoa(i) + "]." + field, Reason: err.Error()})
	}
}

func structureRules(o *Order) []FieldError {
	var c checker
	c.check("order_uid", o.OrderUID, uidRules)
	c.check("track_number", o.TrackNumber, requiredRules)
	c.check("entry", o.Entry, requiredRules)

	d := &o.Delivery
	c.check("delivery.name", d.Name, requiredRules)
	c.check("delivery.phone", d.Phone, requiredRules)
	c.check("delivery.zip", d.Zip, requiredRules)
	c.check("delivery.city", d.City, requiredRules)
	c.check("delivery.address", d.Address, requiredRules)
	c.check("delivery.region", d.Region, requiredRules)
	c.check("delivery.email", d.Email, emailRules)

	p := &o.Payment
	c.check("payment.transaction", p.Transaction, requiredRules)
	c.check("payment.request_id", p.RequestID, optionalRules)
	c.check("payment.currency", p.Currency, currencyRules)
	c.check("payment.provider", p.Provider, requiredRules)
	c.check("payment.amount", p.Amount, moneyRules)
	c.check("payment.payment_dt", p.PaymentDT, paymentDTRules)
	c.check("payment.bank", p.Bank, requiredRules)
	c.check("payment.delivery_cost", p.DeliveryCost, moneyRules)
	c.check("payment.goods_total", p.GoodsTotal, moneyRules)
	c.check("payment.custom_fee", p.CustomFee, moneyRules)

	before := len(c)
	c.check("items", o.Items, itemsRules)
	if len(c) == before {
		// Items are checked only when their count is valid, so that a
		// message of a million empty items yields one error, not millions.
		for i := range o.Items {
			it := &o.Items[i]
			c.checkItem(i, "chrt_id", it.ChrtID, idRules)
			c.checkItem(i, "track_number", it.TrackNumber, requiredRules)
			c.checkItem(i, "price", it.Price, moneyRules)
			c.checkItem(i, "rid", it.RID, requiredRules)
			c.checkItem(i, "name", it.Name, requiredRules)
			c.checkItem(i, "sale", it.Sale, saleRules)
			c.checkItem(i, "size", it.Size, requiredRules)
			c.checkItem(i, "total_price", it.TotalPrice, moneyRules)
			c.checkItem(i, "nm_id", it.NmID, idRules)
			c.checkItem(i, "brand", it.Brand, requiredRules)
			c.checkItem(i, "status", it.Status, idRules)
		}
	}

	c.check("locale", o.Locale, requiredRules)
	c.check("internal_signature", o.InternalSignature, optionalRules)
	c.check("customer_id", o.CustomerID, requiredRules)
	c.check("delivery_service", o.DeliveryService, requiredRules)
	c.check("shardkey", o.ShardKey, requiredRules)
	c.check("sm_id", o.SmID, idRules)
	c.check("date_created", o.DateCreated, dateRules)
	c.check("oof_shard", o.OofShard, requiredRules)
	return c
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
				Rule:   RuleTrackNumber,
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
			Rule:   RuleGoodsTotal,
		})
	}
	inRange := func(v int64) bool { return v >= 0 && v <= MaxMoney }
	if inRange(p.GoodsTotal) && inRange(p.DeliveryCost) && inRange(p.CustomFee) {
		if want := p.GoodsTotal + p.DeliveryCost + p.CustomFee; p.Amount != want {
			out = append(out, FieldError{
				Field:  "payment.amount",
				Reason: fmt.Sprintf("must equal goods_total + delivery_cost + custom_fee (%d), got %d", want, p.Amount),
				Rule:   RuleAmount,
			})
		}
	}
	return out
}
