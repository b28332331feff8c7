// Package ordergen generates realistic, valid orders for tests, benchmarks,
// load generation and demos.
//
// A Generator is deterministic: the same seed and base time always give the
// same sequence of orders, so a failing test or a demo data set can be
// reproduced exactly. Every order passes model.Validate with all rules on:
// totals are consistent and every item carries the order's track_number.
//
// order_uid and payment.transaction are unique within a generator by
// construction (a keyed bijection of the order's sequence number), and the
// key and a 16-bit tag are derived from the seed, so generators with
// different seeds do not collide in practice either: two streams would have
// to agree on 80 bits.
package ordergen

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/brianvoe/gofakeit/v7"

	"github.com/orderservice/orders/shared/model"
)

// DefaultBase is the base time New uses. It is fixed, not time.Now, so that a
// seed alone reproduces a data set; use NewWithTime for orders that look
// recent on the day they are generated.
var DefaultBase = time.Date(2026, time.November, 1, 0, 0, 0, 0, time.UTC)

// Spread is how far before the base time date_created may fall.
const Spread = 30 * 24 * time.Hour

// MaxItems is the largest number of items in a generated order.
const MaxItems = 5

// Small realistic value sets. Currencies are ISO 4217 codes an online shop in
// the region would see.
var (
	currencies       = []string{"RUB", "RUB", "RUB", "USD", "EUR", "KZT", "BYN", "ILS"}
	providers        = []string{"wbpay", "wbpay", "applepay", "googlepay", "sbp"}
	banks            = []string{"alpha", "sber", "tinkoff", "vtb", "raiffeisen"}
	deliveryServices = []string{"meest", "cdek", "boxberry", "dhl", "russianpost"}
	locales          = []string{"en", "ru", "ru", "kk", "he"}
	entries          = []string{"WBIL", "WBIL", "WBRU", "WBKZ"}
	sizes            = []string{"0", "0", "XS", "S", "M", "L", "XL", "42", "44", "46"}
	sales            = []int{0, 0, 0, 5, 10, 15, 20, 25, 30, 50}
	statuses         = []int64{202, 202, 200, 201, 203}
)

// Generator produces orders. It is safe for concurrent use; the sequence
// is then still the same set of orders, though which goroutine gets which
// order depends on scheduling.
type Generator struct {
	mu   sync.Mutex
	fake *gofakeit.Faker
	base time.Time
	n    uint64 // orders generated so far

	uidKey, txKey [2]uint64
	tag           uint16
}

// New returns a generator seeded with seed whose orders are dated in the 30
// days before DefaultBase.
func New(seed int64) *Generator { return NewWithTime(seed, DefaultBase) }

// NewWithTime returns a generator seeded with seed whose orders are dated in
// the 30 days before base (truncated to whole seconds, in UTC).
func NewWithTime(seed int64, base time.Time) *Generator {
	// splitmix64 spreads nearby seeds (0, 1, 2...) over unrelated streams
	// and keys; gofakeit.New would treat seed 0 as "random", which would
	// break reproducibility, so the PCG source is built here.
	s := uint64(seed)
	next := func() uint64 {
		s += 0x9e3779b97f4a7c15
		return mix(s)
	}
	g := &Generator{
		fake: gofakeit.NewFaker(rand.NewPCG(next(), next()), false),
		base: base.UTC().Truncate(time.Second),
	}
	g.uidKey = [2]uint64{next(), next()}
	g.txKey = [2]uint64{next(), next()}
	g.tag = uint16(next())
	return g
}

// Orders returns the next n orders of the sequence, as n calls of Order
// would.
func (g *Generator) Orders(n int) []*model.Order {
	out := make([]*model.Order, n)
	for i := range out {
		out[i] = g.Order()
	}
	return out
}

// Order returns the next order of the sequence.
func (g *Generator) Order() *model.Order {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := g.n
	g.n++
	f := g.fake

	uid := fmt.Sprintf("%016x%04x", permute(n, g.uidKey), g.tag)
	track := "WBIL" + upper(f.LetterN(10))
	created := g.base.Add(-time.Duration(int64(f.IntN(int(Spread/time.Second)))) * time.Second)

	items := make([]model.Item, 1+f.IntN(MaxItems))
	var goods int64
	for i := range items {
		price := int64(f.IntRange(50, 50_000))
		sale := int64(sales[f.IntN(len(sales))])
		total := price * (100 - sale) / 100
		goods += total
		items[i] = model.Item{
			ChrtID:      int64(f.IntRange(1_000_000, 99_999_999)),
			TrackNumber: track,
			Price:       price,
			RID:         fmt.Sprintf("%016xtest", f.Uint64()),
			Name:        f.ProductName(),
			Sale:        sale,
			Size:        pick(f, sizes),
			TotalPrice:  total,
			NmID:        int64(f.IntRange(1_000_000, 9_999_999)),
			Brand:       f.Company(),
			Status:      statuses[f.IntN(len(statuses))],
		}
	}
	deliveryCost := int64(f.IntRange(0, 30)) * 100
	var customFee int64
	if f.IntN(10) == 0 {
		customFee = int64(f.IntRange(1, 50)) * 10
	}
	var requestID string
	if f.IntN(5) == 0 {
		requestID = fmt.Sprintf("%012x", f.Uint64()>>16)
	}
	first, last := f.FirstName(), f.LastName()

	return &model.Order{
		OrderUID:    uid,
		TrackNumber: track,
		Entry:       pick(f, entries),
		Delivery: model.Delivery{
			Name:    first + " " + last,
			Phone:   "+" + f.Numerify("9##########"),
			Zip:     f.Zip(),
			City:    f.City(),
			Address: f.Street(),
			Region:  f.State(),
			Email:   f.Email(),
		},
		Payment: model.Payment{
			Transaction:  fmt.Sprintf("%016x%04x", permute(n, g.txKey), g.tag),
			RequestID:    requestID,
			Currency:     pick(f, currencies),
			Provider:     pick(f, providers),
			Amount:       goods + deliveryCost + customFee,
			PaymentDT:    created.Unix() - int64(f.IntN(300)), // paid shortly before the order was recorded, as in the upstream sample
			Bank:         pick(f, banks),
			DeliveryCost: deliveryCost,
			GoodsTotal:   goods,
			CustomFee:    customFee,
		},
		Items:             items,
		Locale:            pick(f, locales),
		InternalSignature: "",
		CustomerID:        f.Username(),
		DeliveryService:   pick(f, deliveryServices),
		ShardKey:          fmt.Sprint(f.IntN(10)),
		SmID:              int64(f.IntRange(1, 100)),
		DateCreated:       created,
		OofShard:          fmt.Sprint(1 + f.IntN(2)),
	}
}

func pick(f *gofakeit.Faker, from []string) string { return from[f.IntN(len(from))] }

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// mix is the splitmix64 finaliser: a bijection on uint64 that scrambles
// every input bit into every output bit.
func mix(x uint64) uint64 {
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// permute is a keyed bijection on uint64: distinct n give distinct results
// for one key, and different keys give unrelated sequences.
func permute(n uint64, key [2]uint64) uint64 { return mix(mix(n^key[0]) ^ key[1]) }
