// Package config is the reader's configuration: one struct, read from
// environment variables by shared/envconf (envconfig's tags, with the
// conventions the services share), and checked before the service starts
// so that a bad value is a clear error at start instead of a surprise under
// load.
//
// Every variable is READER_<NAME>. The four shared with the other services
// (DATABASE_URL, REDIS_URL, LOG_FORMAT, LOG_LEVEL) are also accepted
// without the prefix; the prefixed name wins when both are set. The others
// (`split_words`) have no fallback, so that a generic variable such as
// READ_TIMEOUT meant for another program cannot leak in. Any of them may
// be given as a file in <NAME>_FILE (secrets).
package config

import (
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/orderservice/orders/shared/envconf"
)

// Prefix is the envconfig prefix of every reader variable.
const Prefix = "READER"

// Config is everything the reader needs to start. Field tags are
// envconfig's: `envconfig` names a variable that also has an unprefixed
// fallback, `split_words` derives the name from the field's, `default` is
// the value when unset (the only place defaults are written), `required`
// fails the start when unset, `desc` documents it.
type Config struct {
	ListenAddr string `split_words:"true" default:":8080" desc:"HTTP listen address (API, web UI, Swagger, /healthz, /readyz)"`
	OpsAddr    string `split_words:"true" default:":9102" desc:"ops listen address: /metrics, /debug/pprof/, /healthz, /readyz; keep it private"`

	DatabaseURL string `envconfig:"DATABASE_URL" required:"true" desc:"PostgreSQL URL of the read-only role order_reader"`
	// DatabaseReplicaURLS is spelt so that envconfig names it
	// DATABASE_REPLICA_URLS ("URLs" would split into UR_LS). It has no
	// unprefixed fallback: only the reader reads replicas.
	DatabaseReplicaURLS []string      `split_words:"true" desc:"PostgreSQL URLs of read replicas (streaming standbys of DATABASE_URL), comma-separated: lookups by order_uid go to them in turn, and what a lagging replica does not hold is asked of the primary; empty: the primary serves everything"`
	DBMaxConns          int32         `split_words:"true" default:"16" desc:"PostgreSQL pool size (of the primary, and of each replica)"`
	DBLoaders           int           `split_words:"true" default:"2" desc:"lookup queries run at once, each on its own connection; the cache misses queued meanwhile share the next query (1..DB_MAX_CONNS)"`
	DBSearchers         int           `split_words:"true" default:"2" desc:"search queries (GET /orders) run at once, each on its own connection; the searches queued meanwhile share the next round trip (1..DB_MAX_CONNS)"`
	DBQueryTimeout      time.Duration `split_words:"true" default:"3s" desc:"limit of one database load; a load shared by several requests runs to this limit even if its first caller gives up"`

	RedisURL       string        `envconfig:"REDIS_URL" required:"true" desc:"Redis URL of the shared order cache: one server, or a Redis Cluster naming several nodes (redis://host1:7001?addr=host2:7002&addr=host3:7003)"`
	RedisKeyPrefix string        `split_words:"true" default:"" desc:"prefix of Redis keys (<prefix>order:<order_uid>)"`
	RedisTTL       time.Duration `split_words:"true" default:"24h" desc:"TTL of orders the reader writes to Redis"`
	RedisTimeout   time.Duration `split_words:"true" default:"100ms" desc:"limit of one Redis command, and of one request's Redis waits in all (its rate limit and its lookup); Redis is a cache, a slow one is skipped"`
	RedisHedge     time.Duration `split_words:"true" default:"5ms" desc:"how long a cache miss waits for Redis before it asks PostgreSQL as well and takes the first answer (0: wait for Redis, up to REDIS_TIMEOUT)"`

	CacheBytes  int64         `split_words:"true" default:"268435456" desc:"in-process cache bound in bytes of heap: each order's JSON, its masked view's changed bytes and the entry's objects (256 MiB)"`
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

	// Authentication: API keys, JWT access tokens, or both; at least one.
	APIKeysFile           string        `split_words:"true" default:"" desc:"path of the API keys file (one name:scopes:sha256 line per key), re-read when it changes or on SIGHUP; this or the three JWT settings is required"`
	JWTJwksURL            string        `split_words:"true" default:"" desc:"the identity provider's JWK Set URL (https; http only on loopback), to accept JWT access tokens; needs READER_JWT_ISSUER and READER_JWT_AUDIENCE"`
	JWTIssuer             string        `split_words:"true" default:"" desc:"the iss claim a JWT access token must carry"`
	JWTAudience           string        `split_words:"true" default:"" desc:"a value the aud claim of a JWT access token must hold: this API's identifier at the identity provider"`
	JWTMinRefreshInterval time.Duration `split_words:"true" default:"1m" desc:"shortest time between two fetches of the JWK Set: a token with an unknown kid fetches it again at most this often"`
	RateLimit             int           `split_words:"true" default:"100" desc:"requests a second per credential, shared by every reader through Redis; a key's entry may set its own (0 disables)"`
	RateBurst             int           `split_words:"true" default:"200" desc:"the most requests a credential may send at once within its rate"`
	AuthFailureLimit      int           `split_words:"true" default:"20" desc:"failed authentications per client address a minute; past it the address gets 429 for every request until the limit allows again (0 disables)"`
	TrustedProxies        string        `split_words:"true" default:"" desc:"comma-separated CIDRs or addresses of the proxies whose X-Forwarded-For names the client address"`
	AuditLog              string        `split_words:"true" default:"stderr" desc:"where the audit records of reads of unmasked personal data go: stderr, or the path of a file to append to"`

	LogFormat envconf.LogFormat `envconfig:"LOG_FORMAT" default:"json" desc:"json, or text (coloured, for a terminal)"`
	LogLevel  envconf.LogLevel  `envconfig:"LOG_LEVEL" default:"info" desc:"debug, info, warn or error"`
}

// Load reads the configuration through getenv (os.Getenv in production; a
// map in tests, so that parallel tests do not share the process
// environment) and validates it. The error, an *envconf.Error, names every
// bad variable.
func Load(getenv func(string) string) (*Config, error) {
	var c Config
	if err := envconf.Load(Prefix, &c, getenv); err != nil {
		return nil, err
	}
	return &c, nil
}

// Validate checks ranges and the relations between fields; Load calls it
// (the types check the log level and format).
func (c *Config) Validate(p *envconf.Problems) {
	p.Check("LISTEN_ADDR", envconf.ListenAddr(c.ListenAddr))
	if err := envconf.ListenAddr(c.OpsAddr); err != nil {
		p.Check("OPS_ADDR", err)
	} else if c.OpsAddr == c.ListenAddr {
		p.Add("OPS_ADDR", "is also %s; the ops port must be its own", p.Name("LISTEN_ADDR"))
	}
	p.Check("DATABASE_URL", envconf.URL(c.DatabaseURL, "postgres", "postgresql"))
	for i, u := range c.DatabaseReplicaURLS {
		if err := envconf.URL(u, "postgres", "postgresql"); err != nil {
			p.Add("DATABASE_REPLICA_URLS", "entry %d: %v", i+1, err)
		}
	}
	p.Check("REDIS_URL", envconf.URL(c.RedisURL, "redis", "rediss", "unix"))
	p.Check("DB_MAX_CONNS", envconf.Range(c.DBMaxConns, 1, 1000))
	if c.DBLoaders < 1 || c.DBLoaders > int(c.DBMaxConns) {
		p.Add("DB_LOADERS", "must be 1..%s (%d), got %d", p.Name("DB_MAX_CONNS"), c.DBMaxConns, c.DBLoaders)
	}
	if c.DBSearchers < 1 || c.DBSearchers > int(c.DBMaxConns) {
		p.Add("DB_SEARCHERS", "must be 1..%s (%d), got %d", p.Name("DB_MAX_CONNS"), c.DBMaxConns, c.DBSearchers)
	}
	p.Check("DB_QUERY_TIMEOUT", envconf.Positive(c.DBQueryTimeout))
	p.Check("REDIS_TTL", envconf.Positive(c.RedisTTL))
	p.Check("REDIS_TIMEOUT", envconf.Positive(c.RedisTimeout))
	p.Check("REDIS_HEDGE", envconf.Range(c.RedisHedge, 0, time.Second))
	p.Check("WARM_TIMEOUT", envconf.Positive(c.WarmTimeout))
	p.Check("READ_HEADER_TIMEOUT", envconf.Positive(c.ReadHeaderTimeout))
	p.Check("READ_TIMEOUT", envconf.Positive(c.ReadTimeout))
	p.Check("WRITE_TIMEOUT", envconf.Positive(c.WriteTimeout))
	p.Check("IDLE_TIMEOUT", envconf.Positive(c.IdleTimeout))
	p.Check("REQUEST_TIMEOUT", envconf.Positive(c.RequestTimeout))
	p.Check("SHUTDOWN_TIMEOUT", envconf.Positive(c.ShutdownTimeout))
	// Longer would hide a newly ingested order for too long.
	p.Check("NEGATIVE_TTL", envconf.Range(c.NegativeTTL, 0, time.Minute))
	p.Check("CACHE_BYTES", envconf.Range(c.CacheBytes, 0, 1<<40))
	p.Check("WARM_COUNT", envconf.Range(c.WarmCount, 0, 1_000_000))
	if c.RequestTimeout > 0 && c.WriteTimeout > 0 && c.RequestTimeout > c.WriteTimeout {
		p.Add("REQUEST_TIMEOUT", "%s exceeds %s %s: the connection would be cut before the answer", c.RequestTimeout, p.Name("WRITE_TIMEOUT"), c.WriteTimeout)
	}
	if c.GCPercent < -1 || c.GCPercent == 0 || c.GCPercent > 10_000 {
		p.Add("GC_PERCENT", "must be -1 or 1..10000, got %d", c.GCPercent)
	}
	if c.GCPercent == -1 && c.MemoryLimit == 0 {
		p.Add("GC_PERCENT", "-1 (GC off) needs %s", p.Name("MEMORY_LIMIT"))
	}
	p.Check("MEMORY_LIMIT", envconf.AtLeast(c.MemoryLimit, 0))
	c.validateAuth(p)
	if c.MemoryLimit > 0 && c.CacheBytes >= c.MemoryLimit {
		p.Add("CACHE_BYTES", "%d is not below %s %d", c.CacheBytes, p.Name("MEMORY_LIMIT"), c.MemoryLimit)
	}
}

// validateAuth checks the credentials' settings. With neither API keys
// nor JWTs nobody could authenticate: the reader refuses to start rather
// than serve orders to anyone (fail closed).
func (c *Config) validateAuth(p *envconf.Problems) {
	jwt := map[string]string{"JWT_JWKS_URL": c.JWTJwksURL, "JWT_ISSUER": c.JWTIssuer, "JWT_AUDIENCE": c.JWTAudience}
	var set, unset []string
	for _, key := range []string{"JWT_JWKS_URL", "JWT_ISSUER", "JWT_AUDIENCE"} {
		if jwt[key] == "" {
			unset = append(unset, key)
		} else {
			set = append(set, key)
		}
	}
	switch {
	case c.APIKeysFile == "" && len(set) == 0:
		p.Add("API_KEYS_FILE", "required, or %s, %s and %s: without API keys or JWTs nobody could authenticate, and the reader does not serve orders to anyone",
			p.Name("JWT_JWKS_URL"), p.Name("JWT_ISSUER"), p.Name("JWT_AUDIENCE"))
	case len(set) > 0:
		for _, key := range unset {
			p.Add(key, "required with %s", p.Name(set[0]))
		}
	}
	if c.JWTJwksURL != "" {
		p.Check("JWT_JWKS_URL", envconf.URL(c.JWTJwksURL, "https", "http"))
	}
	p.Check("JWT_MIN_REFRESH_INTERVAL", envconf.Range(c.JWTMinRefreshInterval, time.Second, time.Hour))
	p.Check("RATE_LIMIT", envconf.Range(c.RateLimit, 0, 1_000_000))
	if c.RateLimit > 0 {
		p.Check("RATE_BURST", envconf.Range(c.RateBurst, 1, 1_000_000))
	}
	p.Check("AUTH_FAILURE_LIMIT", envconf.Range(c.AuthFailureLimit, 0, 1_000_000))
	// The same rule as auth.ParseTrustedProxies, which the reader then
	// calls; config stays free of the auth package's dependencies.
	for i, f := range strings.Split(c.TrustedProxies, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		if _, err := netip.ParsePrefix(f); err != nil {
			if _, err := netip.ParseAddr(f); err != nil {
				p.Add("TRUSTED_PROXIES", "element %d is neither an address nor a CIDR prefix", i+1)
			}
		}
	}
}

// Vars lists every setting of the reader, in declaration order, for
// documentation and for deploy tooling that cross-checks its manifests.
func Vars() []envconf.Var { return envconf.Vars(Prefix, &Config{}) }

// Names returns every environment variable name the reader reads: each
// READER_ name and the unprefixed fallbacks, sorted.
func Names() []string { return envconf.Names(Vars()) }

// Usage writes the -help text: every variable with its default and
// meaning.
func Usage(w io.Writer) error { return envconf.Usage(w, "reader", Prefix, &Config{}) }
