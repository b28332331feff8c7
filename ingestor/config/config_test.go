package config

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/orderservice/orders/shared/envconf"
)

// load runs Load on the two required URLs plus extra (an empty value
// removes a variable).
func load(extra map[string]string) (Config, error) {
	env := map[string]string{"DATABASE_URL": "postgres://order_ingestor@db:5432/orders", "REDIS_URL": "redis://cache:6379/0"}
	for k, v := range extra {
		env[k] = v
	}
	return Load(func(k string) string { return env[k] })
}

// The defaults are the documented ones (the README tables are checked
// against the same tags by deploy/deploytest).
func TestDefaults(t *testing.T) {
	t.Parallel()
	c, err := load(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		KafkaBrokers: "127.0.0.1:9092", KafkaTopic: "orders", KafkaGroup: "order-ingestor", KafkaDLQTopic: "orders.dlq",
		BatchSize: 2000, BatchLinger: 50 * time.Millisecond, BatchesInFlight: 2, MaxMessageSize: 1 << 20,
		Consistency: "reject",
		DatabaseURL: "postgres://order_ingestor@db:5432/orders", DBMaxConns: 4, DBTimeout: 30 * time.Second,
		RedisURL: "redis://cache:6379/0", RedisTTL: 24 * time.Hour, RedisTimeout: time.Second,
		RetryInitial: 100 * time.Millisecond, RetryMax: 5 * time.Second,
		OpsAddr: ":9101", ShutdownTimeout: 20 * time.Second, LogLevel: envconf.LogLevel(slog.LevelInfo), LogFormat: envconf.LogJSON,
	}
	if c != want {
		t.Errorf("defaults:\n got %+v\nwant %+v", c, want)
	}
}

// Load reads prefixed variables, falls back to the shared unprefixed ones,
// and applies defaults.
func TestLoad(t *testing.T) {
	t.Parallel()
	base, err := load(nil)
	if err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(t.TempDir(), "redis-url")
	if err := os.WriteFile(secret, []byte("redis://:pw@secret:6379/0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		env    map[string]string
		change func(*Config)
	}{
		{"prefixed and fallback", map[string]string{
			"INGESTOR_REDIS_URL":  "redis://prefixed:6379/0", // wins over REDIS_URL
			"INGESTOR_BATCH_SIZE": "500", "INGESTOR_BATCH_LINGER": "10ms",
			"INGESTOR_KAFKA_PROPERTIES": "security.protocol=SASL_SSL; sasl.jaas.config=a=b",
			"LOG_LEVEL":                 "debug",
			"BATCH_SIZE":                "7", // not a shared variable: ignored
		}, func(c *Config) {
			c.RedisURL, c.BatchSize, c.BatchLinger = "redis://prefixed:6379/0", 500, 10*time.Millisecond
			c.KafkaProperties, c.LogLevel = "security.protocol=SASL_SSL; sasl.jaas.config=a=b", envconf.LogLevel(slog.LevelDebug)
		}},
		{"key prefix set", map[string]string{"INGESTOR_REDIS_KEY_PREFIX": "t1:"}, func(c *Config) { c.RedisKeyPrefix = "t1:" }},
		{"key prefix empty", map[string]string{"INGESTOR_REDIS_KEY_PREFIX": ""}, func(*Config) {}},
		{"secret from a file", map[string]string{"REDIS_URL": "", "INGESTOR_REDIS_URL_FILE": secret},
			func(c *Config) { c.RedisURL = "redis://:pw@secret:6379/0" }},
		{"text logs", map[string]string{"INGESTOR_LOG_FORMAT": "text", "LOG_FORMAT": "json"}, func(c *Config) { c.LogFormat = envconf.LogText }},
		{"consistency accept", map[string]string{"INGESTOR_CONSISTENCY": "accept"}, func(c *Config) { c.Consistency = "accept" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := load(tc.env)
			if err != nil {
				t.Fatal(err)
			}
			want := base
			tc.change(&want)
			if c != want {
				t.Errorf("Load:\n got %+v\nwant %+v", c, want)
			}
		})
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	t.Parallel()
	_, err := load(map[string]string{
		"DATABASE_URL": "", "INGESTOR_DATABASE_URL": "mysql://x", "INGESTOR_BATCH_SIZE": "0",
		"INGESTOR_LOG_FORMAT": "xml", "INGESTOR_DB_TIMEOUT": "many",
	})
	cerr, ok := errors.AsType[*envconf.Error](err)
	if !ok {
		t.Fatalf("Load: %v, want an *envconf.Error", err)
	}
	var names []string
	for _, p := range cerr.Problems {
		names = append(names, p.Var)
	}
	slices.Sort(names)
	want := []string{"INGESTOR_BATCH_SIZE", "INGESTOR_DATABASE_URL", "INGESTOR_DB_TIMEOUT", "INGESTOR_LOG_FORMAT"}
	if !slices.Equal(names, want) {
		t.Errorf("problems of %v, want %v (%v)", names, want, err)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  map[string]string
		errs string // the error's text after "invalid configuration: "
	}{
		{"no database", map[string]string{"DATABASE_URL": ""}, "INGESTOR_DATABASE_URL: required (or set DATABASE_URL)"},
		{"database password not echoed", map[string]string{"INGESTOR_DATABASE_URL": "http://u:secret@h"},
			"INGESTOR_DATABASE_URL: scheme must be postgres or postgresql"},
		{"bad fallback named", map[string]string{"DATABASE_URL": "postgres://u:secret@h:port/db"}, "DATABASE_URL: not a valid URL"},
		{"redis without host", map[string]string{"INGESTOR_REDIS_URL": "redis://"}, "INGESTOR_REDIS_URL: has no host"},
		{"same topics", map[string]string{"INGESTOR_KAFKA_DLQ_TOPIC": "orders"},
			"INGESTOR_KAFKA_DLQ_TOPIC: must differ from the consumed topic INGESTOR_KAFKA_TOPIC"},
		{"empty group", map[string]string{"INGESTOR_KAFKA_GROUP": " "}, "INGESTOR_KAFKA_GROUP: must not be empty"},
		{"batch too big", map[string]string{"INGESTOR_BATCH_SIZE": "1000000"}, "INGESTOR_BATCH_SIZE: must be 1..100000, got 1000000"},
		{"linger too long", map[string]string{"INGESTOR_BATCH_LINGER": "2m"}, "INGESTOR_BATCH_LINGER: must be 0s..1m0s, got 2m0s"},
		{"more batches than connections", map[string]string{"INGESTOR_BATCHES_IN_FLIGHT": "5"},
			"INGESTOR_BATCHES_IN_FLIGHT: must be 1..16 and at most INGESTOR_DB_MAX_CONNS (4), got 5"},
		{"tiny size limit", map[string]string{"INGESTOR_MAX_MESSAGE_SIZE": "10"}, "INGESTOR_MAX_MESSAGE_SIZE: must be at least 1024, got 10"},
		{"no connections", map[string]string{"INGESTOR_DB_MAX_CONNS": "0", "INGESTOR_BATCHES_IN_FLIGHT": "1"},
			"INGESTOR_BATCHES_IN_FLIGHT: must be 1..16 and at most INGESTOR_DB_MAX_CONNS (0), got 1; INGESTOR_DB_MAX_CONNS: must be at least 1, got 0"},
		{"retry order", map[string]string{"INGESTOR_RETRY_MAX": "1ms"},
			"INGESTOR_RETRY_INITIAL: must be positive and not above INGESTOR_RETRY_MAX (100ms, 1ms)"},
		{"ops address", map[string]string{"INGESTOR_OPS_ADDR": "9101"}, "INGESTOR_OPS_ADDR: want host:port or :port"},
		{"log format", map[string]string{"LOG_FORMAT": "yaml"}, "LOG_FORMAT: must be json or text"},
		{"log level", map[string]string{"INGESTOR_LOG_LEVEL": "loud"}, "INGESTOR_LOG_LEVEL: must be debug, info, warn or error"},
		{"zero ttl", map[string]string{"INGESTOR_REDIS_TTL": "0s"}, "INGESTOR_REDIS_TTL: must be positive, got 0s"},
		{"zero timeout", map[string]string{"INGESTOR_DB_TIMEOUT": "0s"}, "INGESTOR_DB_TIMEOUT: must be positive, got 0s"},
		{"bad properties", map[string]string{"INGESTOR_KAFKA_PROPERTIES": "sasl.password"}, "INGESTOR_KAFKA_PROPERTIES: entry 1: want key=value"},
		{"unknown consistency", map[string]string{"INGESTOR_CONSISTENCY": "lenient"}, "INGESTOR_CONSISTENCY: must be reject or accept"},
	}
	for _, tt := range tests {
		_, err := load(tt.env)
		switch {
		case err == nil || err.Error() != "invalid configuration: "+tt.errs:
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.errs)
		case strings.Contains(err.Error(), "secret"):
			t.Errorf("%s: error leaks the password: %v", tt.name, err)
		}
	}
}

func TestNames(t *testing.T) {
	t.Parallel()
	names := Names()
	for _, v := range []string{"INGESTOR_KAFKA_TOPIC", "INGESTOR_KAFKA_DLQ_TOPIC", "INGESTOR_OPS_ADDR", "INGESTOR_REDIS_KEY_PREFIX",
		"INGESTOR_DB_MAX_CONNS", "INGESTOR_REDIS_TTL", "DATABASE_URL", "REDIS_URL", "KAFKA_BROKERS", "LOG_FORMAT", "LOG_LEVEL"} {
		if !slices.Contains(names, v) {
			t.Errorf("Names() lacks %s: %v", v, names)
		}
	}
	if slices.Contains(names, "BATCH_SIZE") || slices.Contains(names, "KAFKA_TOPIC") {
		t.Errorf("Names() lists an unprefixed variable that is not shared: %v", names)
	}
	if slices.Contains(names, "INGESTOR_LAG_INTERVAL") { // tests only; the 3 s period is documented
		t.Errorf("Names() lists INGESTOR_LAG_INTERVAL: %v", names)
	}
	if !slices.IsSorted(names) {
		t.Errorf("Names() not sorted")
	}
	if n, fields := len(Vars()), reflect.TypeFor[Config]().NumField()-1; n != fields { // less LagInterval
		t.Errorf("Vars() has %d entries for %d settings", n, fields)
	}
	var help strings.Builder
	if err := Usage(&help); err != nil {
		t.Fatal(err)
	}
	for _, v := range Vars() {
		if !strings.Contains(help.String(), v.Name) || !strings.Contains(help.String(), v.Desc) {
			t.Errorf("-help does not document %s", v.Name)
		}
	}
}

func TestPropertiesParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      Properties
		want    map[string]string
		wantErr bool
	}{
		{"", map[string]string{}, false},
		{"a=1;b=2", map[string]string{"a": "1", "b": "2"}, false},
		{"a=1\nb = x=y\n", map[string]string{"a": "1", "b": "x=y"}, false},
		{"novalue", nil, true},
		{"=1", nil, true},
	}
	for _, tt := range tests {
		p, err := tt.in.Parse()
		if (err != nil) != tt.wantErr {
			t.Errorf("Decode(%q) error = %v", tt.in, err)
			continue
		}
		if err == nil && !reflect.DeepEqual(p, tt.want) {
			t.Errorf("Decode(%q) = %v, want %v", tt.in, p, tt.want)
		}
	}
}
