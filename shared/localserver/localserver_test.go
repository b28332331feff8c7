package localserver

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// TestThrowawayServers starts each server from the system binaries, uses
// it, stops it and checks that nothing is left: no process, no directory,
// nothing answering on its port.
func TestThrowawayServers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		start func(ctx context.Context, opts Options) (*Server, error)
		use   func(ctx context.Context, url string) error
	}{
		{"postgres", func(ctx context.Context, opts Options) (*Server, error) {
			bin, err := PGBinDir(DefaultPGBinGlob, exec.LookPath)
			if err != nil {
				return nil, err
			}
			return StartPostgres(ctx, bin, opts)
		}, func(ctx context.Context, url string) error {
			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				return err
			}
			defer conn.Close(ctx)
			var sum int
			if err := conn.QueryRow(ctx, "SELECT 40 + 2").Scan(&sum); err != nil || sum != 42 {
				return errors.Join(err, errors.New("SELECT 40 + 2 did not return 42"))
			}
			return nil
		}},
		{"redis", func(ctx context.Context, opts Options) (*Server, error) {
			bin, err := exec.LookPath("redis-server")
			if err != nil {
				return nil, err
			}
			return StartRedis(ctx, bin, opts)
		}, func(ctx context.Context, url string) error {
			opts, err := redis.ParseURL(url)
			if err != nil {
				return err
			}
			c := redis.NewClient(opts)
			defer c.Close()
			if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
				return err
			}
			if got, err := c.Get(ctx, "k").Result(); err != nil || got != "v" {
				return errors.Join(err, errors.New("GET k did not return v"))
			}
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			dir := mkdir(t)
			srv, err := tt.start(ctx, Options{Dir: dir})
			if err != nil {
				t.Fatalf("start: %v", err)
			}
			t.Cleanup(func() { srv.Stop() })
			if err := tt.use(ctx, srv.URL); err != nil {
				t.Fatalf("use %s: %v", srv.URL, err)
			}
			if os.Geteuid() == 0 && tt.name == "postgres" {
				status, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(srv.Pid()), "status"))
				if err != nil {
					t.Fatal(err)
				}
				if strings.Contains(string(status), "\nUid:\t0\t") {
					t.Error("throwaway PostgreSQL runs as root")
				}
			}
			srv.Stop()
			select {
			case <-srv.Done():
			default:
				t.Error("process still running after Stop")
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("directory %s left behind: %v", dir, err)
			}
			if c, err := new(net.Dialer).DialContext(ctx, "tcp", srv.Addr); err == nil {
				_ = c.Close()
				t.Errorf("%s still answers after Stop", srv.Addr)
			}
		})
	}
}

func TestStartFailureRemovesDirAndExplains(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sub := filepath.Join(dir, "srv")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	// /bin/false stands in for a redis-server that exits at once.
	_, err := StartRedis(context.Background(), "/bin/false", Options{Dir: sub})
	if err == nil || !strings.Contains(err.Error(), "redis-server exited") {
		t.Fatalf("err = %v, want a start failure saying redis-server exited", err)
	}
	if _, err := os.Stat(sub); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("directory %s left behind: %v", sub, err)
	}
}

func TestPGBinDirFallsBackToPath(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	for _, name := range []string{"initdb", "postgres"} {
		if err := os.WriteFile(filepath.Join(tmp, name), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name     string
		lookPath func(string) (string, error)
		want     string
	}{
		{"on PATH", func(string) (string, error) { return filepath.Join(tmp, "initdb"), nil }, tmp},
		{"nowhere", func(string) (string, error) { return "", exec.ErrNotFound }, ""},
	}
	for _, tt := range tests {
		got, err := PGBinDir("/nonexistent/*/bin", tt.lookPath)
		if got != tt.want || (err == nil) != (tt.want != "") {
			t.Errorf("%s: PGBinDir = %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
}

// TestPostgresDurability checks that a throwaway PostgreSQL turns its
// durability off unless asked to keep it, and that Args still apply.
func TestPostgresDurability(t *testing.T) {
	t.Parallel()
	bin, err := PGBinDir(DefaultPGBinGlob, exec.LookPath)
	if err != nil {
		t.Skipf("no PostgreSQL binaries: %v", err)
	}
	tests := []struct {
		name    string
		durable bool
		want    string // fsync, full_page_writes, synchronous_commit, work_mem
	}{
		{"throwaway", false, "off off off 7MB"},
		{"durable", true, "on on on 7MB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			dir := mkdir(t)
			srv, err := StartPostgres(ctx, bin, Options{Dir: dir, Durable: tt.durable, Args: []string{"-c", "work_mem=7MB"}})
			if err != nil {
				t.Fatalf("start: %v", err)
			}
			t.Cleanup(func() { srv.Stop() })
			conn, err := pgx.Connect(ctx, srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			var got string
			err = conn.QueryRow(ctx, `SELECT current_setting('fsync') || ' ' || current_setting('full_page_writes')
				|| ' ' || current_setting('synchronous_commit') || ' ' || current_setting('work_mem')`).Scan(&got)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("settings %q, want %q", got, tt.want)
			}
		})
	}
}
