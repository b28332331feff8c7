package testenv

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orderservice/orders/shared/localserver"
	"github.com/orderservice/orders/shared/probe"
)

// PGReplicated is a PostgreSQL primary with a streaming replica, both
// private to the test: the test may pause the replica's replay to make it
// lag, or stop it.
type PGReplicated struct {
	// PG is the test's database on the primary, migrated.
	*PG
	// ReplicaURL connects to the same database on the replica as a
	// superuser (read-only: the replica refuses writes).
	ReplicaURL string
	// ReplicaPool is connected to ReplicaURL and closed at cleanup.
	ReplicaPool *pgxpool.Pool
	// Replica is the standby's process: Stop ends it for good.
	Replica *localserver.Server
}

// ReplicaURLAs returns ReplicaURL with role as the user, as PG.URLAs.
func (r *PGReplicated) ReplicaURLAs(role string) string {
	u, err := url.Parse(r.ReplicaURL)
	if err != nil {
		panic(fmt.Sprintf("testenv: ReplicaURL %q does not parse: %v", r.ReplicaURL, err))
	}
	u.User = url.User(role)
	return u.String()
}

// PostgresWithReplica starts a throwaway PostgreSQL primary of the test's
// own, creates a migrated database on it (as Postgres does), and starts a
// streaming replica of it (localserver.StartReplica); both stop when the
// test ends. It needs the PostgreSQL server binaries (see PGBinDir),
// whatever source Postgres uses, and takes a few seconds.
func PostgresWithReplica(t testing.TB) *PGReplicated {
	t.Helper()
	src := defaultSources()
	bin, err := localserver.PGBinDir(src.pgBinGlob, src.lookPath)
	if err != nil {
		t.Fatalf("testenv: PostgresWithReplica: %v: install postgresql", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := func(prefix string, run func(localserver.Options) (*localserver.Server, error)) *localserver.Server {
		t.Helper()
		dir, err := serverDir(prefix)
		if err != nil {
			t.Fatalf("testenv: PostgresWithReplica: %v", err)
		}
		srv, err := run(serverOptions(dir, syscall.SIGQUIT))
		if err != nil {
			t.Fatalf("testenv: PostgresWithReplica: %v", err)
		}
		t.Cleanup(func() { srv.Stop() })
		return srv
	}
	primary := start("testenv-pg-primary-", func(o localserver.Options) (*localserver.Server, error) {
		return localserver.StartPostgres(ctx, bin, o)
	})
	srv, err := connectPGServer(ctx, primary.URL, "throwaway primary")
	if err != nil {
		t.Fatalf("testenv: PostgresWithReplica: %v", err)
	}
	t.Cleanup(srv.admin.Close)
	pg := srv.database(t)
	replica := start("testenv-pg-replica-", func(o localserver.Options) (*localserver.Server, error) {
		return localserver.StartReplica(ctx, bin, primary, o)
	})
	replicaURL, err := withDatabase(replica.URL, pg.Name)
	if err != nil {
		t.Fatalf("testenv: PostgresWithReplica: %v", err)
	}
	pool, err := pgxpool.New(ctx, replicaURL)
	if err != nil {
		t.Fatalf("testenv: PostgresWithReplica: connect to the replica: %v", err)
	}
	t.Cleanup(pool.Close)
	return &PGReplicated{PG: pg, ReplicaURL: replicaURL, ReplicaPool: pool, Replica: replica}
}

// PauseReplay stops the replica applying what it receives
// (pg_wal_replay_pause): from now on it lags behind the primary until
// ResumeReplay.
func (r *PGReplicated) PauseReplay(t testing.TB) {
	t.Helper()
	if _, err := r.ReplicaPool.Exec(context.Background(), "SELECT pg_wal_replay_pause()"); err != nil {
		t.Fatalf("testenv: pause replay: %v", err)
	}
}

// ResumeReplay lets the replica catch up again (pg_wal_replay_resume).
func (r *PGReplicated) ResumeReplay(t testing.TB) {
	t.Helper()
	if _, err := r.ReplicaPool.Exec(context.Background(), "SELECT pg_wal_replay_resume()"); err != nil {
		t.Fatalf("testenv: resume replay: %v", err)
	}
}

// AwaitReplay waits until the replica has replayed everything the primary
// had written when it was called: what the test wrote is then visible on
// the replica.
func (r *PGReplicated) AwaitReplay(t testing.TB) {
	t.Helper()
	r.awaitLSN(t, "pg_last_wal_replay_lsn()", "replayed")
}

// AwaitReceived waits until the replica has received (not necessarily
// replayed) everything the primary had written when it was called: with
// replay paused, the replica then lags by exactly those writes.
func (r *PGReplicated) AwaitReceived(t testing.TB) {
	t.Helper()
	r.awaitLSN(t, "pg_last_wal_receive_lsn()", "received")
}

func (r *PGReplicated) awaitLSN(t testing.TB, position, what string) {
	t.Helper()
	ctx := context.Background()
	// The insert position, not the write position: with
	// synchronous_commit off (as throwaway servers run) a commit record may
	// not be written out yet when its transaction returns.
	var lsn string
	if err := r.Pool.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&lsn); err != nil {
		t.Fatalf("testenv: primary's WAL position: %v", err)
	}
	err := probe.Wait(ctx, 30*time.Second, func(ctx context.Context) error {
		var done bool
		if err := r.ReplicaPool.QueryRow(ctx, "SELECT "+position+" >= $1::pg_lsn", lsn).Scan(&done); err != nil {
			return err
		}
		if !done {
			return errors.New("behind")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("testenv: the replica has not %s the primary's WAL up to %s: %v", what, lsn, err)
	}
}
