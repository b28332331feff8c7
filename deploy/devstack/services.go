package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

const (
	defaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/orders?sslmode=disable"
	defaultRedisURL    = "redis://127.0.0.1:6379/0"
)

// errMissingBinaries means a service is needed, none answers, and its
// server binaries are not installed.
var errMissingBinaries = errors.New("server binaries not installed")

// pingPostgres connects once and pings.
func pingPostgres(ctx context.Context, dsn string) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return conn.Ping(ctx)
}

// pingRedis sends PING once.
func pingRedis(ctx context.Context, rawURL string) error {
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		return fmt.Errorf("parse redis url: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	// A plain connect first: when nothing listens (the usual reason for a
	// failure here) go-redis would log its dial failure to stderr.
	d := net.Dialer{}
	conn, err := d.DialContext(ctx, opts.Network, opts.Addr)
	if err != nil {
		return err
	}
	_ = conn.Close()
	opts.MaxRetries = -1
	opts.DialerRetries = 1
	c := redis.NewClient(opts)
	defer c.Close()
	return c.Ping(ctx).Err()
}

// permanentError ends waitFor early: waiting longer cannot help.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// stopWaiting marks err as permanent for waitFor (a process that exited
// will not become ready).
func stopWaiting(err error) error { return permanentError{err} }

// waitFor polls check until it succeeds, returns a stopWaiting error, ctx
// ends or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := check(ctx)
		if err == nil {
			return nil
		}
		var perm permanentError
		if errors.As(err, &perm) {
			return perm.err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// withDatabase returns dsn with its database name replaced.
func withDatabase(dsn, name string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", fmt.Errorf("parse database url: %w", err)
	}
	u.Path = "/" + name
	return u.String(), nil
}

// withUser returns dsn with its user replaced and no password: the
// migrations create the service roles without one, for trust-auth servers.
func withUser(dsn, role string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", fmt.Errorf("parse database url: %w", err)
	}
	u.User = url.User(role)
	return u.String(), nil
}

// databaseName is the database a URL names.
func databaseName(dsn string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", fmt.Errorf("parse database url: %w", err)
	}
	name := u.Path
	if len(name) > 0 && name[0] == '/' {
		name = name[1:]
	}
	if name == "" {
		return "", fmt.Errorf("database url %q names no database", u.Redacted())
	}
	return name, nil
}

// ensureDatabase creates the database dsn names when it does not exist yet,
// connecting to the server's "postgres" maintenance database to do so.
func ensureDatabase(ctx context.Context, dsn string) error {
	name, err := databaseName(dsn)
	if err != nil {
		return err
	}
	admin, err := withDatabase(dsn, "postgres")
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return fmt.Errorf("connect to maintenance database: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("look up database %s: %w", name, err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		// Another devstack may have created it meanwhile.
		var again bool
		if qerr := conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", name).Scan(&again); qerr == nil && again {
			return nil
		}
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

// throwaway is a server devstack started for this run only.
type throwaway struct {
	*proc
	dir string
	sig os.Signal // the signal that makes it shut down quickly
}

// stop shuts the server down and removes its files, and says how long
// that took.
func (s *throwaway) stop() time.Duration {
	start := time.Now()
	s.proc.stop(s.sig, 15*time.Second)
	_ = os.RemoveAll(s.dir)
	return time.Since(start)
}

// pgCredential returns who PostgreSQL runs as: the current user, or for
// root (initdb and postgres refuse to run as root) the "postgres" OS user.
func pgCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root and no postgres OS user to run PostgreSQL as (apt-get install postgresql creates one): %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres gid %q: %w", u.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// pgBinDir finds the directory holding initdb and postgres: the newest
// /usr/lib/postgresql/N/bin (Debian keeps them off PATH), else PATH.
func pgBinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	version := func(d string) int {
		v, _ := strconv.Atoi(filepath.Base(filepath.Dir(d)))
		return v
	}
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if resolved, err := filepath.EvalSymlinks(p); err == nil {
			p = resolved
		}
		if d := filepath.Dir(p); isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", fmt.Errorf("initdb and postgres: %w", errMissingBinaries)
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// listenAddr returns 127.0.0.1:port when that port is free, else a free one.
func listenAddr(ctx context.Context, port int) (string, error) {
	var lc net.ListenConfig
	for _, a := range []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), "127.0.0.1:0"} {
		l, err := lc.Listen(ctx, "tcp", a)
		if err != nil {
			continue
		}
		addr := l.Addr().String()
		if err := l.Close(); err != nil {
			return "", err
		}
		return addr, nil
	}
	return "", errors.New("no free loopback port")
}

// startPostgres initialises a cluster in a temporary directory and runs it
// with trust authentication and durability off (its data is thrown away
// at exit). It returns the superuser URL of the database called dbname.
func startPostgres(ctx context.Context, con *console, log *slog.Logger, dbname string) (string, *throwaway, error) {
	bin, err := pgBinDir()
	if err != nil {
		return "", nil, err
	}
	cred, err := pgCredential()
	if err != nil {
		return "", nil, err
	}
	dir, err := os.MkdirTemp("", "orders-devstack-pg-")
	if err != nil {
		return "", nil, fmt.Errorf("state directory: %w", err)
	}
	fail := func(err error) (string, *throwaway, error) {
		_ = os.RemoveAll(dir)
		return "", nil, err
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return fail(fmt.Errorf("chown %s: %w", dir, err))
		}
	}
	data := filepath.Join(dir, "data")
	log.Info("starting a throwaway PostgreSQL", "bin", bin, "dir", dir)
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"),
		"-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = childAttr(cred)
	if out, err := initdb.CombinedOutput(); err != nil {
		return fail(fmt.Errorf("initdb: %w: %s", err, out))
	}
	addr, err := listenAddr(ctx, 5432)
	if err != nil {
		return fail(err)
	}
	_, port, _ := net.SplitHostPort(addr)
	p, err := startProc(ctx, con, "postgres", cred, os.Environ(), filepath.Join(bin, "postgres"),
		"-D", data, "-p", port, "-k", dir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off")
	if err != nil {
		return fail(err)
	}
	// SIGINT is PostgreSQL's "fast" shutdown: no waiting for clients.
	srv := &throwaway{proc: p, dir: dir, sig: syscall.SIGINT}
	dsn := "postgres://postgres@" + addr + "/" + url.PathEscape(dbname) + "?sslmode=disable"
	admin, _ := withDatabase(dsn, "postgres")
	err = waitFor(ctx, 30*time.Second, func(ctx context.Context) error {
		if gone, err := p.exited(); gone {
			return stopWaiting(err)
		}
		return pingPostgres(ctx, admin)
	})
	if err != nil {
		srv.stop()
		return "", nil, fmt.Errorf("throwaway PostgreSQL did not start: %w", err)
	}
	return dsn, srv, nil
}

// startRedis runs redis-server without persistence and returns its URL.
func startRedis(ctx context.Context, con *console, log *slog.Logger) (string, *throwaway, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", nil, fmt.Errorf("redis-server: %w", errMissingBinaries)
	}
	dir, err := os.MkdirTemp("", "orders-devstack-redis-")
	if err != nil {
		return "", nil, fmt.Errorf("state directory: %w", err)
	}
	addr, err := listenAddr(ctx, 6379)
	if err != nil {
		_ = os.RemoveAll(dir)
		return "", nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	log.Info("starting a throwaway Redis", "bin", bin, "dir", dir)
	p, err := startProc(ctx, con, "redis", nil, os.Environ(), bin,
		"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
	if err != nil {
		_ = os.RemoveAll(dir)
		return "", nil, err
	}
	srv := &throwaway{proc: p, dir: dir, sig: syscall.SIGTERM}
	rawURL := "redis://" + addr + "/0"
	err = waitFor(ctx, 15*time.Second, func(ctx context.Context) error {
		if gone, err := p.exited(); gone {
			return stopWaiting(err)
		}
		return pingRedis(ctx, rawURL)
	})
	if err != nil {
		srv.stop()
		return "", nil, fmt.Errorf("throwaway Redis did not start: %w", err)
	}
	return rawURL, srv, nil
}
