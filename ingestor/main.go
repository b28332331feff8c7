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
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/lmittmann/tint"
	goredis "github.com/redis/go-redis/v9"

	"github.com/orderservice/orders/ingestor/config"
	"github.com/orderservice/orders/ingestor/ingest"
	"github.com/orderservice/orders/ingestor/kafka"
	"github.com/orderservice/orders/ingestor/metrics"
	"github.com/orderservice/orders/ingestor/ops"
	"github.com/orderservice/orders/ingestor/postgres"
	"github.com/orderservice/orders/ingestor/redis"
	"github.com/orderservice/orders/shared/poolmetrics"
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

// run parses the command line and the configuration (read through getenv)
// and serves until ctx is cancelled.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) > 1 {
		switch args[1] {
		case "-h", "-help", "--help", "help":
			return config.Usage(stdout)
		case "-vars", "--vars":
			for _, v := range config.Names() {
				fmt.Fprintln(stdout, v)
			}
			return nil
		default:
			return fmt.Errorf("unknown argument %q (try -help)", args[1])
		}
	}
	cfg, err := config.Load(getenv)
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

// serve wires the ingestor together and runs it until ctx is cancelled: a
// message goes from the consumer to the pipeline, which writes it to the
// store, caches it and dead-letters what cannot be stored; the ops server
// reports on all of it. ready, if not nil, receives the ops listener's
// address once it listens (tests use it).
func serve(ctx context.Context, cfg config.Config, log *slog.Logger, ready chan<- string) error {
	m := metrics.New()

	pool, store, err := openStore(ctx, cfg, log, m)
	if err != nil {
		return err
	}
	defer pool.Close()
	// Registered here, where pgx is known: the metrics package is imported
	// by the core and stays free of drivers.
	m.Registry.MustRegister(poolmetrics.New("ingestor", pool.Stat))

	rc, cache, err := openCache(cfg)
	if err != nil {
		return err
	}
	defer rc.Close()

	props, err := cfg.KafkaProperties.Parse()
	if err != nil {
		return fmt.Errorf("INGESTOR_KAFKA_PROPERTIES: %w", err)
	}
	dlq, err := kafka.NewDeadLetterProducer(log, cfg.KafkaBrokers, cfg.KafkaDLQTopic, cfg.KafkaGroup, cfg.MaxMessageSize, props)
	if err != nil {
		return err
	}
	defer dlq.Close(10 * time.Second)

	// Jitter: the batches in flight, and other ingestors, that fail together
	// retry out of step.
	pipeline := ingest.New(log, m, store, cache, dlq, ingest.Options{
		MaxSize:     cfg.MaxMessageSize,
		Retry:       ingest.Retry{Initial: cfg.RetryInitial, Max: cfg.RetryMax, Jitter: 0.5},
		Consistency: ingest.Consistency(cfg.Consistency),
	})
	consumer, err := newConsumer(cfg, log, m, props, pipeline)
	if err != nil {
		return err
	}
	defer consumer.Close() // Run closes it; this covers the returns before Run

	checks := readiness(m, consumer, pipeline, store)
	opsServer, err := ops.Start(cfg.OpsAddr, m.Registry, checks)
	if err != nil {
		return err
	}
	log.Info("ingestor started", "ops", opsServer.Addr(), "topic", cfg.KafkaTopic, "group", cfg.KafkaGroup,
		"dlq", cfg.KafkaDLQTopic, "batch_size", cfg.BatchSize, "batch_linger", cfg.BatchLinger.String(), "batches_in_flight", cfg.BatchesInFlight,
		"consistency", cfg.Consistency, "events_channel", cache.Channel())
	if ready != nil {
		ready <- opsServer.Addr()
	}

	runErr := consumer.Run(ctx)

	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := opsServer.Stop(stopCtx); err != nil {
		log.Warn("ops server", "err", err)
	}
	if runErr != nil {
		return runErr
	}
	log.Info("ingestor stopped")
	return nil
}

// openStore builds the PostgreSQL pool and the pipeline's store on it. The
// database need not answer yet: the ingestor starts (and reports not
// ready) while PostgreSQL is down.
func openStore(ctx context.Context, cfg config.Config, log *slog.Logger, m *metrics.Metrics) (*pgxpool.Pool, *postgres.Writer, error) {
	pool, err := postgres.Connect(ctx, cfg.DatabaseURL, cfg.DBMaxConns)
	if err != nil {
		return nil, nil, err
	}
	store := postgres.NewWriter(pool, cfg.DBTimeout, func(d time.Duration) { m.DBWrite.Observe(d.Seconds()) })
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := store.Ping(pingCtx); err != nil {
		log.Warn("PostgreSQL not reachable at start; will retry", "err", err)
	}
	return pool, store, nil
}

// openCache builds the Redis client and the pipeline's cache on it.
func openCache(cfg config.Config) (goredis.UniversalClient, *redis.Cache, error) {
	rc, err := redis.NewClient(cfg.RedisURL, cfg.RedisTimeout)
	if err != nil {
		return nil, nil, err
	}
	return rc, redis.New(rc, cfg.RedisKeyPrefix, cfg.RedisTTL, cfg.RedisTimeout), nil
}

// newConsumer builds the consumer-group member that feeds the pipeline.
func newConsumer(cfg config.Config, log *slog.Logger, m *metrics.Metrics, props map[string]string, h kafka.Handler) (*kafka.Consumer, error) {
	return kafka.NewConsumer(log, m, kafka.ConsumerConfig{
		Brokers: cfg.KafkaBrokers, Topic: cfg.KafkaTopic, Group: cfg.KafkaGroup,
		BatchSize: cfg.BatchSize, BatchLinger: cfg.BatchLinger, BatchesInFlight: cfg.BatchesInFlight,
		ShutdownTimeout: cfg.ShutdownTimeout, LagInterval: cfg.LagInterval, Properties: props,
	}, h)
}

// readiness returns what /readyz checks (the consumer is subscribed and
// the broker answers; PostgreSQL answers and no batch write is failing)
// and registers the ingestor_ready gauge, which evaluates the same checks.
func readiness(m *metrics.Metrics, consumer *kafka.Consumer, pipeline *ingest.Pipeline, store *postgres.Writer) map[string]ops.Check {
	checks := map[string]ops.Check{
		"kafka": func(context.Context) error { return consumer.Ready() },
		"postgres": func(ctx context.Context) error {
			if pipeline.DatabaseFailing() {
				return errors.New("batch writes failing; retrying")
			}
			return store.Ping(ctx)
		},
	}
	m.RegisterReady(func() bool {
		ready, _ := ops.Evaluate(context.Background(), checks)
		return ready
	})
	return checks
}
