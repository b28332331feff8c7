package config

import (
	"log/slog"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// Load reads prefixed variables, falls back to the shared unprefixed ones,
// and applies defaults. (t.Setenv: not parallel.)
func TestLoad(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://order_ingestor@db:5432/orders")
	t.Setenv("INGESTOR_REDIS_URL", "redis://cache:6379/0")
	t.Setenv("REDIS_URL", "redis://ignored:6379/0") // the prefixed one wins
	t.Setenv("INGESTOR_BATCH_SIZE", "500")
	t.Setenv("INGESTOR_BATCH_LINGER", "10ms")
	t.Setenv("INGESTOR_KAFKA_PROPERTIES", "security.protocol=SASL_SSL; sasl.jaas.config=a=b")
	t.Setenv("LOG_LEVEL", "debug")
	t.Setenv("BATCH_SIZE", "7") // not a shared variable: must be ignored

	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	want := Default("postgres://order_ingestor@db:5432/orders", "redis://cache:6379/0")
	want.BatchSize, want.BatchLinger, want.LogLevel = 500, 10*time.Millisecond, slog.LevelDebug
	want.KafkaProperties = "security.protocol=SASL_SSL; sasl.jaas.config=a=b"
	if c != want {
		t.Errorf("Load:\n got %+v\nwant %+v", c, want)
	}
}

func TestLoadRedisKeyPrefix(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://u@db/orders")
	t.Setenv("REDIS_URL", "redis://cache:6379/0")
	for _, tc := range []struct {
		name string
		val  *string
		want string
	}{
		{"set", ptr("t1:"), "t1:"},
		{"unset", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			setOrUnset(t, "INGESTOR_REDIS_KEY_PREFIX", tc.val)
			c, err := Load()
			if err != nil {
				t.Fatal(err)
			}
			if c.RedisKeyPrefix != tc.want {
				t.Errorf("RedisKeyPrefix = %q, want %q", c.RedisKeyPrefix, tc.want)
			}
		})
	}
	if !slices.Contains(Vars(), "INGESTOR_REDIS_KEY_PREFIX") {
		t.Errorf("Vars() lacks INGESTOR_REDIS_KEY_PREFIX: %v", Vars())
	}
}

func ptr(s string) *string { return &s }

// setOrUnset sets name to *v, or makes sure it is unset, for the test.
func setOrUnset(t *testing.T, name string, v *string) {
	t.Helper()
	if v != nil {
		t.Setenv(name, *v)
		return
	}
	t.Setenv(name, "") // registers the restore
	if err := os.Unsetenv(name); err != nil {
		t.Fatal(err)
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	t.Setenv("INGESTOR_DATABASE_URL", "mysql://x")
	t.Setenv("INGESTOR_REDIS_URL", "redis://r:6379")
	t.Setenv("INGESTOR_BATCH_SIZE", "0")
	t.Setenv("INGESTOR_LOG_FORMAT", "xml")
	_, err := Load()
	if err == nil {
		t.Fatal("Load accepted a bad configuration")
	}
	for _, name := range []string{"INGESTOR_DATABASE_URL", "INGESTOR_BATCH_SIZE", "INGESTOR_LOG_FORMAT"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}

	t.Setenv("INGESTOR_BATCH_SIZE", "many")
	if _, err := Load(); err == nil || !strings.Contains(err.Error(), "BATCH_SIZE") {
		t.Errorf("unparsable number: %v", err)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	ok := Default("postgres://u@h/db", "redis://h:6379/0")
	tests := []struct {
		name   string
		change func(*Config)
		errs   string // substring of the error, "" for valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"no database", func(c *Config) { c.DatabaseURL = "" }, "DATABASE_URL: required"},
		{"database password not echoed", func(c *Config) { c.DatabaseURL = "http://u:secret@h" }, "scheme"},
		{"redis without host", func(c *Config) { c.RedisURL = "redis://" }, "REDIS_URL: has no host"},
		{"same topics", func(c *Config) { c.KafkaDLQTopic = c.KafkaTopic }, "must differ"},
		{"batch too big", func(c *Config) { c.BatchSize = 1_000_000 }, "BATCH_SIZE"},
		{"tiny size limit", func(c *Config) { c.MaxMessageSize = 10 }, "MAX_MESSAGE_SIZE"},
		{"retry order", func(c *Config) { c.RetryMax = time.Millisecond }, "RETRY_INITIAL"},
		{"ops address", func(c *Config) { c.OpsAddr = "9101" }, "OPS_ADDR"},
		{"log format", func(c *Config) { c.LogFormat = "yaml" }, "LOG_FORMAT"},
		{"zero ttl", func(c *Config) { c.RedisTTL = 0 }, "REDIS_TTL"},
		{"bad properties", func(c *Config) { c.KafkaProperties = "sasl.password" }, "KAFKA_PROPERTIES: entry 1"},
	}
	for _, tt := range tests {
		c := ok
		tt.change(&c)
		err := c.Validate()
		switch {
		case tt.errs == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.errs != "" && (err == nil || !strings.Contains(err.Error(), tt.errs)):
			t.Errorf("%s: error %v, want it to mention %q", tt.name, err, tt.errs)
		case err != nil && strings.Contains(err.Error(), "secret"):
			t.Errorf("%s: error leaks the password: %v", tt.name, err)
		}
	}
}

func TestVars(t *testing.T) {
	t.Parallel()
	vars := Vars()
	for _, v := range []string{"INGESTOR_KAFKA_TOPIC", "INGESTOR_KAFKA_DLQ_TOPIC", "INGESTOR_OPS_ADDR",
		"INGESTOR_DB_MAX_CONNS", "INGESTOR_REDIS_TTL", "DATABASE_URL", "REDIS_URL", "KAFKA_BROKERS", "LOG_FORMAT", "LOG_LEVEL"} {
		if !slices.Contains(vars, v) {
			t.Errorf("Vars() lacks %s: %v", v, vars)
		}
	}
	if slices.Contains(vars, "BATCH_SIZE") || slices.Contains(vars, "KAFKA_TOPIC") {
		t.Errorf("Vars() lists an unprefixed variable that is not shared: %v", vars)
	}
	if slices.Contains(vars, "INGESTOR_LAG_INTERVAL") { // tests only; the 3 s period is documented
		t.Errorf("Vars() lists INGESTOR_LAG_INTERVAL: %v", vars)
	}
	if !slices.IsSorted(vars) {
		t.Errorf("Vars() not sorted")
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
