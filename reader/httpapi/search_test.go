package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/orderservice/orders/reader/auth/authtest"
	"github.com/orderservice/orders/shared/model"
	"github.com/orderservice/orders/shared/ordergen"
	"github.com/orderservice/orders/shared/testenv"
)

type summary struct {
	OrderUID    string    `json:"order_uid"`
	TrackNumber string    `json:"track_number"`
	DateCreated time.Time `json:"date_created"`
	Amount      int64     `json:"amount"`
	Currency    string    `json:"currency"`
	ItemCount   int       `json:"item_count"`
}

type page struct {
	Orders     []summary `json:"orders"`
	NextCursor *string   `json:"next_cursor"`
	link       string    // the Link header
}

type problemBody struct {
	Status    int    `json:"status"`
	Detail    string `json:"detail"`
	Parameter string `json:"parameter"`
}

// client is a stack and the credential its requests carry (orders:read).
type client struct {
	*stack
	bearer string
}

func newClient(t *testing.T, pg *testenv.PG, rd *testenv.RedisEnv) *client {
	t.Helper()
	keys := authtest.NewKeys(t)
	return &client{newStack(t, pg.URLAs("order_reader"), rd, keys), authtest.Bearer(keys.Read)}
}

// answer is a response, read.
type answer struct {
	StatusCode int
	Header     http.Header
}

// fetch sends method path (with its query) to c and returns the answer
// and its body.
func fetch(t *testing.T, c *client, method, path string) (answer, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, c.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", c.bearer)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header}, body
}

// getPage GETs a page of /orders and fails the test unless it is a 200.
func getPage(t *testing.T, s *client, path string) page {
	t.Helper()
	resp, body := fetch(t, s, http.MethodGet, path)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	var p page
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, body)
	}
	p.link = resp.Header.Get("Link")
	return p
}

var nextLink = regexp.MustCompile(`^<([^>]+)>; rel="next"$`)

// next returns the path of p's next page from its Link header, checking
// that it carries the cursor of next_cursor; "" on the last page.
func (p page) next(t *testing.T) string {
	t.Helper()
	if p.NextCursor == nil {
		if p.link != "" {
			t.Fatalf("last page (next_cursor null) with Link %q", p.link)
		}
		return ""
	}
	m := nextLink.FindStringSubmatch(p.link)
	if m == nil {
		t.Fatalf("next_cursor %q but Link %q", *p.NextCursor, p.link)
	}
	u, err := url.Parse(m[1])
	if err != nil || u.Path != "/orders" || u.Query().Get("cursor") != *p.NextCursor {
		t.Fatalf("Link %q does not lead to /orders with next_cursor %q (%v)", p.link, *p.NextCursor, err)
	}
	return m[1]
}

func requireBadRequest(t *testing.T, s *client, path, param string) problemBody {
	t.Helper()
	resp, body := fetch(t, s, http.MethodGet, path)
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("GET %.200s: %d %s %s, want a 400 problem", path, resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	var p problemBody
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("GET %.200s: %v: %s", path, err, body)
	}
	if p.Status != 400 || p.Parameter != param || p.Detail == "" || !strings.Contains(p.Detail, param) {
		t.Fatalf("GET %.200s: problem %+v, want one naming parameter %q", path, p, param)
	}
	return p
}

// TestSearchPagingWhileOrdersArrive pages through 1,000 matching orders in
// pages of 37 while other orders that match are stored all along: some
// newer than every listed one (an offset would then list orders twice),
// some dated among them. Every one of the 1,000 is listed exactly once, in
// order; an order stored meanwhile may be listed (once, in its place) when
// its date is past the cursor.
func TestSearchPagingWhileOrdersArrive(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	rd := testenv.Redis(t)
	gen := ordergen.New(51)
	base := time.Date(2026, time.June, 1, 0, 0, 0, 0, time.UTC)
	want := map[string]*model.Order{}
	var stored []*model.Order
	for i := range 1250 {
		o := gen.Order()
		o.CustomerID = "other"
		if i%5 != 0 { // 1,000 of them
			o.CustomerID = "pager"
			want[o.OrderUID] = o
		}
		// Minutes apart, with runs of equal dates that order_uid orders.
		o.DateCreated = base.Add(time.Duration(i/3) * time.Minute)
		stored = append(stored, o)
	}
	if len(want) != 1000 {
		t.Fatalf("%d matching orders, want 1000", len(want))
	}
	testenv.InsertOrders(t, pg.Pool, stored...)
	s := newClient(t, pg, rd)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	arrived := make(chan struct{}) // one per stored batch
	added := map[string]bool{}     // written by the writer before it signals
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		late := ordergen.New(52)
		for n := 0; ctx.Err() == nil; n++ {
			batch := late.Orders(4)
			for i, o := range batch {
				o.CustomerID = "pager"
				if i < 2 {
					o.DateCreated = time.Now().UTC().Truncate(time.Microsecond) // newer than every listed order
				} else {
					o.DateCreated = base.Add(time.Duration((n*7+i*131)%433) * time.Minute)
				}
				added[o.OrderUID] = true
			}
			testenv.InsertOrders(t, pg.Pool, batch...)
			select {
			case arrived <- struct{}{}:
			case <-ctx.Done():
			}
		}
	}()

	seen := map[string]int{}
	var prev *summary
	pages, late := 0, 0
	for path := "/orders?customer_id=pager&limit=37"; path != ""; {
		p := getPage(t, s, path)
		if pages++; pages > 100 {
			t.Fatal("over 100 pages: the cursor does not advance")
		}
		if p.NextCursor != nil && len(p.Orders) != 37 {
			t.Fatalf("page %d: %d orders and a next page", pages, len(p.Orders))
		}
		for _, o := range p.Orders {
			if prev != nil && (o.DateCreated.After(prev.DateCreated) ||
				o.DateCreated.Equal(prev.DateCreated) && o.OrderUID >= prev.OrderUID) {
				t.Fatalf("page %d: %s (%v) listed after %s (%v): not newest first, or twice",
					pages, o.OrderUID, o.DateCreated, prev.OrderUID, prev.DateCreated)
			}
			prev = &o
			seen[o.OrderUID]++
			if w := want[o.OrderUID]; w != nil {
				if o.TrackNumber != w.TrackNumber || o.Amount != w.Payment.Amount || o.Currency != w.Payment.Currency ||
					o.ItemCount != len(w.Items) || !o.DateCreated.Equal(w.DateCreated) {
					t.Fatalf("summary %+v does not match its order", o)
				}
			} else {
				late++
			}
		}
		path = p.next(t)
		<-arrived // at least one batch stored between two pages
	}
	cancel()
	<-writerDone
	for uid := range want {
		if seen[uid] != 1 {
			t.Errorf("order %s listed %d times, want once", uid, seen[uid])
		}
	}
	for uid := range seen {
		if want[uid] == nil && !added[uid] {
			t.Errorf("order %s listed, which is not a pager's", uid)
		}
	}
	if pages < 28 {
		t.Errorf("%d pages, want at least 28 (1,000 / 37)", pages)
	}
	t.Logf("%d pages; %d orders stored meanwhile, %d of them listed", pages, len(added), late)
}

// TestSearchBadRequests: every malformed request is a 400 problem naming
// the parameter at fault.
func TestSearchBadRequests(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	rd := testenv.Redis(t)
	gen := ordergen.New(53)
	orders := gen.Orders(3)
	for _, o := range orders {
		o.CustomerID = "known"
	}
	testenv.InsertOrders(t, pg.Pool, orders...)
	s := newClient(t, pg, rd)
	first := getPage(t, s, "/orders?customer_id=known&limit=1")
	if first.NextCursor == nil {
		t.Fatal("no cursor to tamper with")
	}
	cursor := *first.NextCursor
	flipped := []byte(cursor)
	flipped[len(flipped)/2] ^= 'A' ^ 'B' // one character changed: 'A'<->'B' and others alike
	if flipped[len(flipped)/2] == cursor[len(cursor)/2] {
		t.Fatal("the flip changed nothing")
	}

	cases := []struct {
		name, query, param string
	}{
		{"unknown parameter", "foo=1", "foo"},
		{"misspelt parameter", "trackNumber=WBIL1", "trackNumber"},
		{"page instead of cursor", "page=2", "page"},
		{"limit twice", "limit=5&limit=6", "limit"},
		{"track number twice, the same", "track_number=a&track_number=a", "track_number"},
		{"customer twice", "customer_id=a&customer_id=b", "customer_id"},
		{"cursor twice", "cursor=" + cursor + "&cursor=" + cursor + "&customer_id=known", "cursor"},
		{"date without time", "created_from=2026-01-01", "created_from"},
		{"not a date", "created_to=yesterday", "created_to"},
		{"unescaped plus in the offset", "created_from=2026-11-01T00:00:00+03:00", "created_from"},
		{"date out of range", "created_to=2026-13-01T00:00:00Z", "created_to"},
		{"from after to", "created_from=2026-02-01T00:00:00Z&created_to=2026-01-31T23:59:59.999999999Z", "created_from"},
		{"empty track number", "track_number=", "track_number"},
		{"empty customer", "customer_id", "customer_id"},
		{"track number too long", "track_number=" + strings.Repeat("x", 256), "track_number"},
		{"customer too long in characters", "customer_id=" + url.QueryEscape(strings.Repeat("ж", 256)), "customer_id"},
		{"control character", "customer_id=a%00b", "customer_id"},
		{"newline", "track_number=a%0Ab", "track_number"},
		{"not UTF-8", "customer_id=%FF%FE", "customer_id"},
		{"bad escape in a value", "customer_id=a%zz", "customer_id"},
		{"lower-case currency", "currency=usd", "currency"},
		{"short currency", "currency=US", "currency"},
		{"long currency", "currency=USDX", "currency"},
		{"empty currency", "currency=", "currency"},
		{"limit 0", "limit=0", "limit"},
		{"limit 101", "limit=101", "limit"},
		{"limit not a number", "limit=abc", "limit"},
		{"limit empty", "limit=", "limit"},
		{"limit negative", "limit=-1", "limit"},
		{"limit fraction", "limit=1.5", "limit"},
		{"empty cursor", "cursor=", "cursor"},
		{"garbage cursor", "cursor=abc", "cursor"},
		{"cursor not base64", "cursor=" + url.QueryEscape("!!!!"), "cursor"},
		{"altered cursor", "customer_id=known&cursor=" + string(flipped), "cursor"},
		{"truncated cursor", "customer_id=known&cursor=" + cursor[:len(cursor)-1], "cursor"},
		{"extended cursor", "customer_id=known&cursor=" + cursor + "A", "cursor"},
		{"over-long cursor", "cursor=" + strings.Repeat("A", 4096), "cursor"},
		{"cursor of other filters", "customer_id=other&cursor=" + cursor, "cursor"},
		{"cursor without its filters", "cursor=" + cursor, "cursor"},
		{"semicolon", "limit=5;foo=1", ""},
		{"bad escape in a name", "%zz=1", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			requireBadRequest(t, s, "/orders?"+tc.query, tc.param)
		})
	}
	// The limits themselves are fine.
	for _, q := range []string{
		"limit=1", "limit=100", "track_number=" + strings.Repeat("x", 255),
		"customer_id=" + url.QueryEscape(strings.Repeat("ж", 255)), "currency=USD",
		"created_from=2026-01-01T00:00:00Z&created_to=2026-01-01T00:00:00Z",
		"created_from=2026-11-01T00:00:00%2B03:00", "created_to=2026-01-01T00:00:00.123456789-07:00",
		"customer_id=known&limit=1&cursor=" + cursor, "", "&&limit=2&",
	} {
		resp, body := fetch(t, s, http.MethodGet, "/orders?"+q)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET /orders?%.80s: %d %s, want 200", q, resp.StatusCode, body)
		}
	}
	// HEAD answers the same status without a body.
	resp, body := fetch(t, s, http.MethodHead, "/orders?limit=0")
	if resp.StatusCode != http.StatusBadRequest || len(body) != 0 {
		t.Errorf("HEAD with a bad limit: %d, %d bytes", resp.StatusCode, len(body))
	}
}

// TestSearchCursor: a cursor resumes the list it was issued for, on any
// reader instance, with any page size, and nowhere else; a page ends the
// list with next_cursor null and no Link.
func TestSearchCursor(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	rd := testenv.Redis(t)
	gen := ordergen.New(54)
	base := time.Date(2026, time.March, 1, 12, 0, 0, 0, time.UTC)
	orders := gen.Orders(12)
	for i, o := range orders {
		o.CustomerID = []string{"ann", "bob"}[i%2]
		o.Payment.Currency = "EUR"
		o.DateCreated = base.Add(time.Duration(i) * time.Hour)
	}
	testenv.InsertOrders(t, pg.Pool, orders...)
	one := newClient(t, pg, rd)
	other := newClient(t, pg, rd) // another reader instance

	const from = "2026-03-01T12:00:00Z"
	list := "/orders?customer_id=ann&created_from=" + from + "&limit=2"
	first := getPage(t, one, list)
	if len(first.Orders) != 2 || first.NextCursor == nil {
		t.Fatalf("first page %+v, want 2 orders and a cursor", first)
	}
	c := url.QueryEscape(*first.NextCursor)
	second := getPage(t, one, first.next(t))
	if len(second.Orders) != 2 || second.Orders[0].OrderUID == first.Orders[1].OrderUID {
		t.Fatalf("second page %+v after %+v", second, first)
	}
	// The same cursor, another instance: the same page.
	if got := getPage(t, other, list+"&cursor="+c); fmt.Sprint(got.Orders) != fmt.Sprint(second.Orders) {
		t.Errorf("another instance answers %+v, want %+v", got.Orders, second.Orders)
	}
	// The same filters written otherwise, or another page size: accepted.
	for _, q := range []string{
		"customer_id=ann&created_from=2026-03-01T13:00:00%2B01:00&limit=2&cursor=" + c,
		"created_from=" + from + "&customer_id=ann&limit=2&cursor=" + c,
		"customer_id=ann&created_from=" + from + "&limit=3&cursor=" + c,
	} {
		p := getPage(t, one, "/orders?"+q)
		if p.Orders[0].OrderUID != second.Orders[0].OrderUID {
			t.Errorf("?%s starts at %s, want %s", q, p.Orders[0].OrderUID, second.Orders[0].OrderUID)
		}
	}
	// Other filters: refused.
	for _, q := range []string{
		"customer_id=bob&created_from=" + from,
		"customer_id=ann",
		"customer_id=ann&created_from=2026-03-01T12:00:00.000001Z",
		"customer_id=ann&created_from=" + from + "&currency=EUR",
		"customer_id=ann&created_from=" + from + "&created_to=2027-01-01T00:00:00Z",
		"track_number=" + orders[0].TrackNumber + "&customer_id=ann&created_from=" + from,
	} {
		p := requireBadRequest(t, one, "/orders?"+q+"&cursor="+c, "cursor")
		if !strings.Contains(p.Detail, "other filters") {
			t.Errorf("?%s: detail %q, want it to say the filters differ", q, p.Detail)
		}
	}
	// The last page: ann has 6 orders, 2 per page.
	third := getPage(t, one, second.next(t))
	if len(third.Orders) != 2 || third.NextCursor != nil || third.next(t) != "" {
		t.Errorf("last page %+v, want 2 orders, next_cursor null and no Link", third)
	}
	// A list that ends on a full page: no cursor pointing at nothing.
	if p := getPage(t, one, "/orders?customer_id=ann&limit=6"); len(p.Orders) != 6 || p.NextCursor != nil {
		t.Errorf("6 of 6 orders: %d orders, next_cursor %v", len(p.Orders), p.NextCursor)
	}
	// Every single-character change of a cursor is refused.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	raw := *first.NextCursor
	for i := range raw {
		alt := alphabet[(strings.IndexByte(alphabet, raw[i])+1+i%(len(alphabet)-1))%len(alphabet)]
		bad := raw[:i] + string(alt) + raw[i+1:]
		resp, body := fetch(t, one, http.MethodGet, list+"&cursor="+bad)
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("cursor with character %d changed: %d %s", i, resp.StatusCode, body)
		}
	}
}
