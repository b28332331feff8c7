package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/orderservice/orders/reader/cache"
	"github.com/orderservice/orders/shared/ordergen"
	"github.com/orderservice/orders/shared/testenv"
)

// TestDecodeSummaryIsScan: every form of the search query sends the
// columns decodeSummary reads, and it reads them as pgx's Scan does, for
// dates before and after PostgreSQL's epoch, to the microsecond.
func TestDecodeSummaryIsScan(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	orders := ordergen.New(5).Orders(4)
	dates := []time.Time{
		time.Date(1999, time.December, 31, 23, 59, 59, 999999000, time.UTC),
		time.Date(2000, time.January, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, time.November, 30, 12, 0, 0, 1000, time.UTC),
		time.Date(1970, time.January, 1, 0, 0, 0, 0, time.UTC),
	}
	for i, o := range orders {
		o.DateCreated = dates[i]
		o.CustomerID = "decoded"
	}
	testenv.InsertOrders(t, pg.Pool, orders...)
	ctx := context.Background()
	after := cache.Key{DateCreated: dates[2].Add(time.Microsecond), OrderUID: ""}
	for _, q := range []cache.Query{
		{Filter: cache.Filter{CustomerID: "decoded"}, Limit: 10},                // the LATERAL form
		{Filter: cache.Filter{CustomerID: "decoded"}, After: &after, Limit: 10}, // with a keyset
		{Filter: cache.Filter{CreatedFrom: dates[3]}, Limit: 10},                // a query of its own
		{Filter: cache.Filter{Currency: orders[0].Payment.Currency}, Limit: 10}, // a query of its own
	} {
		sql, args := searchQuery(q)
		rows, err := pg.Pool.Query(ctx, sql, args...)
		if err != nil {
			t.Fatal(err)
		}
		if !summaryDecoder(rows.FieldDescriptions()) {
			t.Errorf("%s: decodeSummary does not read its columns %+v", sql, rows.FieldDescriptions())
		}
		n := 0
		for rows.Next() {
			n++
			var (
				wantI int32
				want  cache.Summary
				got   cache.Summary
			)
			if err := rows.Scan(&wantI, &want.OrderUID, &want.TrackNumber, &want.DateCreated, &want.Amount, &want.Currency, &want.ItemCount); err != nil {
				t.Fatal(err)
			}
			v := rows.RawValues()
			gotI, err := decodeSummary(v, &got)
			if err != nil {
				t.Fatal(err)
			}
			got.OrderUID, got.TrackNumber, got.Currency = string(v[1]), string(v[2]), string(v[5])
			if gotI != wantI || got.OrderUID != want.OrderUID || got.TrackNumber != want.TrackNumber ||
				!got.DateCreated.Equal(want.DateCreated) || got.Amount != want.Amount ||
				got.Currency != want.Currency || got.ItemCount != want.ItemCount {
				t.Errorf("decodeSummary %d %+v, Scan %d %+v", gotI, got, wantI, want)
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Errorf("%s: no rows", sql)
		}
	}
}
