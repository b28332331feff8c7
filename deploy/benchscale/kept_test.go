//go:build benchscale

package benchscale

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/orderservice/orders/shared/testenv"
)

// keptOrders is the database of stored orders that TestWarm and TestGets
// measure against: testenv.KeptPostgres's keep_<name>_<stored>_<schema>,
// loaded on first use as bench-scale's bulk loader loads a step (the same
// timeline, the ingestor's writer, no bare schema), then vacuumed,
// analyzed and checkpointed, so that every later run starts from the same
// settled tables; later runs reuse it (drop it with DROP DATABASE when
// done).
func keptOrders(ctx context.Context, t *testing.T, name string, stored int) *testenv.PG {
	t.Helper()
	pg, reused := testenv.KeptPostgres(t, name+"_"+strconv.Itoa(stored), func(pg *testenv.PG) error {
		start := time.Now()
		if err := loadOrders(ctx, pg, 0, stored, false); err != nil {
			return err
		}
		t.Logf("loaded %d orders in %s", stored, time.Since(start).Round(time.Second))
		for _, q := range []string{"VACUUM (ANALYZE) orders", "VACUUM (ANALYZE) delivery", "VACUUM (ANALYZE) payment",
			"VACUUM (ANALYZE) items", "CHECKPOINT"} {
			if _, err := pg.Pool.Exec(ctx, q); err != nil {
				return err
			}
		}
		return nil
	})
	if reused {
		t.Logf("reusing %s", pg.Name)
	}
	return pg
}

// readerBinaries is the reader binaries to compare: the comma-separated
// list in the environment variable env, or one built from this checkout.
func readerBinaries(t *testing.T, env string) []string {
	t.Helper()
	if v := os.Getenv(env); v != "" {
		return strings.Split(v, ",")
	}
	return []string{buildBinaries(t, repoRoot(t), "reader")["reader"]}
}

// logsDir is the directory the environment variable env names, made if
// need be, for logs that outlive the run; without it, the test's
// temporary directory.
func logsDir(t *testing.T, env string) string {
	t.Helper()
	logs := os.Getenv(env)
	if logs == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	return logs
}
