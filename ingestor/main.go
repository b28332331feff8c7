// Command ingestor consumes orders from Kafka, stores them in PostgreSQL,
// caches them in Redis and dead-letters what cannot be stored. See
// README.md for its configuration.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/lmittmann/tint"

	"github.com/orderservice/orders/ingestor/config"
	"github.com/orderservice/orders/ingestor/ingest"
	"github.com/orderservice/orders/ingestor/kafka"
	"github.com/orderservice/orders/ingestor/metrics"
	"github.com/orderservice/orders/ingestor/ops"
	"github.com/orderservice/orders/ingestor/postgres"
	"github.com/orderservice/orders/ingestor/redis"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal, a second one kills at once (default action).
	context.AfterFunc(ctx, stop)
	if err := run(ctx, os.Args, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "ingestor:", err)
		os.Exit(1)
	}
}

// run parses the command line and the configuration and serves until ctx
// is cancelled. The configuration is read by envconfig from the process
// environment; getenv is only consulted for NO_COLOR by the text logger.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) > 1 {
		switch args[1] {
		case "-h", "-help", "--help", "help":
			fmt.Fprintln(stdout, "Usage: ingestor (configured by environment variables)")
			return config.Usage(stdout)
		case "-vars", "--vars":
			for _, v := range config.Vars() {
				fmt.Fprintln(stdout, v)
			}
			return nil
		default:
			return fmt.Errorf("unknown argument %q (try -help)", args[1])
		}
	}
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	log := newLogger(cfg, getenv, stdout)
	return serve(ctx, cfg, log, nil)
}

// newLogger returns the JSON logger, or tint's coloured text one.
func newLogger(cfg config.Config, getenv func(string) string, w io.Writer) *slog.Logger {
	if cfg.LogFormat == "text" {
		return slog.New(tint.NewTextHandler(w, &tint.Options{
			Level: cfg.LogLevel, TimeFormat: time.TimeOnly, NoColor: getenv("NO_COLOR") != "",
		}))
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: cfg.LogLevel}))
}

// serve wires the ingestor together and runs it until ctx is cancelled.
// ready, if not nil, receives the ops listener's address once it listens
// (tests use it).
func serve(ctx context.Context, cfg config.Config, log *slog.Logger, ready chan<- string) error {
	m := metrics.New()

	pool, err := postgres.Connect(ctx, cfg.DatabaseURL, cfg.DBMaxConns)
	if err != nil {
		return err
	}
	defer pool.Close()
	writer := postgres.NewWriter(pool, cfg.DBTimeout, func(d time.Duration) { m.DBWrite.Observe(d.Seconds()) })
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	if err := writer.Ping(pingCtx); err != nil {
		// Not fatal: the database may come up after us. /readyz says so.
		log.Warn("PostgreSQL not reachable at start; will retry", "error", err)
	}
	cancel()

	rc, err := redis.NewClient(cfg.RedisURL, cfg.RedisTimeout)
	if err != nil {
		return err
	}
	defer rc.Close()
	cache := redis.New(rc, cfg.RedisKeyPrefix, cfg.RedisTTL, cfg.RedisTimeout)

	props, err := cfg.KafkaProperties.Parse()
	if err != nil {
		return fmt.Errorf("INGESTOR_KAFKA_PROPERTIES: %w", err)
	}
	dlq, err := kafka.NewDeadLetterProducer(log, cfg.KafkaBrokers, cfg.KafkaDLQTopic, cfg.KafkaGroup, cfg.MaxMessageSize, props)
	if err != nil {
		return err
	}
	defer dlq.Close(10 * time.Second)

	ln, err := net.Listen("tcp", cfg.OpsAddr)
	if err != nil {
		return fmt.Errorf("ops listener: %w", err)
	}
	defer ln.Close() // closed by Shutdown on the normal path; this covers early returns

	pipeline := ingest.New(log, m, cfg.MaxMessageSize, writer, cache, dlq,
		ingest.Retry{Initial: cfg.RetryInitial, Max: cfg.RetryMax})
	consumer, err := kafka.NewConsumer(log, m, kafka.ConsumerConfig{
		Brokers: cfg.KafkaBrokers, Topic: cfg.KafkaTopic, Group: cfg.KafkaGroup,
		BatchSize: cfg.BatchSize, BatchLinger: cfg.BatchLinger, BatchesInFlight: cfg.BatchesInFlight,
		ShutdownTimeout: cfg.ShutdownTimeout, LagInterval: cfg.LagInterval, Properties: props,
	}, pipeline)
	if err != nil {
		return err
	}

	checks := map[string]ops.Check{
		"kafka": func(context.Context) error {
			if !consumer.Ready() {
				return errors.New("not subscribed")
			}
			return nil
		},
		"postgres": func(ctx context.Context) error {
			if pipeline.DatabaseFailing() {
				return errors.New("batch writes failing; retrying")
			}
			return writer.Ping(ctx)
		},
	}
	m.RegisterReady(func() bool {
		ready, _ := ops.Evaluate(context.Background(), checks)
		return ready
	})
	m.RegisterDBPool(m.Registry, pool.Stat)
	srv := &http.Server{
		Handler:           ops.NewHandler(m.Registry, checks),
		ReadHeaderTimeout: 5 * time.Second,
	}
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Serve(ln) }()
	log.Info("ingestor started", "ops", ln.Addr().String(), "topic", cfg.KafkaTopic, "group", cfg.KafkaGroup,
		"dlq", cfg.KafkaDLQTopic, "batch_size", cfg.BatchSize, "batch_linger", cfg.BatchLinger.String(), "batches_in_flight", cfg.BatchesInFlight)
	if ready != nil {
		ready <- ln.Addr().String()
	}

	runErr := consumer.Run(ctx)

	shutdownCtx, cancelShutdown := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancelShutdown()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn("ops server shutdown", "error", err)
	}
	if err := <-srvErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("ops server", "error", err)
	}
	if runErr != nil {
		return runErr
	}
	log.Info("ingestor stopped")
	return nil
}
