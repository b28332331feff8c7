package config_test

import (
	"log/slog"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kelseyhightower/envconfig"
	"github.com/orderservice/orders/reader/config"
	"github.com/orderservice/orders/shared/envconf"
)

func getenv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

var minimal = map[string]string{
	"DATABASE_URL":         "postgres://order_reader@db:5432/orders",
	"REDIS_URL":            "redis://cache:6379/0",
	"READER_API_KEYS_FILE": "/run/secrets/reader-api-keys",
}

func with(extra map[string]string) map[string]string {
	m := map[string]string{}
	for k, v := range minimal {
		m[k] = v
	}
	for k, v := range extra {
		if v == "" {
			delete(m, k)
			continue
		}
		m[k] = v
	}
	return m
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	c, err := config.Load(getenv(minimal))
	if err != nil {
		t.Fatal(err)
	}
	want := config.Config{
		ListenAddr: ":8080", OpsAddr: ":9102", DatabaseURL: minimal["DATABASE_URL"], DBMaxConns: 16, DBLoaders: 2, DBSearchers: 2, DBQueryTimeout: 3 * time.Second,
		RedisURL: minimal["REDIS_URL"], RedisTTL: 24 * time.Hour, RedisTimeout: 100 * time.Millisecond, RedisHedge: 5 * time.Millisecond,
		CacheBytes: 256 << 20, NegativeTTL: 2 * time.Second, WarmCount: 1000, WarmTimeout: 30 * time.Second,
		ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
		IdleTimeout: 120 * time.Second, RequestTimeout: 5 * time.Second, ShutdownTimeout: 15 * time.Second,
		GCPercent: 200, LogFormat: envconf.LogJSON, LogLevel: envconf.LogLevel(slog.LevelInfo),
		APIKeysFile: minimal["READER_API_KEYS_FILE"], JWTMinRefreshInterval: time.Minute,
		RateLimit: 100, RateBurst: 200, AuthFailureLimit: 20, AuditLog: "stderr",
	}
	if !reflect.DeepEqual(*c, want) {
		t.Fatalf("defaults:\n got %+v\nwant %+v", *c, want)
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		env   map[string]string
		check func(*config.Config) bool
		errs  []string // substrings of the error; nil means success
	}{
		{"prefixed", with(map[string]string{"READER_LISTEN_ADDR": "127.0.0.1:9000", "READER_WARM_COUNT": "0"}),
			func(c *config.Config) bool { return c.ListenAddr == "127.0.0.1:9000" && c.WarmCount == 0 }, nil},
		{"prefixed wins over unprefixed", with(map[string]string{"READER_DATABASE_URL": "postgres://a/b", "DATABASE_URL": "postgres://c/d"}),
			func(c *config.Config) bool { return c.DatabaseURL == "postgres://a/b" }, nil},
		{"unprefixed fallback", with(map[string]string{"LOG_FORMAT": "text", "READER_REDIS_KEY_PREFIX": "x:"}),
			func(c *config.Config) bool { return c.LogFormat == "text" && c.RedisKeyPrefix == "x:" }, nil},
		{"no fallback for reader-only variables", with(map[string]string{"LISTEN_ADDR": ":1", "READ_TIMEOUT": "zzz", "CACHE_BYTES": "-5"}),
			func(c *config.Config) bool { return c.ListenAddr == ":8080" && c.CacheBytes == 256<<20 }, nil},
		{"missing urls", map[string]string{}, nil, []string{"READER_DATABASE_URL: required (or set DATABASE_URL)", "READER_REDIS_URL: required (or set REDIS_URL)"}},
		{"bad duration", with(map[string]string{"READER_REDIS_TTL": "forever"}), nil, []string{"READER_REDIS_TTL", "not a duration"}},
		{"bad integer", with(map[string]string{"READER_CACHE_BYTES": "1GB"}), nil, []string{"READER_CACHE_BYTES", "not an integer"}},
		{"negative ttl too long", with(map[string]string{"READER_NEGATIVE_TTL": "2m"}), nil, []string{"READER_NEGATIVE_TTL"}},
		{"hedge off", with(map[string]string{"READER_REDIS_HEDGE": "0"}),
			func(c *config.Config) bool { return c.RedisHedge == 0 }, nil},
		{"negative hedge", with(map[string]string{"READER_REDIS_HEDGE": "-1ms"}), nil, []string{"READER_REDIS_HEDGE"}},
		{"bad scheme, named as set", with(map[string]string{"DATABASE_URL": "mysql://x"}), nil, []string{"configuration: DATABASE_URL: scheme must be postgres or postgresql"}},
		{"redis socket", with(map[string]string{"REDIS_URL": "unix:///run/redis/redis.sock"}),
			func(c *config.Config) bool { return c.RedisURL == "unix:///run/redis/redis.sock" }, nil},
		{"bad redis scheme", with(map[string]string{"READER_REDIS_URL": "http://cache"}), nil, []string{"READER_REDIS_URL: scheme must be redis, rediss or unix"}},
		{"replicas", with(map[string]string{"READER_DATABASE_REPLICA_URLS": "postgres://order_reader@r1/orders,postgres://order_reader@r2/orders"}),
			func(c *config.Config) bool {
				return reflect.DeepEqual(c.DatabaseReplicaURLS, []string{"postgres://order_reader@r1/orders", "postgres://order_reader@r2/orders"})
			}, nil},
		{"no unprefixed replicas", with(map[string]string{"DATABASE_REPLICA_URLS": "postgres://r1/orders"}),
			func(c *config.Config) bool { return len(c.DatabaseReplicaURLS) == 0 }, nil},
		{"bad replica", with(map[string]string{"READER_DATABASE_REPLICA_URLS": "postgres://r1/orders,mysql://u:s3cret@r2"}), nil,
			[]string{"READER_DATABASE_REPLICA_URLS: entry 2: scheme must be postgres or postgresql"}},
		{"bad log format", with(map[string]string{"LOG_FORMAT": "xml"}), nil, []string{"LOG_FORMAT"}},
		{"bad log level", with(map[string]string{"READER_LOG_LEVEL": "loud"}), nil, []string{"LOG_LEVEL"}},
		{"zero timeout", with(map[string]string{"READER_READ_TIMEOUT": "0s"}), nil, []string{"READER_READ_TIMEOUT: must be positive"}},
		{"request longer than write", with(map[string]string{"READER_REQUEST_TIMEOUT": "20s"}), nil, []string{"READER_REQUEST_TIMEOUT"}},
		{"bad listen", with(map[string]string{"READER_LISTEN_ADDR": "8080"}), nil, []string{"READER_LISTEN_ADDR"}},
		{"bad ops", with(map[string]string{"READER_OPS_ADDR": "9102"}), nil, []string{"READER_OPS_ADDR"}},
		{"ops on the listen port", with(map[string]string{"READER_OPS_ADDR": ":8080"}), nil, []string{"READER_OPS_ADDR: is also READER_LISTEN_ADDR"}},
		{"warm count", with(map[string]string{"READER_WARM_COUNT": "-1"}), nil, []string{"READER_WARM_COUNT"}},
		{"gc off without limit", with(map[string]string{"READER_GC_PERCENT": "-1"}), nil, []string{"READER_MEMORY_LIMIT"}},
		{"cache above memory limit", with(map[string]string{"READER_MEMORY_LIMIT": "1000"}), nil, []string{"READER_CACHE_BYTES"}},
		{"loaders above pool", with(map[string]string{"READER_DB_MAX_CONNS": "4", "READER_DB_LOADERS": "5"}), nil, []string{"READER_DB_LOADERS: must be 1..READER_DB_MAX_CONNS (4), got 5"}},
		{"no loaders", with(map[string]string{"READER_DB_LOADERS": "0"}), nil, []string{"READER_DB_LOADERS"}},
		{"searchers above pool", with(map[string]string{"READER_DB_MAX_CONNS": "4", "READER_DB_SEARCHERS": "5"}), nil, []string{"READER_DB_SEARCHERS: must be 1..READER_DB_MAX_CONNS (4), got 5"}},
		{"no searchers", with(map[string]string{"READER_DB_SEARCHERS": "0"}), nil, []string{"READER_DB_SEARCHERS"}},
		{"several at once", with(map[string]string{"READER_WARM_COUNT": "-1", "READER_DB_MAX_CONNS": "0"}), nil,
			[]string{"READER_WARM_COUNT", "READER_DB_MAX_CONNS"}},
		{"no credentials: fail closed", with(map[string]string{"READER_API_KEYS_FILE": ""}), nil,
			[]string{"READER_API_KEYS_FILE: required, or READER_JWT_JWKS_URL, READER_JWT_ISSUER and READER_JWT_AUDIENCE"}},
		{"jwt alone", with(map[string]string{"READER_API_KEYS_FILE": "", "READER_JWT_JWKS_URL": "https://idp.example/jwks",
			"READER_JWT_ISSUER": "https://idp.example/", "READER_JWT_AUDIENCE": "orders"}),
			func(c *config.Config) bool { return c.APIKeysFile == "" && c.JWTAudience == "orders" }, nil},
		{"jwt half set", with(map[string]string{"READER_JWT_ISSUER": "https://idp.example/"}), nil,
			[]string{"READER_JWT_JWKS_URL: required with READER_JWT_ISSUER", "READER_JWT_AUDIENCE: required with READER_JWT_ISSUER"}},
		{"jwks url scheme", with(map[string]string{"READER_JWT_JWKS_URL": "ftp://idp.example/jwks",
			"READER_JWT_ISSUER": "i", "READER_JWT_AUDIENCE": "a"}), nil, []string{"READER_JWT_JWKS_URL: scheme must be https or http"}},
		{"rate limit off", with(map[string]string{"READER_RATE_LIMIT": "0", "READER_RATE_BURST": "0", "READER_AUTH_FAILURE_LIMIT": "0"}),
			func(c *config.Config) bool { return c.RateLimit == 0 && c.AuthFailureLimit == 0 }, nil},
		{"negative rate", with(map[string]string{"READER_RATE_LIMIT": "-1"}), nil, []string{"READER_RATE_LIMIT"}},
		{"rate without burst", with(map[string]string{"READER_RATE_BURST": "0"}), nil, []string{"READER_RATE_BURST"}},
		{"negative failure limit", with(map[string]string{"READER_AUTH_FAILURE_LIMIT": "-5"}), nil, []string{"READER_AUTH_FAILURE_LIMIT"}},
		{"trusted proxies", with(map[string]string{"READER_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.7,2001:db8::/32"}),
			func(c *config.Config) bool { return c.TrustedProxies == "10.0.0.0/8, 192.0.2.7,2001:db8::/32" }, nil},
		{"bad trusted proxy, value not repeated", with(map[string]string{"READER_TRUSTED_PROXIES": "10.0.0.0/8,secret-host"}), nil,
			[]string{"READER_TRUSTED_PROXIES: element 2 is neither an address nor a CIDR prefix"}},
		{"jwks refresh too often", with(map[string]string{"READER_JWT_MIN_REFRESH_INTERVAL": "10ms"}), nil, []string{"READER_JWT_MIN_REFRESH_INTERVAL"}},
		{"audit to a file", with(map[string]string{"READER_AUDIT_LOG": "/var/log/reader/audit.jsonl"}),
			func(c *config.Config) bool { return c.AuditLog == "/var/log/reader/audit.jsonl" }, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := config.Load(getenv(tc.env))
			if tc.errs == nil {
				if err != nil {
					t.Fatal(err)
				}
				if !tc.check(c) {
					t.Fatalf("unexpected config %+v", c)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted: %+v", c)
			}
			for _, want := range tc.errs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
}

// TestMatchesEnvconfig checks that Load reads the same variables as
// envconfig.Process would from the process environment, so the documented
// envconfig conventions hold. Not parallel: it sets process variables.
func TestMatchesEnvconfig(t *testing.T) {
	env := with(map[string]string{
		"READER_LISTEN_ADDR": ":9999", "READER_CACHE_BYTES": "1024", "READER_NEGATIVE_TTL": "500ms",
		"LOG_LEVEL": "debug", "READER_WARM_COUNT": "7", "READER_DB_MAX_CONNS": "3",
		"WARM_TIMEOUT": "1h", "READER_DB_QUERY_TIMEOUT": "1s", "REDIS_TTL": "1m",
	})
	for _, name := range append(config.Names(), "WARM_TIMEOUT", "REDIS_TTL") {
		if _, ok := os.LookupEnv(name); ok {
			t.Setenv(name, "") // cleared below, restored at cleanup
			os.Unsetenv(name)
		}
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	var viaEnvconfig config.Config
	if err := envconfig.Process(config.Prefix, &viaEnvconfig); err != nil {
		t.Fatal(err)
	}
	got, err := config.Load(getenv(env))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*got, viaEnvconfig) {
		t.Fatalf("Load and envconfig differ:\n Load      %+v\n envconfig %+v", *got, viaEnvconfig)
	}
}

func TestNames(t *testing.T) {
	t.Parallel()
	names := config.Names()
	for _, want := range []string{"READER_LISTEN_ADDR", "DATABASE_URL", "REDIS_URL", "READER_REDIS_KEY_PREFIX",
		"READER_CACHE_BYTES", "READER_REDIS_TTL", "READER_WARM_COUNT", "READER_WARM_TIMEOUT", "LOG_FORMAT"} {
		if !slices.Contains(names, want) {
			t.Errorf("Names() lacks %s", want)
		}
	}
	for _, v := range config.Vars() {
		wantFallback := map[string]bool{"DATABASE_URL": true, "REDIS_URL": true, "LOG_FORMAT": true, "LOG_LEVEL": true}
		if (v.Fallback != "") != wantFallback[strings.TrimPrefix(v.Name, "READER_")] {
			t.Errorf("%s has fallback %q", v.Name, v.Fallback)
		}
	}
	if n := len(config.Vars()); n != reflect.TypeFor[config.Config]().NumField() {
		t.Errorf("Vars() has %d entries for %d fields", n, reflect.TypeFor[config.Config]().NumField())
	}
	var help strings.Builder
	if err := config.Usage(&help); err != nil {
		t.Fatal(err)
	}
	for _, v := range config.Vars() {
		if !strings.Contains(help.String(), v.Name) || !strings.Contains(help.String(), v.Desc) {
			t.Errorf("-help does not document %s", v.Name)
		}
	}
}
