// Command reader serves orders over HTTP: GET /order/{order_uid} from an
// in-process cache, Redis or PostgreSQL, plus the web UI, the OpenAPI spec
// and the operational endpoints. Configuration is environment variables
// (see README.md or `reader -help`). `reader keys new --name NAME --scopes
// orders:read[,orders:pii]` makes an API key and its keys file line.
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
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lmittmann/tint"
	"github.com/orderservice/orders/reader/auth"
	"github.com/orderservice/orders/reader/auth/ratelimit"
	"github.com/orderservice/orders/reader/cache"
	"github.com/orderservice/orders/reader/config"
	"github.com/orderservice/orders/reader/httpapi"
	"github.com/orderservice/orders/reader/metrics"
	"github.com/orderservice/orders/reader/pii"
	"github.com/orderservice/orders/reader/postgres"
	"github.com/orderservice/orders/reader/redis"
	"github.com/orderservice/orders/reader/web"
	"github.com/orderservice/orders/shared/poolmetrics"
	"github.com/orderservice/orders/shared/syncio"
	"github.com/prometheus/client_golang/prometheus"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "reader:", err)
		os.Exit(1)
	}
}

// run starts the reader and serves until ctx ends, then shuts down
// gracefully; or runs the keys command. Tests call it with their own
// getenv, stdout and stderr. The logs go to stdout, the audit records to
// stderr (or READER_AUDIT_LOG's file).
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 1 && args[1] == "keys" {
		return keysCommand(args[2:], stdout, stderr)
	}
	if help, err := parseFlags(args, stdout); help || err != nil {
		return err
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	// One lock for the two writers of stdout (slog and the access log),
	// so that their lines never interleave.
	out := syncio.NewWriter(stdout)
	log := newLogger(cfg, getenv, out)
	setRuntime(cfg)
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)

	store, err := openPostgres(ctx, cfg, log, reg, m)
	if err != nil {
		return err
	}
	defer store.Close()
	rc, err := openRedis(cfg, log, m)
	if err != nil {
		return err
	}
	defer rc.Close()
	tiers, err := newTiers(cfg, store, rc, log, reg, m)
	if err != nil {
		return err
	}
	defer tiers.Close()
	authn, err := newAuth(ctx, cfg, rc, log, reg)
	if err != nil {
		return err
	}
	audit, closeAudit, err := openAudit(cfg, stderr, m)
	if err != nil {
		return err
	}
	// Deferred before the servers' close, so it runs after the last
	// request: every record of the run is written.
	defer func() {
		if err := closeAudit(); err != nil {
			log.Error("audit records could not be written", "err", err)
		}
	}()

	// The goroutines started from here on end with run (before the tiers
	// close), whether ctx ended or serving failed.
	ctx, cancel := context.WithCancel(ctx)
	var background sync.WaitGroup
	defer background.Wait()
	defer cancel()
	background.Go(func() {
		if err := authn.Run(ctx); err != nil {
			log.Error("api keys: the keys file is no longer watched; SIGHUP still reloads it", "err", err)
		}
	})
	background.Go(func() { audit.Run(ctx, log) })
	// Registered before serving, so that a SIGHUP from then on reloads
	// and never ends the process (its default action).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	background.Go(func() { reloadOnHangup(ctx, hup, authn, log) })
	events := newSubscriber(log, rc, tiers, m)
	background.Go(func() { events.Run(ctx) })

	var ready atomic.Bool
	access := accessLog(ctx, cfg, log, out)
	// Deferred before the servers' close, so it runs after it: the last
	// lines are written once no request is left.
	defer access.Close()
	srv, err := listen(ctx, cfg, log, httpapi.Deps{
		Logger: log, AccessLog: access, Orders: tiers, Summaries: tiers,
		Metrics: m, Gatherer: reg, Ready: ready.Load, RedisUp: rc.Up, Web: web.Handler(),
		RequestTimeout: cfg.RequestTimeout, Auth: authn, Audit: audit,
	})
	if err != nil {
		return err
	}
	defer srv.close()
	background.Go(func() {
		awaitSubscribed(ctx, events, subscribeWait)
		warmUp(ctx, log, tiers, m, cfg.WarmCount, cfg.WarmTimeout)
		ready.Store(true)
		if cfg.WarmCount > 0 {
			awaitWarmFill(ctx, log, tiers, m)
		}
	})
	if err := srv.serve(ctx); err != nil {
		return err
	}
	ready.Store(false)
	return srv.shutdown(ctx, log, cfg.ShutdownTimeout)
}

// keysCommand runs `reader keys <subcommand>`; the only one is "new"
// (auth.KeysNew): the key alone on the last line of stdout, its keys file
// line on stderr.
func keysCommand(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "new" {
		fmt.Fprintf(stderr, "usage: reader keys new --name NAME --scopes %s[,%s] [--rate R/B]\n", auth.ScopeRead, auth.ScopePII)
		return errors.New("keys: the only subcommand is new")
	}
	err := auth.KeysNew(args[1:], stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

// newAuth builds the authentication of the data endpoints: the API keys
// file and the JWT verifier, whichever are configured (config.Load has
// made sure one is), and the rate limits, shared with the other readers
// through the cache's Redis client and circuit breaker.
func newAuth(ctx context.Context, cfg *config.Config, rc *redis.Cache, log *slog.Logger, reg prometheus.Registerer) (*auth.Authenticator, error) {
	am := auth.NewPrometheusMetrics(reg)
	alog := log.With("component", "auth")
	rate := ratelimit.PerSecond(cfg.RateLimit, cfg.RateBurst)
	var keys *auth.KeyStore
	if cfg.APIKeysFile != "" {
		var err error
		if keys, err = auth.NewKeyStore(cfg.APIKeysFile, rate, alog, am); err != nil {
			return nil, err
		}
	}
	var jwt *auth.JWTVerifier
	if cfg.JWTJwksURL != "" {
		var err error
		jwt, err = auth.NewJWTVerifier(ctx, auth.JWTConfig{
			JWKSURL: cfg.JWTJwksURL, Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience,
			MinRefreshInterval: cfg.JWTMinRefreshInterval,
		}, rate, alog, am)
		if err != nil {
			return nil, err
		}
	}
	proxies, err := auth.ParseTrustedProxies(cfg.TrustedProxies)
	if err != nil {
		return nil, err
	}
	// The cache's breaker: once either finds Redis failing, both skip it,
	// so that a request waits for a failed Redis once, not once each.
	limiter := ratelimit.New(rc.Client(), ratelimit.Options{
		Prefix: cfg.RedisKeyPrefix + "ratelimit:", Timeout: cfg.RedisTimeout, Breaker: rc.Breaker(),
		Log: log.With("component", "ratelimit"), Metrics: am,
	})
	return auth.New(auth.Config{
		Keys: keys, JWT: jwt, Limiter: limiter,
		FailureRate:    ratelimit.PerMinute(cfg.AuthFailureLimit, cfg.AuthFailureLimit),
		TrustedProxies: proxies, Log: alog, Metrics: am,
	})
}

// openAudit opens the audit stream: stderr, or READER_AUDIT_LOG's file,
// appended to. closeAudit writes what is buffered and closes the file.
func openAudit(cfg *config.Config, stderr io.Writer, m *metrics.Metrics) (audit *httpapi.AuditLog, closeAudit func() error, err error) {
	if cfg.AuditLog == "stderr" {
		audit = httpapi.NewAuditLog(stderr, m.PIIReads)
		return audit, audit.Flush, nil
	}
	f, err := os.OpenFile(cfg.AuditLog, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("audit log: %w", err)
	}
	audit = httpapi.NewAuditLog(f, m.PIIReads)
	return audit, func() error { return errors.Join(audit.Flush(), f.Close()) }, nil
}

// reloadOnHangup reads the keys file again on each SIGHUP until ctx ends.
func reloadOnHangup(ctx context.Context, hup <-chan os.Signal, a *auth.Authenticator, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			// A failure is logged by the key store, which keeps the
			// keys it had.
			log.Info("SIGHUP: reloading the api keys file")
			_ = a.Reload()
		}
	}
}

// parseFlags reads the command line, which has no flag but -help. help
// reports that -help printed the configuration variables: run stops there.
func parseFlags(args []string, stdout io.Writer) (help bool, err error) {
	if len(args) == 0 {
		return false, nil
	}
	fs := flag.NewFlagSet("reader", flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.Usage = func() { _ = config.Usage(stdout) }
	err = fs.Parse(args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return true, nil
	}
	return false, err
}

// setRuntime applies the process-wide runtime settings: the reader owns
// its process.
func setRuntime(cfg *config.Config) {
	debug.SetGCPercent(cfg.GCPercent)
	if cfg.MemoryLimit > 0 {
		debug.SetMemoryLimit(cfg.MemoryLimit)
	}
}

// accessLog is the hand-written JSON access log, used when the logs are
// JSON and level info is on; nil lets httpapi log requests through log.
// Its lines are written in batches every accessLogFlush.
func accessLog(ctx context.Context, cfg *config.Config, log *slog.Logger, w io.Writer) *httpapi.AccessLog {
	if cfg.LogFormat != "json" || !log.Enabled(ctx, slog.LevelInfo) {
		return nil
	}
	return httpapi.NewBufferedAccessLog(w, accessLogFlush, "service", "reader")
}

// openPostgres creates the database tier and registers its pool metrics.
func openPostgres(ctx context.Context, cfg *config.Config, log *slog.Logger, reg prometheus.Registerer, m *metrics.Metrics) (*postgres.Store, error) {
	store, err := postgres.Open(ctx, postgres.Options{
		URL: cfg.DatabaseURL, ReplicaURLs: cfg.DatabaseReplicaURLS, MaxConns: cfg.DBMaxConns, Loaders: cfg.DBLoaders,
		Searchers: cfg.DBSearchers, SearchBatchSize: m.DBSearchBatch,
		Latency: m.DBQueryDuration, BatchSize: m.DBLookupBatch,
		Replica: postgres.ReplicaMetrics{Lookups: m.DBTargetLookups, Rechecks: m.DBReplicaRechecks, Up: m.DBReplicaUp},
		Logger:  log.With("component", "postgres"),
	})
	if err != nil {
		return nil, err
	}
	// The pool's metrics are registered here, where pgx is known: the
	// metrics package is imported by the core and stays free of drivers.
	reg.MustRegister(poolmetrics.New("reader", store.Stat))
	return store, nil
}

// openRedis creates the shared cache tier.
func openRedis(cfg *config.Config, log *slog.Logger, m *metrics.Metrics) (*redis.Cache, error) {
	return redis.New(redis.Options{
		URL: cfg.RedisURL, Prefix: cfg.RedisKeyPrefix, TTL: cfg.RedisTTL, Timeout: cfg.RedisTimeout,
		Logger: log.With("component", "redis"), Up: m.RedisUp,
	})
}

// newTiers builds the tiered cache over the database and the shared tier,
// and registers the in-process tier's size gauge.
func newTiers(cfg *config.Config, store cache.Store, remote cache.Remote, log *slog.Logger,
	reg prometheus.Registerer, m *metrics.Metrics) (*cache.Tiered, error) {
	tiers, err := cache.New(cache.Options{
		Store: store, Remote: remote, LocalBytes: cfg.CacheBytes, NegativeTTL: cfg.NegativeTTL,
		LoadTimeout: cfg.DBQueryTimeout, RemoteHedge: cfg.RedisHedge, Mask: pii.MaskJSON, MaskOrder: pii.Mask, Metrics: m, Logger: log.With("component", "cache"),
	})
	if err != nil {
		return nil, err
	}
	m.RegisterLocalCacheBytes(reg, func() float64 { return float64(tiers.LocalBytes()) })
	return tiers, nil
}

// subscribeWait is how long the warm-up waits for the events channel's
// first subscription, which empties the in-process tiers: were it to come
// after the warm-up, the warm-up would be lost. Past it (Redis down at
// start) the warm-up goes ahead, and the later subscription empties the
// tiers, as it must: erasures may have been announced meanwhile.
const subscribeWait = 2 * time.Second

// newSubscriber subscribes the tiers to the ingestor's announcements of
// stored and erased orders (run it on a goroutine of its own);
// reader_invalidation_subscribed says whether it is listening.
func newSubscriber(log *slog.Logger, rc *redis.Cache, tiers *cache.Tiered, m *metrics.Metrics) *redis.Subscriber {
	return redis.NewSubscriber(rc, tiers, redis.SubscriberOptions{
		Logger: log.With("component", "events"), Subscribed: m.InvalidationSubscribed,
	})
}

// awaitSubscribed waits for the first subscription of s, at most limit.
func awaitSubscribed(ctx context.Context, s *redis.Subscriber, limit time.Duration) {
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-s.Subscribed():
	case <-t.C:
	case <-ctx.Done():
	}
}

// warmUp loads the n most recent orders into the caches, for at most
// timeout. A failure or a timeout is logged and the reader serves anyway:
// a cold cache is slower, not wrong.
func warmUp(ctx context.Context, log *slog.Logger, tiers *cache.Tiered, m *metrics.Metrics, n int, timeout time.Duration) {
	if n == 0 {
		log.Info("warm-up disabled")
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	count, err := tiers.Warm(ctx, n)
	// The warm-up leaves behind as much garbage as it cached (rows scanned,
	// orders decoded and masked, encodings, Redis pipelines), and with
	// READER_GC_PERCENT's target the heap had room for twice that: one
	// collection now, with the memory returned to the OS, makes the
	// resident set that of the cache rather than of the bulk load. It is
	// counted in the warm-up's duration: the reader is not ready before.
	collect := time.Now()
	debug.FreeOSMemory()
	elapsed, collected := time.Since(start), time.Since(collect)
	m.WarmupOrders.Set(float64(count))
	m.WarmupDuration.Set(elapsed.Seconds())
	if err != nil {
		log.Warn("warm-up ended early; serving anyway", "orders", count, "duration", elapsed, "err", err)
		return
	}
	log.Info("warm-up done", "orders", count, "duration", elapsed, "collection", collected)
}

// awaitWarmFill logs the outcome of the warm-up's Redis fill, which runs
// after the warm-up (see cache.Tiered.Warm), once it has ended.
func awaitWarmFill(ctx context.Context, log *slog.Logger, tiers *cache.Tiered, m *metrics.Metrics) {
	select {
	case f := <-tiers.WarmFilled():
		m.WarmupRedisDuration.Set(f.Duration.Seconds())
		if f.Err != nil {
			log.Warn("warm-up: redis fill incomplete", "written", f.Written, "left", f.Left, "duration", f.Duration, "err", f.Err)
			return
		}
		log.Info("warm-up: redis filled", "written", f.Written, "left", f.Left, "duration", f.Duration)
	case <-ctx.Done():
	}
}

// servers are the public port (API, web UI, Swagger, health) and the ops
// port (metrics, profiles, health).
type servers struct {
	public, ops     *http.Server
	publicLn, opsLn net.Listener
}

// listen opens both ports, so that a port in use fails the start rather
// than a goroutine later.
func listen(ctx context.Context, cfg *config.Config, log *slog.Logger, deps httpapi.Deps) (*servers, error) {
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.ListenAddr, err)
	}
	opsLn, err := net.Listen("tcp", cfg.OpsAddr)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("listen on %s: %w", cfg.OpsAddr, err)
	}
	errorLog := slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	s := &servers{publicLn: ln, opsLn: opsLn,
		public: publicServer(cfg, httpapi.NewServer(deps)),
		ops: &http.Server{
			Handler:           httpapi.NewOps(deps),
			ReadHeaderTimeout: cfg.ReadHeaderTimeout,
			// No WriteTimeout: /debug/pprof/profile and trace stream for
			// as long as asked (?seconds=N).
			IdleTimeout: cfg.IdleTimeout,
			ErrorLog:    errorLog,
		},
	}
	s.public.ErrorLog = errorLog
	// Requests keep ctx's values but not its cancellation: shutdown lets
	// in-flight requests finish (Shutdown's grace period).
	s.public.BaseContext = func(net.Listener) context.Context { return context.WithoutCancel(ctx) }
	log.Info("reader listening", "addr", ln.Addr().String(), "ops_addr", opsLn.Addr().String())
	return s, nil
}

// publicServer is the public port's server: its timeouts and limits,
// which net/http applies to every request (a deadline update per
// timeout). The benchmarks' ceiling runs on one too, so that it is
// compared under the same settings.
func publicServer(cfg *config.Config, h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    16 << 10,
	}
}

// serve serves both ports until ctx ends (nil) or one of them fails.
func (s *servers) serve(ctx context.Context) error {
	failed := make(chan error, 2)
	go func() { failed <- s.public.Serve(s.publicLn) }()
	go func() {
		if err := s.ops.Serve(s.opsLn); !errors.Is(err, http.ErrServerClosed) {
			failed <- fmt.Errorf("ops: %w", err)
		}
	}()
	select {
	case err := <-failed:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
		return nil
	}
}

// shutdown lets the public port's requests in flight finish for up to
// grace, then cuts what is left. The ops port stays up meanwhile, so that
// the drain can be watched; close ends it.
func (s *servers) shutdown(ctx context.Context, log *slog.Logger, grace time.Duration) error {
	log.Info("shutting down")
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	if err := s.public.Shutdown(ctx); err != nil {
		if !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("shutdown: %w", err)
		}
		// The grace period is over: what is still open is cut. That is
		// the configured behaviour of a stop, not a failure of the
		// process (net/http also waits up to 5 s for a connection that
		// has sent no request yet, so this can happen with no request in
		// flight at all).
		log.Warn("shutdown grace period over; closing remaining connections", "grace", grace)
		if err := s.public.Close(); err != nil {
			return fmt.Errorf("close: %w", err)
		}
	}
	return nil
}

// close closes both ports (the public one is closed already after a
// shutdown); run defers it, so that the ops port outlives the drain.
func (s *servers) close() {
	_ = s.public.Close()
	_ = s.ops.Close()
}

// newLogger returns the JSON logger, or tint's coloured text one; NO_COLOR
// (https://no-color.org) turns colour off, as the dev stack sets it when
// its own output is not a terminal.
// accessLogFlush is how late an access log line may appear: short enough
// for a person watching the log, long enough to write thousands of lines
// in one call under load.
const accessLogFlush = 200 * time.Millisecond

func newLogger(cfg *config.Config, getenv func(string) string, w io.Writer) *slog.Logger {
	if cfg.LogFormat == "text" {
		return slog.New(tint.NewTextHandler(w, &tint.Options{Level: cfg.LogLevel, TimeFormat: time.TimeOnly, NoColor: getenv("NO_COLOR") != ""}))
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: cfg.LogLevel})).With("service", "reader")
}
