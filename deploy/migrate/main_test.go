package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/orderservice/orders/shared/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// TestRunMigratesAnEmptyDatabase runs the job as compose and k8s do, on a
// database with no schema yet, twice (the second run is a no-op).
func TestRunMigratesAnEmptyDatabase(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pg := testenv.Postgres(t)
	name := pg.Name + "_empty"
	if _, err := pg.Pool.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = pg.Pool.Exec(context.WithoutCancel(ctx), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	u, err := url.Parse(pg.URL)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	for i := range 2 {
		var out bytes.Buffer
		if err := run(ctx, []string{"migrate"}, env(map[string]string{"DATABASE_URL": u.String()}), &out); err != nil {
			t.Fatalf("run %d: %v\n%s", i, err, out.String())
		}
		if !strings.Contains(out.String(), "schema up to date") {
			t.Errorf("run %d logged %q, want schema up to date", i, out.String())
		}
	}
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var tables int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'
		AND tablename IN ('orders', 'delivery', 'payment', 'items')`).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 4 {
		t.Errorf("%d of the 4 order tables exist after the job", tables)
	}
}

func TestRunErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"no url", map[string]string{}, "DATABASE_URL is not set"},
		{"bad timeout", map[string]string{"DATABASE_URL": "postgres://x@127.0.0.1:1/x", "MIGRATE_TIMEOUT": "soon"}, "MIGRATE_TIMEOUT"},
		{"unreachable", map[string]string{"DATABASE_URL": "postgres://x@127.0.0.1:1/x?connect_timeout=1", "MIGRATE_TIMEOUT": "1ms"}, "apply migrations"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := run(t.Context(), []string{"migrate"}, env(tt.env), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("run = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestSetPasswords sets passwords on roles made for the test (the service
// roles are shared by every database on the server), including one that
// needs quoting, and checks the server stored a verifier for each.
func TestSetPasswords(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pg := testenv.Postgres(t)
	roles := []rolePassword{{pg.Name + "_a", "A_PASSWORD"}, {pg.Name + "_b", "B_PASSWORD"}, {pg.Name + "_c", "C_PASSWORD"}}
	for _, r := range roles {
		if _, err := pg.Pool.Exec(ctx, "CREATE ROLE "+r.Role+" LOGIN"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = pg.Pool.Exec(context.WithoutCancel(ctx), "DROP ROLE IF EXISTS "+r.Role) })
	}
	getenv := env(map[string]string{
		"A_PASSWORD": "plain-Secret_1",
		"B_PASSWORD": `it's; DROP ROLE x; "quoted" \ back`,
		// C_PASSWORD unset: that role is left alone.
	})
	var logs bytes.Buffer
	if err := setPasswords(ctx, pg.URL, roles, getenv, slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
		t.Fatal(err)
	}
	for _, r := range roles {
		var hasPassword bool
		if err := pg.Pool.QueryRow(ctx, "SELECT rolpassword IS NOT NULL FROM pg_authid WHERE rolname = $1", r.Role).Scan(&hasPassword); err != nil {
			t.Fatalf("%s: %v", r.Role, err)
		}
		if want := getenv(r.Env) != ""; hasPassword != want {
			t.Errorf("%s has a password: %v, want %v", r.Role, hasPassword, want)
		}
	}
	if strings.Contains(logs.String(), "Secret_1") || strings.Contains(logs.String(), "quoted") {
		t.Errorf("a password reached the log: %s", logs.String())
	}
}
