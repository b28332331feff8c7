// Package config is the ingestor's configuration, read from environment
// variables by shared/envconf (envconfig's tags, with the conventions the
// services share: the INGESTOR_ prefix, the unprefixed fallback of the
// shared settings, X_FILE for secrets, every bad variable in one error). It
// is importable (not internal) so that deployment code can cross-check the
// variables it sets against Vars.
package config

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/orderservice/orders/shared/envconf"
)

// Prefix is the prefix of every variable, e.g. INGESTOR_KAFKA_TOPIC. The
// settings shared with other services (KAFKA_BROKERS, DATABASE_URL,
// REDIS_URL, LOG_LEVEL, LOG_FORMAT) carry an `envconfig` tag and are also
// read without it when the prefixed variable is unset. The other fields use
// split_words only, so that a stray BATCH_SIZE in the environment is not
// picked up.
const Prefix = "INGESTOR"

// Config is every setting of the ingestor. The `default` tags are the only
// defaults; the `desc` tags are printed by `ingestor -help` and mirrored in
// the module README.
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

	// Validation.
	Consistency Consistency `default:"reject" desc:"orders that break only a consistency rule (goods_total = sum of items' total_price, amount = goods_total + delivery_cost + custom_fee, items carry the order's track_number): reject (dead-letter as invalid) or accept (store and count them in ingestor_inconsistent_orders_total{rule})"`

	// Storage.
	DatabaseURL string        `envconfig:"DATABASE_URL" required:"true" desc:"PostgreSQL URL (role order_ingestor)"`
	DBMaxConns  int32         `split_words:"true" default:"4" desc:"PostgreSQL connection pool size"`
	DBTimeout   time.Duration `split_words:"true" default:"30s" desc:"time limit of one batch transaction attempt"`
	RedisURL    string        `envconfig:"REDIS_URL" required:"true" desc:"Redis URL: one server (redis://host:6379/0, rediss://), or a Redis Cluster naming several nodes (redis://host1:7001?addr=host2:7002&addr=host3:7003)"`
	// RedisKeyPrefix is INGESTOR_REDIS_KEY_PREFIX, named like the reader's
	// READER_REDIS_KEY_PREFIX.
	RedisKeyPrefix string        `split_words:"true" default:"" desc:"prefix of the cache keys: <prefix>order:<order_uid>"`
	RedisTTL       time.Duration `split_words:"true" default:"24h" desc:"time to live of cached orders"`
	RedisTimeout   time.Duration `split_words:"true" default:"1s" desc:"time limit of one pipelined cache write"`

	// Transient-failure retries (database and dead-letter topic).
	RetryInitial time.Duration `split_words:"true" default:"100ms" desc:"first retry delay after a transient failure"`
	RetryMax     time.Duration `split_words:"true" default:"5s" desc:"longest retry delay (retries never stop while the failure lasts)"`

	// Operations.
	OpsAddr         string            `split_words:"true" default:":9101" desc:"listen address of /metrics, /healthz and /readyz"`
	ShutdownTimeout time.Duration     `split_words:"true" default:"20s" desc:"longest time to finish the batch in flight on SIGTERM"`
	LogLevel        envconf.LogLevel  `envconfig:"LOG_LEVEL" default:"info" desc:"debug, info, warn or error"`
	LogFormat       envconf.LogFormat `envconfig:"LOG_FORMAT" default:"json" desc:"json, or text (coloured, for make run)"`

	// LagInterval is how often ingestor_consumer_lag is refreshed; zero
	// means the documented 3 s (kafka.DefaultLagInterval). It is not read
	// from the environment: the period is part of the metric's documented
	// contract, and only tests shorten it so that they need not wait.
	LagInterval time.Duration `ignored:"true"`
}

// Consistency is INGESTOR_CONSISTENCY: "reject" or "accept" (see
// ingest.Consistency, which main converts it to).
type Consistency string

// UnmarshalText accepts reject or accept.
func (c *Consistency) UnmarshalText(text []byte) error {
	switch v := Consistency(text); v {
	case "reject", "accept":
		*c = v
		return nil
	}
	return errors.New("must be reject or accept")
}

// Properties are librdkafka configuration properties as text: key=value
// pairs separated by ';' or newlines. Values may contain '=' (SASL JAAS
// strings do). Validate checks the syntax; Parse returns them.
type Properties string

// Parse returns the properties as a map.
func (p Properties) Parse() (map[string]string, error) {
	out := map[string]string{}
	n := 0 // the entry's number, blank ones not counted (a key may repeat)
	for _, entry := range strings.FieldsFunc(string(p), func(r rune) bool { return r == ';' || r == '\n' }) {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		n++
		k, v, ok := strings.Cut(entry, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			// Name the entry by its number only: its text may be a secret.
			return nil, fmt.Errorf("entry %d: want key=value", n)
		}
		out[k] = strings.TrimSpace(v)
	}
	return out, nil
}

// Load reads the configuration through getenv (os.Getenv in production, a
// map in tests) and checks it. The error, an *envconf.Error, names every
// bad variable.
func Load(getenv func(string) string) (Config, error) {
	var c Config
	if err := envconf.Load(Prefix, &c, getenv); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Validate checks the ranges and the relations between settings; Load
// calls it (the types check the log level and format).
func (c *Config) Validate(p *envconf.Problems) {
	if _, err := c.KafkaProperties.Parse(); err != nil {
		p.Check("KAFKA_PROPERTIES", err)
	}
	p.Check("KAFKA_BROKERS", envconf.NotEmpty(c.KafkaBrokers))
	p.Check("KAFKA_TOPIC", envconf.NotEmpty(c.KafkaTopic))
	p.Check("KAFKA_GROUP", envconf.NotEmpty(c.KafkaGroup))
	p.Check("KAFKA_DLQ_TOPIC", envconf.NotEmpty(c.KafkaDLQTopic))
	if c.KafkaTopic != "" && c.KafkaTopic == c.KafkaDLQTopic {
		p.Add("KAFKA_DLQ_TOPIC", "must differ from the consumed topic %s", p.Name("KAFKA_TOPIC"))
	}
	p.Check("BATCH_SIZE", envconf.Range(c.BatchSize, 1, 100_000))
	p.Check("BATCH_LINGER", envconf.Range(c.BatchLinger, 0, time.Minute))
	if c.BatchesInFlight < 1 || c.BatchesInFlight > 16 || c.BatchesInFlight > int(c.DBMaxConns) {
		p.Add("BATCHES_IN_FLIGHT", "must be 1..16 and at most %s (%d), got %d", p.Name("DB_MAX_CONNS"), c.DBMaxConns, c.BatchesInFlight)
	}
	p.Check("MAX_MESSAGE_SIZE", envconf.AtLeast(c.MaxMessageSize, 1024))
	p.Check("DATABASE_URL", envconf.URL(c.DatabaseURL, "postgres", "postgresql"))
	p.Check("DB_MAX_CONNS", envconf.AtLeast(c.DBMaxConns, 1))
	p.Check("DB_TIMEOUT", envconf.Positive(c.DBTimeout))
	p.Check("REDIS_URL", envconf.URL(c.RedisURL, "redis", "rediss"))
	p.Check("REDIS_TTL", envconf.Positive(c.RedisTTL))
	p.Check("REDIS_TIMEOUT", envconf.Positive(c.RedisTimeout))
	if c.RetryInitial <= 0 || c.RetryMax < c.RetryInitial {
		p.Add("RETRY_INITIAL", "must be positive and not above %s (%s, %s)", p.Name("RETRY_MAX"), c.RetryInitial, c.RetryMax)
	}
	p.Check("OPS_ADDR", envconf.ListenAddr(c.OpsAddr))
	p.Check("SHUTDOWN_TIMEOUT", envconf.Positive(c.ShutdownTimeout))
}

// Vars lists every setting of the ingestor, in declaration order.
func Vars() []envconf.Var { return envconf.Vars(Prefix, &Config{}) }

// Names lists every variable name the ingestor reads, prefixed ones and
// the unprefixed fallbacks, sorted. Deployment checks use it.
func Names() []string { return envconf.Names(Vars()) }

// Usage writes the -help text: every variable with its default and
// meaning.
func Usage(w io.Writer) error { return envconf.Usage(w, "ingestor", Prefix, &Config{}) }
