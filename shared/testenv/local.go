package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// server is a throwaway server process started by this test process.
type server struct {
	cmd  *exec.Cmd
	dir  string
	done chan struct{} // closed when the process has exited
	log  *syncBuffer
}

// syncBuffer collects a server's output for error messages; the process
// writes while a test may read.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// stop ends the process with sig, waits for it, and removes its directory.
func (s *server) stop(sig os.Signal) {
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	_ = os.RemoveAll(s.dir)
}

// credential returns who throwaway PostgreSQL runs as: the current user,
// or, for root (initdb and postgres refuse to run as root), the "postgres"
// OS user.
func credential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root and no postgres OS user to run PostgreSQL as: %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres gid %q: %w", u.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// pgBinDir finds the directory holding initdb and postgres: the newest
// /usr/lib/postgresql/*/bin, else the directory of initdb on PATH.
func pgBinDir(glob string, lookPath func(string) (string, error)) (string, error) {
	dirs, _ := filepath.Glob(glob)
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	if p, err := lookPath("initdb"); err == nil {
		if resolved, err := filepath.EvalSymlinks(p); err == nil {
			p = resolved
		}
		d := filepath.Dir(p)
		if isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", errors.New("no initdb binary found: install postgresql")
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// startPostgres initialises a cluster in a temporary directory and starts it
// on a free loopback port with trust authentication and durability off (the
// data is thrown away). It returns a superuser URL.
func startPostgres(ctx context.Context, bin string) (string, *server, error) {
	cred, err := credential()
	if err != nil {
		return "", nil, err
	}
	dir, err := serverDir("testenv-pg-")
	if err != nil {
		return "", nil, err
	}
	fail := func(err error) (string, *server, error) {
		_ = os.RemoveAll(dir)
		return "", nil, err
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return fail(fmt.Errorf("chown %s: %w", dir, err))
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"),
		"-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	if out, err := initdb.CombinedOutput(); err != nil {
		return fail(fmt.Errorf("initdb: %w: %s", err, out))
	}
	addr, err := freeAddr()
	if err != nil {
		return fail(err)
	}
	_, port, _ := net.SplitHostPort(addr)
	srv, err := startServer(ctx, dir, cred, syscall.SIGQUIT, filepath.Join(bin, "postgres"),
		"-D", data, "-p", port, "-k", dir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off",
		"-c", "max_connections=300")
	if err != nil {
		return fail(err)
	}
	url := "postgres://postgres@" + addr + "/postgres?sslmode=disable"
	err = waitFor(ctx, 30*time.Second, func(ctx context.Context) error {
		select {
		case <-srv.done:
			return fmt.Errorf("postgres exited: %s", srv.log)
		default:
		}
		return pingPostgres(ctx, url)
	})
	if err != nil {
		srv.stop(syscall.SIGQUIT)
		return "", nil, fmt.Errorf("throwaway postgres did not start: %w", err)
	}
	return url, srv, nil
}

// startRedis starts redis-server without persistence on a free loopback
// port and returns its URL.
func startRedis(ctx context.Context, bin string) (string, *server, error) {
	dir, err := serverDir("testenv-redis-")
	if err != nil {
		return "", nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		_ = os.RemoveAll(dir)
		return "", nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	srv, err := startServer(ctx, dir, nil, syscall.SIGTERM, bin,
		"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
	if err != nil {
		_ = os.RemoveAll(dir)
		return "", nil, err
	}
	url := "redis://" + addr + "/0"
	err = waitFor(ctx, 10*time.Second, func(ctx context.Context) error {
		select {
		case <-srv.done:
			return fmt.Errorf("redis-server exited: %s", srv.log)
		default:
		}
		return pingRedis(ctx, url)
	})
	if err != nil {
		srv.stop(syscall.SIGTERM)
		return "", nil, fmt.Errorf("throwaway redis-server did not start: %w", err)
	}
	return url, srv, nil
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

// startServer starts a long-lived server process. The parent-death signal
// makes the kernel stop it if the test process dies without running
// Shutdown (a panic, a timeout, kill -9).
func startServer(ctx context.Context, dir string, cred *syscall.Credential, sig syscall.Signal, name string, args ...string) (*server, error) {
	// The server outlives the search for it: ctx must not kill it.
	cmd := exec.CommandContext(context.WithoutCancel(ctx), name, args...)
	log := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: sig, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	s := &server{cmd: cmd, dir: dir, done: make(chan struct{}), log: log}
	go func() {
		_ = cmd.Wait()
		close(s.done)
	}()
	atExit(func() { s.stop(sig) })
	return s, nil
}
