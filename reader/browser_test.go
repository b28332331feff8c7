package main

// Browser tests of the web UI: Debian's chromium, driven by chromedp, uses
// the page the way a person does (types, clicks, presses keys, goes back)
// against the real reader started with run, backed by real PostgreSQL and
// Redis from testenv.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/fetch"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/orderservice/orders/reader/auth/authtest"
	"github.com/orderservice/orders/shared/model"
	"github.com/orderservice/orders/shared/ordergen"
	"github.com/orderservice/orders/shared/testenv"
)

// chromiumInstall is what a machine without chromium needs.
const chromiumInstall = "apt-get update && apt-get install -y chromium"

// Markup planted in an order's fields: if any of it ran, window.__xss would
// be set.
const (
	xssScript = `<script>window.__xss=1</script>`
	xssImg    = `<img src=x onerror="window.__xss=1">`
	xssSVG    = `"><svg onload="window.__xss=1">`
)

func TestBrowser(t *testing.T) {
	chromium := chromiumPath(t)
	stack := startReader(t)

	sample := testenv.Sample(t)
	gen := ordergen.New(20261125)
	second := gen.Order()
	hostile := variant(sample, "xss-order-1")
	hostile.Items[0].Name = xssScript
	hostile.Items[0].Brand = xssImg
	hostile.Delivery.Name = xssImg
	hostile.Delivery.Address = xssSVG
	hostile.CustomerID = xssScript
	others := append([]*model.Order{second, hostile}, gen.Orders(5)...)
	stack.insert(t, append([]*model.Order{sample}, others...)...)

	browserCtx := startBrowser(t, chromium)
	artifacts := artifactsDir(t)

	t.Run("search shows the order in its sections", func(t *testing.T) {
		tab := newTab(browserCtx, t, stack.keys.PII)
		resp := tab.navigateResponse(stack.base + "/")
		for name, want := range map[string]string{
			"Content-Security-Policy": "default-src 'self'",
			"X-Content-Type-Options":  "nosniff",
		} {
			if got := headerValue(resp.Headers, name); !strings.Contains(got, want) {
				t.Errorf("page header %s = %q, want it to contain %q", name, got, want)
			}
		}
		tab.do(chromedp.WaitVisible(chromedp.ID("uid-input")))
		tab.do(
			chromedp.SendKeys(chromedp.ID("uid-input"), sample.OrderUID),
			chromedp.Click(chromedp.ID("search-button")),
		)
		tab.waitState("order")

		tab.wantText(`[data-field="order_uid"]`, sample.OrderUID)
		tab.wantText(`#order-items [data-field="items[0].name"]`, "Mascaras")
		tab.wantText(`#order-items [data-field="items[0].brand"]`, "Vivienne Sabo")
		// The tab runs in en-US and UTC (see newTab), so the formats are
		// fixed: the amount is the integer as is, never divided by 100.
		tab.wantText(`#order-payment [data-field="payment.amount"]`, "$1,817")
		tab.wantText(`#order-payment [data-field="payment.currency"]`, "USD")
		tab.wantText(`#order-payment [data-field="payment.goods_total"]`, "$317")
		tab.wantText(`#order-payment [data-field="payment.delivery_cost"]`, "$1,500")
		tab.wantText(`#order-payment [data-field="payment.custom_fee"]`, "$0")
		tab.wantText(`#order-payment [data-field="payment.provider"]`, "wbpay")
		tab.wantText(`#order-payment [data-field="payment.bank"]`, "alpha")
		tab.wantText(`#order-payment [data-field="payment.payment_dt"]`, "Nov 26, 2021")
		tab.wantText(`#order-header [data-field="track_number"]`, "WBILMTESTTRACK")
		tab.wantText(`#order-header [data-field="date_created"]`, "Nov 26, 2021")
		tab.wantText(`#order-header [data-field="customer_id"]`, "test")
		tab.wantText(`#order-header [data-field="delivery_service"]`, "meest")
		tab.wantText(`#order-header [data-field="locale"]`, "en")
		tab.wantText(`#order-header [data-field="shardkey"]`, "9")
		tab.wantText(`#order-delivery [data-field="delivery.name"]`, "Test Testov")
		tab.wantText(`#order-delivery [data-field="delivery.phone"]`, "+9720000000")
		tab.wantText(`#order-delivery [data-field="delivery.address"]`, "Ploshad Mira 15")
		tab.wantText(`#order-delivery [data-field="delivery.address"]`, "Kiryat Mozkin")
		tab.wantText(`#order-delivery [data-field="delivery.email"]`, "test@gmail.com")
		tab.wantText(`#order-items [data-field="items[0].total_price"]`, "$317")
		tab.wantText(`#order-items [data-field="items[0].sale"]`, "30%")

		// The items' total is computed in the page; it must equal the
		// payment's goods total, on screen and as a number.
		itemsTotal := tab.text("#items-total")
		goodsTotal := tab.text(`[data-field="payment.goods_total"]`)
		if itemsTotal != goodsTotal {
			t.Errorf("items total %q != payment goods total %q", itemsTotal, goodsTotal)
		}
		if got := eval[string](tab, `document.getElementById('items-total').dataset.value`); got != fmt.Sprint(sample.Payment.GoodsTotal) {
			t.Errorf("items total value = %s, want %d", got, sample.Payment.GoodsTotal)
		}
		tab.wantText("#items-total-check", "matches payment")
		// Screen readers hear that the order is there.
		tab.wantExactText("#announcer", "Showing order "+sample.OrderUID+".")

		if got, want := tab.location(), stack.base+"/?uid="+sample.OrderUID; got != want {
			t.Errorf("location = %q, want %q", got, want)
		}
		if got := eval[string](tab, `document.title`); !strings.Contains(got, sample.OrderUID) {
			t.Errorf("title = %q, want the uid in it", got)
		}

		// The raw JSON view holds the order as the API returned it, and the
		// copy button puts it on the clipboard.
		tab.do(chromedp.Click(chromedp.CSS("#order-raw summary")))
		var raw model.Order
		if err := json.Unmarshal([]byte(tab.textContent("#raw-json")), &raw); err != nil {
			t.Fatalf("raw JSON view does not parse: %v", err)
		}
		if raw.OrderUID != sample.OrderUID || raw.Payment.Amount != sample.Payment.Amount {
			t.Errorf("raw JSON view = %s/%d, want %s/%d", raw.OrderUID, raw.Payment.Amount, sample.OrderUID, sample.Payment.Amount)
		}
		tab.grantClipboard(stack.base)
		tab.do(chromedp.Click(chromedp.ID("copy-json")))
		tab.poll(`document.getElementById('copy-status').textContent === 'Copied.'`, "the copy button to report success")
		clip := eval[string](tab, `navigator.clipboard.readText()`, chromedp.EvalAwaitPromise)
		if !strings.Contains(clip, `"order_uid": "`+sample.OrderUID+`"`) {
			t.Errorf("clipboard = %.80q..., want the order JSON", clip)
		}

		tab.wantNoConsoleErrors()
		// Everything comes from the reader: the page works offline.
		for _, u := range tab.requests() {
			if !strings.HasPrefix(u, stack.base+"/") && !strings.HasPrefix(u, "data:") {
				t.Errorf("the page requested %s, outside the reader", u)
			}
		}
	})

	t.Run("loading state while the reader answers", func(t *testing.T) {
		tab := newTab(browserCtx, t, stack.keys.PII)
		tab.navigate(stack.base + "/")
		// Hold the order request in the browser until the loading state has
		// been seen, then let it through.
		ctx, cancel := context.WithTimeout(tab.ctx, waitTimeout)
		defer cancel()
		paused := chromedp.Events(ctx, fetch.RequestPaused)
		tab.call(func(ctx context.Context) error {
			_, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{
				Patterns: []*fetch.RequestPattern{{URLPattern: "*/order/*"}},
			})
			return err
		})
		tab.search(sample.OrderUID)
		var held fetch.RequestID
		for ev, err := range paused {
			if err != nil {
				t.Fatalf("waiting for the order request: %v", err)
			}
			held = ev.RequestID
			break
		}
		tab.waitState("loading")
		tab.wantText("#status", "Looking up order “"+sample.OrderUID+"”")
		if got := eval[string](tab, `document.getElementById('content').getAttribute('aria-busy')`); got != "true" {
			t.Errorf("aria-busy while loading = %q, want true", got)
		}
		tab.call(func(ctx context.Context) error {
			if _, err := chromedp.Call(ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: held}); err != nil {
				return err
			}
			_, err := chromedp.Call(ctx, fetch.Disable, cdp.Empty{})
			return err
		})
		tab.waitOrder(sample.OrderUID)
		if got := eval[string](tab, `document.getElementById('content').getAttribute('aria-busy')`); got != "false" {
			t.Errorf("aria-busy with the order shown = %q, want false", got)
		}
	})

	t.Run("deep link, back and forward", func(t *testing.T) {
		tab := newTab(browserCtx, t, stack.keys.PII)
		tab.navigate(stack.base + "/?uid=" + sample.OrderUID)
		tab.waitOrder(sample.OrderUID)
		if got := tab.value("#uid-input"); got != sample.OrderUID {
			t.Errorf("search box = %q, want the deep-linked uid", got)
		}

		tab.search(second.OrderUID)
		tab.waitOrder(second.OrderUID)
		if got, want := tab.location(), stack.base+"/?uid="+second.OrderUID; got != want {
			t.Fatalf("location after search = %q, want %q", got, want)
		}

		tab.history(-1) // the browser's back button
		tab.waitOrder(sample.OrderUID)
		if got := tab.value("#uid-input"); got != sample.OrderUID {
			t.Errorf("search box after back = %q, want %q", got, sample.OrderUID)
		}
		tab.history(+1)
		tab.waitOrder(second.OrderUID)

		// A reload of a deep link shows the same order.
		tab.do(chromedp.Reload())
		tab.waitOrder(second.OrderUID)

		// The home link leads to the start page, and Back returns from it.
		tab.do(chromedp.Click(chromedp.ID("home-link")))
		tab.waitState("idle")
		if got := tab.value("#uid-input"); got != "" {
			t.Errorf("search box on the start page = %q, want it empty", got)
		}
		tab.history(-1)
		tab.waitOrder(second.OrderUID)
		tab.wantNoConsoleErrors()
	})

	t.Run("unknown uid shows not found", func(t *testing.T) {
		tab := newTab(browserCtx, t, stack.keys.PII)
		tab.navigate(stack.base + "/")
		tab.search("no-such-order-0001")
		tab.waitState("not-found")
		tab.eventually("a 404 from the reader for the unknown uid", func() bool {
			return tab.responded(http.StatusNotFound, "/order/no-such-order-0001")
		})
		tab.wantText("#status", "Order not found")
		tab.wantText("#status", "There is no order with UID “no-such-order-0001”")
	})

	t.Run("a search that cannot be a uid never reaches /order/", func(t *testing.T) {
		tab := newTab(browserCtx, t, stack.keys.PII)
		tab.navigate(stack.base + "/")
		// Not uids, but they may be track numbers or customer ids: they
		// are looked for as such, in query parameters only.
		for _, bad := range []string{"../etc", "a b", "x/../../etc/passwd", strings.Repeat("a", 65)} {
			tab.search(bad)
			tab.poll(fmt.Sprintf(`document.getElementById('content').dataset.state === 'not-found' &&
				document.getElementById('status-text').textContent.includes(%q)`, "There is no order with UID “"+bad+"”"),
				"no match for "+bad)
		}
		// The box takes no more than the longest of them (255), and an
		// address with a longer one is refused in the page.
		tab.search(strings.Repeat("b", 256))
		tab.poll(`document.getElementById('status-text').textContent.includes('UID “'+'b'.repeat(255)+'”')`, "the search cut to 255")
		tab.navigate(stack.base + "/?q=" + strings.Repeat("a", 256))
		tab.waitState("invalid")
		tab.wantText("#status", "That is not a valid order UID")
		tab.wantText("#status-text", "at most 255")
		// A deep link with a bad uid is refused the same way.
		tab.navigate(stack.base + "/?uid=..%2Fetc")
		tab.waitState("invalid")
		tab.wantText("#status-text", "cannot be an order UID")

		// Requests are seen in order: once the sentinel's request shows, any
		// request for the bad inputs would have shown before it.
		tab.search("sentinel-0001")
		tab.waitState("not-found")
		tab.eventually("the sentinel's request", func() bool { return slices.Contains(tab.orderRequests(), "/order/sentinel-0001") })
		if got := tab.orderRequests(); !slices.Equal(got, []string{"/order/sentinel-0001"}) {
			t.Errorf("order requests = %q, want only the sentinel's", got)
		}
	})

	t.Run("hostile fields render as text and run nothing", func(t *testing.T) {
		tab := newTab(browserCtx, t, stack.keys.PII)
		tab.navigate(stack.base + "/?uid=" + hostile.OrderUID)
		tab.waitOrder(hostile.OrderUID)
		tab.wantExactText(`[data-field="items[0].name"]`, xssScript)
		tab.wantExactText(`[data-field="items[0].brand"]`, xssImg)
		tab.wantExactText(`[data-field="delivery.name"]`, xssImg)
		tab.wantExactText(`[data-field="customer_id"]`, xssScript)
		tab.wantText(`[data-field="delivery.address"]`, xssSVG)
		// Let any event handler that got through have its chance: the image
		// request would have failed by the time the raw view is open.
		tab.do(chromedp.Click(chromedp.CSS("#order-raw summary")))
		tab.wantText("#raw-json", `window.__xss=1`)
		if got := eval[string](tab, `typeof window.__xss`); got != "undefined" {
			t.Errorf("window.__xss is %s: markup from the order ran", got)
		}
		if n := eval[int](tab, `document.querySelectorAll('#order img, #order script, #order svg').length`); n != 0 {
			t.Errorf("the order view holds %d elements made from order data", n)
		}
		for _, u := range tab.requests() {
			if strings.HasSuffix(u, "/x") {
				t.Errorf("the page requested %s: an <img> from order data was created", u)
			}
		}
	})

	t.Run("recent orders open and refresh", func(t *testing.T) {
		tab := newTab(browserCtx, t, stack.keys.PII)
		tab.navigate(stack.base + "/")
		tab.waitRecent(1 + len(others))

		link := fmt.Sprintf(`#recent-list a[data-uid="%s"]`, second.OrderUID)
		tab.do(chromedp.Click(chromedp.CSS(link)))
		tab.waitOrder(second.OrderUID)
		if got, want := tab.location(), stack.base+"/?uid="+second.OrderUID; got != want {
			t.Errorf("location = %q, want %q", got, want)
		}
		if got := eval[string](tab, `document.activeElement.id`); got != "order-title" {
			t.Errorf("focus after opening a recent order is on %q, want the order's heading", got)
		}
		if got := eval[string](tab, `document.querySelector('#recent-list a[aria-current="page"]')?.dataset.uid ?? ''`); got != second.OrderUID {
			t.Errorf("recent entry marked current = %q, want %q", got, second.OrderUID)
		}

		// A new order appears at the top after Refresh, without a reload.
		fresh := gen.Order()
		fresh.DateCreated = time.Now().UTC().Truncate(time.Second)
		for _, o := range others {
			if !o.DateCreated.Before(fresh.DateCreated) {
				fresh.DateCreated = o.DateCreated.Add(time.Minute)
			}
		}
		stack.insert(t, fresh)
		tab.do(chromedp.Click(chromedp.ID("recent-refresh")))
		tab.poll(fmt.Sprintf(`document.querySelector('#recent-list a')?.dataset.uid === %q`, fresh.OrderUID),
			"the fresh order at the top of the recent list after Refresh")
		tab.wantNoConsoleErrors()
	})

	t.Run("keyboard only", func(t *testing.T) {
		tab := newTab(browserCtx, t, stack.keys.PII)
		tab.navigate(stack.base + "/")
		tab.waitRecent(1)

		// Every control has an accessible name.
		unnamed := eval[[]string](tab, `[...document.querySelectorAll('input, button, select, textarea, a[href]')]
			.filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim())
			.map(e => e.outerHTML.slice(0, 80))`)
		if len(unnamed) != 0 {
			t.Errorf("controls without an accessible name: %q", unnamed)
		}

		// The search box has the focus on arrival; before it come only the
		// skip link and the home link.
		if got := tab.focused(); got != "input#uid-input" {
			t.Errorf("focus on arrival is on %q, want the search box", got)
		}
		var order []string
		for range 2 {
			tab.do(chromedp.KeyEvent(kb.Tab, chromedp.KeyModifiers(chromedp.ModifierShift)))
			order = append(order, tab.focused())
		}
		for range 2 {
			tab.do(chromedp.KeyEvent(kb.Tab))
			order = append(order, tab.focused())
		}
		if want := []string{"a#home-link", "a.skip-link", "a#home-link", "input#uid-input"}; !slices.Equal(order, want) {
			t.Errorf("focus order with Shift+Tab, Shift+Tab, Tab, Tab = %q, want %q", order, want)
		}
		tab.do(chromedp.KeyEvent(sample.OrderUID), chromedp.KeyEvent(kb.Enter))
		tab.waitOrder(sample.OrderUID)

		// Tab on: the order's controls come before the recent list, and
		// Enter on a recent entry opens it.
		var seen []string
		for range 40 {
			tab.do(chromedp.KeyEvent(kb.Tab))
			f := tab.focused()
			seen = append(seen, f)
			if strings.HasPrefix(f, "a.recent-link") {
				break
			}
		}
		last := seen[len(seen)-1]
		if !strings.HasPrefix(last, "a.recent-link") {
			t.Fatalf("Tab never reached the recent orders; focus went %q", seen)
		}
		copyAt, recentAt := slices.Index(seen, "button#copy-json"), slices.Index(seen, "button#recent-refresh")
		if copyAt < 0 || recentAt < 0 || copyAt > recentAt {
			t.Errorf("focus order %q: want the order's copy button before the recent list", seen)
		}
		uid := eval[string](tab, `document.activeElement.dataset.uid`)
		tab.do(chromedp.KeyEvent(kb.Enter))
		tab.waitOrder(uid)
	})

	t.Run("service unavailable", func(t *testing.T) {
		tab := newTab(browserCtx, t, stack.keys.PII)
		tab.navigate(stack.base + "/")
		tab.waitRecent(1)

		// The database is gone: the reader answers 503 for an order it has
		// not cached, and for the recent list.
		stack.cutDB()
		restored := false
		defer func() {
			if !restored {
				stack.restoreDB()
			}
		}()
		tab.search("not-cached-0001")
		tab.waitState("unavailable")
		tab.wantText("#status", "The order service is unavailable")
		tab.wantText("#status", "Please try again in a moment.")
		tab.eventually("a 503 from the reader with its database cut", func() bool {
			return tab.responded(http.StatusServiceUnavailable, "/order/not-cached-0001")
		})
		tab.do(chromedp.Click(chromedp.ID("recent-refresh")))
		tab.poll(`document.getElementById('recent-status').textContent.includes('service is unavailable')`,
			"the recent list to report the outage")
		stack.restoreDB()
		restored = true

		// The reader cannot be reached at all: the browser fails the request
		// as a network error, as when the reader is down.
		tab.blockAPI(true)
		tab.search(sample.OrderUID)
		tab.waitState("unavailable")
		tab.wantText("#status", "The order service is unavailable")

		// Back online, "Try again" repeats the lookup.
		tab.blockAPI(false)
		tab.do(chromedp.Click(chromedp.ID("status-retry")))
		tab.waitOrder(sample.OrderUID)
		tab.do(chromedp.Click(chromedp.ID("recent-refresh")))
		tab.waitRecent(1)
	})

	t.Run("formats follow the viewer's locale", func(t *testing.T) {
		tab := newTab(browserCtx, t, stack.keys.PII)
		tab.call(func(ctx context.Context) error {
			_, err := chromedp.Call(ctx, emulation.SetLocaleOverride, emulation.SetLocaleOverrideParams{Locale: "de_DE"})
			return err
		})
		tab.navigate(stack.base + "/?uid=" + sample.OrderUID)
		tab.waitOrder(sample.OrderUID)
		// German groups with "." and puts the symbol after the number.
		tab.wantText(`[data-field="payment.amount"]`, "1.817")
		tab.wantText(`[data-field="payment.amount"]`, "$")
		tab.wantText(`[data-field="date_created"]`, "26.11.2021")
	})

	t.Run("sign in, masked and full views, sign out", func(t *testing.T) {
		tab := newTab(browserCtx, t, "")
		tab.navigate(stack.base + "/?uid=" + sample.OrderUID)
		// No token yet: the reader's 401 brings the form.
		tab.waitState("signin")
		tab.wantText("#signin-message", "needs a credential")
		if got := tab.focused(); got != "input#token-input" {
			t.Errorf("focus with the sign-in form up is on %q, want the token field", got)
		}
		tab.eventually("a 401 from the reader", func() bool {
			return tab.responded(http.StatusUnauthorized, "/order/"+sample.OrderUID)
		})

		// A support key (orders:read): the personal data is masked.
		tab.signIn(stack.keys.Read)
		tab.waitOrder(sample.OrderUID)
		if got := eval[string](tab, `document.getElementById('order').dataset.pii`); got != "masked" {
			t.Errorf("order data-pii = %q, want masked", got)
		}
		tab.wantExactText(`[data-field="delivery.name"]`, "T*** T***")
		tab.wantExactText(`[data-field="delivery.email"]`, "t***@gmail.com")
		tab.wantText("#pii-note", "orders:pii")
		if n := eval[int](tab, `document.querySelectorAll('#order [data-masked="true"]').length`); n < 4 {
			t.Errorf("%d delivery fields marked masked, want name, phone, address and e-mail", n)
		}
		if got := tab.text("#order"); strings.Contains(got, "Testov") || strings.Contains(got, "test@gmail.com") {
			t.Errorf("the masked view shows personal data: %.200q", got)
		}
		// The token is in sessionStorage only, never in the URL.
		if got := eval[string](tab, `sessionStorage.getItem('orders.token')`); got != stack.keys.Read {
			t.Errorf("sessionStorage token = %.8q…, want the signed-in key", got)
		}
		if got := eval[string](tab, `localStorage.length + ' ' + document.cookie`); got != "0 " {
			t.Errorf("localStorage and cookies: %q, want nothing", got)
		}
		for _, u := range tab.requests() {
			if strings.Contains(u, stack.keys.Read) {
				t.Errorf("the token is in the URL %s", u)
			}
		}

		// Sign out: the token is forgotten and nothing read stays shown.
		tab.do(chromedp.Click(chromedp.ID("signout-button")))
		tab.waitState("signin")
		tab.wantText("#signin-message", "signed out")
		if got := eval[bool](tab, `sessionStorage.getItem('orders.token') === null`); !got {
			t.Error("the token outlived the sign-out")
		}
		if n := eval[int](tab, `document.querySelectorAll('#recent-list a').length`); n != 0 {
			t.Errorf("%d recent orders still listed after the sign-out", n)
		}

		// A credential with orders:pii: the order as ingested.
		tab.signIn(stack.keys.PII)
		tab.waitOrder(sample.OrderUID)
		if got := eval[string](tab, `document.getElementById('order').dataset.pii`); got != "full" {
			t.Errorf("order data-pii = %q, want full", got)
		}
		tab.wantExactText(`[data-field="delivery.name"]`, "Test Testov")
		tab.wantText(`[data-field="delivery.email"]`, "test@gmail.com")
		if n := eval[int](tab, `document.querySelectorAll('#pii-note, #order [data-masked="true"]').length`); n != 0 {
			t.Errorf("%d masking marks on the full view", n)
		}
		tab.waitRecent(1)
		// The browser logs the two 401s that brought the form; nothing
		// else may go wrong.
		tab.wantNoConsoleErrors("status of 401 (Unauthorized)")
	})

	t.Run("a refused token and an expired JWT bring the form back", func(t *testing.T) {
		iss := stack.issuer
		valid := iss.Token(t, iss.Claims("support@example", "orders:read", time.Hour))
		tab := newTab(browserCtx, t, "")
		tab.navigate(stack.base + "/")
		tab.waitState("signin")
		// A JWT from the identity provider signs in.
		tab.signIn(valid)
		tab.waitState("idle")
		tab.waitRecent(1)
		tab.search(sample.OrderUID)
		tab.waitOrder(sample.OrderUID)
		tab.wantExactText(`[data-field="delivery.name"]`, "T*** T***")

		// An expired one is refused: the page forgets it and asks again.
		claims := iss.Claims("support@example", "orders:read", time.Hour)
		claims["exp"] = time.Now().Add(-time.Hour).Unix()
		claims["iat"] = time.Now().Add(-2 * time.Hour).Unix()
		tab.do(chromedp.Click(chromedp.ID("signout-button")))
		tab.waitState("signin")
		tab.signIn(iss.Token(t, claims))
		tab.waitState("signin")
		tab.wantText("#signin-message", "expired")
		if got := eval[bool](tab, `sessionStorage.getItem('orders.token') === null`); !got {
			t.Error("the refused token is still kept")
		}
		// So is a key the reader does not know.
		unknown, _ := authtest.NewKey(t, "unknown", "", "orders:read")
		tab.signIn(unknown)
		tab.waitState("signin")
		tab.wantText("#signin-message", "expired or the token was refused")
	})

	t.Run("screenshots", func(t *testing.T) {
		shots := []struct {
			name          string
			width, height int64
			mobile        bool
			dark          bool
		}{
			{"order-desktop", 1280, 900, false, false},
			{"order-phone", 375, 812, true, false},
			{"order-desktop-dark", 1280, 900, false, true},
		}
		for _, s := range shots {
			t.Run(s.name, func(t *testing.T) {
				tab := newTab(browserCtx, t, stack.keys.PII)
				opts := []chromedp.EmulateViewportOption{}
				if s.mobile {
					opts = append(opts, chromedp.EmulateMobile, chromedp.EmulateTouch)
				}
				tab.do(chromedp.EmulateViewport(s.width, s.height, opts...))
				if s.dark {
					tab.call(func(ctx context.Context) error {
						_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
							Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}},
						})
						return err
					})
				}
				tab.navigate(stack.base + "/?uid=" + sample.OrderUID)
				tab.waitOrder(sample.OrderUID)
				tab.waitRecent(1)

				// Nothing may scroll sideways, down to phone width.
				if w := eval[[]int](tab, `[document.documentElement.scrollWidth, window.innerWidth]`); w[0] > w[1] {
					t.Errorf("page is %dpx wide in a %dpx viewport", w[0], w[1])
				}
				if s.dark {
					if bg := eval[string](tab, `getComputedStyle(document.body).backgroundColor`); bg != "rgb(15, 17, 23)" {
						t.Errorf("dark mode body background = %s, want the dark theme", bg)
					}
				}

				buf, err := chromedp.Run(tab.ctx, chromedp.FullScreenshot(100))
				if err != nil {
					t.Fatalf("screenshot: %v", err)
				}
				cfg, err := png.DecodeConfig(bytes.NewReader(buf))
				if err != nil {
					t.Fatalf("screenshot is not a PNG: %v", err)
				}
				if int64(cfg.Width) < s.width {
					t.Errorf("screenshot is %dpx wide, want at least %d", cfg.Width, s.width)
				}
				path := filepath.Join(artifacts, s.name+".png")
				if err := os.WriteFile(path, buf, 0o644); err != nil {
					t.Fatalf("write screenshot: %v", err)
				}
				t.Logf("screenshot (%dx%d): %s", cfg.Width, cfg.Height, path)
			})
		}
	})
}

// searchOrder is a copy of o with another uid, track number, customer,
// creation time and currency: the fields GET /orders filters on.
func searchOrder(o *model.Order, uid, track, customer string, created time.Time, currency string) *model.Order {
	c := variant(o, uid)
	c.TrackNumber = track
	for i := range c.Items {
		c.Items[i].TrackNumber = track
	}
	c.CustomerID = customer
	c.DateCreated = created
	c.Payment.Currency = currency
	return c
}

// TestBrowserSearch drives the search: one field that is tried as an order
// UID, a track number and a customer id, date and currency filters, paging
// with "More", the search in the address bar, the keyboard, and axe-core.
func TestBrowserSearch(t *testing.T) {
	chromium := chromiumPath(t)
	axeSource := axeCore(t)
	stack := startReader(t)

	sample := testenv.Sample(t)
	const track, customer = "TRACK-SEARCH-7", "cust-search-1"
	day := func(d int) time.Time { return time.Date(2024, time.January, d, 12, 0, 0, 0, time.UTC) }
	orders := []*model.Order{sample}
	// Three orders share a track number (each of another customer).
	var byTrack []string // newest first
	for i := 3; i >= 1; i-- {
		o := searchOrder(sample, fmt.Sprintf("track-order-%d", i), track, fmt.Sprintf("track-cust-%d", i),
			time.Date(2023, time.May, i, 9, 0, 0, 0, time.UTC), "USD")
		orders = append(orders, o)
		byTrack = append(byTrack, o.OrderUID)
	}
	// One customer has 25 orders, a day apart in January 2024: more than a
	// page. Every fifth (the 1st, 6th, 11th, ...) is paid in euros.
	var byCustomer []string // newest first
	for d := 25; d >= 1; d-- {
		currency := "USD"
		if d%5 == 1 {
			currency = "EUR"
		}
		o := searchOrder(sample, fmt.Sprintf("cust-order-%02d", d), fmt.Sprintf("CT-%02d", d), customer, day(d), currency)
		orders = append(orders, o)
		byCustomer = append(byCustomer, o.OrderUID)
	}
	stack.insert(t, orders...)
	uidsOn := func(days ...int) []string {
		var out []string
		for _, d := range days {
			out = append(out, fmt.Sprintf("cust-order-%02d", d))
		}
		return out
	}

	browserCtx := startBrowser(t, chromium)

	t.Run("by order uid", func(t *testing.T) {
		tab := newTab(browserCtx, t, stack.keys.PII)
		tab.navigate(stack.base + "/")
		tab.search(sample.OrderUID)
		tab.waitOrder(sample.OrderUID)
		tab.wantExactText("#order-match", "Found by order UID.")
		// A uid that exists is never tried as anything else.
		if got := tab.apiRequests(); !slices.Equal(got, []string{"/order/" + sample.OrderUID}) {
			t.Errorf("API requests = %q, want only the order's", got)
		}
		tab.wantNoConsoleErrors()
	})

	t.Run("by track number", func(t *testing.T) {
		tab := newTab(browserCtx, t, stack.keys.PII)
		tab.navigate(stack.base + "/")
		tab.search(track)
		tab.waitResults(len(byTrack))
		tab.wantText("#results-match", "Found by track number: “"+track+"”")
		if got := tab.resultUIDs(); !slices.Equal(got, byTrack) {
			t.Errorf("results = %q, want %q (newest first)", got, byTrack)
		}
		tab.wantExactText("#announcer", "Found by track number. 3 orders shown.")
		tab.wantText(`#results-body tr[data-uid="track-order-3"]`, "May 3, 2023")
		tab.wantText(`#results-body tr[data-uid="track-order-3"]`, "$1,817")
		if got := eval[bool](tab, `document.getElementById('results-more').hidden`); !got {
			t.Error("More is offered on the only page")
		}
		// Tried in order: as a uid (404), then as a track number, which
		// matched, so never as a customer id.
		want := []string{"/order/" + track, "/orders?track_number=" + track + "&limit=20"}
		if got := tab.apiRequests(); !slices.Equal(got, want) {
			t.Errorf("API requests = %q, want %q", got, want)
		}
		if got, want := tab.location(), stack.base+"/?q="+track; got != want {
			t.Errorf("location = %q, want %q", got, want)
		}
		tab.wantNoConsoleErrors("status of 404 (Not Found)")
	})

	t.Run("by customer id, with More", func(t *testing.T) {
		tab := newTab(browserCtx, t, stack.keys.PII)
		tab.navigate(stack.base + "/")
		tab.search(customer)
		tab.waitResults(20)
		tab.wantText("#results-match", "Found by customer id: “"+customer+"”")
		tab.wantExactText("#announcer", "Found by customer id. 20 orders shown; more are available.")
		if got := tab.resultUIDs(); !slices.Equal(got, byCustomer[:20]) {
			t.Errorf("first page = %q, want %q", got, byCustomer[:20])
		}
		tab.do(chromedp.Click(chromedp.ID("results-more")))
		tab.waitResults(len(byCustomer))
		// Every order once, in order, across the pages.
		if got := tab.resultUIDs(); !slices.Equal(got, byCustomer) {
			t.Errorf("after More = %q, want %q", got, byCustomer)
		}
		tab.wantExactText("#results-more-status", "25 orders shown.")
		if got := eval[bool](tab, `document.getElementById('results-more').hidden`); !got {
			t.Error("More is still offered after the last page")
		}
		// The second page was asked with the first page's cursor and the
		// same filter.
		reqs := tab.apiRequests()
		if last := reqs[len(reqs)-1]; !strings.HasPrefix(last, "/orders?customer_id="+customer+"&limit=20&cursor=") {
			t.Errorf("More requested %q, want the customer filter and a cursor", last)
		}
		tab.wantNoConsoleErrors("status of 404 (Not Found)")
	})

	t.Run("date and currency filters", func(t *testing.T) {
		cases := []struct {
			name, q, from, to, currency string
			want                        []string
			wantMatch                   string
			wantQuery                   string // of the request that matched
		}{
			{
				name: "dates include both days", q: customer, from: "2024-01-10", to: "2024-01-12",
				want: uidsOn(12, 11, 10), wantMatch: "Found by customer id",
				wantQuery: "customer_id=" + customer + "&created_from=2024-01-10T00%3A00%3A00Z&created_to=2024-01-13T00%3A00%3A00Z&limit=20",
			},
			{
				name: "currency", q: customer, currency: "eur",
				want: uidsOn(21, 16, 11, 6, 1), wantMatch: "Found by customer id",
				wantQuery: "customer_id=" + customer + "&currency=EUR&limit=20",
			},
			{
				name: "dates and currency", q: customer, from: "2024-01-05", to: "2024-01-15", currency: "EUR",
				want: uidsOn(11, 6), wantMatch: "Found by customer id",
				wantQuery: "customer_id=" + customer + "&created_from=2024-01-05T00%3A00%3A00Z&created_to=2024-01-16T00%3A00%3A00Z&currency=EUR&limit=20",
			},
			{
				name: "filters alone", from: "2024-01-01", to: "2024-01-31", currency: "EUR",
				want: uidsOn(21, 16, 11, 6, 1), wantMatch: "Orders created from 2024-01-01, to 2024-01-31, in EUR",
				wantQuery: "created_from=2024-01-01T00%3A00%3A00Z&created_to=2024-02-01T00%3A00%3A00Z&currency=EUR&limit=20",
			},
			{
				name: "a track number within dates", q: track, from: "2023-05-02", to: "2023-05-31",
				want: byTrack[:2], wantMatch: "Found by track number",
				wantQuery: "track_number=" + track + "&created_from=2023-05-02T00%3A00%3A00Z&created_to=2023-06-01T00%3A00%3A00Z&limit=20",
			},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				tab := newTab(browserCtx, t, stack.keys.PII)
				tab.navigate(stack.base + "/")
				tab.searchWith(c.q, c.from, c.to, c.currency)
				tab.waitResults(len(c.want))
				if got := tab.resultUIDs(); !slices.Equal(got, c.want) {
					t.Errorf("results = %q, want %q", got, c.want)
				}
				tab.wantText("#results-match", c.wantMatch)
				reqs := tab.apiRequests()
				if last := reqs[len(reqs)-1]; last != "/orders?"+c.wantQuery {
					t.Errorf("matching request = %q, want %q", last, "/orders?"+c.wantQuery)
				}
				// With a filter set, the text is never tried as a uid.
				for _, r := range reqs {
					if strings.HasPrefix(r, "/order/") {
						t.Errorf("a filtered search requested %s", r)
					}
				}
				loc := tab.location()
				for k, v := range map[string]string{"from": c.from, "to": c.to, "currency": strings.ToUpper(c.currency)} {
					if v != "" && !strings.Contains(loc, k+"="+v) {
						t.Errorf("location %q does not hold %s=%s", loc, k, v)
					}
				}
			})
		}

		t.Run("no match", func(t *testing.T) {
			tab := newTab(browserCtx, t, stack.keys.PII)
			tab.navigate(stack.base + "/")
			tab.searchWith(customer, "2025-01-01", "", "")
			tab.waitState("not-found")
			tab.wantText("#status", "No order created from 2025-01-01 has “"+customer+"”")
		})

		bad := []struct {
			name, from, to, currency string
			field, want              string
		}{
			{"to before from", "2024-01-12", "2024-01-10", "", "to-input", "“Created to” is before “Created from”."},
			{"currency not three letters", "", "", "E1", "currency-input", "is not a currency"},
		}
		for _, c := range bad {
			t.Run(c.name, func(t *testing.T) {
				tab := newTab(browserCtx, t, stack.keys.PII)
				tab.navigate(stack.base + "/")
				tab.waitRecent(1)
				before := len(tab.apiRequests())
				tab.searchWith(customer, c.from, c.to, c.currency)
				tab.waitState("invalid")
				tab.wantText("#status", c.want)
				if got := tab.focused(); got != "input#"+c.field {
					t.Errorf("focus = %q, want the field at fault", got)
				}
				if got := eval[string](tab, fmt.Sprintf(`document.getElementById(%q).getAttribute('aria-invalid')`, c.field)); got != "true" {
					t.Errorf("aria-invalid of %s = %q", c.field, got)
				}
				if got := tab.apiRequests()[before:]; len(got) != 0 {
					t.Errorf("a refused search sent %q", got)
				}
				if got := tab.location(); got != stack.base+"/" {
					t.Errorf("location after a refused search = %q", got)
				}
			})
		}
	})

	t.Run("reload and back and forward restore the search", func(t *testing.T) {
		tab := newTab(browserCtx, t, stack.keys.PII)
		tab.navigate(stack.base + "/")
		tab.search(track)
		tab.waitResults(len(byTrack))
		tab.searchWith(customer, "", "", "EUR")
		tab.waitResults(5)
		if got, want := tab.location(), stack.base+"/?q="+customer+"&currency=EUR"; got != want {
			t.Fatalf("location = %q, want %q", got, want)
		}
		// The token is never in the address.
		if strings.Contains(tab.location(), stack.keys.PII) {
			t.Error("the token is in the URL")
		}

		tab.history(-1)
		tab.waitResults(len(byTrack))
		tab.wantText("#results-match", "Found by track number")
		if got := [2]string{tab.value("#uid-input"), tab.value("#currency-input")}; got != [2]string{track, ""} {
			t.Errorf("form after back = %q, want the track search", got)
		}
		tab.history(+1)
		tab.waitResults(5)
		if got := [2]string{tab.value("#uid-input"), tab.value("#currency-input")}; got != [2]string{customer, "EUR"} {
			t.Errorf("form after forward = %q, want the customer's euro search", got)
		}

		tab.do(chromedp.Reload())
		tab.waitResults(5)
		if got := tab.resultUIDs(); !slices.Equal(got, uidsOn(21, 16, 11, 6, 1)) {
			t.Errorf("results after reload = %q", got)
		}
		if got := tab.value("#currency-input"); got != "EUR" {
			t.Errorf("currency after reload = %q", got)
		}

		// An order opened from the results, and Back to them.
		tab.do(chromedp.Click(chromedp.CSS(`#results-body a[data-uid="cust-order-06"]`)))
		tab.waitOrder("cust-order-06")
		if got := tab.focused(); got != "h2#order-title" {
			t.Errorf("focus after opening a result = %q, want the order's heading", got)
		}
		tab.history(-1)
		tab.waitResults(5)
		tab.wantNoConsoleErrors("status of 404 (Not Found)")
	})

	t.Run("keyboard only", func(t *testing.T) {
		tab := newTab(browserCtx, t, stack.keys.PII)
		tab.navigate(stack.base + "/")
		tab.waitRecent(1)
		if got := tab.focused(); got != "input#uid-input" {
			t.Fatalf("focus on arrival = %q, want the search box", got)
		}
		// The filters follow the search button in the tab order (Tab walks
		// a date input's day, month and year on the way).
		var order []string
		for range 10 {
			tab.do(chromedp.KeyEvent(kb.Tab))
			if f := tab.focused(); len(order) == 0 || order[len(order)-1] != f {
				order = append(order, f)
			}
			if tab.focused() == "input#currency-input" {
				break
			}
		}
		if want := []string{"button#search-button", "input#from-input", "input#to-input", "input#currency-input"}; !slices.Equal(order, want) {
			t.Errorf("tab order after the search box = %q, want %q", order, want)
		}
		tab.do(chromedp.KeyEvent("eur"), chromedp.KeyEvent(kb.Enter))
		tab.waitResults(5)
		if got := tab.value("#currency-input"); got != "EUR" {
			t.Errorf("currency = %q, want it in capitals", got)
		}
		tab.do(chromedp.Focus(chromedp.ID("uid-input")), chromedp.Evaluate[chromedp.Void](`document.getElementById('currency-input').value = ''`))
		tab.do(chromedp.KeyEvent(customer), chromedp.KeyEvent(kb.Enter))
		tab.waitResults(20)
		// The focus moves to the results, and Tab walks their links.
		if got := tab.focused(); got != "h2#results-heading" {
			t.Errorf("focus after the search = %q, want the results' heading", got)
		}
		tab.do(chromedp.KeyEvent(kb.Tab))
		if got := eval[string](tab, `document.activeElement.dataset.uid ?? ''`); got != byCustomer[0] {
			t.Errorf("Tab from the heading reached %q, want the first result", got)
		}
		for range 40 {
			if tab.focused() == "button#results-more" {
				break
			}
			tab.do(chromedp.KeyEvent(kb.Tab))
		}
		if got := tab.focused(); got != "button#results-more" {
			t.Fatalf("Tab never reached More; focus is on %q", got)
		}
		tab.do(chromedp.KeyEvent(kb.Enter))
		tab.waitResults(len(byCustomer))
		// The focus lands on the first new result.
		if got := eval[string](tab, `document.activeElement.dataset.uid ?? ''`); got != byCustomer[20] {
			t.Errorf("focus after More is on %q, want %q", got, byCustomer[20])
		}
		tab.do(chromedp.KeyEvent(kb.Enter))
		tab.waitOrder(byCustomer[20])
		if got := tab.focused(); got != "h2#order-title" {
			t.Errorf("focus after Enter on a result = %q, want the order's heading", got)
		}
	})

	t.Run("axe-core finds no violations", func(t *testing.T) {
		views := []struct {
			name  string
			token string
			open  func(tb *tab)
		}{
			{"start page", stack.keys.PII, func(tb *tab) { tb.navigate(stack.base + "/"); tb.waitRecent(1) }},
			{"search results", stack.keys.PII, func(tb *tab) { tb.navigate(stack.base + "/?q=" + customer); tb.waitResults(20) }},
			{"order", stack.keys.PII, func(tb *tab) { tb.navigate(stack.base + "/?uid=" + sample.OrderUID); tb.waitOrder(sample.OrderUID) }},
			{"masked order", stack.keys.Read, func(tb *tab) { tb.navigate(stack.base + "/?uid=" + sample.OrderUID); tb.waitOrder(sample.OrderUID) }},
			{"not found", stack.keys.PII, func(tb *tab) { tb.navigate(stack.base + "/?q=nothing-matches"); tb.waitState("not-found") }},
			{"invalid filter", stack.keys.PII, func(tb *tab) { tb.navigate(stack.base + "/?q=x&currency=E1"); tb.waitState("invalid") }},
			{"sign-in form", "", func(tb *tab) { tb.navigate(stack.base + "/"); tb.waitState("signin") }},
		}
		for _, v := range views {
			t.Run(v.name, func(t *testing.T) {
				tab := newTab(browserCtx, t, v.token)
				v.open(tab)
				if n := eval[int](tab, `document.querySelectorAll('h1').length`); n != 1 {
					t.Errorf("the page has %d <h1>, want exactly one", n)
				}
				if got := tab.axe(axeSource); len(got) != 0 {
					t.Errorf("axe-core violations: %s", got)
				}
			})
		}

		// The check can fail: without its <h1>, axe-core names the rule.
		t.Run("a page without its h1 fails", func(t *testing.T) {
			tab := newTab(browserCtx, t, stack.keys.PII)
			tab.navigate(stack.base + "/")
			tab.waitRecent(1)
			tab.do(chromedp.Evaluate[chromedp.Void](`document.querySelector('h1').replaceWith(document.getElementById('home-link'))`))
			got := tab.axe(axeSource)
			if !slices.ContainsFunc(got, func(v axeViolation) bool { return v.ID == "page-has-heading-one" }) {
				t.Errorf("axe-core violations without the <h1> = %s, want page-has-heading-one", got)
			}
		})
	})
}

// axeViolation is one rule axe-core found broken, with the elements at
// fault as CSS selectors.
type axeViolation struct {
	ID    string   `json:"id"`
	Help  string   `json:"help"`
	Nodes []string `json:"nodes"`
}

func (v axeViolation) String() string {
	return fmt.Sprintf("%s (%s) at %q", v.ID, v.Help, v.Nodes)
}

// axe runs axe-core over the page as it is and returns its violations.
// DevTools evaluation is not subject to the page's Content-Security-Policy,
// so the engine is injected without loosening the policy.
func (tb *tab) axe(source string) []axeViolation {
	tb.t.Helper()
	tb.do(chromedp.Evaluate[chromedp.Void](source))
	return eval[[]axeViolation](tb, `axe.run(document, { resultTypes: ['violations'] }).then(r =>
		r.violations.map(v => ({ id: v.id, help: v.help, nodes: v.nodes.map(n => n.target.join(' ')) })))`,
		chromedp.EvalAwaitPromise)
}

// axeCore returns axe.min.js of the axe-core that tools/axe pins,
// installing it there with npm ci when it is missing or another version.
func axeCore(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "tools", "axe")
	var pkg struct {
		Version         string            `json:"version"`
		DevDependencies map[string]string `json:"devDependencies"`
	}
	readJSON := func(p string) error {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return json.Unmarshal(b, &pkg)
	}
	if err := readJSON(filepath.Join(dir, "package.json")); err != nil {
		t.Fatalf("tools/axe/package.json: %v", err)
	}
	want := pkg.DevDependencies["axe-core"]
	pkg.Version = ""
	if err := readJSON(filepath.Join(dir, "node_modules", "axe-core", "package.json")); err != nil || pkg.Version != want {
		npm, err := exec.LookPath("npm")
		if err != nil {
			t.Fatalf("axe-core %s is not installed in %s and npm is missing: apt-get install -y nodejs npm", want, dir)
		}
		cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
		}
	}
	src, err := os.ReadFile(filepath.Join(dir, "node_modules", "axe-core", "axe.min.js"))
	if err != nil {
		t.Fatalf("axe-core: %v", err)
	}
	return string(src)
}

// searchWith fills the search form (q and the filters; "" clears one) and
// submits it.
func (tb *tab) searchWith(q, from, to, currency string) {
	tb.t.Helper()
	// A date input takes its value as "yyyy-mm-dd" whatever the locale
	// shows, set as a date picker does.
	set := func(id, v string) chromedp.Action[chromedp.Void] {
		return chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.getElementById(%q).value = %q`, id, v))
	}
	tb.do(
		set("uid-input", q),
		set("from-input", from),
		set("to-input", to),
		set("currency-input", currency),
		chromedp.Click(chromedp.ID("search-button")),
	)
}

// waitResults waits for the search results to show n orders.
func (tb *tab) waitResults(n int) {
	tb.t.Helper()
	tb.poll(fmt.Sprintf(`document.getElementById('content').dataset.state === 'results' &&
		document.querySelectorAll('#results-body tr').length === %d`, n), fmt.Sprintf("%d search results", n))
}

// resultUIDs lists the uids of the search results, top to bottom.
func (tb *tab) resultUIDs() []string {
	tb.t.Helper()
	return eval[[]string](tb, `[...document.querySelectorAll('#results-body tr')].map(r => r.dataset.uid)`)
}

// apiRequests lists the paths and queries of the requests sent to the
// order endpoints, in order, leaving out the recent list's.
func (tb *tab) apiRequests() []string {
	var out []string
	for _, u := range tb.requests() {
		i := strings.Index(u, "/order")
		if i < 0 || strings.Contains(u, "/static/") {
			continue
		}
		if p := u[i:]; p != "/orders?limit=20" {
			out = append(out, p)
		}
	}
	return out
}

// chromiumPath finds the browser, or fails the test with the way to install
// it: a missing browser must not turn into a silent skip.
func chromiumPath(t *testing.T) string {
	t.Helper()
	p := os.Getenv("CHROMIUM_PATH")
	if p == "" {
		p = "/usr/bin/chromium"
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("chromium is needed for the browser tests and was not found at %s (%v); install it with: %s (or set CHROMIUM_PATH)",
			p, err, chromiumInstall)
	}
	return p
}

// startBrowser starts one headless chromium for every subtest; each subtest
// opens its own tab.
func startBrowser(t *testing.T, execPath string) context.Context {
	t.Helper()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(execPath),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("mute-audio", true),
		chromedp.WindowSize(1280, 900),
	)
	ctx, cancel := chromedp.NewContext(allocCtx)
	// The first Run starts the browser; its context must have no timeout, or
	// the timeout would end the browser.
	start := time.Now()
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("start chromium (%s): %v; if it is missing or broken, reinstall it with: %s", execPath, err, chromiumInstall)
	}
	t.Logf("chromium started in %s", time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	return ctx
}

// artifactsDir is where screenshots go: $ARTIFACTS_DIR, or
// <repo>/.artifacts/screenshots (gitignored).
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("ARTIFACTS_DIR")
	if dir == "" {
		_, file, _, _ := runtime.Caller(0)
		dir = filepath.Join(filepath.Dir(file), "..", ".artifacts", "screenshots")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		t.Fatalf("artifacts dir: %v", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifacts dir: %v", err)
	}
	return dir
}

// tab is one browser tab with what a test needs to see of it: every request
// it sent, and every console error, exception and browser log error.
type tab struct {
	t   *testing.T
	ctx context.Context

	mu       sync.Mutex
	reqs     []string // URLs of the requests, in order
	statuses []string // "<status> <URL>" of the responses, in order
	problems []string
}

const waitTimeout = 15 * time.Second

// newTab opens a tab signed in with token (kept in sessionStorage, as
// the sign-in form keeps it) or, when token is "", signed out.
func newTab(browserCtx context.Context, t *testing.T, token string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browserCtx)
	t.Cleanup(cancel)
	tb := &tab{t: t, ctx: ctx}
	err := chromedp.Listen(ctx, func(ev any) {
		tb.mu.Lock()
		defer tb.mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			tb.reqs = append(tb.reqs, ev.Request.URL)
		case *network.EventResponseReceived:
			tb.statuses = append(tb.statuses, fmt.Sprintf("%d %s", ev.Response.Status, ev.Response.URL))
		case *cdpruntime.EventConsoleAPICalled:
			if ev.Type == cdpruntime.ConsoleAPICalledTypeError || ev.Type == cdpruntime.ConsoleAPICalledTypeWarning || ev.Type == cdpruntime.ConsoleAPICalledTypeAssert {
				tb.problems = append(tb.problems, fmt.Sprintf("console.%s: %s", ev.Type, remoteArgs(ev.Args)))
			}
		case *cdpruntime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			tb.problems = append(tb.problems, fmt.Sprintf("exception: %s at %s:%d", msg, d.URL, d.LineNumber+1))
		case *cdplog.EventEntryAdded:
			if ev.Entry.Level == cdplog.EntryLevelError || ev.Entry.Level == cdplog.EntryLevelWarning {
				tb.problems = append(tb.problems, fmt.Sprintf("log %s/%s: %s %s", ev.Entry.Source, ev.Entry.Level, ev.Entry.Text, ev.Entry.URL))
			}
		}
	})
	if err != nil {
		t.Fatalf("open tab: %v", err)
	}
	// Fixed locale and time zone, so that expected texts do not depend on
	// the machine; the page itself formats for whatever the viewer has.
	// securitypolicyviolation is caught in the page too: DevTools scripts
	// run whatever the page's policy says.
	tb.call(func(ctx context.Context) error {
		if _, err := chromedp.Call(ctx, emulation.SetLocaleOverride, emulation.SetLocaleOverrideParams{Locale: "en_US"}); err != nil {
			return err
		}
		if _, err := chromedp.Call(ctx, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: "UTC"}); err != nil {
			return err
		}
		_, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
			Source: `window.__csp = [];
				document.addEventListener('securitypolicyviolation',
					e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));`,
		})
		return err
	})
	if token != "" {
		// Signed in before the first page loads; set again on every
		// load, which a test that signs out never makes.
		tb.call(func(ctx context.Context) error {
			_, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
				Source: fmt.Sprintf(`sessionStorage.setItem('orders.token', %q);`, token),
			})
			return err
		})
	}
	return tb
}

func remoteArgs(args []*cdpruntime.RemoteObject) string {
	parts := make([]string, 0, len(args))
	for _, a := range args {
		switch {
		case a.Value != nil:
			parts = append(parts, string(a.Value))
		default:
			parts = append(parts, a.Description)
		}
	}
	return strings.Join(parts, " ")
}

// do runs actions with a timeout; a failure ends the subtest.
func (tb *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, waitTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.t.Fatalf("browser: %v (state %s)", err, tb.describe())
	}
}

// call runs protocol commands on the tab's target.
func (tb *tab) call(f func(ctx context.Context) error) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, waitTimeout)
	defer cancel()
	if err := f(ctx); err != nil {
		tb.t.Fatalf("browser: %v", err)
	}
}

func eval[T any](tb *tab, expr string, opts ...chromedp.EvaluateOption) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, waitTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, opts...))
	if err != nil {
		tb.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func (tb *tab) navigate(url string) {
	tb.t.Helper()
	tb.do(chromedp.Navigate(url))
}

func (tb *tab) navigateResponse(url string) *network.Response {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, waitTimeout)
	defer cancel()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(url))
	if err != nil {
		tb.t.Fatalf("navigate %s: %v", url, err)
	}
	if resp.Status != http.StatusOK {
		tb.t.Fatalf("navigate %s: status %d", url, resp.Status)
	}
	return resp
}

// signIn types token into the sign-in form and submits it, as a person
// pasting a key does.
func (tb *tab) signIn(token string) {
	tb.t.Helper()
	tb.do(
		chromedp.WaitVisible(chromedp.ID("token-input")),
		chromedp.SetValue(chromedp.ID("token-input"), token),
		chromedp.Click(chromedp.ID("signin-button")),
	)
}

// search types uid into the search box, replacing what is there, and
// submits with the button, as a person does.
func (tb *tab) search(uid string) {
	tb.t.Helper()
	tb.do(
		// Select what is in the box so that typing replaces it.
		chromedp.Evaluate[chromedp.Void](`(e => { e.focus(); e.select(); })(document.getElementById('uid-input'))`),
		chromedp.SendKeys(chromedp.ID("uid-input"), uid),
		chromedp.Click(chromedp.ID("search-button")),
	)
}

// history moves through the tab's history as the back (-1) and forward (+1)
// buttons do. The entries of this page are same-document, so no load event
// is awaited; the caller waits for what the page shows.
func (tb *tab) history(delta int64) {
	tb.t.Helper()
	tb.call(func(ctx context.Context) error {
		h, err := chromedp.Call(ctx, page.GetNavigationHistory, cdp.Empty{})
		if err != nil {
			return err
		}
		i := h.CurrentIndex + delta
		if i < 0 || i >= int64(len(h.Entries)) {
			return fmt.Errorf("no history entry %d (have %d)", i, len(h.Entries))
		}
		_, err = chromedp.Call(ctx, page.NavigateToHistoryEntry, page.NavigateToHistoryEntryParams{EntryID: h.Entries[i].ID})
		return err
	})
}

// poll waits until the JavaScript condition holds.
func (tb *tab) poll(cond, what string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, waitTimeout)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](cond,
		chromedp.WithPollingTimeout(waitTimeout-time.Second), chromedp.WithPollingMutation()))
	if err != nil {
		tb.t.Fatalf("waiting for %s: %v (state %s)", what, err, tb.describe())
	}
}

// waitState waits for the view state that <main data-state> names.
func (tb *tab) waitState(state string) {
	tb.t.Helper()
	tb.poll(fmt.Sprintf(`document.getElementById('content').dataset.state === %q`, state), "state "+state)
}

func (tb *tab) waitOrder(uid string) {
	tb.t.Helper()
	tb.poll(fmt.Sprintf(`document.getElementById('content').dataset.state === 'order' &&
		document.getElementById('order-title')?.textContent === %q`, uid), "order "+uid)
	if got := tb.location(); !strings.HasSuffix(got, "/?uid="+uid) {
		tb.t.Errorf("location = %q while order %s is shown", got, uid)
	}
}

func (tb *tab) waitRecent(n int) {
	tb.t.Helper()
	tb.poll(fmt.Sprintf(`document.querySelectorAll('#recent-list a').length >= %d`, n),
		fmt.Sprintf("at least %d recent orders", n))
}

// describe says what the page shows, for failure messages.
func (tb *tab) describe() string {
	ctx, cancel := context.WithTimeout(tb.ctx, 2*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](
		`(document.getElementById('content')?.dataset.state ?? '?') + ': ' + (document.getElementById('status')?.textContent ?? '').trim().replace(/\s+/g, ' ')`))
	if err != nil {
		return "unknown: " + err.Error()
	}
	return fmt.Sprintf("%q at %s", s, tb.location0(ctx))
}

func (tb *tab) location() string {
	tb.t.Helper()
	return eval[string](tb, `location.href`)
}

func (tb *tab) location0(ctx context.Context) string {
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href`))
	return s
}

func (tb *tab) text(sel string) string {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, waitTimeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		tb.t.Fatalf("text of %s: %v (state %s)", sel, err, tb.describe())
	}
	return strings.TrimSpace(s)
}

func (tb *tab) textContent(sel string) string {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, waitTimeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS(sel)))
	if err != nil {
		tb.t.Fatalf("text content of %s: %v", sel, err)
	}
	return s
}

func (tb *tab) value(sel string) string {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, waitTimeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS(sel)))
	if err != nil {
		tb.t.Fatalf("value of %s: %v", sel, err)
	}
	return s
}

// wantText checks that the visible text of sel contains want.
func (tb *tab) wantText(sel, want string) {
	tb.t.Helper()
	if got := tb.text(sel); !strings.Contains(got, want) {
		tb.t.Errorf("%s shows %q, want it to contain %q", sel, got, want)
	}
}

func (tb *tab) wantExactText(sel, want string) {
	tb.t.Helper()
	if got := tb.textContent(sel); got != want {
		tb.t.Errorf("%s shows %q, want exactly %q", sel, got, want)
	}
}

// focused names the focused element as tag#id or tag.class.
func (tb *tab) focused() string {
	tb.t.Helper()
	return eval[string](tb, `(() => { const e = document.activeElement;
		if (!e) return '';
		const tag = e.tagName.toLowerCase();
		return e.id ? tag + '#' + e.id : tag + '.' + (e.classList[0] || ''); })()`)
}

func (tb *tab) requests() []string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return slices.Clone(tb.reqs)
}

// orderRequests lists the paths of the requests sent to GET /order/.
func (tb *tab) orderRequests() []string {
	var out []string
	for _, u := range tb.requests() {
		if i := strings.Index(u, "/order/"); i >= 0 {
			out = append(out, u[i:])
		}
	}
	return out
}

// eventually waits for a condition on what the tab recorded. Protocol
// events can arrive a little after the page has acted on the response.
func (tb *tab) eventually(what string, cond func() bool) {
	tb.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.t.Fatalf("no %s within 5s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// responded reports whether a response with status came for a URL that
// ends with path.
func (tb *tab) responded(status int, path string) bool {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return slices.ContainsFunc(tb.statuses, func(s string) bool {
		return strings.HasPrefix(s, fmt.Sprintf("%d ", status)) && strings.HasSuffix(s, path)
	})
}

// wantNoConsoleErrors checks the tab logged no error, no exception and no
// Content-Security-Policy violation, except browser messages holding one
// of expected.
func (tb *tab) wantNoConsoleErrors(expected ...string) {
	tb.t.Helper()
	if v := eval[[]string](tb, `window.__csp`); len(v) != 0 {
		tb.t.Errorf("Content-Security-Policy violations: %q", v)
	}
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for _, p := range tb.problems {
		if !slices.ContainsFunc(expected, func(e string) bool { return strings.Contains(p, e) }) {
			tb.t.Errorf("browser console: %s", p)
		}
	}
}

func (tb *tab) grantClipboard(origin string) {
	tb.t.Helper()
	tb.call(func(ctx context.Context) error {
		// The clipboard API wants a focused document.
		if _, err := chromedp.Call(ctx, page.BringToFront, cdp.Empty{}); err != nil {
			return fmt.Errorf("bring tab to front: %w", err)
		}
		for _, name := range []string{"clipboard-read", "clipboard-write"} {
			_, err := chromedp.CallBrowser(ctx, browser.SetPermission, browser.SetPermissionParams{
				Permission: &browser.PermissionDescriptor{Name: name},
				Setting:    browser.PermissionSettingGranted,
				Origin:     origin,
			})
			if err != nil {
				return fmt.Errorf("grant %s: %w", name, err)
			}
		}
		return nil
	})
}

// blockAPI makes the browser fail every request to the reader's API, as a
// network error.
func (tb *tab) blockAPI(on bool) {
	tb.t.Helper()
	var patterns []*network.BlockPattern
	if on {
		patterns = []*network.BlockPattern{
			{URLPattern: "*://*:*/order/*", Block: true},
			{URLPattern: "*://*:*/orders", Block: true},
		}
	}
	tb.call(func(ctx context.Context) error {
		_, err := chromedp.Call(ctx, network.SetBlockedURLs, network.SetBlockedURLsParams{URLPatterns: patterns})
		return err
	})
}

func headerValue(h network.Headers, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return fmt.Sprint(v)
		}
	}
	return ""
}

// variant is a copy of o with another uid (and transaction, which is unique).
func variant(o *model.Order, uid string) *model.Order {
	c := *o
	c.OrderUID = uid
	c.Payment.Transaction = uid
	c.Items = slices.Clone(o.Items)
	return &c
}

// readerStack is a reader started with run, with a way to add orders.
type readerStack struct {
	base   string
	keys   *authtest.Keys
	issuer *authtest.Issuer
	insert func(t *testing.T, orders ...*model.Order)
	// cutDB takes the reader's database away (connections drop, new ones
	// are refused) until restoreDB.
	cutDB, restoreDB func()
}

// startReader runs the reader (run, as main does) on a free port against a
// fresh database and a private Redis key prefix, and waits until /readyz
// says it is ready.
func startReader(t *testing.T) *readerStack {
	t.Helper()
	pg := testenv.Postgres(t)
	rd := testenv.Redis(t)
	addr := testenv.FreeAddr(t)
	// The reader reaches PostgreSQL through a proxy, so that a test can take
	// the database away and see the page's "unavailable" state for real.
	dbURL, proxy := testenv.ProxyURL(t, pg.URLAs("order_reader"))
	keys := authtest.NewKeys(t)
	issuer := authtest.NewIssuer(t)
	vars := map[string]string{
		"READER_LISTEN_ADDR":      addr,
		"READER_OPS_ADDR":         testenv.FreeAddr(t),
		"DATABASE_URL":            dbURL,
		"REDIS_URL":               rd.URL,
		"READER_REDIS_KEY_PREFIX": rd.Prefix,
		"READER_API_KEYS_FILE":    keys.File,
		"READER_JWT_JWKS_URL":     issuer.JWKSURL,
		"READER_JWT_ISSUER":       issuer.Issuer,
		"READER_JWT_AUDIENCE":     issuer.Audience,
		"LOG_LEVEL":               "warn",
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"reader"}, func(k string) string { return vars[k] }, io.Discard, io.Discard)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("reader run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("reader did not stop within 10s of cancel")
		}
	})

	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-done:
			t.Fatalf("reader stopped before it was ready: %v", err)
		default:
		}
		res, err := http.Get(base + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("reader not ready at %s/readyz within 30s (last: %v)", base, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return &readerStack{
		base:      base,
		keys:      keys,
		issuer:    issuer,
		cutDB:     proxy.Cut,
		restoreDB: proxy.Restore,
		insert: func(t *testing.T, orders ...*model.Order) {
			t.Helper()
			testenv.InsertOrders(t, pg.Pool, orders...)
		},
	}
}
