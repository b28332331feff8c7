package httpapi

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/orderservice/orders/reader/cache"
)

var cursorFilters = []cache.Filter{
	{},
	{TrackNumber: "WBILMTESTTRACK"},
	{CustomerID: "test", Currency: "USD"},
	{CreatedFrom: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
	{CreatedTo: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
	{TrackNumber: "a", CustomerID: "b", Currency: "EUR",
		CreatedFrom: time.Date(1969, 12, 31, 23, 59, 59, 999999000, time.UTC), CreatedTo: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)},
	// Moving a character between fields is another filter.
	{TrackNumber: "ab"}, {TrackNumber: "a", CustomerID: "b"}, {CustomerID: "ab"},
}

// TestCursorRoundTrip: a cursor gives back its key for its own filters
// and is refused, as issued for other filters, for every other one.
func TestCursorRoundTrip(t *testing.T) {
	t.Parallel()
	keys := []cache.Key{
		{DateCreated: time.Date(2021, 11, 26, 6, 22, 19, 0, time.UTC), OrderUID: "b563feb7b2b84b6test"},
		{DateCreated: time.Date(1960, 1, 1, 0, 0, 0, 1000, time.UTC), OrderUID: "a"},
		{DateCreated: time.Date(2026, 11, 1, 0, 0, 0, 999999000, time.UTC), OrderUID: strings.Repeat("Z", 64)},
	}
	for _, k := range keys {
		for i, f := range cursorFilters {
			c := encodeCursor(k, f)
			if len(c) > maxCursorLen {
				t.Errorf("cursor of %d characters, longer than maxCursorLen %d", len(c), maxCursorLen)
			}
			got, err := decodeCursor(c, f)
			if err != nil || !got.DateCreated.Equal(k.DateCreated) || got.OrderUID != k.OrderUID {
				t.Errorf("decode(encode(%v)) = %v, %v", k, got, err)
			}
			for j, other := range cursorFilters {
				if _, err := decodeCursor(c, other); i != j && !errors.Is(err, errCursorFilters) {
					t.Errorf("cursor of filter %d accepted for filter %d: %v", i, j, err)
				}
			}
		}
	}
}

// FuzzDecodeCursor: no input makes the decoder panic, and whatever it
// accepts is a cursor it would issue, character for character.
func FuzzDecodeCursor(f *testing.F) {
	k := cache.Key{DateCreated: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), OrderUID: "b563feb7b2b84b6test"}
	for _, filter := range cursorFilters {
		f.Add(encodeCursor(k, filter))
	}
	f.Add("")
	f.Add("AQ")
	f.Fuzz(func(t *testing.T, s string) {
		for _, filter := range cursorFilters {
			key, err := decodeCursor(s, filter)
			if err != nil {
				continue
			}
			if !validUID(key.OrderUID) {
				t.Fatalf("%q decoded to a malformed uid %q", s, key.OrderUID)
			}
			if again := encodeCursor(key, filter); again != s {
				t.Fatalf("%q decoded to %v, which encodes as %q", s, key, again)
			}
		}
	})
}
