// Package config is the reader's configuration: one struct, read from
// environment variables with kelseyhightower/envconfig's conventions, and
// checked before the service starts so that a bad value is a clear error at
// start instead of a surprise under load.
//
// Every variable is READER_<NAME>. The four shared with the other services
// (DATABASE_URL, REDIS_URL, LOG_FORMAT, LOG_LEVEL) are also accepted
// without the prefix: envconfig's fallback for fields with an explicit
// `envconfig` tag; the prefixed name wins when both are set. The others
// (`split_words`) have no fallback, so that a generic variable such as
// READ_TIMEOUT meant for another program cannot leak in.
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

// Config is everything the reader needs to start. Field tags are
// envconfig's: `envconfig` names a variable that also has an unprefixed
// fallback, `split_words` derives the name from the field's, `default` is
// the value when unset, `required` fails the start when unset, `desc`
// documents it.
type Config struct {
	ListenAddr string `split_words:"true" default:":8080" desc:"HTTP listen address (API, web UI, Swagger, /healthz, /readyz)"`
	OpsAddr    string `split_words:"true" default:":9102" desc:"ops listen address: /metrics, /debug/pprof/, /healthz, /readyz; keep it private"`

	DatabaseURL    string        `envconfig:"DATABASE_URL" required:"true" desc:"PostgreSQL URL of the read-only role order_reader"`
	DBMaxConns     int32         `split_words:"true" default:"16" desc:"PostgreSQL pool size"`
	DBLoaders      int           `split_words:"true" default:"2" desc:"lookup queries run at once, each on its own connection; the cache misses queued meanwhile share the next query (1..DB_MAX_CONNS)"`
	DBQueryTimeout time.Duration `split_words:"true" default:"3s" desc:"limit of one database load; a load shared by several requests runs to this limit even if its first caller gives up"`

	RedisURL       string        `envconfig:"REDIS_URL" required:"true" desc:"Redis URL of the shared order cache"`
	RedisKeyPrefix string        `split_words:"true" default:"" desc:"prefix of Redis keys (<prefix>order:<order_uid>)"`
	RedisTTL       time.Duration `split_words:"true" default:"24h" desc:"TTL of orders the reader writes to Redis"`
	RedisTimeout   time.Duration `split_words:"true" default:"100ms" desc:"limit of one Redis command; Redis is a cache, a slow one is skipped"`

	CacheBytes  int64         `split_words:"true" default:"268435456" desc:"in-process cache bound in bytes of encoded orders (256 MiB)"`
	NegativeTTL time.Duration `split_words:"true" default:"2s" desc:"how long an unknown order_uid is remembered as unknown (0 disables)"`

	WarmCount   int           `split_words:"true" default:"1000" desc:"most recent orders loaded into the caches at start (0 disables)"`
	WarmTimeout time.Duration `split_words:"true" default:"30s" desc:"limit of the warm-up; past it the reader logs and serves"`

	ReadHeaderTimeout time.Duration `split_words:"true" default:"5s" desc:"http.Server ReadHeaderTimeout"`
	ReadTimeout       time.Duration `split_words:"true" default:"10s" desc:"http.Server ReadTimeout"`
	WriteTimeout      time.Duration `split_words:"true" default:"10s" desc:"http.Server WriteTimeout"`
	IdleTimeout       time.Duration `split_words:"true" default:"120s" desc:"http.Server IdleTimeout"`
	RequestTimeout    time.Duration `split_words:"true" default:"5s" desc:"limit of one request's handling"`
	ShutdownTimeout   time.Duration `split_words:"true" default:"15s" desc:"grace period for in-flight requests at shutdown"`

	GCPercent   int   `split_words:"true" default:"200" desc:"Go GC target (as GOGC): the live heap is mostly the cache's pointer-free byte slices, so fewer, larger cycles save CPU; -1 turns the GC off below READER_MEMORY_LIMIT"`
	MemoryLimit int64 `split_words:"true" default:"0" desc:"soft memory limit in bytes (as GOMEMLIMIT; 0 keeps the runtime's, e.g. from GOMEMLIMIT): set it to the container's limit minus headroom so the GC works harder only when memory runs short"`

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
	for _, info := range Vars() {
		name := info.Name
		raw, ok := lookup(getenv, name)
		if !ok && info.Fallback != "" {
			raw, ok = lookup(getenv, info.Fallback)
			if ok {
				name = info.Fallback
			}
		}
		if !ok {
			if info.Required {
				errs = append(errs, fmt.Errorf("%s is required", info.Name+orFallback(info.Fallback)))
				continue
			}
			raw = info.Default
			name = info.Name + " default"
		}
		if err := set(v.FieldByName(info.field), raw); err != nil {
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

func orFallback(alt string) string {
	if alt == "" {
		return ""
	}
	return " (or " + alt + ")"
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
	if c.OpsAddr == "" || !strings.Contains(c.OpsAddr, ":") {
		bad("OPS_ADDR", "%q is not host:port", c.OpsAddr)
	} else if c.OpsAddr == c.ListenAddr {
		bad("OPS_ADDR", "%q is also LISTEN_ADDR; the ops port must be its own", c.OpsAddr)
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
	if c.DBLoaders < 1 || c.DBLoaders > int(c.DBMaxConns) {
		bad("DB_LOADERS", "%d is outside 1..DB_MAX_CONNS (%d)", c.DBLoaders, c.DBMaxConns)
	}
	positive := map[string]time.Duration{
		"DB_QUERY_TIMEOUT": c.DBQueryTimeout, "REDIS_TTL": c.RedisTTL, "REDIS_TIMEOUT": c.RedisTimeout,
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
	if c.GCPercent < -1 || c.GCPercent == 0 || c.GCPercent > 10_000 {
		bad("GC_PERCENT", "%d is not -1 or 1..10000", c.GCPercent)
	}
	if c.GCPercent == -1 && c.MemoryLimit == 0 {
		bad("GC_PERCENT", "-1 (GC off) needs READER_MEMORY_LIMIT")
	}
	if c.MemoryLimit < 0 {
		bad("MEMORY_LIMIT", "%d is negative", c.MemoryLimit)
	}
	if c.MemoryLimit > 0 && c.CacheBytes >= c.MemoryLimit {
		bad("CACHE_BYTES", "%d is not below READER_MEMORY_LIMIT %d", c.CacheBytes, c.MemoryLimit)
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
	Fallback string // the unprefixed name also accepted, or ""
	Default  string
	Required bool
	Desc     string
	field    string
}

// varsTemplate makes envconfig itself list the variables it would read,
// so that Load and the documentation follow envconfig's naming exactly.
const varsTemplate = "{{range .}}{{.Name}}\t{{.Key}}\t{{.Alt}}\n{{end}}"

// Vars lists every variable the reader reads, in declaration order, for
// documentation and for deploy tooling that cross-checks its manifests.
func Vars() []Var {
	var b strings.Builder
	if err := envconfig.Usagef(Prefix, &Config{}, &b, varsTemplate); err != nil {
		panic(fmt.Sprintf("config: envconfig cannot describe Config: %v", err)) // a programming error
	}
	t := reflect.TypeFor[Config]()
	var out []Var
	for line := range strings.Lines(b.String()) {
		parts := strings.Split(strings.TrimSuffix(line, "\n"), "\t")
		f, _ := t.FieldByName(parts[0])
		out = append(out, Var{
			Name: parts[1], Fallback: parts[2], Default: f.Tag.Get("default"),
			Required: f.Tag.Get("required") == "true", Desc: f.Tag.Get("desc"), field: parts[0],
		})
	}
	return out
}

// Names returns every environment variable name the reader reads: each
// READER_ name and the unprefixed fallbacks.
func Names() []string {
	var out []string
	for _, v := range Vars() {
		out = append(out, v.Name)
		if v.Fallback != "" {
			out = append(out, v.Fallback)
		}
	}
	return out
}

// Usage writes envconfig's usage table (for `reader -help`).
func Usage() string {
	var b strings.Builder
	_ = envconfig.Usagef(Prefix, &Config{}, &b, envconfig.DefaultTableFormat)
	return b.String()
}
