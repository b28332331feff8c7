// Package config is the reader's configuration: one struct, read from
// environment variables with kelseyhightower/envconfig's conventions, and
// checked before the service starts so that a bad value is a clear error at
// start instead of a surprise under load.
//
// Every variable is READER_<NAME>; the ones shared with other services
// (DATABASE_URL, REDIS_URL, LOG_FORMAT, LOG_LEVEL...) are also accepted
// without the prefix, as envconfig does for fields with an explicit tag. The
// prefixed name wins when both are set.
package config

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"
)

// Prefix is the envconfig prefix of every reader variable.
const Prefix = "READER"

// Config is everything the reader needs to start. Field tags follow
// envconfig: `envconfig` is the name after the prefix, `default` the value
// when unset, `required` fails the start when unset, `desc` documents it.
type Config struct {
	ListenAddr string `envconfig:"LISTEN_ADDR" default:":8080" desc:"HTTP listen address"`

	DatabaseURL  string        `envconfig:"DATABASE_URL" required:"true" desc:"PostgreSQL URL of the read-only role order_reader"`
	DBMaxConns   int32         `envconfig:"DB_MAX_CONNS" default:"16" desc:"PostgreSQL pool size"`
	QueryTimeout time.Duration `envconfig:"DB_QUERY_TIMEOUT" default:"3s" desc:"limit of one database load; a load shared by several requests runs to this limit even if its first caller gives up"`

	RedisURL       string        `envconfig:"REDIS_URL" required:"true" desc:"Redis URL of the shared order cache"`
	RedisKeyPrefix string        `envconfig:"REDIS_KEY_PREFIX" default:"" desc:"prefix of Redis keys (<prefix>order:<order_uid>)"`
	RedisTTL       time.Duration `envconfig:"REDIS_TTL" default:"24h" desc:"TTL of orders the reader writes to Redis"`
	RedisTimeout   time.Duration `envconfig:"REDIS_TIMEOUT" default:"100ms" desc:"limit of one Redis command; Redis is a cache, a slow one is skipped"`

	CacheBytes  int64         `envconfig:"CACHE_BYTES" default:"268435456" desc:"in-process cache bound in bytes of encoded orders (256 MiB)"`
	NegativeTTL time.Duration `envconfig:"NEGATIVE_TTL" default:"2s" desc:"how long an unknown order_uid is remembered as unknown (0 disables)"`

	WarmCount   int           `envconfig:"WARM_COUNT" default:"1000" desc:"most recent orders loaded into the caches at start (0 disables)"`
	WarmTimeout time.Duration `envconfig:"WARM_TIMEOUT" default:"30s" desc:"limit of the warm-up; past it the reader logs and serves"`

	ReadHeaderTimeout time.Duration `envconfig:"READ_HEADER_TIMEOUT" default:"5s" desc:"http.Server ReadHeaderTimeout"`
	ReadTimeout       time.Duration `envconfig:"READ_TIMEOUT" default:"10s" desc:"http.Server ReadTimeout"`
	WriteTimeout      time.Duration `envconfig:"WRITE_TIMEOUT" default:"10s" desc:"http.Server WriteTimeout"`
	IdleTimeout       time.Duration `envconfig:"IDLE_TIMEOUT" default:"120s" desc:"http.Server IdleTimeout"`
	RequestTimeout    time.Duration `envconfig:"REQUEST_TIMEOUT" default:"5s" desc:"limit of one request's handling"`
	ShutdownTimeout   time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"15s" desc:"grace period for in-flight requests at shutdown"`

	LogFormat string `envconfig:"LOG_FORMAT" default:"json" desc:"json, or text (coloured, for a terminal)"`
	LogLevel  string `envconfig:"LOG_LEVEL" default:"info" desc:"debug, info, warn or error"`
}

// Load reads the configuration through getenv (os.Getenv in production; a
// map in tests, so that parallel tests do not share the process
// environment) and validates it. The error names every bad variable.
func Load(getenv func(string) string) (*Config, error) {
	var c Config
	var errs []error
	v := reflect.ValueOf(&c).Elem()
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		key := f.Tag.Get("envconfig")
		name := Prefix + "_" + key
		raw, ok := lookup(getenv, name)
		if !ok {
			raw, ok = lookup(getenv, key)
			if ok {
				name = key
			}
		}
		if !ok {
			if f.Tag.Get("required") == "true" {
				errs = append(errs, fmt.Errorf("%s (or %s) is required", Prefix+"_"+key, key))
				continue
			}
			raw = f.Tag.Get("default")
			name = Prefix + "_" + key + " default"
		}
		if err := set(v.Field(i), raw); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", name, raw, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("reader config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("reader config: %w", err)
	}
	return &c, nil
}

// lookup treats an empty value as unset, like a shell's ${VAR:-default}:
// getenv cannot tell the two apart.
func lookup(getenv func(string) string, name string) (string, bool) {
	s := getenv(name)
	return s, s != ""
}

func set(f reflect.Value, raw string) error {
	switch f.Interface().(type) {
	case time.Duration:
		d, err := time.ParseDuration(raw)
		if err != nil {
			return fmt.Errorf("not a duration (e.g. 2s, 150ms): %w", err)
		}
		f.SetInt(int64(d))
		return nil
	case string:
		f.SetString(raw)
		return nil
	}
	switch f.Kind() {
	case reflect.Int, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(raw, 10, f.Type().Bits())
		if err != nil {
			return fmt.Errorf("not an integer: %w", err)
		}
		f.SetInt(n)
		return nil
	default:
		return fmt.Errorf("unsupported config field type %s", f.Type())
	}
}

// Validate checks ranges and the relations between fields.
func (c *Config) Validate() error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s_%s: %s", Prefix, name, fmt.Sprintf(format, args...)))
	}
	if c.ListenAddr == "" || !strings.Contains(c.ListenAddr, ":") {
		bad("LISTEN_ADDR", "%q is not host:port", c.ListenAddr)
	}
	if !hasScheme(c.DatabaseURL, "postgres://", "postgresql://") {
		bad("DATABASE_URL", "must be a postgres:// URL")
	}
	if !hasScheme(c.RedisURL, "redis://", "rediss://", "unix://") {
		bad("REDIS_URL", "must be a redis:// or rediss:// URL")
	}
	if c.DBMaxConns < 1 || c.DBMaxConns > 1000 {
		bad("DB_MAX_CONNS", "%d is outside 1..1000", c.DBMaxConns)
	}
	positive := map[string]time.Duration{
		"DB_QUERY_TIMEOUT": c.QueryTimeout, "REDIS_TTL": c.RedisTTL, "REDIS_TIMEOUT": c.RedisTimeout,
		"WARM_TIMEOUT": c.WarmTimeout, "READ_HEADER_TIMEOUT": c.ReadHeaderTimeout,
		"READ_TIMEOUT": c.ReadTimeout, "WRITE_TIMEOUT": c.WriteTimeout, "IDLE_TIMEOUT": c.IdleTimeout,
		"REQUEST_TIMEOUT": c.RequestTimeout, "SHUTDOWN_TIMEOUT": c.ShutdownTimeout,
	}
	for _, name := range slices.Sorted(maps.Keys(positive)) {
		if positive[name] <= 0 {
			bad(name, "must be positive, got %s", positive[name])
		}
	}
	if c.NegativeTTL < 0 || c.NegativeTTL > time.Minute {
		// Longer would hide a newly ingested order for too long.
		bad("NEGATIVE_TTL", "%s is outside 0..1m", c.NegativeTTL)
	}
	if c.CacheBytes < 0 || c.CacheBytes > 1<<40 {
		bad("CACHE_BYTES", "%d is outside 0..1 TiB", c.CacheBytes)
	}
	if c.WarmCount < 0 || c.WarmCount > 1_000_000 {
		bad("WARM_COUNT", "%d is outside 0..1000000", c.WarmCount)
	}
	if c.RequestTimeout > 0 && c.WriteTimeout > 0 && c.RequestTimeout > c.WriteTimeout {
		bad("REQUEST_TIMEOUT", "%s exceeds WRITE_TIMEOUT %s: the connection would be cut before the answer", c.RequestTimeout, c.WriteTimeout)
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		bad("LOG_FORMAT", "%q is not json or text", c.LogFormat)
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		bad("LOG_LEVEL", "%q is not debug, info, warn or error", c.LogLevel)
	}
	return errors.Join(errs...)
}

func hasScheme(url string, schemes ...string) bool {
	for _, s := range schemes {
		if strings.HasPrefix(url, s) {
			return true
		}
	}
	return false
}

// Var documents one environment variable.
type Var struct {
	Name     string // READER_<KEY>
	Fallback string // the unprefixed name also accepted
	Default  string
	Required bool
	Desc     string
}

// Vars lists every variable the reader reads, in declaration order, for
// documentation and for deploy tooling that cross-checks its manifests.
func Vars() []Var {
	t := reflect.TypeFor[Config]()
	out := make([]Var, 0, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		key := f.Tag.Get("envconfig")
		out = append(out, Var{
			Name: Prefix + "_" + key, Fallback: key, Default: f.Tag.Get("default"),
			Required: f.Tag.Get("required") == "true", Desc: f.Tag.Get("desc"),
		})
	}
	return out
}

// Names returns every environment variable name the reader reads: each
// READER_ name and its unprefixed fallback.
func Names() []string {
	var out []string
	for _, v := range Vars() {
		out = append(out, v.Name, v.Fallback)
	}
	return out
}

// Usage writes envconfig's usage table (for `reader -help`).
func Usage() string {
	var b strings.Builder
	_ = envconfig.Usagef(Prefix, &Config{}, &b, envconfig.DefaultTableFormat)
	return b.String()
}
