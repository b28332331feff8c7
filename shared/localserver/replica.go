package localserver

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
)

// StartReplica makes a streaming replica (a hot standby) of primary, a
// server from StartPostgres, with the binaries in bin: pg_basebackup -R
// copies the primary's cluster into opts.Dir/data over a replication
// connection and writes standby.signal and primary_conninfo, and the
// standby then runs as StartPostgres runs a server (same user, loopback,
// durability off). The primary needs nothing more than StartPostgres gives
// it: wal_level is replica by default, and initdb's pg_hba.conf with trust
// authentication admits replication connections from loopback.
//
// The standby answers read-only queries as soon as it is consistent, and
// then replays the primary's changes as they come. It returns once the
// standby answers; ctx bounds the start only. A standby outlives its
// primary: stop it first, or it retries the lost connection until stopped.
func StartReplica(ctx context.Context, bin string, primary *Server, opts Options) (*Server, error) {
	fail := func(err error) (*Server, error) {
		_ = os.RemoveAll(opts.Dir)
		return nil, err
	}
	cred, err := postgresDir(opts.Dir)
	if err != nil {
		return fail(err)
	}
	host, port, err := net.SplitHostPort(primary.Addr)
	if err != nil {
		return fail(fmt.Errorf("primary address %q: %w", primary.Addr, err))
	}
	data := filepath.Join(opts.Dir, "data")
	// -c fast: checkpoint at once instead of spreading it; --no-sync: the
	// copy is thrown away with the test, as the primary's data is.
	// bin is where PGBinDir found the installed server binaries.
	backup := exec.CommandContext(ctx, filepath.Join(bin, "pg_basebackup"), //nolint:gosec // G204: running the system pg_basebackup is the point
		"-D", data, "-h", host, "-p", port, "-U", "postgres",
		"-R", "-X", "stream", "-c", "fast", "--no-sync")
	backup.Dir = opts.Dir
	backup.SysProcAttr = procAttr(cred, opts.Pdeathsig)
	if out, err := backup.CombinedOutput(); err != nil {
		return fail(fmt.Errorf("pg_basebackup: %w: %s", err, tail(out)))
	}
	srv, err := runPostgres(ctx, bin, cred, opts, data)
	if err != nil {
		return fail(fmt.Errorf("standby: %w", err))
	}
	return srv, nil
}
