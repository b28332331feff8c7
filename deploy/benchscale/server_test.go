//go:build benchscale

package benchscale

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/orderservice/orders/shared/localserver"
)

// pgConfPath is the deployment's PostgreSQL configuration, relative to the
// repository root: the settings docker-compose.yml and deploy/k8s run.
const pgConfPath = "deploy/postgres/postgresql.conf"

// serverDirPrefix names the throwaway server's directory under the
// system's temporary directory.
const serverDirPrefix = "bench-scale-pg-"

// postgresServer decides which PostgreSQL the run measures and points
// testenv at it (TEST_DATABASE_URL, for this test only), returning how the
// report names it. SCALE_DATABASE_URL names an external server (a
// superuser URL of its maintenance database): it is measured with its own
// settings. Otherwise the run starts a throwaway server of its own from the
// system binaries, durable (fsync, full_page_writes and synchronous_commit
// on) and with every setting of deploy/postgres/postgresql.conf except
// listen_addresses (loopback only): the configuration a deployment runs,
// and no other session's checkpoints or DROP DATABASE on it. The bare
// reference and the service's tables share that server.
func postgresServer(t *testing.T, root, logs string) string {
	t.Helper()
	if u := os.Getenv("SCALE_DATABASE_URL"); u != "" {
		t.Setenv("TEST_DATABASE_URL", u)
		return "external server (SCALE_DATABASE_URL)"
	}
	f, err := os.Open(filepath.Join(root, pgConfPath))
	if err != nil {
		t.Fatal(err)
	}
	settings, err := parsePGConf(f)
	f.Close()
	if err != nil {
		t.Fatalf("%s: %v", pgConfPath, err)
	}
	bin, err := localserver.PGBinDir(localserver.DefaultPGBinGlob, exec.LookPath)
	if err != nil {
		t.Fatalf("%v: install postgresql, or set SCALE_DATABASE_URL", err)
	}
	sweepServerDirs(os.TempDir())
	dir, err := os.MkdirTemp("", serverDirPrefix)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "owner"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(logs, "postgres.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = logf.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Many test databases' worth of connections are not needed: the
	// deployment's max_connections stays. SIGQUIT (immediate shutdown)
	// stops it at the end, and reaches it if this process dies first: the
	// data is thrown away.
	srv, err := localserver.StartPostgres(ctx, bin, localserver.Options{
		Dir: dir, Output: logf, Durable: true,
		Pdeathsig: syscall.SIGQUIT, StopSignal: syscall.SIGQUIT, StopGrace: 30 * time.Second,
		// Every autovacuum run in the log, to match with the GETs' stalls
		// (a diagnostic: logging the few runs costs nothing measurable).
		Args: append(serverArgs(settings, "listen_addresses"), "-c", "log_autovacuum_min_duration=0"),
	})
	if err != nil {
		t.Fatalf("throwaway PostgreSQL with %s: %v", pgConfPath, err)
	}
	t.Cleanup(func() { srv.Stop() })
	t.Setenv("TEST_DATABASE_URL", srv.URL)
	return "throwaway server with " + pgConfPath + ", durable"
}

// sweepServerDirs removes the directories of earlier runs' servers whose
// run died without stopping them (the server died with it, its data
// stayed: gigabytes after a full run).
func sweepServerDirs(tmp string) {
	dirs, _ := filepath.Glob(filepath.Join(tmp, serverDirPrefix+"*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "owner"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || syscall.Kill(pid, 0) == nil {
			continue
		}
		_ = os.RemoveAll(d)
	}
}
