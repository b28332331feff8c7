package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ory/dockertest/v3"
)

// FreeAddr returns "127.0.0.1:<port>" for a port that was free a moment ago,
// and that no other FreeAddr of this process returned: the kernel may hand
// a port just closed to the next listener on port 0, and two addresses
// asked for one after the other (a reader's listen and ops ports) came out
// the same. Another process may still take it before the caller listens
// on it: prefer listening on port 0 where the code under test allows it.
func FreeAddr(t testing.TB) string {
	t.Helper()
	addr, err := freeAddr()
	if err != nil {
		t.Fatalf("testenv: FreeAddr: %v", err)
	}
	return addr
}

// handedOut are the addresses freeAddr has returned in this process.
var handedOut struct {
	sync.Mutex
	addrs map[string]bool
}

func freeAddr() (string, error) {
	handedOut.Lock()
	defer handedOut.Unlock()
	if handedOut.addrs == nil {
		handedOut.addrs = map[string]bool{}
	}
	for {
		ln, err := new(net.ListenConfig).Listen(context.Background(), "tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		addr := ln.Addr().String()
		if err := ln.Close(); err != nil {
			return "", err
		}
		if !handedOut.addrs[addr] {
			handedOut.addrs[addr] = true
			return addr, nil
		}
	}
}

// Await polls cond every few milliseconds until it holds, failing the test
// with what once limit has passed. It is for state that no channel reports
// (a metric, a query queued in another process), not a substitute for one.
func Await(t testing.TB, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not synchronisation
	}
}

// randomHex returns n random bytes as 2n lowercase hex digits.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b)
}

// answers reports whether something accepts TCP connections at addr.
func answers(addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := new(net.Dialer).DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}

// found is where a service shared by every test of the process was found:
// its address (a URL, or Kafka's broker list) and its source, for messages.
type found struct{ addr, source string }

// sources says where services are looked for. Tests of testenv replace
// parts of it to reach the fallbacks and the failure messages.
type sources struct {
	getenv    func(string) string
	docker    func() (*dockertest.Pool, error)
	pgAddr    string // the machine's PostgreSQL
	redisAddr string // the machine's Redis
	pgBinGlob string // directories holding initdb and postgres
	lookPath  func(string) (string, error)
}

func defaultSources() sources {
	return sources{
		getenv:    os.Getenv,
		docker:    dockerPool,
		pgAddr:    "127.0.0.1:5432",
		redisAddr: "127.0.0.1:6379",
		pgBinGlob: "/usr/lib/postgresql/*/bin",
		lookPath:  exec.LookPath,
	}
}

// reasons collects why each source of a service failed, for the final
// failure message.
type reasons []string

func (r *reasons) add(reason string) { *r = append(*r, reason) }

func (r reasons) String() string { return strings.Join(r, "; ") }
