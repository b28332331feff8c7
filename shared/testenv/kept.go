package testenv

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// keptMark is the comment of a kept database whose load completed.
const keptMark = "testenv kept, loaded"

var keptName = regexp.MustCompile(`^[a-z0-9_]{1,30}$`)

// KeptPostgres returns a database that outlives the test, for benchmarks
// whose data takes minutes to load: the first call creates it from the
// migrated template and calls load to fill it; later calls, in this or
// another process, find it loaded and skip load (loaded reports which).
// The database is named keep_<name>_<schema>, so a change to any
// migration gets a database of its own; a load that failed or was killed
// half way left no mark, and the next call starts it again. Nothing drops
// a kept database: the caller documents how to (DROP DATABASE).
func KeptPostgres(t testing.TB, name string, load func(*PG) error) (pg *PG, loaded bool) {
	t.Helper()
	if !keptName.MatchString(name) {
		t.Fatalf("testenv: KeptPostgres %q: lower-case letters, digits and _, at most 30", name)
	}
	srv, err := pgServerOnce()
	if err != nil {
		t.Fatalf("testenv: PostgreSQL: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tmpl, err := srv.template(ctx)
	if err != nil {
		t.Fatalf("testenv: PostgreSQL (%s): %v", srv.source, err)
	}
	db := "keep_" + name + "_" + strings.TrimPrefix(tmpl, "tmpl_")
	var comment *string
	err = srv.admin.QueryRow(ctx, `SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1`, db).Scan(&comment)
	exists := err == nil
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		t.Fatalf("testenv: PostgreSQL (%s): look for %s: %v", srv.source, db, err)
	}
	loaded = exists && comment != nil && *comment == keptMark
	if !loaded {
		if exists {
			if _, err := srv.admin.Exec(ctx, "DROP DATABASE "+ident(db)+" WITH (FORCE)"); err != nil {
				t.Fatalf("testenv: drop the half-loaded %s: %v", db, err)
			}
		}
		err := retryInUse(ctx, func() error {
			_, err := srv.admin.Exec(ctx, "CREATE DATABASE "+ident(db)+" TEMPLATE "+ident(tmpl))
			return err
		})
		if err != nil {
			t.Fatalf("testenv: PostgreSQL (%s): create %s: %v", srv.source, db, err)
		}
		if _, err := srv.admin.Exec(ctx, "GRANT CONNECT ON DATABASE "+ident(db)+" TO order_ingestor, order_reader"); err != nil {
			t.Fatalf("testenv: PostgreSQL (%s): grant connect on %s: %v", srv.source, db, err)
		}
	}
	dbURL, err := withDatabase(srv.url, db)
	if err != nil {
		t.Fatalf("testenv: PostgreSQL (%s): %v", srv.source, err)
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatalf("testenv: PostgreSQL (%s): connect to %s: %v", srv.source, db, err)
	}
	t.Cleanup(pool.Close)
	pg = &PG{URL: dbURL, Name: db, Pool: pool}
	if loaded {
		return pg, true
	}
	if err := load(pg); err != nil {
		t.Fatalf("testenv: load %s: %v", db, err)
	}
	if _, err := srv.admin.Exec(context.Background(), "COMMENT ON DATABASE "+ident(db)+" IS "+literal(keptMark)); err != nil {
		t.Fatalf("testenv: mark %s loaded: %v", db, err)
	}
	return pg, false
}
