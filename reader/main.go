// Command reader serves orders over HTTP: GET /order/{order_uid} from an
// in-process cache, Redis or PostgreSQL, plus the web UI, the OpenAPI spec
// and the operational endpoints. Configuration is environment variables
// (see README.md or `reader -help`).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lmittmann/tint"
	"github.com/orderservice/orders/reader/cache"
	"github.com/orderservice/orders/reader/config"
	"github.com/orderservice/orders/reader/httpapi"
	"github.com/orderservice/orders/reader/metrics"
	"github.com/orderservice/orders/reader/postgres"
	"github.com/orderservice/orders/reader/redis"
	"github.com/prometheus/client_golang/prometheus"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "reader:", err)
		os.Exit(1)
	}
}

// run starts the reader and serves until ctx ends, then shuts down
// gracefully. Tests call it with their own getenv and stdout.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("reader", flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.Usage = func() {
		fmt.Fprintf(stdout, "Usage: reader\n\nConfigured by environment variables:\n\n%s", config.Usage())
	}
	if len(args) > 0 {
		if err := fs.Parse(args[1:]); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil
			}
			return err
		}
	}

	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	// One lock for the two writers of stdout (slog and the access log),
	// so that their lines never interleave.
	out := &lockedWriter{w: stdout}
	log := newLogger(cfg, getenv, out)
	var access *httpapi.AccessLog
	if cfg.LogFormat == "json" && log.Enabled(ctx, slog.LevelInfo) {
		access = httpapi.NewAccessLog(out, "service", "reader")
	}
	// Process-wide runtime settings: the reader owns its process.
	debug.SetGCPercent(cfg.GCPercent)
	if cfg.MemoryLimit > 0 {
		debug.SetMemoryLimit(cfg.MemoryLimit)
	}

	reg := prometheus.NewRegistry()
	m := metrics.New(reg)

	store, err := postgres.Open(ctx, postgres.Options{
		URL: cfg.DatabaseURL, MaxConns: cfg.DBMaxConns, Loaders: cfg.DBLoaders,
		Latency: m.DBQueryDuration, BatchSize: m.DBLookupBatch,
	})
	if err != nil {
		return err
	}
	defer store.Close()
	m.RegisterDBPool(reg, store.Stat)

	rc, err := redis.New(redis.Options{
		URL: cfg.RedisURL, Prefix: cfg.RedisKeyPrefix, TTL: cfg.RedisTTL, Timeout: cfg.RedisTimeout,
		Logger: log.With("component", "redis"), Up: m.RedisUp,
	})
	if err != nil {
		return err
	}
	defer rc.Close()

	tiers, err := cache.New(cache.Options{
		Store: store, Remote: rc, LocalBytes: cfg.CacheBytes, NegativeTTL: cfg.NegativeTTL,
		LoadTimeout: cfg.DBQueryTimeout, Metrics: m, Logger: log.With("component", "cache"),
	})
	if err != nil {
		return err
	}
	defer tiers.Close()
	m.RegisterLocalCacheBytes(reg, func() float64 { return float64(tiers.LocalBytes()) })

	var ready atomic.Bool
	handler := httpapi.NewServer(httpapi.Deps{
		Logger: log, AccessLog: access, Orders: tiers, Summaries: store, Metrics: m, Gatherer: reg,
		Ready: ready.Load, RedisUp: rc.Up, Web: webHandler(),
		RequestTimeout: cfg.RequestTimeout,
	})

	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.ListenAddr, err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		// Requests keep ctx's values but not its cancellation: shutdown
		// lets in-flight requests finish (Shutdown's grace period).
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	opsLn, err := net.Listen("tcp", cfg.OpsAddr)
	if err != nil {
		ln.Close()
		return fmt.Errorf("listen on %s: %w", cfg.OpsAddr, err)
	}
	ops := &http.Server{
		Handler: httpapi.NewOps(httpapi.Deps{
			Gatherer: reg, Ready: ready.Load, RedisUp: rc.Up,
		}),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		// No WriteTimeout: /debug/pprof/profile and trace stream for as
		// long as asked (?seconds=N).
		IdleTimeout: cfg.IdleTimeout,
		ErrorLog:    slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("reader listening", "addr", ln.Addr().String(), "ops_addr", opsLn.Addr().String())

	warmCtx, cancelWarm := context.WithTimeout(ctx, cfg.WarmTimeout)
	defer cancelWarm()
	go func() {
		defer cancelWarm()
		warmUp(warmCtx, log, tiers, m, cfg.WarmCount)
		ready.Store(true)
	}()

	serveErr := make(chan error, 2)
	go func() { serveErr <- srv.Serve(ln) }()
	go func() {
		if err := ops.Serve(opsLn); !errors.Is(err, http.ErrServerClosed) {
			serveErr <- fmt.Errorf("ops: %w", err)
		}
	}()
	// The ops port stays up while the public one drains, so that the
	// drain can be watched; it closes last.
	defer ops.Close()

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	ready.Store(false)
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		if !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("shutdown: %w", err)
		}
		// The grace period is over: what is still open is cut. That is
		// the configured behaviour of a stop, not a failure of the
		// process (net/http also waits up to 5 s for a connection that
		// has sent no request yet, so this can happen with no request in
		// flight at all).
		log.Warn("shutdown grace period over; closing remaining connections", "grace", cfg.ShutdownTimeout)
		if err := srv.Close(); err != nil {
			return fmt.Errorf("close: %w", err)
		}
	}
	return nil
}

// warmUp loads the most recent orders into the caches. A failure or a
// timeout is logged and the reader serves anyway: a cold cache is slower,
// not wrong.
func warmUp(ctx context.Context, log *slog.Logger, tiers *cache.Tiered, m *metrics.Metrics, n int) {
	if n == 0 {
		log.Info("warm-up disabled")
		return
	}
	start := time.Now()
	count, err := tiers.Warm(ctx, n)
	elapsed := time.Since(start)
	m.WarmupOrders.Set(float64(count))
	m.WarmupDuration.Set(elapsed.Seconds())
	if err != nil {
		log.Warn("warm-up ended early; serving anyway", "orders", count, "duration", elapsed, "err", err)
		return
	}
	log.Info("warm-up done", "orders", count, "duration", elapsed)
}

// newLogger returns the JSON logger, or tint's coloured text one; NO_COLOR
// (https://no-color.org) turns colour off, as the dev stack sets it when
// its own output is not a terminal.
func newLogger(cfg *config.Config, getenv func(string) string, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(strings.ToUpper(cfg.LogLevel))) // validated by config
	if cfg.LogFormat == "text" {
		return slog.New(tint.NewTextHandler(w, &tint.Options{Level: level, TimeFormat: time.TimeOnly, NoColor: getenv("NO_COLOR") != ""}))
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})).With("service", "reader")
}

// lockedWriter serialises writes to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
