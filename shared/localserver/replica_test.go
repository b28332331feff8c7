package localserver

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orderservice/orders/shared/probe"
)

// TestReplica starts a primary and a streaming replica of it, and checks
// that the replica holds what the primary held at the copy, refuses
// writes, follows new writes, stops following while its replay is paused,
// catches up when resumed, and that stopping it leaves the primary
// serving and nothing on disk.
func TestReplica(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin, err := PGBinDir(DefaultPGBinGlob, exec.LookPath)
	if err != nil {
		t.Fatal(err)
	}
	primary, err := StartPostgres(ctx, bin, Options{Dir: mkdir(t)})
	if err != nil {
		t.Fatalf("primary: %v", err)
	}
	t.Cleanup(func() { primary.Stop() })
	pc := connect(ctx, t, primary.URL)
	mustExec := func(c *pgx.Conn, sql string, args ...any) {
		t.Helper()
		if _, err := c.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	mustExec(pc, "CREATE TABLE t (v int)")
	mustExec(pc, "INSERT INTO t VALUES (1)")

	dir := mkdir(t)
	start := time.Now()
	replica, err := StartReplica(ctx, bin, primary, Options{Dir: dir})
	if err != nil {
		t.Fatalf("StartReplica: %v", err)
	}
	t.Logf("replica up in %v", time.Since(start))
	t.Cleanup(func() { replica.Stop() })
	rc := connect(ctx, t, replica.URL)
	var recovery bool
	if err := rc.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&recovery); err != nil || !recovery {
		t.Fatalf("pg_is_in_recovery() = %v, %v on the replica", recovery, err)
	}
	if _, err := rc.Exec(ctx, "INSERT INTO t VALUES (2)"); err == nil {
		t.Fatal("the replica accepted a write")
	}
	rows := func() int {
		var n int
		if err := rc.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := rows(); n != 1 {
		t.Fatalf("replica holds %d rows right after the copy, want 1", n)
	}
	awaitRows := func(want int) {
		t.Helper()
		err := probe.Wait(ctx, 30*time.Second, func(context.Context) error {
			if rows() != want {
				return errors.New("not replayed yet")
			}
			return nil
		})
		if err != nil {
			t.Fatalf("replica never held %d rows: %v", want, err)
		}
	}
	mustExec(pc, "INSERT INTO t VALUES (2)")
	awaitRows(2)

	// Paused, the replica lags: a write the primary has committed (and
	// sent, as pg_stat_replication's sent_lsn shows) is not visible.
	mustExec(rc, "SELECT pg_wal_replay_pause()")
	mustExec(pc, "INSERT INTO t VALUES (3)")
	var lsn string
	if err := pc.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	err = probe.Wait(ctx, 30*time.Second, func(context.Context) error {
		var received bool
		if err := rc.QueryRow(ctx, "SELECT pg_last_wal_receive_lsn() >= $1::pg_lsn", lsn).Scan(&received); err != nil {
			return err
		}
		if !received {
			return errors.New("not received yet")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("the paused replica did not receive the write: %v", err)
	}
	if n := rows(); n != 2 {
		t.Fatalf("paused replica holds %d rows, want 2", n)
	}
	mustExec(rc, "SELECT pg_wal_replay_resume()")
	awaitRows(3)

	rc.Close(ctx)
	replica.Stop()
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("directory %s left behind: %v", dir, err)
	}
	mustExec(pc, "INSERT INTO t VALUES (4)")
}

func mkdir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "localserver-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

func connect(ctx context.Context, t *testing.T, url string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}
