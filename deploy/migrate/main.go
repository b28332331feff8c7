// Command migrate is the one-shot migration job of docker-compose.yml and
// deploy/k8s: it applies the embedded order schema (package migrations) and
// then gives the service roles the schema creates (order_ingestor,
// order_reader) their login passwords, so that those live in one secret
// store (.env or the k8s Secret) instead of in SQL files.
//
// Environment:
//
//	DATABASE_URL              owner/superuser URL of the orders database (required)
//	ORDER_INGESTOR_PASSWORD   password to set for role order_ingestor (optional)
//	ORDER_READER_PASSWORD     password to set for role order_reader (optional)
//	MIGRATE_TIMEOUT           how long to keep retrying an unreachable database (default 60s)
//	LOG_FORMAT                json (default) or text
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderservice/orders/migrations"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "migrate:", err)
		os.Exit(1)
	}
}

// rolePassword names a database role and the variable holding its password.
type rolePassword struct{ Role, Env string }

// serviceRoles are the roles migrations/sql creates for the services.
var serviceRoles = []rolePassword{
	{"order_ingestor", "ORDER_INGESTOR_PASSWORD"},
	{"order_reader", "ORDER_READER_PASSWORD"},
}

func run(ctx context.Context, _ []string, getenv func(string) string, stdout io.Writer) error {
	var h slog.Handler = slog.NewJSONHandler(stdout, nil)
	if getenv("LOG_FORMAT") == "text" {
		h = slog.NewTextHandler(stdout, nil)
	}
	log := slog.New(h)

	url := getenv("DATABASE_URL")
	if url == "" {
		return errors.New("DATABASE_URL is not set")
	}
	timeout := 60 * time.Second
	if s := getenv("MIGRATE_TIMEOUT"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("MIGRATE_TIMEOUT: %w", err)
		}
		timeout = d
	}

	// The database may still be starting (a fresh volume, a k8s rollout):
	// retry until the deadline rather than fail the first attempt.
	deadline := time.Now().Add(timeout)
	for attempt := 1; ; attempt++ {
		err := migrations.Up(url)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("apply migrations (%d attempts): %w", attempt, err)
		}
		log.WarnContext(ctx, "migration attempt failed, retrying", "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("apply migrations: %w", ctx.Err())
		case <-time.After(time.Second):
		}
	}
	log.InfoContext(ctx, "schema up to date")

	if err := setPasswords(ctx, url, serviceRoles, getenv, log); err != nil {
		return err
	}
	return nil
}

// setPasswords sets the login password of each service role whose password
// variable is non-empty. Roles with no password configured are left alone,
// so a DBA who manages them elsewhere keeps control.
func setPasswords(ctx context.Context, url string, roles []rolePassword, getenv func(string) string, log *slog.Logger) error {
	var todo []string
	for _, r := range roles {
		if getenv(r.Env) != "" {
			todo = append(todo, r.Role)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("connect to set role passwords: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, r := range roles {
		pw := getenv(r.Env)
		if pw == "" {
			continue
		}
		// ALTER ROLE takes no bind parameters: let the server quote the
		// identifier and the literal, so no password can break the statement.
		var stmt string
		if err := conn.QueryRow(ctx, "SELECT format('ALTER ROLE %I WITH LOGIN PASSWORD %L', $1::text, $2::text)", r.Role, pw).Scan(&stmt); err != nil {
			return fmt.Errorf("quote password of %s: %w", r.Role, err)
		}
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("set password of %s: %w", r.Role, err)
		}
		log.InfoContext(ctx, "role password set", "role", r.Role)
	}
	return nil
}
