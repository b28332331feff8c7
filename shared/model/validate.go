package model

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
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
func (v Validator) Validate(o *Order) error { return v.validate(o, false) }

// validate is Validate; library set applies every field's library rules
// even where its shortcut passes it (the tests' reference: both ways must
// give the same result for every order).
func (v Validator) validate(o *Order, library bool) error {
	c := checker{library: library}
	c.structure(o)
	fields := c.fields
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
	// dateRule keeps date_created encodable. Canonical writes it in UTC and
	// JSON times have four-digit years, so a time that decodes fine with its
	// own offset (0000-01-01T00:00:00+01:00) but falls outside years
	// 1-9999 in UTC could not be encoded, cached or hashed.
	dateRule = validation.By(func(v any) error {
		if t, _ := v.(time.Time); !encodableYear(t) {
			return validation.NewError("validation_date_range", "must be between years 0001 and 9999 in UTC")
		}
		return nil
	})
)

func encodableYear(t time.Time) bool {
	y := t.UTC().Year()
	return y >= 1 && y <= 9999
}

// fieldRule is a field's invopop/validation rules and a shortcut: pass
// reports true only for values that the rules accept, cheaply and without
// reflection or boxing. A value pass does not vouch for goes to the rules,
// which decide and word the error. The rules stay the definition (the
// tests check that both ways agree); the shortcut only spares the valid
// fields of a valid order, every field of nearly every message, the cost
// of validation.Validate: reflection and an allocation per field, which
// was about a sixth of the ingestor's CPU per order.
type fieldRule[T any] struct {
	rules []validation.Rule
	pass  func(T) bool
}

// required is a mandatory string: present, at most MaxStringLen characters.
func required(extra validation.Rule, pass func(string) bool) *fieldRule[string] {
	rules := []validation.Rule{validation.Required, validation.RuneLength(1, MaxStringLen), noNUL}
	if extra != nil {
		rules = append(rules, extra)
	}
	return &fieldRule[string]{rules, func(s string) bool { return requiredPass(s) && (pass == nil || pass(s)) }}
}

// requiredPass: not empty, no NUL, and at most MaxStringLen bytes, so at
// most MaxStringLen characters (a longer string of multi-byte characters
// may still pass: the rules count it).
func requiredPass(s string) bool {
	return s != "" && len(s) <= MaxStringLen && strings.IndexByte(s, 0) < 0
}

// between is an integer in [lo, hi].
func between(lo, hi int64, rules ...validation.Rule) *fieldRule[int64] {
	return &fieldRule[int64]{rules, func(v int64) bool { return lo <= v && v <= hi }}
}

// The rules are built once: Validate runs for every ingested message.
var (
	requiredRules = required(nil, nil)
	emailRules    = required(emailRule, asciiEmail)
	currencyRules = required(currencyRule, knownCurrency)
	// optionalRules is a string that may be empty.
	optionalRules = &fieldRule[string]{
		[]validation.Rule{validation.RuneLength(0, MaxStringLen), noNUL},
		func(s string) bool { return len(s) <= MaxStringLen && strings.IndexByte(s, 0) < 0 },
	}
	uidRules       = &fieldRule[string]{[]validation.Rule{validation.Required, uidRule}, uidPass}
	moneyRules     = between(0, MaxMoney, validation.Min(int64(0)), validation.Max(MaxMoney))
	idRules        = between(0, MaxID, validation.Min(int64(0)), validation.Max(MaxID))
	saleRules      = between(0, 100, validation.Min(int64(0)), validation.Max(int64(100)))
	paymentDTRules = between(1, math.MaxInt64,
		validation.Required.Error("must be a positive Unix time"),
		validation.Min(int64(1)).Error("must be a positive Unix time"))
	dateRules = &fieldRule[time.Time]{
		[]validation.Rule{validation.Required.Error("must be set"), dateRule},
		func(t time.Time) bool { return !t.IsZero() && encodableYear(t) },
	}
	itemsRules = &fieldRule[[]Item]{
		[]validation.Rule{
			validation.Required.Error("must have at least one item"),
			validation.Length(1, MaxItems).Error(fmt.Sprintf("must have 1 to %d items", MaxItems)),
		},
		func(items []Item) bool { return len(items) >= 1 && len(items) <= MaxItems },
	}
)

// uidPass is UIDPattern without the regexp.
func uidPass(s string) bool {
	if s == "" || len(s) > MaxUIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// asciiEmail vouches for the plain addresses that is.EmailFormat's pattern
// matches: a local part of dot-separated atoms of ASCII letters, digits
// and !#$%&'*+-/=?^_`{|}~, an @, then two or more dot-separated labels of
// letters, digits and hyphens, each beginning and ending with a letter or
// digit, the last one with a letter. Anything else (quoted local parts,
// non-ASCII, a trailing dot) is left to the pattern itself.
func asciiEmail(s string) bool {
	at := strings.IndexByte(s, '@')
	if at <= 0 {
		return false
	}
	local, domain := s[:at], s[at+1:]
	atom := false // inside an atom of the local part
	for i := 0; i < len(local); i++ {
		c := local[i]
		switch {
		case c == '.':
			if !atom {
				return false // leading or doubled dot
			}
			atom = false
		case isAlnum(c) || strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0:
			atom = true
		default:
			return false
		}
	}
	if !atom {
		return false // trailing dot
	}
	labels := 0
	for domain != "" {
		label, rest, more := strings.Cut(domain, ".")
		if label == "" || !isAlnum(label[0]) || !isAlnum(label[len(label)-1]) {
			return false
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; !isAlnum(c) && c != '-' {
				return false
			}
		}
		labels++
		if !more {
			// The last label: it must begin and end with a letter.
			return labels >= 2 && isLetter(label[0]) && isLetter(label[len(label)-1])
		}
		domain = rest
	}
	return false // empty domain or a trailing dot
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isAlnum(c byte) bool  { return isLetter(c) || '0' <= c && c <= '9' }

// currencies holds the codes is.CurrencyCode has accepted (a linear search
// of its list, behind validation's reflection): valid codes only, so it
// stays as small as that list.
var currencies sync.Map

// knownCurrency reports whether s is a code is.CurrencyCode accepts,
// asking it the first time.
func knownCurrency(s string) bool {
	if _, ok := currencies.Load(s); ok {
		return true
	}
	if currencyRule.Validate(s) != nil {
		return false
	}
	// A copy: s may be a substring of a whole message (decodeFast).
	currencies.Store(strings.Clone(s), struct{}{})
	return true
}

// checker collects failing fields. It applies each field's rules to its
// value directly rather than through ValidateStruct, whose reflection over
// struct fields was most of the ingestor's CPU per message, and only when
// the field's shortcut does not pass it (see fieldRule); paths are the JSON
// names written out here, and item paths are formatted only when an item
// fails.
type checker struct {
	fields []FieldError
	// library applies the rules to every field (see validate).
	library bool
}

func check[T any](c *checker, field string, v T, r *fieldRule[T]) {
	if !c.library && r.pass(v) {
		return
	}
	if err := validation.Validate(v, r.rules...); err != nil {
		c.fields = append(c.fields, FieldError{Field: field, Reason: err.Error()})
	}
}

func checkItem[T any](c *checker, i int, field string, v T, r *fieldRule[T]) {
	if !c.library && r.pass(v) {
		return
	}
	if err := validation.Validate(v, r.rules...); err != nil {
		c.fields = append(c.fields, FieldError{Field: "items[" + strconv.Itoa(i) + "]." + field, Reason: err.Error()})
	}
}

func (c *checker) structure(o *Order) {
	check(c, "order_uid", o.OrderUID, uidRules)
	check(c, "track_number", o.TrackNumber, requiredRules)
	check(c, "entry", o.Entry, requiredRules)

	d := &o.Delivery
	check(c, "delivery.name", d.Name, requiredRules)
	check(c, "delivery.phone", d.Phone, requiredRules)
	check(c, "delivery.zip", d.Zip, requiredRules)
	check(c, "delivery.city", d.City, requiredRules)
	check(c, "delivery.address", d.Address, requiredRules)
	check(c, "delivery.region", d.Region, requiredRules)
	check(c, "delivery.email", d.Email, emailRules)

	p := &o.Payment
	check(c, "payment.transaction", p.Transaction, requiredRules)
	check(c, "payment.request_id", p.RequestID, optionalRules)
	check(c, "payment.currency", p.Currency, currencyRules)
	check(c, "payment.provider", p.Provider, requiredRules)
	check(c, "payment.amount", p.Amount, moneyRules)
	check(c, "payment.payment_dt", p.PaymentDT, paymentDTRules)
	check(c, "payment.bank", p.Bank, requiredRules)
	check(c, "payment.delivery_cost", p.DeliveryCost, moneyRules)
	check(c, "payment.goods_total", p.GoodsTotal, moneyRules)
	check(c, "payment.custom_fee", p.CustomFee, moneyRules)

	before := len(c.fields)
	check(c, "items", o.Items, itemsRules)
	if len(c.fields) == before {
		// Items are checked only when their count is valid, so that a
		// message of a million empty items yields one error, not millions.
		for i := range o.Items {
			it := &o.Items[i]
			checkItem(c, i, "chrt_id", it.ChrtID, idRules)
			checkItem(c, i, "track_number", it.TrackNumber, requiredRules)
			checkItem(c, i, "price", it.Price, moneyRules)
			checkItem(c, i, "rid", it.RID, requiredRules)
			checkItem(c, i, "name", it.Name, requiredRules)
			checkItem(c, i, "sale", it.Sale, saleRules)
			checkItem(c, i, "size", it.Size, requiredRules)
			checkItem(c, i, "total_price", it.TotalPrice, moneyRules)
			checkItem(c, i, "nm_id", it.NmID, idRules)
			checkItem(c, i, "brand", it.Brand, requiredRules)
			checkItem(c, i, "status", it.Status, idRules)
		}
	}

	check(c, "locale", o.Locale, requiredRules)
	check(c, "internal_signature", o.InternalSignature, optionalRules)
	check(c, "customer_id", o.CustomerID, requiredRules)
	check(c, "delivery_service", o.DeliveryService, requiredRules)
	check(c, "shardkey", o.ShardKey, requiredRules)
	check(c, "sm_id", o.SmID, idRules)
	check(c, "date_created", o.DateCreated, dateRules)
	check(c, "oof_shard", o.OofShard, requiredRules)
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
