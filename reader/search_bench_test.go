package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderservice/orders/reader/auth/authtest"
	"github.com/orderservice/orders/shared/model"
	"github.com/orderservice/orders/shared/ordergen"
	"github.com/orderservice/orders/shared/testenv"
)

// searchSet is what BenchmarkSearch stored and asks for.
type searchSet struct {
	tracks    []string // track numbers of stored orders, a sample
	customers []string // customers with a few orders each, a sample
	heavy     []string // customers with a long history (heavyOrders each)
}

const (
	heavyCustomers = 10
	heavyOrders    = 2000
	// ordersPerCustomer is the mean history of the other customers.
	ordersPerCustomer = 20
)

// loadSearchSet stores n generated orders in pg with COPY, as the
// ingestor's writer does, in transactions of 5,000 orders while the next
// chunk is generated; with store false it generates the same orders (the
// generator is seeded) without storing them, for a database that holds
// them already. heavyCustomers customers have heavyOrders orders each,
// spread over the generator's 30 days; the others have ordersPerCustomer
// on average.
func loadSearchSet(b *testing.B, pg *testenv.PG, n int, store bool) searchSet {
	b.Helper()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 7))
	gen := ordergen.New(77)
	regular := max(1, n/ordersPerCustomer)
	var set searchSet
	for i := range heavyCustomers {
		set.heavy = append(set.heavy, fmt.Sprintf("heavy-%02d", i))
	}
	chunks := make(chan []*model.Order, 2)
	go func() {
		defer close(chunks)
		for done := 0; done < n; {
			chunk := gen.Orders(min(5000, n-done))
			for _, o := range chunk {
				if rng.IntN(n) < heavyCustomers*heavyOrders {
					o.CustomerID = set.heavy[rng.IntN(heavyCustomers)]
				} else {
					o.CustomerID = "customer-" + strconv.Itoa(rng.IntN(regular))
				}
			}
			done += len(chunk)
			chunks <- chunk
		}
	}()
	seenCustomer := map[string]bool{}
	for chunk := range chunks {
		if store {
			if err := copyOrders(ctx, pg.Pool, chunk); err != nil {
				b.Fatalf("load orders: %v", err)
			}
		}
		for i, o := range chunk {
			if i%100 == 0 && len(set.tracks) < 10_000 {
				set.tracks = append(set.tracks, o.TrackNumber)
			}
			if i%97 == 0 && strings.HasPrefix(o.CustomerID, "customer-") && !seenCustomer[o.CustomerID] && len(set.customers) < 10_000 {
				seenCustomer[o.CustomerID] = true
				set.customers = append(set.customers, o.CustomerID)
			}
		}
	}
	return set
}

// copyOrders stores orders in one transaction, a COPY per table, with the
// summary columns of orders set as the ingestor's writer sets them.
func copyOrders(ctx context.Context, pool *pgxpool.Pool, orders []*model.Order) error {
	var ords, dels, pays, items [][]any
	for _, o := range orders {
		canonical, err := o.Canonical()
		if err != nil {
			return err
		}
		sum := sha256.Sum256(canonical)
		ords = append(ords, []any{o.OrderUID, o.TrackNumber, o.Entry, o.Locale, o.InternalSignature, o.CustomerID,
			o.DeliveryService, o.ShardKey, o.SmID, o.DateCreated, o.OofShard, sum[:],
			o.Payment.Amount, o.Payment.Currency, int16(len(o.Items))})
		d := o.Delivery
		dels = append(dels, []any{o.OrderUID, d.Name, d.Phone, d.Zip, d.City, d.Address, d.Region, d.Email})
		p := o.Payment
		pays = append(pays, []any{o.OrderUID, p.Transaction, p.RequestID, p.Currency, p.Provider, p.Amount,
			p.PaymentDT, p.Bank, p.DeliveryCost, p.GoodsTotal, p.CustomFee})
		for i, it := range o.Items {
			items = append(items, []any{o.OrderUID, i, it.ChrtID, it.TrackNumber, it.Price, it.RID, it.Name,
				it.Sale, it.Size, it.TotalPrice, it.NmID, it.Brand, it.Status})
		}
	}
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		for _, c := range []struct {
			table string
			cols  []string
			rows  [][]any
		}{
			{"orders", []string{"order_uid", "track_number", "entry", "locale", "internal_signature", "customer_id",
				"delivery_service", "shardkey", "sm_id", "date_created", "oof_shard", "content_sha256",
				"amount", "currency", "item_count"}, ords},
			{"delivery", []string{"order_uid", "name", "phone", "zip", "city", "address", "region", "email"}, dels},
			{"payment", []string{"order_uid", "transaction", "request_id", "currency", "provider", "amount",
				"payment_dt", "bank", "delivery_cost", "goods_total", "custom_fee"}, pays},
			{"items", []string{"order_uid", "position", "chrt_id", "track_number", "price", "rid", "name",
				"sale", "size", "total_price", "nm_id", "brand", "status"}, items},
		} {
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{c.table}, c.cols, pgx.CopyFromRows(c.rows)); err != nil {
				return fmt.Errorf("copy %s: %w", c.table, err)
			}
		}
		return nil
	})
}

// deepCursor pages through the first `skip` orders of path's list, 100 at
// a time, and returns the cursor that resumes after them.
func deepCursor(b *testing.B, base, token, path string, skip int) string {
	b.Helper()
	cursor := ""
	for done := 0; done < skip; done += 100 {
		u := base + path + "&limit=100"
		if cursor != "" {
			u += "&cursor=" + url.QueryEscape(cursor)
		}
		req, err := http.NewRequest(http.MethodGet, u, nil)
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Authorization", authtest.Bearer(token))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		var page struct {
			NextCursor *string `json:"next_cursor"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || page.NextCursor == nil {
			b.Fatalf("GET %s: %d %v: no next page after %d orders", u, resp.StatusCode, err, done)
		}
		cursor = *page.NextCursor
	}
	return cursor
}

// BenchmarkSearch: GET /orders by track number and by customer over a large
// table (READER_BENCH_SEARCH_ORDERS orders; make bench-search stores
// 1,000,000), 64 connections, in rounds that alternate the cases. A first
// page of a long customer history is measured against a page 1,900 orders
// deep in the same histories: keyset pages cost the same wherever they
// are. It skips unless READER_BENCH_SEARCH_ORDERS is set: loading takes
// minutes. READER_BENCH_SEARCH_KEEP=1 keeps the loaded database for the
// next run with the same READER_BENCH_SEARCH_ORDERS and schema, which then
// skips the load (the database is keep_search_<orders>_<schema>; drop it
// with DROP DATABASE when done). Earlier runs' searches leave it as a
// running service's table is: read, vacuumed, its pages cached.
func BenchmarkSearch(b *testing.B) {
	n, err := strconv.Atoi(os.Getenv("READER_BENCH_SEARCH_ORDERS"))
	if err != nil || n <= 0 {
		b.Skip("set READER_BENCH_SEARCH_ORDERS (make bench-search stores 1,000,000 orders)")
	}
	if n < 2*heavyCustomers*heavyOrders {
		b.Fatalf("READER_BENCH_SEARCH_ORDERS=%d: at least %d, for the long customer histories", n, 2*heavyCustomers*heavyOrders)
	}
	var (
		pg  *testenv.PG
		set searchSet
	)
	load := func(pg *testenv.PG) error {
		start := time.Now()
		set = loadSearchSet(b, pg, n, true)
		loaded := time.Since(start)
		vacuumAnalyze(b, pg)
		b.Logf("stored %d orders in %v (%.0f orders/s, COPY in transactions of 5,000, generation included); VACUUM ANALYZE %v",
			n, loaded.Round(time.Second), float64(n)/loaded.Seconds(), (time.Since(start) - loaded).Round(time.Second))
		return nil
	}
	if os.Getenv("READER_BENCH_SEARCH_KEEP") == "" {
		pg = testenv.Postgres(b)
		_ = load(pg)
	} else {
		var reused bool
		if pg, reused = testenv.KeptPostgres(b, "search_"+strconv.Itoa(n), load); reused {
			start := time.Now()
			set = loadSearchSet(b, pg, n, false)
			b.Logf("reusing %s, loaded by an earlier run (READER_BENCH_SEARCH_KEEP); the same orders generated again for their sample in %v",
				pg.Name, time.Since(start).Round(time.Second))
		}
	}
	base, ops, keys := benchServe(b, pg, map[string]string{"READER_WARM_COUNT": "0"})

	paths := func(param string, values []string, suffix string) []string {
		out := make([]string, len(values))
		for i, v := range values {
			out[i] = "/orders?" + param + "=" + url.QueryEscape(v) + suffix
		}
		return out
	}
	var deep []string
	for _, c := range set.heavy {
		list := "/orders?customer_id=" + url.QueryEscape(c)
		deep = append(deep, list+"&cursor="+url.QueryEscape(deepCursor(b, base, keys.read, list, heavyOrders-100)))
	}
	cases := []struct {
		name  string
		paths []string
	}{
		{"track_number", paths("track_number", set.tracks, "")},
		{"customer_id", paths("customer_id", set.customers, "")},
		{"customer_id long history, first page", paths("customer_id", set.heavy, "")},
		{"customer_id long history, 1,900 deep", deep},
	}
	for _, c := range cases {
		for _, p := range c.paths[:min(len(c.paths), 20)] {
			mustGet(b, base+p, keys.read) // every path is a 200
		}
	}
	// The queries reader/postgres's Search sends for these filters (see
	// buildSearchSQL): a batch of track numbers, of customers, of long
	// histories past a cursor, all in the LATERAL form, and a currency
	// alone, a query of its own.
	lateral := func(conds, arrays, columns string) string {
		return "SELECT (q.i - 1)::int4, s.* FROM unnest(" + arrays + ") WITH ORDINALITY AS q(lim, " + columns + ", i)\n" +
			"CROSS JOIN LATERAL (SELECT o.order_uid, o.track_number, o.date_created, o.amount, o.currency, o.item_count\n" +
			"\tFROM orders o WHERE o.amount IS NOT NULL AND " + conds + "\n" +
			"\tORDER BY o.date_created DESC, o.order_uid DESC LIMIT q.lim) s"
	}
	quoted := func(vs []string) string {
		q := make([]string, len(vs))
		for i, v := range vs {
			q[i] = "'" + strings.ReplaceAll(v, "'", "''") + "'"
		}
		return "ARRAY[" + strings.Join(q, ", ") + "]::text[]"
	}
	limits := func(n int) string { return "array_fill(21, ARRAY[" + strconv.Itoa(n) + "])" }
	for _, c := range []struct{ name, sql string }{
		{"20 track numbers", lateral("o.track_number = q.track_number", limits(20)+", "+quoted(set.tracks[:20]), "track_number")},
		{"20 customers", lateral("o.customer_id = q.customer_id", limits(20)+", "+quoted(set.customers[:20]), "customer_id")},
		{"10 long histories past a cursor", lateral("o.customer_id = q.customer_id AND (o.date_created, o.order_uid) < (q.after_date, q.after_uid)",
			limits(10)+", "+quoted(set.heavy)+", array_fill(now(), ARRAY[10]), array_fill(''::text, ARRAY[10])", "customer_id, after_date, after_uid")},
		{"a currency past a cursor", "SELECT 0::int4, o.order_uid, o.track_number, o.date_created, o.amount, o.currency, o.item_count\n" +
			"FROM orders o WHERE o.amount IS NOT NULL AND o.currency = 'USD' AND (o.date_created, o.order_uid) < (now(), '')\n" +
			"ORDER BY o.date_created DESC, o.order_uid DESC LIMIT 21"},
	} {
		rows, err := pg.Pool.Query(context.Background(), "EXPLAIN (ANALYZE, BUFFERS, TIMING OFF) "+c.sql)
		if err != nil {
			b.Fatalf("EXPLAIN %s: %v\n%s", c.name, err, c.sql)
		}
		plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("EXPLAIN %s:\n%s", c.name, strings.Join(plan, "\n"))
	}
	if _, err := exec.LookPath("wrk"); err != nil {
		b.Log("wrk not installed: measuring with the Go client (apt-get install wrk for lower client overhead)")
	}
	const rounds = 3
	d := max(time.Second, benchDuration()/rounds)
	for b.Loop() {
		results := make([][]loadResult, len(cases))
		for round := range rounds {
			for i, c := range cases {
				searches0 := scrape(b, ops, "reader_db_search_batch_searches_sum")
				batches0 := scrape(b, ops, "reader_db_search_batch_searches_count")
				pg0 := testenv.BackendCPU(b, pg.Pool, "order_reader")
				r, ok := wrkLoad(b, base, keys.read, c.paths, d, 2, benchProfile("search-"+c.name, round+1))
				if !ok {
					r = goLoad(b, base, keys.read, c.paths, d, false)
				}
				pgCPU := testenv.BackendCPU(b, pg.Pool, "order_reader").Since(pg0)
				if r.errors > 0 {
					b.Errorf("%s: %d errors", c.name, r.errors)
				}
				b.Logf("search %s round %d: %v", c.name, round+1, r)
				if pgCPU > 0 && r.requests > 0 {
					b.Logf("search %s round %d: CPU per request: reader %v, PostgreSQL %v, client %v", c.name, round+1,
						r.cpuPerReq.Round(100*time.Nanosecond), (pgCPU / time.Duration(r.requests)).Round(100*time.Nanosecond),
						r.clientCPUPerReq.Round(100*time.Nanosecond))
				}
				if batches := scrape(b, ops, "reader_db_search_batch_searches_count") - batches0; batches > 0 {
					b.Logf("search %s round %d: %.1f searches per round trip to PostgreSQL", c.name, round+1,
						(scrape(b, ops, "reader_db_search_batch_searches_sum")-searches0)/batches)
				}
				results[i] = append(results[i], r)
			}
		}
		for i, c := range cases {
			m := median(results[i])
			b.Logf("search %s (median of %d rounds): %.0f req/s, p99 %v", c.name, rounds, m.rps, m.p99.Round(10*time.Microsecond))
			key := strings.NewReplacer(" ", "-", ",", "").Replace(c.name)
			b.ReportMetric(m.rps, key+"-req/s")
			b.ReportMetric(float64(m.p99.Microseconds())/1000, key+"-p99-ms")
		}
		b.ReportMetric(0, "ns/op")
	}
}
