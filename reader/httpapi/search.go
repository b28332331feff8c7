package httpapi

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/orderservice/orders/reader/cache"
	"github.com/orderservice/orders/shared/model"
)

const (
	defaultLimit = 20
	maxLimit     = 100
	// maxTextLen is the longest track_number or customer_id, in
	// characters: the columns are varchar(255).
	maxTextLen = 255
)

// The parameters of GET /orders, in the order their values are checked.
const (
	paramTrackNumber = "track_number"
	paramCustomerID  = "customer_id"
	paramCurrency    = "currency"
	paramCreatedFrom = "created_from"
	paramCreatedTo   = "created_to"
	paramLimit       = "limit"
	paramCursor      = "cursor"
)

var searchParams = []string{paramTrackNumber, paramCustomerID, paramCurrency,
	paramCreatedFrom, paramCreatedTo, paramLimit, paramCursor}

// orderPage is the answer of GET /orders. NextCursor is null on the last
// page.
type orderPage struct {
	Orders     []cache.Summary `json:"orders"`
	NextCursor *string         `json:"next_cursor"`
}

// listOrders serves GET and HEAD /orders: a page of order summaries,
// newest first, filtered by the query parameters (see parseSearch), with
// the cursor of the next page in next_cursor and a Link header. It always
// reads the database: the lists change with every ingested order. It is a
// plain http.Handler, so that middleware (authentication) can wrap it.
func listOrders(log *slog.Logger, s Summaries) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, perr := parseSearch(r.URL.RawQuery)
		if perr != nil {
			writeProblemParam(w, r, http.StatusBadRequest, perr.param, perr.detail)
			return
		}
		q := req.query
		limit := q.Limit
		q.Limit++ // the one more tells whether a next page exists
		list, err := s.Search(r.Context(), q)
		if err != nil {
			ctx := r.Context()
			log.LogAttrs(ctx, slog.LevelError, "listing orders failed",
				slog.String("request_id", requestID(w)), slog.Any("err", err))
			w.Header()["Retry-After"] = []string{"1"}
			writeProblem(w, r, http.StatusServiceUnavailable, "the database is unavailable")
			return
		}
		page := orderPage{Orders: list}
		if len(list) > limit {
			page.Orders = list[:limit]
			next := encodeCursor(list[limit-1].Key(), q.Filter)
			page.NextCursor = &next
			w.Header()["Link"] = []string{nextLink(r.URL.EscapedPath(), req.values, next)}
		}
		if page.Orders == nil {
			page.Orders = []cache.Summary{}
		}
		w.Header()["Cache-Control"] = noCache
		buf := pageBuffers.Get().(*[]byte)
		body, err := page.appendJSON((*buf)[:0])
		if err != nil {
			pageBuffers.Put(buf)
			writeProblem(w, r, http.StatusInternalServerError, "could not encode the answer")
			return
		}
		writeJSONBody(w, r, http.StatusOK, body)
		if cap(body) <= maxPooledPage {
			*buf = body[:0]
			pageBuffers.Put(buf)
		}
	})
}

// pageBuffers recycles the buffers pages are encoded in: the
// ResponseWriter copies what it is given, so a buffer is free again once
// writeJSONBody returns. A page of 20 summaries is about 3 KiB, of 100
// about 15; a buffer grown past maxPooledPage (by a date json.Marshal had
// to write) is left to the collector.
var pageBuffers = sync.Pool{New: func() any {
	b := make([]byte, 0, 4<<10)
	return &b
}}

const maxPooledPage = 64 << 10

// appendJSON appends the JSON encoding of p to b: the bytes json.Marshal
// writes (TestOrderPageJSON compares them), without its reflection, which
// was about two fifths of the handler's CPU for a page of 20 summaries
// (BenchmarkHandlerSearch). A date outside the years 0-9999, which
// json.Marshal refuses, goes to json.Marshal for its error.
func (p *orderPage) appendJSON(b []byte) ([]byte, error) {
	start := len(b)
	if p.Orders == nil {
		b = append(b, `{"orders":null`...)
	} else {
		b = append(b, `{"orders":[`...)
	}
	for i := range p.Orders {
		s := &p.Orders[i]
		if y := s.DateCreated.Year(); y < 0 || y > 9999 {
			body, err := json.Marshal(p)
			return append(b[:start], body...), err
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"order_uid":`...)
		b = model.AppendJSONString(b, s.OrderUID)
		b = append(b, `,"track_number":`...)
		b = model.AppendJSONString(b, s.TrackNumber)
		b = append(b, `,"date_created":"`...)
		b = appendDate(b, s.DateCreated)
		b = append(b, `","amount":`...)
		b = strconv.AppendInt(b, s.Amount, 10)
		b = append(b, `,"currency":`...)
		b = model.AppendJSONString(b, s.Currency)
		b = append(b, `,"item_count":`...)
		b = strconv.AppendInt(b, int64(s.ItemCount), 10)
		b = append(b, '}')
	}
	if p.Orders != nil {
		b = append(b, ']')
	}
	b = append(b, `,"next_cursor":`...)
	if p.NextCursor == nil {
		b = append(b, "null"...)
	} else {
		b = model.AppendJSONString(b, *p.NextCursor)
	}
	return append(b, '}'), nil
}

// appendDate appends t as t.AppendFormat(b, time.RFC3339Nano) does, for
// a year from 0 to 9999. A UTC date, every date of a page, is written
// here: AppendFormat's walk of the layout was a third of appendJSON's
// time. Other zones go to AppendFormat.
func appendDate(b []byte, t time.Time) []byte {
	if t.Location() != time.UTC {
		return t.AppendFormat(b, time.RFC3339Nano)
	}
	year, month, day := t.Date()
	hour, minute, sec := t.Clock()
	b = appendDigits(b, year, 4)
	b = appendDigits(append(b, '-'), int(month), 2)
	b = appendDigits(append(b, '-'), day, 2)
	b = appendDigits(append(b, 'T'), hour, 2)
	b = appendDigits(append(b, ':'), minute, 2)
	b = appendDigits(append(b, ':'), sec, 2)
	if ns := t.Nanosecond(); ns != 0 {
		digits := 9
		for ns%10 == 0 {
			ns /= 10
			digits--
		}
		b = appendDigits(append(b, '.'), ns, digits)
	}
	return append(b, 'Z')
}

// appendDigits appends v (0 <= v < 10^n) in n decimal digits.
func appendDigits(b []byte, v, n int) []byte {
	for range n {
		b = append(b, '0')
	}
	for i := len(b) - 1; v > 0; i-- {
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return b
}

// nextLink is the Link header value (RFC 8288) of the next page: the same
// parameters, the cursor replaced.
func nextLink(path string, values url.Values, cursor string) string {
	v := make(url.Values, len(values)+1)
	for k, vs := range values {
		v[k] = vs
	}
	v.Set(paramCursor, cursor)
	return "<" + path + "?" + v.Encode() + `>; rel="next"`
}

// paramError is a 400 about one query parameter (param is empty when the
// query string cannot be split into parameters).
type paramError struct{ param, detail string }

// searchRequest is a parsed GET /orders.
type searchRequest struct {
	query cache.Query
	// values are the parameters as given, each once, less the cursor.
	values url.Values
}

// parseSearch parses and checks the query string of GET /orders. Every
// parameter is optional; an unknown one, one given twice, an empty value
// and a malformed one are errors, so that a typo is never silently an
// unfiltered list. The dates are RFC 3339; since PostgreSQL stores
// microseconds, both are rounded up to the next whole microsecond, which
// keeps the half-open range [created_from, created_to) exact.
func parseSearch(raw string) (searchRequest, *paramError) {
	given, perr := splitQuery(raw)
	if perr != nil {
		return searchRequest{}, perr
	}
	var unknown []string
	for k := range given {
		if !slices.Contains(searchParams, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		name := unknown[0]
		if utf8.RuneCountInString(name) > 40 {
			name = string([]rune(name)[:40]) + "…"
		}
		return searchRequest{}, &paramError{name, fmt.Sprintf("unknown parameter %q; the parameters are %s",
			name, strings.Join(searchParams, ", "))}
	}
	for _, k := range searchParams {
		if n := len(given[k]); n > 1 {
			return searchRequest{}, &paramError{k, fmt.Sprintf("%s is given %d times; give it once", k, n)}
		}
	}

	req := searchRequest{query: cache.Query{Limit: defaultLimit}, values: url.Values{}}
	f := &req.query.Filter
	var cursor string
	for _, k := range searchParams {
		vs, ok := given[k]
		if !ok {
			continue
		}
		v := vs[0]
		if k != paramCursor {
			req.values[k] = vs
		}
		var err *paramError
		switch k {
		case paramTrackNumber:
			f.TrackNumber, err = text(k, v)
		case paramCustomerID:
			f.CustomerID, err = text(k, v)
		case paramCurrency:
			if !currencyCode(v) {
				err = &paramError{k, "currency must be an ISO 4217 code in capitals, e.g. USD"}
			}
			f.Currency = v
		case paramCreatedFrom:
			f.CreatedFrom, err = date(k, v)
		case paramCreatedTo:
			f.CreatedTo, err = date(k, v)
		case paramLimit:
			n, convErr := strconv.Atoi(v)
			if convErr != nil || n < 1 || n > maxLimit {
				err = &paramError{k, "limit must be an integer from 1 to 100"}
			}
			req.query.Limit = n
		case paramCursor:
			cursor = v
		}
		if err != nil {
			return searchRequest{}, err
		}
	}
	if !f.CreatedFrom.IsZero() && !f.CreatedTo.IsZero() && f.CreatedFrom.After(f.CreatedTo) {
		return searchRequest{}, &paramError{paramCreatedFrom, "created_from must not be after created_to"}
	}
	f.CreatedFrom, f.CreatedTo = ceilMicro(f.CreatedFrom), ceilMicro(f.CreatedTo)
	if _, ok := given[paramCursor]; ok {
		after, err := decodeCursor(cursor, *f)
		if err != nil {
			return searchRequest{}, &paramError{paramCursor, err.Error()}
		}
		req.query.After = &after
	}
	return req, nil
}

// splitQuery is url.ParseQuery that names the parameter whose value is
// badly escaped.
func splitQuery(raw string) (map[string][]string, *paramError) {
	out := map[string][]string{}
	for part := range strings.SplitSeq(raw, "&") {
		if part == "" {
			continue
		}
		if strings.Contains(part, ";") {
			return nil, &paramError{"", "the query string must not contain a semicolon (an escaped one is %3B)"}
		}
		rawKey, rawValue, _ := strings.Cut(part, "=")
		k, err := url.QueryUnescape(rawKey)
		if err != nil {
			return nil, &paramError{"", "a parameter name is not valid percent-encoding"}
		}
		v, err := url.QueryUnescape(rawValue)
		if err != nil {
			return nil, &paramError{k, k + " is not valid percent-encoding"}
		}
		out[k] = append(out[k], v)
	}
	return out, nil
}

// text checks a track_number or customer_id: what the schema can hold.
func text(param, v string) (string, *paramError) {
	switch {
	case v == "":
		return "", &paramError{param, param + " must not be empty; leave the parameter out to not filter"}
	case !utf8.ValidString(v) || strings.ContainsFunc(v, unicode.IsControl):
		return "", &paramError{param, param + " must be UTF-8 text without control characters"}
	case utf8.RuneCountInString(v) > maxTextLen:
		return "", &paramError{param, fmt.Sprintf("%s must be at most %d characters", param, maxTextLen)}
	}
	return v, nil
}

func currencyCode(v string) bool {
	return len(v) == 3 && strings.IndexFunc(v, func(r rune) bool { return r < 'A' || r > 'Z' }) < 0
}

// date parses an RFC 3339 date-time.
func date(param, v string) (time.Time, *paramError) {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		detail := param + " must be an RFC 3339 date-time, e.g. 2026-11-01T00:00:00Z"
		if strings.Contains(v, " ") {
			// A + sent unescaped in a query string arrives as a space.
			detail += " (a + in the offset must be sent as %2B)"
		}
		return time.Time{}, &paramError{param, detail}
	}
	return t.UTC(), nil
}

// ceilMicro rounds t up to a whole microsecond, the precision of
// PostgreSQL's timestamptz: for a date d stored in whole microseconds,
// d >= t exactly when d >= ceilMicro(t), and d < t when d < ceilMicro(t).
func ceilMicro(t time.Time) time.Time {
	if r := t.Truncate(time.Microsecond); !r.Equal(t) {
		return r.Add(time.Microsecond)
	}
	return t
}
