package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/orderservice/orders/shared/localserver"
	"github.com/orderservice/orders/shared/probe"
	"github.com/ory/dockertest/v3"
)

// noSources finds nothing anywhere: no variables, no Docker engine, nothing
// listening on the local addresses, no binaries.
func noSources(t *testing.T) sources {
	return sources{
		getenv:    func(string) string { return "" },
		docker:    func() (*dockertest.Pool, error) { return nil, errors.New("no Docker engine (test)") },
		pgAddr:    FreeAddr(t),
		redisAddr: FreeAddr(t),
		pgBinGlob: "/nonexistent/*/bin",
		lookPath:  func(name string) (string, error) { return "", exec.ErrNotFound },
	}
}

func TestFailureMessagesNameEverySourceTried(t *testing.T) {
	t.Parallel()
	closed := FreeAddr(t)
	withEnv := func(name, value string) func(*sources) {
		return func(s *sources) {
			s.getenv = func(k string) string {
				if k == name {
					return value
				}
				return ""
			}
		}
	}
	tests := []struct {
		name    string
		service string
		change  func(*sources)
		want    []string
	}{
		{"postgres nowhere", "postgres", func(*sources) {}, []string{
			"TEST_DATABASE_URL unset", "no Docker engine (test)", " refused", "no initdb binary found: install postgresql"}},
		{"postgres variable unreachable", "postgres", withEnv("TEST_DATABASE_URL", "postgres://postgres@"+closed+"/postgres?sslmode=disable"),
			[]string{"TEST_DATABASE_URL", closed}},
		{"postgres variable not a URL", "postgres", withEnv("TEST_DATABASE_URL", "postgres://%zz"),
			[]string{"TEST_DATABASE_URL", "not a postgres:// URL"}},
		{"redis nowhere", "redis", func(*sources) {}, []string{
			"TEST_REDIS_URL unset", "no Docker engine (test)", " refused", "no redis-server binary found: install redis-server"}},
		{"redis variable unreachable", "redis", withEnv("TEST_REDIS_URL", "redis://"+closed+"/0"),
			[]string{"TEST_REDIS_URL", closed}},
		{"kafka variable unreachable", "kafka", withEnv("TEST_KAFKA_BROKERS", closed),
			[]string{"TEST_KAFKA_BROKERS=" + closed}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := noSources(t)
			tt.change(&src)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var err error
			switch tt.service {
			case "postgres":
				var srv *pgServer
				srv, err = findPostgres(ctx, src)
				if srv != nil {
					srv.admin.Close()
				}
			case "redis":
				_, _, err = findRedis(ctx, src)
			case "kafka":
				_, _, err = findKafka(src)
			}
			if err == nil {
				t.Fatal("found a service where there is none")
			}
			t.Log(err)
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("message %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestKafkaWithoutSharedBrokerUsesKfake(t *testing.T) {
	t.Parallel()
	brokers, why, err := findKafka(noSources(t))
	if err != nil || brokers != "" || !strings.Contains(why, "no Docker engine") {
		t.Fatalf("got brokers %q, why %q, err %v; want kfake because there is no Docker engine", brokers, why, err)
	}
}

// TestThrowawayPostgres starts PostgreSQL from the system binaries, as
// testenv does on machines with nothing on port 5432, and checks the whole
// chain on it: template, database copy, password-less roles, stop.
func TestThrowawayPostgres(t *testing.T) {
	t.Parallel()
	bin, err := localserver.PGBinDir(defaultSources().pgBinGlob, exec.LookPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	u, proc, err := startPostgres(ctx, bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proc.Stop() })
	srv, err := connectPGServer(ctx, u, "throwaway server")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("database", func(t *testing.T) {
		pg := srv.database(t)
		InsertOrders(t, pg.Pool, Sample(t))
		conn, err := pgx.Connect(ctx, pg.URLAs("order_reader"))
		if err != nil {
			t.Fatalf("connect as order_reader: %v", err)
		}
		defer conn.Close(ctx)
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM items").Scan(&n); err != nil || n != 1 {
			t.Errorf("order_reader sees %d items (err %v), want 1", n, err)
		}
	})
	srv.admin.Close()
	if os.Geteuid() == 0 {
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", proc.Pid()))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(status), "\nUid:\t0\t") {
			t.Error("throwaway postgres runs as root")
		}
	}
	addr := strings.TrimSuffix(strings.TrimPrefix(u, "postgres://postgres@"), "/postgres?sslmode=disable")
	proc.Stop()
	checkStopped(t, proc, addr)
}

func TestThrowawayRedis(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	u, proc, err := startRedis(ctx, bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proc.Stop() })
	if err := probe.Redis(ctx, u); err != nil {
		t.Fatal(err)
	}
	proc.Stop()
	checkStopped(t, proc, strings.TrimSuffix(strings.TrimPrefix(u, "redis://"), "/0"))
}

func checkStopped(t *testing.T, proc *localserver.Server, addr string) {
	t.Helper()
	select {
	case <-proc.Done():
	default:
		t.Error("process still running after stop")
	}
	if _, err := os.Stat(proc.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("directory %s left behind: %v", proc.Dir, err)
	}
	if err := answers(addr); err == nil {
		t.Errorf("%s still answers after stop", addr)
	}
}

// TestTemplateBuiltOnceUnderConcurrency runs several builders of the same
// template at once, as test processes of different packages do.
func TestTemplateBuiltOnceUnderConcurrency(t *testing.T) {
	t.Parallel()
	shared, err := pgServerOnce()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	name := "tmpl_test_" + randomHex(6)
	t.Cleanup(func() {
		_, _ = shared.admin.Exec(ctx, "ALTER DATABASE "+ident(name)+" WITH IS_TEMPLATE false")
		if _, err := shared.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(name)); err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
	})
	const builders = 4
	key := time.Now().UnixNano()
	var wg sync.WaitGroup
	errs := make([]error, builders)
	for i := range builders {
		wg.Go(func() {
			srv, err := connectPGServer(ctx, shared.url, "builder")
			if err != nil {
				errs[i] = err
				return
			}
			defer srv.admin.Close()
			errs[i] = srv.ensureTemplate(ctx, name, key)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("builder %d: %v", i, err)
		}
	}
	var templates, builds int
	err = shared.admin.QueryRow(ctx, `SELECT count(*) FILTER (WHERE datname = $1 AND datistemplate AND NOT datallowconn),
		count(*) FILTER (WHERE datname = $1 || '_build') FROM pg_database`, name).Scan(&templates, &builds)
	if err != nil {
		t.Fatal(err)
	}
	if templates != 1 || builds != 0 {
		t.Errorf("%d sealed templates and %d build databases, want 1 and 0", templates, builds)
	}
}
