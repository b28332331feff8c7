package testenv

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/orderservice/orders/shared/localserver"
)

// startPostgres starts a throwaway PostgreSQL (see localserver) on a free
// loopback port and returns its superuser URL. SIGQUIT (immediate shutdown)
// stops it: its data is thrown away, so nothing needs writing out.
func startPostgres(ctx context.Context, bin string) (string, *localserver.Server, error) {
	dir, err := serverDir("testenv-pg-")
	if err != nil {
		return "", nil, err
	}
	srv, err := localserver.StartPostgres(ctx, bin, serverOptions(dir, syscall.SIGQUIT,
		"-c", "max_connections=300"))
	if err != nil {
		return "", nil, err
	}
	atExit(func() { srv.Stop() })
	return srv.URL, srv, nil
}

// startRedis starts a throwaway redis-server on a free loopback port and
// returns its URL.
func startRedis(ctx context.Context, bin string) (string, *localserver.Server, error) {
	dir, err := serverDir("testenv-redis-")
	if err != nil {
		return "", nil, err
	}
	srv, err := localserver.StartRedis(ctx, bin, serverOptions(dir, syscall.SIGTERM))
	if err != nil {
		return "", nil, err
	}
	atExit(func() { srv.Stop() })
	return srv.URL, srv, nil
}

// serverOptions runs a server in dir and stops it with sig, which the
// kernel also sends if the test process dies without running Shutdown (a
// panic, a timeout, kill -9). Its output only goes into the error of a
// failed start.
func serverOptions(dir string, sig syscall.Signal, args ...string) localserver.Options {
	return localserver.Options{Dir: dir, Pdeathsig: sig, StopSignal: sig, StopGrace: 10 * time.Second, Args: args}
}

// ownerFile, in a throwaway server's directory, holds the pid of the test
// process that started the server.
const ownerFile = "testenv.owner"

// serverDir makes a directory for a throwaway server, after removing those
// of earlier test processes that died without Shutdown: their servers died
// with them (parent-death signal), but the data stays on disk.
func serverDir(prefix string) (string, error) {
	sweepServerDirs(os.TempDir())
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		_ = os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// sweepServerDirs removes testenv-* directories under tmp whose owner
// process is gone. Directories without an owner file are being set up (or
// are not ours) and are left alone.
func sweepServerDirs(tmp string) {
	dirs, _ := filepath.Glob(filepath.Join(tmp, "testenv-*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, ownerFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || processAlive(pid) {
			continue
		}
		_ = os.RemoveAll(d)
	}
}
