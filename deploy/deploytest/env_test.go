package deploytest

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	ingestorconfig "github.com/orderservice/orders/ingestor/config"
	readerconfig "github.com/orderservice/orders/reader/config"
	"github.com/orderservice/orders/shared/envconf"
)

// serviceVars is one service's configuration surface: for each setting, the
// names it may be given under (the prefixed name and, for shared settings,
// the unprefixed fallback). Setting either, or either's _FILE, satisfies
// the setting.
type serviceVars struct {
	name     string // compose service and k8s Deployment
	prefix   string // INGESTOR_ or READER_
	settings [][]string
	defaults map[string]string // by prefixed name
	// load reads the service's configuration through getenv and returns
	// the address of its main port (the reader's API, the ingestor's ops).
	load func(getenv func(string) string) (addr string, err error)
	port int // that port in the deployment files
}

func newServiceVars(name, prefix string, vars []envconf.Var, port int, load func(getenv func(string) string) (string, error)) serviceVars {
	sv := serviceVars{name: name, prefix: prefix + "_", defaults: map[string]string{}, load: load, port: port}
	for _, v := range vars {
		sv.settings = append(sv.settings, v.Names())
		sv.defaults[v.Name] = v.Default
	}
	return sv
}

func readerVars() serviceVars {
	return newServiceVars("reader", readerconfig.Prefix, readerconfig.Vars(), readerPort, func(getenv func(string) string) (string, error) {
		c, err := readerconfig.Load(getenv)
		if err != nil {
			return "", err
		}
		return c.ListenAddr, nil
	})
}

func ingestorVars() serviceVars {
	return newServiceVars("ingestor", ingestorconfig.Prefix, ingestorconfig.Vars(), ingestorPort, func(getenv func(string) string) (string, error) {
		c, err := ingestorconfig.Load(getenv)
		return c.OpsAddr, err
	})
}

func TestServiceVarsAreKnown(t *testing.T) {
	t.Parallel()
	// Guards the lists below: a config package that lists nothing would make
	// every cross-check pass.
	for _, sv := range []serviceVars{readerVars(), ingestorVars()} {
		if len(sv.settings) < 5 {
			t.Errorf("%s: only %d settings listed by its config package", sv.name, len(sv.settings))
		}
		for _, s := range sv.settings {
			if !strings.HasPrefix(s[0], sv.prefix) {
				t.Errorf("%s: setting %v is not prefixed %s", sv.name, s, sv.prefix)
			}
		}
		var names []string
		for _, s := range sv.settings {
			names = append(names, s[0])
		}
		for _, must := range []string{"DATABASE_URL", "REDIS_URL", "LOG_FORMAT", "LOG_LEVEL"} {
			if !slices.Contains(names, sv.prefix+must) {
				t.Errorf("%s: config lists no %s%s", sv.name, sv.prefix, must)
			}
		}
	}
}

// checkEnv reports settings of sv that env does not set, and prefixed
// variables in env that sv does not read (a typo, or a renamed setting).
func checkEnv(t *testing.T, where string, sv serviceVars, env map[string]string) {
	t.Helper()
	known := map[string]bool{}
	for _, s := range sv.settings {
		set := false
		for _, n := range s {
			for _, n := range []string{n, n + envconf.FileSuffix} {
				known[n] = true
				_, ok := env[n]
				set = set || ok
			}
		}
		if !set {
			t.Errorf("%s: %s does not set %s", where, sv.name, strings.Join(s, " or "))
		}
	}
	for n := range env {
		if strings.HasPrefix(n, sv.prefix) && !known[n] {
			t.Errorf("%s: %s sets %s, which %s/config does not read", where, sv.name, n, sv.name)
		}
	}
}

// readerAuthVars are the reader's authentication settings (API keys,
// JWTs, rate limits, audit records): compose and k8s set every one.
var readerAuthVars = []string{
	"READER_API_KEYS_FILE",
	"READER_JWT_JWKS_URL", "READER_JWT_ISSUER", "READER_JWT_AUDIENCE", "READER_JWT_MIN_REFRESH_INTERVAL",
	"READER_RATE_LIMIT", "READER_RATE_BURST", "READER_AUTH_FAILURE_LIMIT",
	"READER_TRUSTED_PROXIES", "READER_AUDIT_LOG",
}

// TestReaderAuthVarsAreSet: compose and k8s set every authentication
// setting.
func TestReaderAuthVarsAreSet(t *testing.T) {
	t.Parallel()
	c := loadCompose(t)
	b := loadK8s(t)
	for where, env := range map[string]map[string]string{
		"docker-compose.yml": c.service(t, "reader").Environment,
		"deploy/k8s":         b.envNames(t, b.container(t, "Deployment/reader")),
	} {
		for _, n := range readerAuthVars {
			if _, ok := env[n]; !ok {
				t.Errorf("%s: the reader gets no %s", where, n)
			}
		}
		if env["READER_API_KEYS_FILE"] == "" {
			t.Errorf("%s: READER_API_KEYS_FILE is empty: the reader would refuse to start without JWT settings", where)
		}
	}
}

func TestEveryConfigVariableIsSetInCompose(t *testing.T) {
	t.Parallel()
	c := loadCompose(t)
	for _, sv := range []serviceVars{readerVars(), ingestorVars()} {
		checkEnv(t, "docker-compose.yml", sv, c.service(t, sv.name).Environment)
	}
}

func TestEveryConfigVariableIsSetInK8s(t *testing.T) {
	t.Parallel()
	b := loadK8s(t)
	for _, sv := range []serviceVars{readerVars(), ingestorVars()} {
		checkEnv(t, "deploy/k8s", sv, b.envNames(t, b.container(t, "Deployment/"+sv.name)))
	}
}

// TestListenAddressesAgree ties the ports of every deployment file to the
// addresses the services are told to listen on, and to their defaults.
func TestListenAddressesAgree(t *testing.T) {
	t.Parallel()
	c := loadCompose(t)
	b := loadK8s(t)
	for _, tc := range []struct {
		sv   serviceVars
		key  string
		port int
		def  string
	}{
		{readerVars(), "READER_LISTEN_ADDR", readerPort, readerVars().defaults["READER_LISTEN_ADDR"]},
		{readerVars(), "READER_OPS_ADDR", readerOpsPort, readerVars().defaults["READER_OPS_ADDR"]},
		{ingestorVars(), "INGESTOR_OPS_ADDR", ingestorPort, ingestorVars().defaults["INGESTOR_OPS_ADDR"]},
	} {
		want := ":" + itoa(tc.port)
		if tc.def != want {
			t.Errorf("%s defaults to %q; the deployment files use %s", tc.key, tc.def, want)
		}
		if got := c.service(t, tc.sv.name).Environment[tc.key]; got != want {
			t.Errorf("compose %s %s = %q, want %q", tc.sv.name, tc.key, got, want)
		}
		if got := b.envNames(t, b.container(t, "Deployment/"+tc.sv.name))[tc.key]; got != want {
			t.Errorf("k8s %s %s = %q, want %q", tc.sv.name, tc.key, got, want)
		}
	}
}

// TestGracePeriodsCoverShutdown: the orchestrator must wait longer than the
// service's own shutdown timeout, or it kills a batch or a request midway.
func TestGracePeriodsCoverShutdown(t *testing.T) {
	t.Parallel()
	c := loadCompose(t)
	b := loadK8s(t)
	for _, sv := range []serviceVars{readerVars(), ingestorVars()} {
		key := sv.prefix + "SHUTDOWN_TIMEOUT"
		env := c.service(t, sv.name).Environment
		shutdown, err := time.ParseDuration(env[key])
		if err != nil {
			t.Errorf("compose %s %s: %v", sv.name, key, err)
			continue
		}
		grace, err := time.ParseDuration(c.service(t, sv.name).StopGracePeriod)
		if err != nil || grace <= shutdown {
			t.Errorf("compose %s stop_grace_period %q must exceed %s %s", sv.name, c.service(t, sv.name).StopGracePeriod, key, shutdown)
		}

		kEnv := b.envNames(t, b.container(t, "Deployment/"+sv.name))
		kShutdown, err := time.ParseDuration(kEnv[key])
		if err != nil {
			t.Errorf("k8s %s %s: %v", sv.name, key, err)
			continue
		}
		d := b.object(t, "Deployment/"+sv.name)
		secs, _ := asInt(dig(d, "spec", "template", "spec", "terminationGracePeriodSeconds"))
		preStop, _ := asInt(dig(b.container(t, "Deployment/"+sv.name), "lifecycle", "preStop", "sleep", "seconds"))
		if time.Duration(secs)*time.Second <= kShutdown+time.Duration(preStop)*time.Second {
			t.Errorf("k8s %s terminationGracePeriodSeconds %d must exceed preStop %ds + %s %s", sv.name, secs, preStop, key, kShutdown)
		}
	}
}

// deploymentSpecific are the settings compose and k8s may set differently:
// where the dependencies are, and how chatty the logs are.
var deploymentSpecific = map[string]bool{
	"INGESTOR_KAFKA_BROKERS": true, "INGESTOR_DATABASE_URL": true, "INGESTOR_REDIS_URL": true,
	"READER_DATABASE_URL": true, "READER_REDIS_URL": true,
	"INGESTOR_LOG_LEVEL": true, "READER_LOG_LEVEL": true,
	// Follows the container's memory limit, which only k8s sets.
	"READER_MEMORY_LIMIT": true,
	// Where each mounts its secret.
	"READER_API_KEYS_FILE": true,
}

// TestComposeAndK8sAgree: the tuning settings are the same in both
// deployments, so the end-to-end test, which runs the services with the
// compose values, vouches for the k8s values too.
func TestComposeAndK8sAgree(t *testing.T) {
	t.Parallel()
	c := loadCompose(t)
	b := loadK8s(t)
	for _, sv := range []serviceVars{readerVars(), ingestorVars()} {
		cEnv := c.service(t, sv.name).Environment
		kEnv := b.envNames(t, b.container(t, "Deployment/"+sv.name))
		for _, s := range sv.settings {
			name := s[0]
			if deploymentSpecific[name] {
				continue
			}
			cv, cok := cEnv[name]
			kv, kok := kEnv[name]
			if cok && kok && interpolate(cv) != kv {
				t.Errorf("%s: compose %q, k8s %q", name, interpolate(cv), kv)
			}
		}
	}
}

// TestServicesAcceptDeployedSettings loads each service's configuration
// from the compose and k8s values in-process (the config packages take a
// getenv), so a value a service would refuse at start fails here.
func TestServicesAcceptDeployedSettings(t *testing.T) {
	t.Parallel()
	c := loadCompose(t)
	b := loadK8s(t)
	// Secrets are placeholders in the files; give them well-formed values.
	secrets := map[string]string{
		"READER_DATABASE_URL":   "postgres://order_reader:pw@postgres:5432/orders",
		"READER_REDIS_URL":      "redis://:pw@redis:6379/0",
		"INGESTOR_DATABASE_URL": "postgres://order_ingestor:pw@postgres:5432/orders",
		"INGESTOR_REDIS_URL":    "redis://:pw@redis:6379/0",
	}
	for _, sv := range []serviceVars{readerVars(), ingestorVars()} {
		for where, env := range map[string]map[string]string{
			"compose": c.service(t, sv.name).Environment,
			"k8s":     b.envNames(t, b.container(t, "Deployment/"+sv.name)),
		} {
			vals := map[string]string{}
			for k, v := range env {
				vals[k] = interpolate(v)
				if s, ok := secrets[k]; ok {
					vals[k] = s
				}
			}
			addr, err := sv.load(func(k string) string { return vals[k] })
			if err != nil {
				t.Errorf("%s: the %s refuses its settings: %v", where, sv.name, err)
			} else if addr != ":"+itoa(sv.port) {
				t.Errorf("%s: the %s listens on %q", where, sv.name, addr)
			}
		}
	}
	// The check can fail: a refused value is reported.
	if _, err := readerVars().load(func(k string) string { return map[string]string{"READER_LISTEN_ADDR": "8080"}[k] }); err == nil {
		t.Error("the reader accepts a listen address without a port")
	}
}

// TestSecretKeysAreUsed: every key of secrets.env.example is read by some
// container, so the example holds no stale credentials.
func TestSecretKeysAreUsed(t *testing.T) {
	t.Parallel()
	b := loadK8s(t)
	used := map[string]bool{}
	for _, o := range b.objects {
		for _, c := range digList(o, "spec", "template", "spec", "containers") {
			for _, e := range digList(c, "env") {
				if k := digString(e, "valueFrom", "secretKeyRef", "key"); k != "" {
					used[k] = true
				}
			}
		}
	}
	for name, keys := range b.secretKeys {
		for k := range keys {
			if !used[k] {
				t.Errorf("Secret %s key %s is used by no container", name, k)
			}
		}
	}
}

// TestReaderMemoryLimitFitsContainer: the reader's soft memory limit in k8s
// sits below the container's hard limit (or the OOM killer acts before the
// GC does) and above its cache bound.
func TestReaderMemoryLimitFitsContainer(t *testing.T) {
	t.Parallel()
	b := loadK8s(t)
	c := b.container(t, "Deployment/reader")
	env := b.envNames(t, c)
	soft, err := strconv.ParseInt(env["READER_MEMORY_LIMIT"], 10, 64)
	if err != nil {
		t.Fatalf("READER_MEMORY_LIMIT %q: %v", env["READER_MEMORY_LIMIT"], err)
	}
	cache, err := strconv.ParseInt(env["READER_CACHE_BYTES"], 10, 64)
	if err != nil {
		t.Fatalf("READER_CACHE_BYTES %q: %v", env["READER_CACHE_BYTES"], err)
	}
	limit := digString(c, "resources", "limits", "memory")
	mi, ok := strings.CutSuffix(limit, "Mi")
	hard, err := strconv.ParseInt(mi, 10, 64)
	if !ok || err != nil {
		t.Fatalf("memory limit %q: want NNNMi", limit)
	}
	hard <<= 20
	if soft <= cache || soft >= hard {
		t.Errorf("READER_MEMORY_LIMIT %d must lie between READER_CACHE_BYTES %d and the container limit %d (%s)", soft, cache, hard, limit)
	}
}
