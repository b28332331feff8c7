package localserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/orderservice/orders/shared/probe"
)

// DefaultPGBinGlob is where Debian keeps the PostgreSQL server binaries, one
// directory per major version, off PATH.
const DefaultPGBinGlob = "/usr/lib/postgresql/*/bin"

// startTimeout bounds how long a server may take to answer after starting.
const startTimeout = 30 * time.Second

// PGBinDir finds the directory holding initdb and postgres: the newest
// directory matching glob (see DefaultPGBinGlob) holding both, else the
// directory of initdb on lookPath (exec.LookPath). The error says only what
// is missing; callers add how to install it.
func PGBinDir(glob string, lookPath func(string) (string, error)) (string, error) {
	dirs, _ := filepath.Glob(glob)
	version := func(d string) int {
		v, _ := strconv.Atoi(filepath.Base(filepath.Dir(d)))
		return v
	}
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	if p, err := lookPath("initdb"); err == nil {
		if resolved, err := filepath.EvalSymlinks(p); err == nil {
			p = resolved
		}
		if d := filepath.Dir(p); isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", errors.New("no initdb and postgres binaries found")
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// PostgresCredential returns who PostgreSQL runs as: nil (the current
// user), or for root, which initdb and postgres refuse to run as, the
// "postgres" OS user that the Debian packages create.
func PostgresCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root and no postgres OS user to run PostgreSQL as (apt-get install postgresql creates one): %w", err)
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

// Options says how to run a throwaway server.
type Options struct {
	// Dir is an empty directory, made by the caller, for the server's
	// files (and PostgreSQL's unix socket). The server owns it from then
	// on: Stop, and a failed start, remove it.
	Dir string
	// Port is the loopback port to listen on when it is free; 0, or a
	// port in use, means any free port.
	Port int
	// Output receives the server's stdout and stderr; nil discards them.
	// The last few kilobytes also go into the error of a server that
	// exits while starting.
	Output io.Writer
	// Pdeathsig, when not 0, is the signal the kernel sends the server
	// (and initdb) should the starting process die first, so that a killed
	// process leaves no server behind. Linux only; ignored elsewhere.
	Pdeathsig syscall.Signal
	// StopSignal asks the server to shut down (Stop). 0 means SIGINT for
	// PostgreSQL (its "fast" shutdown: no waiting for clients) and SIGTERM
	// for Redis.
	StopSignal syscall.Signal
	// StopGrace is how long Stop waits after StopSignal before killing the
	// server; 0 means 15 seconds.
	StopGrace time.Duration
	// Args are added to the server's command line, e.g.
	// "-c", "max_connections=300" for PostgreSQL.
	Args []string
	// Durable keeps PostgreSQL's durability (fsync, full_page_writes,
	// synchronous_commit at their defaults, on) instead of turning it off:
	// for a server that measures what a deployment writes and waits for,
	// such as a benchmark's. Ignored for Redis.
	Durable bool
}

// Server is a running throwaway server.
type Server struct {
	// URL reaches the server: for PostgreSQL the superuser "postgres" on
	// the "postgres" database, for Redis database 0.
	URL string
	// Addr is the server's loopback host:port.
	Addr string
	// Dir holds the server's files; Stop removes it.
	Dir string

	name  string
	cmd   *exec.Cmd
	sig   syscall.Signal
	grace time.Duration
	done  chan struct{} // closed once the process has exited
	err   error         // Wait's result, valid after done
	tail  *tailBuffer
}

// Pid is the server's process id.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Done is closed once the server process has exited.
func (s *Server) Done() <-chan struct{} { return s.done }

// Stop asks the server to shut down, kills it if it has not after the
// grace period, removes its directory, and says how long all that took.
// It is safe to call more than once.
func (s *Server) Stop() time.Duration {
	start := time.Now()
	select {
	case <-s.done:
	default:
		_ = s.cmd.Process.Signal(s.sig)
		select {
		case <-s.done:
		case <-time.After(s.grace):
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	}
	_ = os.RemoveAll(s.Dir)
	return time.Since(start)
}

// Kill ends the server at once with SIGKILL, as a crash or a lost machine
// would, and waits for the process to exit. Its directory stays until
// Stop.
func (s *Server) Kill() {
	select {
	case <-s.done:
	default:
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// exited returns an error when the process has ended, with its last output.
func (s *Server) exited() error {
	select {
	case <-s.done:
	default:
		return nil
	}
	msg := s.name + " exited"
	if s.err != nil {
		msg += ": " + s.err.Error()
	}
	if out := s.tail.String(); out != "" {
		msg += ": " + out
	}
	return errors.New(msg)
}

// StartPostgres initialises a cluster in opts.Dir with the binaries in bin
// (see PGBinDir) and runs it with trust authentication, its unix socket in
// opts.Dir, and durability off (its data is thrown away) unless
// opts.Durable. initdb skips its own fsync either way. As root it runs
// as the postgres OS user (PostgresCredential) and hands opts.Dir to it.
// It returns once the server answers; ctx bounds the start only.
func StartPostgres(ctx context.Context, bin string, opts Options) (*Server, error) {
	fail := func(err error) (*Server, error) {
		_ = os.RemoveAll(opts.Dir)
		return nil, err
	}
	cred, err := postgresDir(opts.Dir)
	if err != nil {
		return fail(err)
	}
	data := filepath.Join(opts.Dir, "data")
	// bin is where PGBinDir found the installed server binaries.
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), //nolint:gosec // G204: running the system initdb is the point
		"-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
	initdb.Dir = opts.Dir
	initdb.SysProcAttr = procAttr(cred, opts.Pdeathsig)
	if out, err := initdb.CombinedOutput(); err != nil {
		return fail(fmt.Errorf("initdb: %w: %s", err, out))
	}
	srv, err := runPostgres(ctx, bin, cred, opts, data)
	if err != nil {
		return fail(err)
	}
	return srv, nil
}

// postgresDir returns the credential a PostgreSQL server runs with (see
// PostgresCredential) and hands dir to that user.
func postgresDir(dir string) (*syscall.Credential, error) {
	cred, err := PostgresCredential()
	if err != nil {
		return nil, err
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, fmt.Errorf("chown %s: %w", dir, err)
		}
	}
	return cred, nil
}

// runPostgres runs the server on the cluster in data, durability off unless
// opts.Durable, and waits until it answers. A failed start stops the server; the caller
// removes opts.Dir.
func runPostgres(ctx context.Context, bin string, cred *syscall.Credential, opts Options, data string) (*Server, error) {
	addr, err := listenAddr(ctx, opts.Port)
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	args := []string{"-D", data, "-p", port, "-k", opts.Dir, "-c", "listen_addresses=127.0.0.1"}
	if !opts.Durable {
		args = append(args, "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off")
	}
	args = append(args, opts.Args...)
	if opts.StopSignal == 0 {
		opts.StopSignal = syscall.SIGINT
	}
	srv, err := start(ctx, "postgres", cred, opts, filepath.Join(bin, "postgres"), args...)
	if err != nil {
		return nil, err
	}
	srv.Addr = addr
	srv.URL = "postgres://postgres@" + addr + "/postgres?sslmode=disable"
	if err := srv.await(ctx, probe.Postgres); err != nil {
		srv.Stop()
		return nil, fmt.Errorf("throwaway PostgreSQL did not start: %w", err)
	}
	return srv, nil
}

// StartRedis runs the redis-server binary bin without persistence, its
// working directory opts.Dir. It returns once the server answers; ctx
// bounds the start only.
func StartRedis(ctx context.Context, bin string, opts Options) (*Server, error) {
	addr, err := listenAddr(ctx, opts.Port)
	if err != nil {
		_ = os.RemoveAll(opts.Dir)
		return nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	args := append([]string{"--port", port, "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", opts.Dir}, opts.Args...)
	if opts.StopSignal == 0 {
		opts.StopSignal = syscall.SIGTERM
	}
	srv, err := start(ctx, "redis-server", nil, opts, bin, args...)
	if err != nil {
		_ = os.RemoveAll(opts.Dir)
		return nil, err
	}
	srv.Addr = addr
	srv.URL = "redis://" + addr + "/0"
	if err := srv.await(ctx, probe.Redis); err != nil {
		srv.Stop()
		return nil, fmt.Errorf("throwaway Redis did not start: %w", err)
	}
	return srv, nil
}

// start starts the server process in its own process group, so that a
// terminal's Ctrl-C reaches only the starting process, which stops the
// server in its own time.
func start(ctx context.Context, name string, cred *syscall.Credential, opts Options, bin string, args ...string) (*Server, error) {
	// The server outlives the start: ctx must not kill it.
	cmd := exec.CommandContext(context.WithoutCancel(ctx), bin, args...)
	tail := &tailBuffer{}
	var out io.Writer = tail
	if opts.Output != nil {
		out = io.MultiWriter(opts.Output, tail)
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Dir = opts.Dir
	cmd.SysProcAttr = procAttr(cred, opts.Pdeathsig)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	grace := opts.StopGrace
	if grace == 0 {
		grace = 15 * time.Second
	}
	s := &Server{Dir: opts.Dir, name: name, cmd: cmd, sig: opts.StopSignal, grace: grace,
		done: make(chan struct{}), tail: tail}
	go func() {
		s.err = cmd.Wait()
		close(s.done)
	}()
	return s, nil
}

// await waits until ping answers at s.URL, the server exits, ctx ends or
// startTimeout passes.
func (s *Server) await(ctx context.Context, ping func(context.Context, string) error) error {
	return probe.Wait(ctx, startTimeout, func(ctx context.Context) error {
		if err := s.exited(); err != nil {
			return probe.Permanent(err)
		}
		return ping(ctx, s.URL)
	})
}

// listenAddr returns 127.0.0.1:port when port is not 0 and free, else a
// free loopback port. Another process may take it before the server
// listens; the server then exits and the start fails with its message.
func listenAddr(ctx context.Context, port int) (string, error) {
	var lc net.ListenConfig
	candidates := []string{"127.0.0.1:0"}
	if port != 0 {
		candidates = append([]string{net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}, candidates...)
	}
	for _, a := range candidates {
		l, err := lc.Listen(ctx, "tcp", a)
		if err != nil {
			continue
		}
		addr := l.Addr().String()
		if err := l.Close(); err != nil {
			return "", err
		}
		return addr, nil
	}
	return "", errors.New("no free loopback port")
}

// freePorts returns n distinct free loopback ports, probed together.
func freePorts(ctx context.Context, n int) ([]int, error) {
	var lc net.ListenConfig
	ports := make([]int, 0, n)
	for range n {
		l, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("no free loopback port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// tailBuffer keeps the last tailSize bytes written to it: the server
// writes while a start may read.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

const tailSize = 4 << 10

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - tailSize; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
