// Package config is the ingestor's configuration, read from environment
// variables through envconfig. It is importable (not internal) so that
// deployment code can cross-check the variables it sets against Vars.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"
	"text/template"
	"time"

	"github.com/kelseyhightower/envconfig"
)

// Prefix is the prefix of every variable, e.g. INGESTOR_KAFKA_TOPIC. The
// settings shared with other services (KAFKA_BROKERS, DATABASE_URL,
// REDIS_URL, LOG_LEVEL, LOG_FORMAT) are also read without it: they carry an
// `envconfig` tag, and envconfig falls back to the tag name when the
// prefixed variable is unset. The other fields use split_words only, so
// that a stray BATCH_SIZE in the environment is not picked up.
const Prefix = "INGESTOR"

// Config is every setting of the ingestor. The `desc` tags are printed by
// `ingestor -help` and mirrored in the module README.
type Config struct {
	// Kafka.
	KafkaBrokers    string        `envconfig:"KAFKA_BROKERS" default:"127.0.0.1:9092" desc:"Kafka bootstrap servers, comma-separated host:port"`
	KafkaTopic      string        `split_words:"true" default:"orders" desc:"topic the orders are consumed from"`
	KafkaGroup      string        `split_words:"true" default:"order-ingestor" desc:"consumer group id"`
	KafkaDLQTopic   string        `split_words:"true" default:"orders.dlq" desc:"dead-letter topic"`
	KafkaProperties Properties    `split_words:"true" desc:"extra librdkafka properties for the consumer and the dead-letter producer: key=value pairs separated by ';' or newlines (e.g. security.protocol=SASL_SSL;sasl.mechanisms=PLAIN)"`
	BatchSize       int           `split_words:"true" default:"2000" desc:"largest number of messages written in one database transaction"`
	BatchLinger     time.Duration `split_words:"true" default:"50ms" desc:"longest wait for a batch to fill after its first message"`
	BatchesInFlight int           `split_words:"true" default:"2" desc:"batches committed concurrently, each in its own transaction on its own connection (offsets are stored in batch order); at most DB_MAX_CONNS"`
	MaxMessageSize  int           `split_words:"true" default:"1048576" desc:"messages larger than this many bytes are dead-lettered as too_large"`

	// Storage.
	DatabaseURL string        `envconfig:"DATABASE_URL" required:"true" desc:"PostgreSQL URL (role order_ingestor)"`
	DBMaxConns  int32         `split_words:"true" default:"4" desc:"PostgreSQL connection pool size"`
	DBTimeout   time.Duration `split_words:"true" default:"30s" desc:"time limit of one batch transaction attempt"`
	RedisURL    string        `envconfig:"REDIS_URL" required:"true" desc:"Redis URL (redis://host:6379/0)"`
	// RedisKeyPrefix is INGESTOR_REDIS_KEY_PREFIX, named like the reader's
	// READER_REDIS_KEY_PREFIX (it was INGESTOR_REDIS_PREFIX; see Load).
	RedisKeyPrefix string        `split_words:"true" default:"" desc:"prefix of the cache keys: <prefix>order:<order_uid>"`
	RedisTTL       time.Duration `split_words:"true" default:"24h" desc:"time to live of cached orders"`
	RedisTimeout   time.Duration `split_words:"true" default:"1s" desc:"time limit of one pipelined cache write"`

	// Transient-failure retries (database and dead-letter topic).
	RetryInitial time.Duration `split_words:"true" default:"100ms" desc:"first retry delay after a transient failure"`
	RetryMax     time.Duration `split_words:"true" default:"5s" desc:"longest retry delay (retries never stop while the failure lasts)"`

	// Operations.
	OpsAddr         string        `split_words:"true" default:":9101" desc:"listen address of /metrics, /healthz and /readyz"`
	ShutdownTimeout time.Duration `split_words:"true" default:"20s" desc:"longest time to finish the batch in flight on SIGTERM"`
	LogLevel        slog.Level    `envconfig:"LOG_LEVEL" default:"info" desc:"debug, info, warn or error"`
	LogFormat       string        `envconfig:"LOG_FORMAT" default:"json" desc:"json, or text (coloured, for make run)"`

	// LagInterval is how often ingestor_consumer_lag is refreshed; zero
	// means the documented 3 s (kafka.DefaultLagInterval). It is not read
	// from the environment: the period is part of the metric's documented
	// contract, and only tests shorten it so that they need not wait.
	LagInterval time.Duration `ignored:"true"`
}

// Properties are librdkafka configuration properties as text: key=value
// pairs separated by ';' or newlines. Values may contain '=' (SASL JAAS
// strings do). Validate checks the syntax; Parse returns them.
type Properties string

// Parse returns the properties as a map.
func (p Properties) Parse() (map[string]string, error) {
	out := map[string]string{}
	for _, entry := range strings.FieldsFunc(string(p), func(r rune) bool { return r == ';' || r == '\n' }) {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		k, v, ok := strings.Cut(entry, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			// Name the key only: the value may be a secret.
			return nil, fmt.Errorf("entry %d: want key=value", len(out)+1)
		}
		out[k] = strings.TrimSpace(v)
	}
	return out, nil
}

// Load reads the configuration from the process environment and checks it.
// envconfig always reads the process environment (it has no injectable
// lookup), so tests that need other settings build a Config themselves or
// run the binary with its own environment.
func Load() (Config, error) {
	var c Config
	if err := envconfig.Process(Prefix, &c); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Default returns the configuration with every default applied and the two
// required URLs set to the given values. Tests start from it.
func Default(databaseURL, redisURL string) Config {
	return Config{
		KafkaBrokers: "127.0.0.1:9092", KafkaTopic: "orders", KafkaGroup: "order-ingestor", KafkaDLQTopic: "orders.dlq",
		BatchSize: 2000, BatchLinger: 50 * time.Millisecond, BatchesInFlight: 2, MaxMessageSize: 1 << 20,
		DatabaseURL: databaseURL, DBMaxConns: 4, DBTimeout: 30 * time.Second,
		RedisURL: redisURL, RedisTTL: 24 * time.Hour, RedisTimeout: time.Second,
		RetryInitial: 100 * time.Millisecond, RetryMax: 5 * time.Second,
		OpsAddr: ":9101", ShutdownTimeout: 20 * time.Second, LogLevel: slog.LevelInfo, LogFormat: "json",
	}
}

// Validate reports every invalid setting at once, naming the variables.
func (c Config) Validate() error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s_%s: %s", Prefix, name, fmt.Sprintf(format, args...)))
	}
	if _, err := c.KafkaProperties.Parse(); err != nil {
		bad("KAFKA_PROPERTIES", "%v", err)
	}
	if strings.TrimSpace(c.KafkaBrokers) == "" {
		bad("KAFKA_BROKERS", "must not be empty")
	}
	for name, v := range map[string]string{"KAFKA_TOPIC": c.KafkaTopic, "KAFKA_GROUP": c.KafkaGroup, "KAFKA_DLQ_TOPIC": c.KafkaDLQTopic} {
		if strings.TrimSpace(v) == "" {
			bad(name, "must not be empty")
		}
	}
	if c.KafkaTopic != "" && c.KafkaTopic == c.KafkaDLQTopic {
		bad("KAFKA_DLQ_TOPIC", "must differ from the consumed topic %q", c.KafkaTopic)
	}
	if c.BatchSize < 1 || c.BatchSize > 100_000 {
		bad("BATCH_SIZE", "must be 1..100000, got %d", c.BatchSize)
	}
	if c.BatchLinger < 0 || c.BatchLinger > time.Minute {
		bad("BATCH_LINGER", "must be 0..1m, got %s", c.BatchLinger)
	}
	if c.BatchesInFlight < 1 || c.BatchesInFlight > 16 || c.BatchesInFlight > int(c.DBMaxConns) {
		bad("BATCHES_IN_FLIGHT", "must be 1..16 and at most %s_DB_MAX_CONNS (%d), got %d", Prefix, c.DBMaxConns, c.BatchesInFlight)
	}
	if c.MaxMessageSize < 1024 {
		bad("MAX_MESSAGE_SIZE", "must be at least 1024 bytes, got %d", c.MaxMessageSize)
	}
	if err := checkURL(c.DatabaseURL, "postgres", "postgresql"); err != nil {
		bad("DATABASE_URL", "%v", err)
	}
	if c.DBMaxConns < 1 {
		bad("DB_MAX_CONNS", "must be at least 1, got %d", c.DBMaxConns)
	}
	if c.DBTimeout <= 0 {
		bad("DB_TIMEOUT", "must be positive, got %s", c.DBTimeout)
	}
	if err := checkURL(c.RedisURL, "redis", "rediss"); err != nil {
		bad("REDIS_URL", "%v", err)
	}
	if c.RedisTTL <= 0 {
		bad("REDIS_TTL", "must be positive, got %s", c.RedisTTL)
	}
	if c.RedisTimeout <= 0 {
		bad("REDIS_TIMEOUT", "must be positive, got %s", c.RedisTimeout)
	}
	if c.RetryInitial <= 0 || c.RetryMax < c.RetryInitial {
		bad("RETRY_INITIAL", "must be positive and not above %s_RETRY_MAX (%s, %s)", Prefix, c.RetryInitial, c.RetryMax)
	}
	if _, _, err := net.SplitHostPort(c.OpsAddr); err != nil {
		bad("OPS_ADDR", "want host:port or :port: %v", err)
	}
	if c.ShutdownTimeout <= 0 {
		bad("SHUTDOWN_TIMEOUT", "must be positive, got %s", c.ShutdownTimeout)
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		bad("LOG_FORMAT", "must be json or text, got %q", c.LogFormat)
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid configuration: %w", errors.Join(errs...))
	}
	return nil
}

// checkURL accepts an absolute URL with one of the schemes and a host. The
// error never repeats the URL: it may hold a password.
func checkURL(raw string, schemes ...string) error {
	if raw == "" {
		return errors.New("required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("not a valid URL")
	}
	for _, s := range schemes {
		if u.Scheme == s {
			if u.Host == "" && u.Query().Get("host") == "" {
				return errors.New("has no host")
			}
			return nil
		}
	}
	return fmt.Errorf("scheme must be one of %s", strings.Join(schemes, ", "))
}

// Vars lists the name of every environment variable the ingestor reads,
// prefixed ones and the unprefixed fallbacks, sorted. Deployment checks use it.
func Vars() []string {
	tmpl := template.Must(template.New("vars").Parse(`{{range .}}{{.Key}}
{{.Alt}}
{{end}}`))
	var buf bytes.Buffer
	if err := envconfig.Usaget(Prefix, &Config{}, &buf, tmpl); err != nil {
		panic(err) // Config is a valid specification; a test covers it
	}
	seen := map[string]bool{}
	var out []string
	for _, name := range strings.Fields(buf.String()) {
		if !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// Usage writes envconfig's table of variables, types, defaults and
// descriptions.
func Usage(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 1, 0, 2, ' ', 0)
	if err := envconfig.Usagef(Prefix, &Config{}, tw, envconfig.DefaultTableFormat); err != nil {
		return err
	}
	return tw.Flush()
}
