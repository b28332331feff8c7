package model

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/invopop/validation"
)

// agree checks, for every value, that the shortcut vouches only for
// values the rules accept (pass(v) implies no error), and that it does
// vouch where want says so: a shortcut that never passes would be correct
// but useless.
func agree[T any](t *testing.T, name string, r *fieldRule[T], values []T, want func(T) bool) {
	t.Helper()
	for _, v := range values {
		pass := r.pass(v)
		err := validation.Validate(v, r.rules...)
		if pass && err != nil {
			t.Errorf("%s: shortcut passes %#v, the rules refuse it: %v", name, v, err)
		}
		if want != nil && pass != want(v) {
			t.Errorf("%s: shortcut says %v for %#v", name, pass, v)
		}
	}
}

func TestShortcutsImplyRules(t *testing.T) {
	strs := []string{"", "a", "a\x00", strings.Repeat("a", 255), strings.Repeat("a", 256),
		strings.Repeat("ж", 127), strings.Repeat("ж", 128), strings.Repeat("ж", 255), strings.Repeat("ж", 256),
		"A_-9", strings.Repeat("x", 64), strings.Repeat("x", 65), "b563 feb7", "b563.feb7", "é", "USD", "usd",
		"RUB", "XYZ", "USDT", "test@gmail.com", "a.b-c+d@mail.example.org"}
	plain := func(s string) bool { return s != "" && len(s) <= 255 && !strings.Contains(s, "\x00") }
	agree(t, "required", requiredRules, strs, plain)
	agree(t, "optional", optionalRules, strs, func(s string) bool { return len(s) <= 255 && !strings.Contains(s, "\x00") })
	agree(t, "uid", uidRules, strs, UIDPattern.MatchString)
	agree(t, "currency", currencyRules, strs, func(s string) bool { return s == "USD" || s == "RUB" })

	ints := []int64{math.MinInt64, -1, 0, 1, 100, 101, MaxID, MaxID + 1, MaxMoney, MaxMoney + 1, math.MaxInt64}
	agree(t, "money", moneyRules, ints, func(v int64) bool { return v >= 0 && v <= MaxMoney })
	agree(t, "id", idRules, ints, func(v int64) bool { return v >= 0 && v <= MaxID })
	agree(t, "sale", saleRules, ints, func(v int64) bool { return v >= 0 && v <= 100 })
	agree(t, "payment_dt", paymentDTRules, ints, func(v int64) bool { return v >= 1 })

	plus := time.FixedZone("X", 3600)
	agree(t, "date", dateRules, []time.Time{{}, time.Time{}.In(plus), time.Date(0, 1, 1, 0, 0, 0, 0, plus),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2021, 11, 26, 6, 22, 19, 0, plus),
		time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), time.Date(9999, 12, 31, 23, 30, 0, 0, time.FixedZone("Y", -3600))}, nil)
	agree(t, "items", itemsRules, [][]Item{nil, {}, make([]Item, 1), make([]Item, MaxItems), make([]Item, MaxItems+1)},
		func(items []Item) bool { return len(items) >= 1 && len(items) <= MaxItems })

	emails := []string{"test@gmail.com", "a.b-c+d@mail.example.org", "x@y.co", "a@b.c", "a@b", "a@b.", "a@b.c1",
		"a@b.1c", "a@-b.com", "a@b-.com", "a@b..com", ".a@b.com", "a.@b.com", "a..b@b.com", "a@b@c.com", "@b.com",
		"\"a b\"@c.com", "é@c.com", "a@é.com", "A@B.COM", "a@b.com.", "a b@c.com", "!#$%&'*+-/=?^_`{|}~@x.org"}
	agree(t, "email", emailRules, emails, nil)
	// Random addresses near the shortcut's edges: it must never vouch
	// for one the pattern refuses.
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "ab0Z.-_@+~\"é "
	runes := []rune(alphabet)
	for range 200_000 {
		var b strings.Builder
		for range 1 + rng.IntN(12) {
			b.WriteRune(runes[rng.IntN(len(runes))])
		}
		s := b.String()
		if emailRules.pass(s) && validation.Validate(s, emailRules.rules...) != nil {
			t.Fatalf("email shortcut passes %q, the pattern refuses it", s)
		}
	}
	passed := 0
	for _, s := range emails {
		if emailRules.pass(s) {
			passed++
		}
	}
	if passed < 6 {
		t.Errorf("email shortcut passes only %d of the plain addresses", passed)
	}
}
