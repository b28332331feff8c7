package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/lmittmann/tint"

	"github.com/orderservice/orders/migrations"
	"github.com/orderservice/orders/shared/probe"
)

// stackConfig is what the command line sets.
type stackConfig struct {
	brokerOnly    bool
	noSeed        bool
	readerPort    int
	readerOpsPort int
	opsPort       int
	kafkaPort     int
	generate      int
	seed          int64
	root          string
	artifacts     string
	summaryEvery  time.Duration
}

func parseStackFlags(args []string, out io.Writer) (stackConfig, error) {
	var c stackConfig
	fs := flag.NewFlagSet("devstack", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.BoolVar(&c.brokerOnly, "broker-only", false, "run only the Kafka broker (with its topics) until interrupted")
	fs.BoolVar(&c.noSeed, "no-seed", false, "do not run the producer")
	fs.IntVar(&c.readerPort, "reader-port", 8080, "reader HTTP port")
	fs.IntVar(&c.readerOpsPort, "reader-ops-port", 9102, "reader ops (metrics, pprof) port")
	fs.IntVar(&c.opsPort, "ops-port", 9101, "ingestor ops (metrics, health) port")
	fs.IntVar(&c.kafkaPort, "kafka-port", 9092, "Kafka broker port on 127.0.0.1")
	fs.IntVar(&c.generate, "generate", 300, "number of generated orders to seed after the sample")
	fs.Int64Var(&c.seed, "seed", 0, "generator seed (0: a new one each run, so each run adds new orders)")
	fs.StringVar(&c.root, "root", "", "repository root (default: the directory holding go.work, found from the working directory up)")
	fs.StringVar(&c.artifacts, "artifacts", "", "where the API keys go: "+keysFileName+" (the reader's keys file) and "+credsFileName+", and the services' logs: logs/<service>.log (default: <root>/.artifacts)")
	fs.DurationVar(&c.summaryEvery, "summary-every", 5*time.Second, "how often the console sums up the traffic (the requests themselves are in the logs)")
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: devstack [flags]\n       devstack migrate up|down|create ...\n\nRuns the order service locally until Ctrl-C.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if c.summaryEvery <= 0 {
		return c, errors.New("--summary-every must be positive")
	}
	if c.generate < 0 {
		return c, errors.New("--generate must not be negative")
	}
	if c.seed == 0 {
		c.seed = time.Now().UnixNano()
	}
	return c, nil
}

// stack is one run of the dev stack. Everything it starts registers a stop
// function; down runs them in reverse, which (given the start order) stops
// the ingestor, then the reader, the broker, Redis and PostgreSQL.
type stack struct {
	cfg    stackConfig
	getenv func(string) string
	con    *console
	log    *slog.Logger
	stops  []func()

	dbURL    string // superuser URL of the orders database
	redisURL string
	brokers  string
	services []*proc // long-running children whose death ends the run
	reader   *proc
	ingestor *proc
	creds    *credentials
	logs     map[string]*serviceLog // the services' log files, by service name
}

func runStack(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := parseStackFlags(args, stdout)
	if err != nil {
		return ignoreHelp(err)
	}
	con := newConsole(stdout, isTerminal(stdout, getenv))
	s := &stack{
		cfg:    cfg,
		getenv: getenv,
		con:    con,
		log: slog.New(tint.NewTextHandler(con.Writer("devstack"), &tint.Options{
			NoColor: !con.color, TimeFormat: time.TimeOnly,
		})),
	}
	err = s.up(ctx)
	if err == nil {
		err = s.wait(ctx)
	}
	if ctx.Err() != nil {
		s.log.Info("shutting down")
	} else if err != nil {
		s.log.Error("stopping after failure", "err", err)
	}
	s.down()
	// Interrupted (Ctrl-C or SIGTERM), possibly mid-start, is a clean exit.
	if err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

// ignoreHelp turns flag.ErrHelp (-h printed the usage) into success.
func ignoreHelp(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

func (s *stack) onStop(f func()) { s.stops = append(s.stops, f) }

func (s *stack) down() {
	for i := len(s.stops) - 1; i >= 0; i-- {
		s.stops[i]()
	}
	s.stops = nil
	s.log.Info("all stopped")
}

// wait blocks until ctx ends or a service dies.
func (s *stack) wait(ctx context.Context) error {
	died := make(chan *proc, len(s.services))
	for _, p := range s.services {
		go func() {
			<-p.done
			died <- p
		}()
	}
	select {
	case <-ctx.Done():
		return nil
	case p := <-died:
		_, err := p.exited()
		return fmt.Errorf("%w unexpectedly", err)
	}
}

func (s *stack) up(ctx context.Context) error {
	if s.cfg.brokerOnly {
		if err := s.startBroker(); err != nil {
			return err
		}
		s.log.Info("press Ctrl-C to stop")
		return nil
	}
	root, err := s.repoRoot()
	if err != nil {
		return err
	}
	// Fail before the slow parts when a port is taken (typically by
	// another `make run`).
	for _, p := range []struct {
		port int
		flag string
	}{
		{s.cfg.readerPort, "--reader-port"}, {s.cfg.readerOpsPort, "--reader-ops-port"},
		{s.cfg.opsPort, "--ops-port"}, {s.cfg.kafkaPort, "--kafka-port"},
	} {
		if err := portFree(ctx, p.port); err != nil {
			return fmt.Errorf("port %d is taken (another make run?): stop what uses it or pass %s: %w", p.port, p.flag, err)
		}
	}
	s.cfg.root = root
	if s.cfg.artifacts == "" {
		s.cfg.artifacts = filepath.Join(root, ".artifacts")
	}
	if s.creds, err = devCredentials(s.cfg.artifacts, s.readerURL()); err != nil {
		return err
	}
	if s.creds.reused {
		s.log.Info("API keys of the last run reused", "keys", s.creds.keysFile, "tokens", s.creds.credsFile)
	} else {
		s.log.Info("API keys created", "keys", s.creds.keysFile, "tokens", s.creds.credsFile)
	}
	if err := s.startPostgres(ctx); err != nil {
		return err
	}
	if err := s.startRedis(ctx); err != nil {
		return err
	}
	if err := s.startBroker(); err != nil {
		return err
	}
	bins, err := s.build(ctx)
	if err != nil {
		return err
	}
	if err := s.startServices(ctx, bins); err != nil {
		return err
	}
	s.startSummary(ctx)
	if !s.cfg.noSeed {
		if err := s.seed(ctx, bins); err != nil {
			return err
		}
	}
	s.printSummary(ctx)
	return nil
}

// portFree checks that nothing listens on port (on any address).
func portFree(ctx context.Context, port int) error {
	// A listener on 127.0.0.1 alone does not always stop a wildcard
	// listen (SO_REUSEADDR), but it does answer a connect.
	d := net.Dialer{Timeout: time.Second}
	if c, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); err == nil {
		_ = c.Close()
		return errors.New("something answers on it")
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", ":"+strconv.Itoa(port))
	if err != nil {
		return err
	}
	return l.Close()
}

// repoRoot is --root or the nearest directory holding go.work.
func (s *stack) repoRoot() (string, error) {
	if s.cfg.root != "" {
		return filepath.Abs(s.cfg.root)
	}
	return findRoot()
}

func findRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.work found in the working directory or above: run devstack from the repository, or pass --root")
		}
		dir = parent
	}
}

func (s *stack) startBroker() error {
	c, err := startBroker(s.cfg.kafkaPort)
	if err != nil {
		return err
	}
	s.brokers = strings.Join(c.ListenAddrs(), ",")
	s.log.Info("kafka broker (kfake) ready", "addr", s.brokers,
		"topics", fmt.Sprintf("%s (%d partitions), %s", ordersTopic, ordersPartitions, dlqTopic))
	s.onStop(func() {
		start := time.Now()
		c.Close()
		s.log.Info("kafka broker stopped", "took", time.Since(start).Round(time.Millisecond))
	})
	return nil
}

// startPostgres reuses the server at DATABASE_URL (default: the local
// standard port) when it answers, else starts a throwaway one.
func (s *stack) startPostgres(ctx context.Context) error {
	dsn, explicit := s.getenv("DATABASE_URL"), true
	if dsn == "" {
		dsn, explicit = defaultDatabaseURL, false
	}
	admin, err := withDatabase(dsn, "postgres")
	if err != nil {
		return err
	}
	if perr := probe.Postgres(ctx, admin); perr == nil {
		s.log.Info("using the running PostgreSQL", "url", redact(dsn))
	} else if explicit {
		// The user named a server: starting another one would hide the problem.
		return fmt.Errorf("PostgreSQL at DATABASE_URL (%s) does not answer: %w", redact(dsn), perr)
	} else {
		s.log.Info("no PostgreSQL answers on 127.0.0.1:5432", "err", perr)
		name, _ := databaseName(dsn)
		var srv *throwaway
		err := s.withInstall(ctx, func() error {
			var err error
			dsn, srv, err = startPostgres(ctx, s.con, s.log, name)
			return err
		})
		if err != nil {
			return err
		}
		s.onStop(func() {
			took := srv.stop()
			s.log.Info("throwaway PostgreSQL stopped", "took", took.Round(time.Millisecond))
		})
	}
	if err := ensureDatabase(ctx, dsn); err != nil {
		return err
	}
	start := time.Now()
	if err := migrations.Up(dsn); err != nil {
		return fmt.Errorf("apply migrations to %s: %w", redact(dsn), err)
	}
	s.log.Info("migrations applied", "took", time.Since(start).Round(time.Millisecond))
	s.dbURL = dsn
	return nil
}

// startRedis reuses the server at REDIS_URL (default: the local standard
// port) when it answers, else starts a throwaway one.
func (s *stack) startRedis(ctx context.Context) error {
	rawURL, explicit := s.getenv("REDIS_URL"), true
	if rawURL == "" {
		rawURL, explicit = defaultRedisURL, false
	}
	perr := probe.Redis(ctx, rawURL)
	switch {
	case perr == nil:
		s.log.Info("using the running Redis", "url", redact(rawURL))
	case explicit:
		return fmt.Errorf("redis at REDIS_URL (%s) does not answer: %w", redact(rawURL), perr)
	default:
		s.log.Info("no Redis answers on 127.0.0.1:6379", "err", perr)
		var srv *throwaway
		err := s.withInstall(ctx, func() error {
			var err error
			rawURL, srv, err = startRedis(ctx, s.con, s.log)
			return err
		})
		if err != nil {
			return err
		}
		s.onStop(func() {
			took := srv.stop()
			s.log.Info("throwaway Redis stopped", "took", took.Round(time.Millisecond))
		})
	}
	s.redisURL = rawURL
	return nil
}

// installCommand is what a person runs to get the server binaries.
const installCommand = "sudo apt-get update && sudo apt-get install -y postgresql redis-server   # Debian/Ubuntu; macOS: brew install postgresql redis"

// withInstall runs start; when it fails for missing binaries it installs
// them with scripts/ensure-services.sh (root on Debian/Ubuntu only) and
// tries once more, or explains how to install them.
func (s *stack) withInstall(ctx context.Context, start func() error) error {
	err := start()
	if !errors.Is(err, errMissingBinaries) {
		return err
	}
	script := filepath.Join(s.cfg.root, "scripts", "ensure-services.sh")
	_, aptErr := exec.LookPath("apt-get")
	_, debErr := os.Stat("/etc/debian_version")
	if os.Geteuid() != 0 || aptErr != nil || debErr != nil {
		return fmt.Errorf("%w; install them with:\n    %s", err, installCommand)
	}
	s.log.Warn("server binaries missing: installing them with apt-get", "err", err)
	if ierr := runOnce(ctx, s.con, "install", s.cfg.root, os.Environ(), script, "--install-only"); ierr != nil {
		return fmt.Errorf("install server binaries: %w", ierr)
	}
	return start()
}

// binaries maps a service name to its built binary; missing services have
// no entry.
type binaries map[string]string

// build compiles the services that exist into <root>/bin.
func (s *stack) build(ctx context.Context) (binaries, error) {
	bins := binaries{}
	var pkgs []string
	for _, name := range []string{"ingestor", "reader", "producer"} {
		if _, err := os.Stat(filepath.Join(s.cfg.root, name, "main.go")); err != nil {
			s.log.Warn("skipping a service that has no main.go yet", "service", name)
			continue
		}
		pkgs = append(pkgs, "./"+name)
		bins[name] = filepath.Join(s.cfg.root, "bin", name)
	}
	if len(pkgs) == 0 {
		return bins, nil
	}
	start := time.Now()
	s.log.Info("building", "packages", strings.Join(pkgs, " "))
	args := append([]string{"build", "-o", filepath.Join(s.cfg.root, "bin") + string(filepath.Separator)}, pkgs...)
	if err := runOnce(ctx, s.con, "build", s.cfg.root, os.Environ(), "go", args...); err != nil {
		return nil, err
	}
	s.log.Info("built", "took", time.Since(start).Round(time.Millisecond))
	return bins, nil
}

// childEnv is the environment of a service: ours plus its configuration.
func (s *stack) childEnv(extra ...string) []string {
	env := append(os.Environ(),
		"LOG_FORMAT=text",
		"REDIS_URL="+s.redisURL,
		"KAFKA_BROKERS="+s.brokers,
	)
	if !s.con.color {
		env = append(env, "NO_COLOR=1")
	}
	// Later entries win (os/exec keeps the last of duplicate keys).
	return append(env, extra...)
}

// startServices starts the reader and the ingestor and waits until both
// report ready on /readyz.
func (s *stack) startServices(ctx context.Context, bins binaries) error {
	for _, svc := range []struct {
		name, role string
		env        []string
		grace      time.Duration // for the shutdown after SIGTERM
		started    **proc
	}{
		{"reader", "order_reader", []string{
			"READER_LISTEN_ADDR=:" + strconv.Itoa(s.cfg.readerPort),
			"READER_OPS_ADDR=:" + strconv.Itoa(s.cfg.readerOpsPort),
			"READER_API_KEYS_FILE=" + s.creds.keysFile,
		}, 20 * time.Second, &s.reader},
		{"ingestor", "order_ingestor", []string{
			"INGESTOR_OPS_ADDR=:" + strconv.Itoa(s.cfg.opsPort),
		}, 30 * time.Second, &s.ingestor},
	} {
		bin, ok := bins[svc.name]
		if !ok {
			continue
		}
		dsn, err := withUser(s.dbURL, svc.role)
		if err != nil {
			return err
		}
		// JSON to a file: the reader's access log takes its fast path, and
		// the console shows what serviceLog picks from it.
		out, err := newServiceLog(s.con, filepath.Join(s.cfg.artifacts, "logs"), svc.name)
		if err != nil {
			return err
		}
		if s.logs == nil {
			s.logs = map[string]*serviceLog{}
		}
		s.logs[svc.name] = out
		env := append([]string{"DATABASE_URL=" + dsn, "LOG_FORMAT=json"}, svc.env...)
		p, err := startProc(ctx, out, svc.name, nil, s.childEnv(env...), bin)
		if err != nil {
			return err
		}
		*svc.started = p
		s.services = append(s.services, p)
		s.onStop(func() {
			took := p.stop(syscall.SIGTERM, svc.grace)
			s.log.Info(svc.name+" stopped", "took", took.Round(time.Millisecond))
		})
	}
	start := time.Now()
	for _, w := range []struct {
		p    *proc
		port int
	}{{s.reader, s.cfg.readerPort}, {s.ingestor, s.cfg.opsPort}} {
		if w.p == nil {
			continue
		}
		if err := waitReady(ctx, w.p, w.port); err != nil {
			return err
		}
		s.log.Info(w.p.name+" ready", "after", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// waitReady polls http://127.0.0.1:port/readyz until it answers 200.
func waitReady(ctx context.Context, p *proc, port int) error {
	endpoint := fmt.Sprintf("http://127.0.0.1:%d/readyz", port)
	client := &http.Client{Timeout: 2 * time.Second}
	err := probe.Wait(ctx, 90*time.Second, func(ctx context.Context) error {
		if gone, err := p.exited(); gone {
			return probe.Permanent(err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
		if err != nil {
			return probe.Permanent(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", endpoint, resp.Status)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s not ready: %w", p.name, err)
	}
	return nil
}

// seed publishes the canonical sample and generated orders, then waits
// until the ingestor has stored them.
func (s *stack) seed(ctx context.Context, bins binaries) error {
	bin, ok := bins["producer"]
	if !ok {
		s.log.Warn("no producer yet: nothing seeded")
		return nil
	}
	conn, err := pgx.Connect(ctx, s.dbURL)
	if err != nil {
		return fmt.Errorf("connect to count orders: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	before, err := countOrders(ctx, conn)
	if err != nil {
		return err
	}
	expect := before + s.cfg.generate
	if uid := s.sampleUID(); uid != "" {
		var stored bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM orders WHERE order_uid = $1)", uid).Scan(&stored); err != nil {
			return fmt.Errorf("look up the sample order: %w", err)
		}
		if !stored {
			expect++
		}
	}

	start := time.Now()
	base := []string{"--brokers", s.brokers, "--topic", ordersTopic}
	if err := runOnce(ctx, s.con, "producer", s.cfg.root, s.childEnv(), bin, append(base, "--sample")...); err != nil {
		return err
	}
	if s.cfg.generate > 0 {
		args := append(base, "--generate", strconv.Itoa(s.cfg.generate), "--seed", strconv.FormatInt(s.cfg.seed, 10))
		if err := runOnce(ctx, s.con, "producer", s.cfg.root, s.childEnv(), bin, args...); err != nil {
			return err
		}
	}
	s.log.Info("seed orders published", "generated", s.cfg.generate, "seed", s.cfg.seed)
	if s.ingestor == nil {
		s.log.Warn("no ingestor yet: the orders stay in Kafka")
		return nil
	}

	// Data flowing: watch the count climb until every order is stored.
	var n int
	last := time.Now()
	err = probe.Wait(ctx, 2*time.Minute, func(ctx context.Context) error {
		var err error
		if n, err = countOrders(ctx, conn); err != nil {
			return err
		}
		if n >= expect {
			return nil
		}
		if time.Since(last) >= 2*time.Second {
			s.log.Info(fmt.Sprintf("%d orders stored (waiting for %d)", n, expect))
			last = time.Now()
		}
		return fmt.Errorf("%d of %d orders stored", n, expect)
	})
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		s.log.Warn("not every seeded order was stored: see the ingestor's log", "err", err)
		return nil
	}
	s.log.Info(fmt.Sprintf("%d orders stored (%d new)", n, n-before),
		"took", time.Since(start).Round(time.Millisecond))
	return nil
}

func countOrders(ctx context.Context, conn *pgx.Conn) (int, error) {
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&n); err != nil {
		return 0, fmt.Errorf("count orders: %w", err)
	}
	return n, nil
}

// sampleUID is the order_uid of the canonical sample order, "" if unknown.
func (s *stack) sampleUID() string {
	data, err := os.ReadFile(filepath.Join(s.cfg.root, "shared", "model", "testdata", "model.json"))
	if err != nil {
		return ""
	}
	var o struct {
		OrderUID string `json:"order_uid"`
	}
	if json.Unmarshal(data, &o) != nil {
		return ""
	}
	return o.OrderUID
}

// readerURL is where a person on this machine opens the reader.
func (s *stack) readerURL() string { return fmt.Sprintf("http://localhost:%d", s.cfg.readerPort) }

// printSummary shows where to look, with links to a few stored orders, and
// the API keys to sign in with.
func (s *stack) printSummary(ctx context.Context) {
	var b strings.Builder
	line := func(k, v string) { fmt.Fprintf(&b, "\n  %-11s %s", k, v) }
	b.WriteString("the order service is running:")
	if s.reader != nil {
		base := s.readerURL()
		line("UI", base+"/  (sign in with a token below)")
		line("PII token", s.creds.pii()+"  ("+piiTokenVar+": orders:read, orders:pii; orders as ingested)")
		line("support", s.creds.support()+"  ("+supportTokenVar+": orders:read; personal data masked)")
		line("tokens in", s.relToRoot(s.creds.credsFile))
		line("Swagger", base+"/swagger/")
		uids := recentOrders(ctx, s.cfg.readerPort, s.creds.support(), 3)
		for _, uid := range uids {
			line("order", base+"/order/"+uid)
		}
		example := "<order_uid>"
		if len(uids) > 0 {
			example = uids[0]
		}
		line("try", fmt.Sprintf(". %s && curl -H \"Authorization: Bearer $%s\" %s/order/%s",
			s.relToRoot(s.creds.credsFile), supportTokenVar, base, example))
	}
	if s.reader != nil {
		line("metrics", fmt.Sprintf("http://localhost:%d/metrics (reader)", s.cfg.readerOpsPort))
	}
	if s.ingestor != nil {
		line("metrics", fmt.Sprintf("http://localhost:%d/metrics (ingestor)", s.cfg.opsPort))
	}
	if len(s.logs) > 0 {
		var names []string
		for _, name := range []string{"reader", "ingestor"} {
			if l, ok := s.logs[name]; ok {
				names = append(names, filepath.Base(l.Path()))
			}
		}
		line("logs", s.relToRoot(filepath.Join(s.cfg.artifacts, "logs"))+"/ ("+strings.Join(names, ", ")+"; the console shows warnings and a traffic summary)")
	}
	line("kafka", fmt.Sprintf("%s (topics %s, %s)", s.brokers, ordersTopic, dlqTopic))
	line("postgres", redact(s.dbURL))
	line("redis", redact(s.redisURL))
	b.WriteString("\nPress Ctrl-C to stop.")
	s.log.Info(b.String())
}

// relToRoot is path relative to the repository root when it lies inside it
// (where `make run` runs), else path itself.
func (s *stack) relToRoot(path string) string {
	rel, err := filepath.Rel(s.cfg.root, path)
	if err != nil || strings.HasPrefix(rel, "..") {
		return path
	}
	return rel
}

// recentOrders asks the reader for the newest order uids with token; nil
// on any error (the summary then just has no order links).
func recentOrders(ctx context.Context, port int, token string, limit int) []string {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		fmt.Sprintf("http://127.0.0.1:%d/orders?limit=%d", port, limit), nil)
	if err != nil {
		return nil
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var body struct {
		Orders []struct {
			OrderUID string `json:"order_uid"`
		} `json:"orders"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&body) != nil {
		return nil
	}
	uids := make([]string, 0, len(body.Orders))
	for _, o := range body.Orders {
		uids = append(uids, o.OrderUID)
	}
	return uids
}

// redact hides a URL's password for printing.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable url)"
	}
	return u.Redacted()
}
