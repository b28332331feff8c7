package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderservice/orders/shared/localserver"
)

const (
	defaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/orders?sslmode=disable"
	defaultRedisURL    = "redis://127.0.0.1:6379/0"
)

// errMissingBinaries means a service is needed, none answers, and its
// server binaries are not installed.
var errMissingBinaries = errors.New("server binaries not installed")

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

// throwaway is a server devstack started for this run only, its output on
// the console.
type throwaway struct {
	*localserver.Server
	out *lineWriter
}

// stop shuts the server down and removes its files, and says how long
// that took.
func (s *throwaway) stop() time.Duration {
	took := s.Stop()
	_ = s.out.Close()
	return took
}

// startThrowaway starts a throwaway server from bin with start (one of
// localserver's) in a new temporary directory, on port when that is free,
// its output on the console under name. Should devstack itself be killed
// with SIGKILL, the kernel sends the server SIGTERM (Linux only).
func startThrowaway(ctx context.Context, con *console, log *slog.Logger, name, bin string, port int,
	start func(context.Context, string, localserver.Options) (*localserver.Server, error),
) (*throwaway, error) {
	dir, err := os.MkdirTemp("", "orders-devstack-"+name+"-")
	if err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	log.Info("starting a throwaway "+name, "bin", bin, "dir", dir)
	out := con.Writer(name)
	srv, err := start(ctx, bin, localserver.Options{Dir: dir, Port: port, Output: out, Pdeathsig: syscall.SIGTERM})
	if err != nil {
		_ = out.Close()
		return nil, err
	}
	return &throwaway{Server: srv, out: out}, nil
}

// startPostgres initialises a cluster in a temporary directory and runs it
// with trust authentication and durability off (its data is thrown away
// at exit), on port 5432 when that is free. It returns the superuser URL of
// the database called dbname.
func startPostgres(ctx context.Context, con *console, log *slog.Logger, dbname string) (string, *throwaway, error) {
	bin, err := localserver.PGBinDir(localserver.DefaultPGBinGlob, exec.LookPath)
	if err != nil {
		return "", nil, fmt.Errorf("initdb and postgres: %w", errMissingBinaries)
	}
	srv, err := startThrowaway(ctx, con, log, "postgres", bin, 5432, localserver.StartPostgres)
	if err != nil {
		return "", nil, err
	}
	dsn, err := withDatabase(srv.URL, dbname)
	if err != nil {
		srv.stop()
		return "", nil, err
	}
	return dsn, srv, nil
}

// startRedis runs redis-server without persistence, on port 6379 when that
// is free, and returns its URL.
func startRedis(ctx context.Context, con *console, log *slog.Logger) (string, *throwaway, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", nil, fmt.Errorf("redis-server: %w", errMissingBinaries)
	}
	srv, err := startThrowaway(ctx, con, log, "redis", bin, 6379, localserver.StartRedis)
	if err != nil {
		return "", nil, err
	}
	return srv.URL, srv, nil
}
