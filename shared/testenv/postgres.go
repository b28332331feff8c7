package testenv

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderservice/orders/migrations"
	"github.com/orderservice/orders/shared/localserver"
	"github.com/orderservice/orders/shared/probe"
)

// PG is a private database with every migration applied.
type PG struct {
	// URL connects to the database as a superuser (its owner).
	URL string
	// Name is the database's name (t_<random>).
	Name string
	// Pool is connected to URL and closed at cleanup.
	Pool *pgxpool.Pool
}

// URLAs returns URL with role as the user and no password: "order_ingestor"
// (INSERT and SELECT; DELETE on orders, for erasures) or "order_reader"
// (SELECT only).
func (p *PG) URLAs(role string) string {
	u, err := url.Parse(p.URL)
	if err != nil {
		panic(fmt.Sprintf("testenv: PG.URL %q does not parse: %v", p.URL, err)) // built by Postgres
	}
	u.User = url.User(role)
	return u.String()
}

// URLVia returns URL with its host:port replaced by hostport, for example a
// Proxy's address.
func (p *PG) URLVia(hostport string) string {
	u, err := url.Parse(p.URL)
	if err != nil {
		panic(fmt.Sprintf("testenv: PG.URL %q does not parse: %v", p.URL, err))
	}
	u.Host = hostport
	return u.String()
}

// LockTable locks table in ACCESS EXCLUSIVE mode, in a transaction of its
// own, so that every query that reads it waits; it returns the function
// that releases the lock, which the test calls when the waiting is over
// (cleanup calls it too; a second call does nothing).
func (p *PG) LockTable(t testing.TB, table string) (release func()) {
	t.Helper()
	ctx := context.Background()
	tx, err := p.Pool.Begin(ctx)
	if err != nil {
		t.Fatalf("testenv: LockTable %s: %v", table, err)
	}
	release = func() {
		t.Helper()
		if err := tx.Rollback(ctx); err != nil && !errors.Is(err, pgx.ErrTxClosed) {
			t.Errorf("testenv: release the lock on %s: %v", table, err)
		}
	}
	t.Cleanup(release)
	if _, err := tx.Exec(ctx, "LOCK TABLE "+pgx.Identifier{table}.Sanitize()+" IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatalf("testenv: LockTable %s: %v", table, err)
	}
	return release
}

// LockWaiters counts the sessions of the database that wait for a lock:
// those of role, or every one when role is "".
func (p *PG) LockWaiters(t testing.TB, role string) int {
	t.Helper()
	var n int
	err := p.Pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND wait_event_type = 'Lock' AND ($1 = '' OR usename = $1)`, role).Scan(&n)
	if err != nil {
		t.Fatalf("testenv: LockWaiters: %v", err)
	}
	return n
}

// Postgres returns a fresh database with every migration applied, private
// to the test, and drops it when the test ends. It fails the test when no
// PostgreSQL server can be had.
func Postgres(t testing.TB) *PG {
	t.Helper()
	srv, err := pgServerOnce()
	if err != nil {
		t.Fatalf("testenv: PostgreSQL: %v", err)
	}
	return srv.database(t)
}

// database creates a database from the template, dropped at cleanup.
func (s *pgServer) database(t testing.TB) *PG {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tmpl, err := s.template(ctx)
	if err != nil {
		t.Fatalf("testenv: PostgreSQL (%s): %v", s.source, err)
	}
	name := "t_" + randomHex(8)
	err = retryInUse(ctx, func() error {
		_, err := s.admin.Exec(ctx, "CREATE DATABASE "+ident(name)+" TEMPLATE "+ident(tmpl))
		return err
	})
	if err != nil {
		t.Fatalf("testenv: PostgreSQL (%s): create database from template %s: %v", s.source, tmpl, err)
	}
	// The comment lets a later process drop the database if this one dies
	// before its cleanup (see sweep).
	comment := fmt.Sprintf("%s pid=%d created=%d", sweepMark, os.Getpid(), time.Now().Unix())
	if _, err := s.admin.Exec(ctx, "COMMENT ON DATABASE "+ident(name)+" IS "+literal(comment)); err != nil {
		t.Errorf("testenv: comment on database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := s.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(name)+" WITH (FORCE)"); err != nil {
			t.Errorf("testenv: drop database %s: %v", name, err)
		}
	})
	// CONNECT on a database is not copied from the template; grant it as
	// the migration does, in case PUBLIC lost it on this server.
	if _, err := s.admin.Exec(ctx, "GRANT CONNECT ON DATABASE "+ident(name)+" TO order_ingestor, order_reader"); err != nil {
		t.Fatalf("testenv: PostgreSQL (%s): grant connect on %s: %v", s.source, name, err)
	}
	dbURL, err := withDatabase(s.url, name)
	if err != nil {
		t.Fatalf("testenv: PostgreSQL (%s): %v", s.source, err)
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatalf("testenv: PostgreSQL (%s): connect to %s: %v", s.source, name, err)
	}
	t.Cleanup(pool.Close)
	return &PG{URL: dbURL, Name: name, Pool: pool}
}

// pgServer is the PostgreSQL server every test of the process uses.
type pgServer struct {
	url    string // superuser URL of the maintenance database
	source string // where the server came from, for messages
	admin  *pgxpool.Pool

	tmplOnce sync.Once
	tmpl     string
	tmplErr  error
}

// pgServerOnce finds the server on its first call; every later call
// returns the same answer.
var pgServerOnce = sync.OnceValues(func() (*pgServer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return findPostgres(ctx, defaultSources())
})

// findPostgres tries each source in the documented order.
func findPostgres(ctx context.Context, src sources) (*pgServer, error) {
	if u := src.getenv("TEST_DATABASE_URL"); u != "" {
		// An explicit server is never silently replaced by another one.
		return connectPGServer(ctx, u, "TEST_DATABASE_URL")
	}
	var why reasons
	why.add("TEST_DATABASE_URL unset")
	if pool, err := src.docker(); err != nil {
		why.add(err.Error())
	} else {
		u, err := dockerPostgres(pool)
		if err != nil {
			return nil, fmt.Errorf("%s; docker: %w", why, err)
		}
		return connectPGServerWait(ctx, u, "docker postgres:16")
	}
	if err := answers(src.pgAddr); err != nil {
		why.add(src.pgAddr + " " + errText(err))
	} else {
		local := "postgres://postgres@" + src.pgAddr + "/postgres?sslmode=disable"
		srv, err := connectPGServer(ctx, local, src.pgAddr)
		if err == nil {
			return srv, nil
		}
		why.add(err.Error())
	}
	bin, err := localserver.PGBinDir(src.pgBinGlob, src.lookPath)
	if err != nil {
		why.add("no initdb binary found: install postgresql")
		return nil, errors.New(why.String())
	}
	u, _, err := startPostgres(ctx, bin)
	if err != nil {
		why.add("throwaway server: " + err.Error())
		return nil, errors.New(why.String())
	}
	return connectPGServer(ctx, u, "throwaway server")
}

// errText shortens the common "connection refused" dial error.
func errText(err error) string {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return "refused"
	}
	return err.Error()
}

func connectPGServerWait(ctx context.Context, u, source string) (*pgServer, error) {
	err := probe.Wait(ctx, time.Minute, func(ctx context.Context) error { return probe.Postgres(ctx, u) })
	if err != nil {
		return nil, fmt.Errorf("%s did not answer: %w", source, err)
	}
	return connectPGServer(ctx, u, source)
}

func connectPGServer(ctx context.Context, u, source string) (*pgServer, error) {
	if _, err := url.Parse(u); err != nil {
		return nil, fmt.Errorf("%s: not a postgres:// URL: %w", source, err)
	}
	cfg, err := pgxpool.ParseConfig(u)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	// Many test processes share the server and its max_connections (100 by
	// default): hold few admin connections, and not while idle.
	cfg.MaxConns = 3
	cfg.MaxConnIdleTime = 5 * time.Second
	cfg.HealthCheckPeriod = 5 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	var super bool
	if err := pool.QueryRow(ctx, "SELECT rolsuper OR rolcreatedb FROM pg_roles WHERE rolname = current_user").Scan(&super); err != nil {
		pool.Close()
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	if !super {
		pool.Close()
		return nil, fmt.Errorf("%s: the user cannot create databases", source)
	}
	srv := &pgServer{url: u, source: source, admin: pool}
	srv.sweep(ctx)
	return srv, nil
}

// sweepMark starts the comment on every database Postgres creates.
const sweepMark = "testenv"

// sweep drops the databases of test processes that died before their
// cleanup ran (a timeout, a kill): those created over an hour ago by a
// process that no longer exists, or over a day ago by anyone. Only databases
// named t_* with a testenv comment are touched. Failures only leave litter.
func (s *pgServer) sweep(ctx context.Context) {
	rows, err := s.admin.Query(ctx, `SELECT d.datname::text, shobj_description(d.oid, 'pg_database')
		FROM pg_database d WHERE d.datname LIKE 't\_%' AND shobj_description(d.oid, 'pg_database') LIKE $1`,
		sweepMark+" %")
	if err != nil {
		return
	}
	type db struct{ name, comment string }
	dbs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (db, error) {
		var d db
		return d, row.Scan(&d.name, &d.comment)
	})
	if err != nil {
		return
	}
	for _, d := range dbs {
		var pid int
		var created int64
		if _, err := fmt.Sscanf(d.comment, sweepMark+" pid=%d created=%d", &pid, &created); err != nil {
			continue
		}
		if abandoned(pid, created) {
			_, _ = s.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(d.name)+" WITH (FORCE)")
		}
	}
}

// abandoned reports whether something created by process pid at unix time
// created may be removed: over a day old, or over an hour old and its
// creator gone. The hour covers pid namespaces (containers, CI runners)
// where the creator's pid means nothing here.
func abandoned(pid int, created int64) bool {
	age := time.Since(time.Unix(created, 0))
	return age > 24*time.Hour || (age > time.Hour && !processAlive(pid))
}

// processAlive reports whether a process with this pid exists here.
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// literal quotes s as an SQL string literal (COMMENT takes no parameters).
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// template returns the name of the migrated template database, building it
// when this server does not have it yet.
func (s *pgServer) template(ctx context.Context) (string, error) {
	s.tmplOnce.Do(func() { s.tmpl, s.tmplErr = s.buildTemplate(ctx) })
	return s.tmpl, s.tmplErr
}

// schemaHash identifies the schema version: a SHA-256 of every migration
// file's name and content.
func schemaHash() ([]byte, error) {
	h := sha256.New()
	err := fs.WalkDir(migrations.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(migrations.FS(), p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", p, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("hash migrations: %w", err)
	}
	return h.Sum(nil), nil
}

// buildTemplate creates tmpl_<hash> once per server and schema version.
// Test processes of other packages may be doing the same at the same time,
// so the check and the build happen under an advisory lock; a build that
// died half way left only a *_build database, which the next one drops.
func (s *pgServer) buildTemplate(ctx context.Context) (string, error) {
	sum, err := schemaHash()
	if err != nil {
		return "", err
	}
	name := "tmpl_" + hex.EncodeToString(sum[:8])
	return name, s.ensureTemplate(ctx, name, int64(binary.BigEndian.Uint64(sum[8:16])))
}

// ensureTemplate creates the template database name unless it exists,
// holding the advisory lock key meanwhile.
func (s *pgServer) ensureTemplate(ctx context.Context, name string, key int64) error {
	conn, err := s.admin.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", key); err != nil {
		return fmt.Errorf("lock template build: %w", err)
	}
	defer func() {
		_, _ = conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", key)
	}()
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	build := name + "_build"
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(build)+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop stale %s: %w", build, err)
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident(build)); err != nil {
		return fmt.Errorf("create %s: %w", build, err)
	}
	buildURL, err := withDatabase(s.url, build)
	if err != nil {
		return err
	}
	if err := migrations.Up(buildURL); err != nil {
		return fmt.Errorf("migrate template %s: %w", build, err)
	}
	// Nobody may connect to a template: CREATE DATABASE ... TEMPLATE fails
	// while anyone is connected to it. The migrator's backends may still be
	// exiting, hence the retries.
	err = retryInUse(ctx, func() error {
		_, err := conn.Exec(ctx, "ALTER DATABASE "+ident(build)+" WITH ALLOW_CONNECTIONS false")
		if err != nil {
			return err
		}
		_, err = conn.Exec(ctx, "ALTER DATABASE "+ident(build)+" RENAME TO "+ident(name))
		return err
	})
	if err != nil {
		return fmt.Errorf("seal template %s: %w", name, err)
	}
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+ident(name)+" WITH IS_TEMPLATE true"); err != nil {
		return fmt.Errorf("mark %s as template: %w", name, err)
	}
	return nil
}

// retryInUse retries op while PostgreSQL says a database is being accessed
// by other users (object_in_use), which passes once their backends exit.
func retryInUse(ctx context.Context, op func() error) error {
	return probe.Wait(ctx, 30*time.Second, func(context.Context) error {
		err := op()
		var pgErr *pgconn.PgError
		if err != nil && (!errors.As(err, &pgErr) || pgErr.Code != "55006") {
			return probe.Permanent(err)
		}
		return err
	})
}

func ident(s string) string { return pgx.Identifier{s}.Sanitize() }

// withDatabase returns u with its path set to database.
func withDatabase(u, database string) (string, error) {
	parsed, err := url.Parse(u)
	if err != nil {
		return "", fmt.Errorf("not a postgres:// URL: %w", err)
	}
	parsed.Path = "/" + database
	parsed.RawPath = ""
	return parsed.String(), nil
}
