// Command refreader is bench-scale's reference for the uncached GETs: the
// least a server must do to answer GET /order/{uid} from PostgreSQL. It
// runs one query per request (no cache, no batching, no authentication,
// no logging) on a pgx pool and writes the JSON that PostgreSQL built.
// bench-scale sends it the same number of GETs at the same rate as the
// reader, on the same machine in the same run, so that the reader's p99
// is read against what this machine gives the simplest server: a tail
// both share is the machine's, not the reader's.
//
// REF_DATABASE_URL is the database (the reader's role is enough),
// REF_LISTEN_ADDR the address to serve; GET /readyz answers 200 once the
// database has answered.
package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// lookup builds the order's JSON in PostgreSQL, its items in position
// order. The one scalar argument keeps a generic plan.
const lookup = `SELECT json_build_object(
	'order', to_json(o), 'delivery', to_json(d), 'payment', to_json(p),
	'items', (SELECT json_agg(i ORDER BY i.position) FROM items i WHERE i.order_uid = o.order_uid))::text
FROM orders o JOIN delivery d ON d.order_uid = o.order_uid JOIN payment p ON p.order_uid = o.order_uid
WHERE o.order_uid = $1`

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "refreader:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	pool, err := pgxpool.New(ctx, os.Getenv("REF_DATABASE_URL"))
	if err != nil {
		return fmt.Errorf("pool: %w", err)
	}
	defer pool.Close()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := pool.Ping(r.Context()); err != nil {
			http.Error(w, "database not answering", http.StatusServiceUnavailable)
		}
	})
	mux.HandleFunc("GET /order/{uid}", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		var body string
		switch err := pool.QueryRow(ctx, lookup, r.PathValue("uid")).Scan(&body); {
		case errors.Is(err, pgx.ErrNoRows):
			http.NotFound(w, r)
		case err != nil:
			http.Error(w, "lookup failed", http.StatusServiceUnavailable)
		default:
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(body))
		}
	})
	srv := &http.Server{Addr: os.Getenv("REF_LISTEN_ADDR"), Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}
