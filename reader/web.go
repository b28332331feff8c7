package main

import (
	"net/http"

	"github.com/orderservice/orders/reader/web"
)

// webHandler is the UI (package web, which sets its own
// Content-Security-Policy).
func webHandler() http.Handler { return web.Handler() }
