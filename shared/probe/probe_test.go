package probe_test

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/orderservice/orders/shared/probe"
	"github.com/orderservice/orders/shared/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var errDown = errors.New("not up yet")

func TestWait(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration
		cancel  bool // the caller's context is cancelled before Wait
		// check answers the nth call (from 1).
		check     func(n int) error
		wantCalls int // 0: more than one, not counted exactly
		wantIs    []error
		wantNil   bool
	}{
		{
			name: "up at once", timeout: time.Minute, wantNil: true, wantCalls: 1,
			check: func(int) error { return nil },
		},
		{
			name: "up after failures", timeout: time.Minute, wantNil: true, wantCalls: 4,
			check: func(n int) error {
				if n < 4 {
					return errDown
				}
				return nil
			},
		},
		{
			name: "permanent error ends the wait", timeout: time.Minute, wantCalls: 2,
			check: func(n int) error {
				if n < 2 {
					return errDown
				}
				return probe.Permanent(errExited)
			},
			wantIs: []error{errExited},
		},
		{
			name: "timeout", timeout: 150 * time.Millisecond,
			check:  func(int) error { return errDown },
			wantIs: []error{context.DeadlineExceeded, errDown},
		},
		{
			name: "caller cancelled", timeout: time.Minute, cancel: true, wantCalls: 1,
			check:  func(int) error { return errDown },
			wantIs: []error{context.Canceled, errDown},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancel {
				cancel()
			}
			calls := 0
			start := time.Now()
			err := probe.Wait(ctx, tt.timeout, func(context.Context) error {
				calls++
				return tt.check(calls)
			})
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("Wait took %v", took)
			}
			if tt.wantNil != (err == nil) {
				t.Fatalf("Wait = %v, want nil: %v", err, tt.wantNil)
			}
			for _, want := range tt.wantIs {
				if !errors.Is(err, want) {
					t.Errorf("Wait = %v, want it to wrap %v", err, want)
				}
			}
			if tt.wantCalls > 0 && calls != tt.wantCalls {
				t.Errorf("check called %d times, want %d", calls, tt.wantCalls)
			}
			if tt.wantCalls == 0 && calls < 2 {
				t.Errorf("check called %d times, want it polled", calls)
			}
		})
	}
}

var errExited = errors.New("server exited")

// closedAddr is a loopback address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := new(net.ListenConfig).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// otherDatabase is u naming database name instead.
func otherDatabase(t *testing.T, u, name string) string {
	t.Helper()
	parsed, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	parsed.Path = "/" + name
	return parsed.String()
}

func TestPing(t *testing.T) {
	pg := testenv.Postgres(t)
	rd := testenv.Redis(t)
	closed := closedAddr(t)
	tests := []struct {
		name    string
		ping    func(context.Context, string) error
		url     string
		wantErr bool
	}{
		{"postgres up", probe.Postgres, pg.URL, false},
		{"postgres nothing listening", probe.Postgres, "postgres://postgres@" + closed + "/postgres?sslmode=disable", true},
		{"postgres no such database", probe.Postgres, otherDatabase(t, pg.URL, "no_such_database"), true},
		{"postgres bad url", probe.Postgres, "postgres://u:s3cret@host:port/db", true},
		{"redis up", probe.Redis, rd.URL, false},
		{"redis nothing listening", probe.Redis, "redis://" + closed + "/0", true},
		{"redis bad database", probe.Redis, "redis://" + closed + "/notadb", true},
		{"redis bad url", probe.Redis, "redis://u:s3cret@host:port/0", true},
		{"redis wrong scheme", probe.Redis, "http://u:s3cret@" + closed, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.ping(context.Background(), tt.url)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ping %s = %v, want error: %v", tt.name, err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}
