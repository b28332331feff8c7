//go:build benchscale

package benchscale

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/orderservice/orders/reader/auth"
	"github.com/orderservice/orders/reader/auth/authtest"
	"github.com/orderservice/orders/shared/testenv"
)

// TestGets is bench-scale's uncached GETs alone (uncachedGets: SCALE_GETS
// distinct stored orders, each asked once at SCALE_GET_RATE from a reader
// with no warm-up and an empty Redis key space), against a database of
// SCALE_GETS_STORED orders that outlives the run, so that a change to the
// lookup path is compared in minutes rather than in a bench-scale run:
//
//	SCALE_GETS_STORED=200000 go test -tags benchscale -run '^TestGets$' -count=1 -v ./deploy/benchscale
//
// The database is loaded as TestWarm's is (keep_gets_<stored>_<schema>;
// drop it with DROP DATABASE when done), on testenv's server. Each round
// runs every reader of SCALE_GETS_READERS (comma-separated binaries;
// default: one built from this checkout) with every environment of
// SCALE_GETS_ENVS (variants separated by ";", each KEY=VALUE pairs as
// SCALE_READER_ENV; default: one, empty), SCALE_GETS_ROUNDS times (default
// 3), and logs the p50, the p99 and the shares over 10 ms (at the client,
// in the handler, of the lookup queries) with the load average: the
// alternation is the comparison, on a machine whose load moves.
// SCALE_GETS_LOGS names a directory that keeps the reader's logs and the
// waits file (step-<n>-gets-waits.txt) after the run, which otherwise go
// with the test's temporary directory. SCALE_GETS_TRACE and
// SCALE_GETS_CPUPROFILE name files for the reader's
// execution trace and CPU profile over the GETs (each round overwrites
// them), to see where a slow request waited and where the CPU went.
func TestGets(t *testing.T) {
	stored, err := parseCount(os.Getenv("SCALE_GETS_STORED"))
	if err != nil || stored == 0 {
		t.Skip("set SCALE_GETS_STORED (the orders of the kept database, e.g. 200000)")
	}
	rounds := 3
	if v := os.Getenv("SCALE_GETS_ROUNDS"); v != "" {
		if rounds, err = strconv.Atoi(v); err != nil || rounds <= 0 {
			t.Fatalf("SCALE_GETS_ROUNDS=%q: want a positive count", v)
		}
	}
	r := &run{t: t, logs: logsDir(t, "SCALE_GETS_LOGS"), stored: stored}
	r.set.gets, r.set.getRate = 10_000, 1000
	if v := os.Getenv("SCALE_GETS"); v != "" {
		if r.set.gets, err = parseCount(v); err != nil || r.set.gets == 0 {
			t.Fatalf("SCALE_GETS=%q: want a positive count", v)
		}
	}
	if v := os.Getenv("SCALE_GET_RATE"); v != "" {
		if r.set.getRate, err = strconv.ParseFloat(v, 64); err != nil || r.set.getRate <= 0 {
			t.Fatalf("SCALE_GET_RATE=%q: want a positive rate", v)
		}
	}
	r.set.trace, r.set.cpuProfile = os.Getenv("SCALE_GETS_TRACE"), os.Getenv("SCALE_GETS_CPUPROFILE")
	base, err := parseEnv(os.Getenv("SCALE_READER_ENV"))
	if err != nil {
		t.Fatalf("SCALE_READER_ENV: %v", err)
	}
	envs := [][]string{nil}
	if v := os.Getenv("SCALE_GETS_ENVS"); v != "" {
		envs = envs[:0]
		for variant := range strings.SplitSeq(v, ";") {
			env, err := parseEnv(variant)
			if err != nil {
				t.Fatalf("SCALE_GETS_ENVS: %v", err)
			}
			envs = append(envs, env)
		}
	}
	readers := readerBinaries(t, "SCALE_GETS_READERS")
	ref := buildBinaries(t, repoRoot(t), "refreader")["refreader"]
	token, line := authtest.NewKey(t, "bench-gets", "1000000/1000000", auth.ScopeRead, auth.ScopePII)
	r.keys, r.token = authtest.NewKeys(t, line).File, token
	ctx := context.Background()
	r.pg = keptOrders(ctx, t, "gets", stored)
	r.redis = testenv.Redis(t)
	r.redisPID = redisProcess(t, r.redis.Client)
	for round := range rounds {
		for _, bin := range readers {
			for _, env := range envs {
				r.bins = map[string]string{"reader": bin, "refreader": ref}
				r.set.readerEnv = append(append([]string(nil), base...), env...)
				g := r.uncachedGets(ctx)
				t.Logf("round %d, %s %v: p50 %s, p99 %s (the reference server's %s, %s); over 10 ms: %.2f%% at the client, %.2f%% in the handler, %.2f%% of the queries; %d failed; load average %s",
					round+1, bin, env, g.p50, g.p99, g.refP50, g.refP99, g.over10Client, g.over10Handler, g.over10Query, g.errs, readLoad(t))
			}
		}
	}
}
