package httpapi

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/orderservice/orders/reader/cache"
)

// TestOrderPageJSON: the hand-written encoding of a page is what
// json.Marshal writes, byte for byte, whatever the strings hold, and fails
// where json.Marshal fails.
func TestOrderPageJSON(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, time.November, 30, 23, 59, 59, 123456000, time.UTC)
	summary := func(uid, track, currency string, created time.Time) cache.Summary {
		return cache.Summary{OrderUID: uid, TrackNumber: track, DateCreated: created, Amount: 1817, Currency: currency, ItemCount: 3}
	}
	cursor := "AZ-_09abc"
	moscow := time.FixedZone("MSK", 3*3600)
	tests := []struct {
		name string
		page orderPage
	}{
		{"empty, last page", orderPage{Orders: []cache.Summary{}}},
		{"nil orders", orderPage{}},
		{"two, with a next page", orderPage{Orders: []cache.Summary{
			summary("b563feb7b2b84b6test", "WBILMTESTTRACK", "USD", at),
			summary("b563feb7b2b84b6tesu", "WBILMTESTTRACK", "RUB", at.Add(-time.Hour)),
		}, NextCursor: &cursor}},
		{"milliseconds, a fraction of three digits", orderPage{Orders: []cache.Summary{summary("a", "t", "EUR", at.Truncate(time.Millisecond))}}},
		{"one nanosecond", orderPage{Orders: []cache.Summary{summary("a", "t", "EUR", at.Truncate(time.Second).Add(1))}}},
		{"year 1, January 1st", orderPage{Orders: []cache.Summary{summary("a", "t", "EUR", time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC))}}},
		{"year 9999, the last instant", orderPage{Orders: []cache.Summary{summary("a", "t", "EUR", time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC))}}},
		{"whole seconds, no fraction", orderPage{Orders: []cache.Summary{summary("a", "t", "EUR", at.Truncate(time.Second))}}},
		{"another zone", orderPage{Orders: []cache.Summary{summary("a", "t", "EUR", at.In(moscow))}}},
		{"year 0", orderPage{Orders: []cache.Summary{summary("a", "t", "EUR", time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC))}}},
		{"HTML and quotes", orderPage{Orders: []cache.Summary{summary("a", `<b>"x"&\y`, "EUR", at)}}},
		{"control characters", orderPage{Orders: []cache.Summary{summary("a", "tab\there\x01\u2028", "EUR", at)}}},
		{"not ASCII", orderPage{Orders: []cache.Summary{summary("a", "трек-№1", "EUR", at)}}},
		{"not UTF-8", orderPage{Orders: []cache.Summary{summary("a", "bad\xffbyte", "EUR", at)}}},
		{"negative amount, zero items", orderPage{Orders: []cache.Summary{{OrderUID: "a", Amount: -5, DateCreated: at}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			want, err := json.Marshal(&tt.page)
			if err != nil {
				t.Fatal(err)
			}
			got, err := tt.page.appendJSON([]byte("prefix"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, append([]byte("prefix"), want...)) {
				t.Errorf("got  %s\nwant prefix%s", got, want)
			}
		})
	}
	t.Run("a year json.Marshal refuses", func(t *testing.T) {
		t.Parallel()
		p := orderPage{Orders: []cache.Summary{summary("a", "t", "EUR", time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC))}}
		if _, err := json.Marshal(&p); err == nil {
			t.Fatal("json.Marshal encodes the year 10000; the case tests nothing")
		}
		if got, err := p.appendJSON(nil); err == nil {
			t.Errorf("appendJSON encoded the year 10000: %s", got)
		}
	})
}
