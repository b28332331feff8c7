//go:build benchscale

package benchscale

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5"
)

// anatomyOrders is how many orders the insert anatomy writes (and rolls
// back) per schema.
const anatomyOrders = 2000

// insertCost is what EXPLAIN ANALYZE reports of one INSERT.
type insertCost struct {
	Table      string  `json:"table"`
	Millis     float64 `json:"ms"`
	TriggerMs  float64 `json:"trigger_ms"`
	WALBytes   int64   `json:"wal_bytes"`
	WALFPI     int64   `json:"wal_fpi"`
	SharedRead int64   `json:"shared_read_blocks"`
}

// anatomy shows where the time of an insert goes at this size: right
// after a CHECKPOINT, the rows of anatomyOrders new orders are inserted
// into each schema's tables with EXPLAIN (ANALYZE, WAL, BUFFERS), one
// INSERT ... SELECT per table from temporary copies, in a transaction that
// is rolled back. The figures (time, foreign-key trigger time, WAL bytes
// and full-page images, blocks read) go to the step's log.
func (r *run) anatomy(ctx context.Context) map[string][]insertCost {
	t := r.t
	orders := generateRange(r.seq+1_000_000_000, anatomyOrders) // outside the timeline: rolled back
	out := map[string][]insertCost{}
	for _, schema := range []string{"public", "bare"} {
		r.checkpoint(ctx)
		err := pgx.BeginFunc(ctx, r.pg.Pool, func(tx pgx.Tx) error {
			for _, table := range []string{"orders", "delivery", "payment", "items"} {
				if _, err := tx.Exec(ctx, "CREATE TEMP TABLE "+table+" (LIKE bare."+table+" INCLUDING DEFAULTS) ON COMMIT DROP"); err != nil {
					return err
				}
			}
			if err := copyInto(ctx, tx, "pg_temp", orders); err != nil {
				return err
			}
			for _, table := range []string{"orders", "delivery", "payment", "items"} {
				var plan []struct {
					Plan struct {
						Time     float64 `json:"Actual Total Time"`
						WALBytes int64   `json:"WAL Bytes"`
						WALFPI   int64   `json:"WAL FPI"`
						Read     int64   `json:"Shared Read Blocks"`
					} `json:"Plan"`
					Triggers []struct {
						Time float64 `json:"Time"`
					} `json:"Triggers"`
					Execution float64 `json:"Execution Time"`
				}
				var raw []byte
				if err := tx.QueryRow(ctx, "EXPLAIN (ANALYZE, WAL, BUFFERS, FORMAT JSON) INSERT INTO "+schema+"."+table+
					" SELECT * FROM pg_temp."+table).Scan(&raw); err != nil {
					return fmt.Errorf("explain insert into %s.%s: %w", schema, table, err)
				}
				if err := json.Unmarshal(raw, &plan); err != nil {
					return fmt.Errorf("explain of %s.%s: %w", schema, table, err)
				}
				if len(plan) != 1 {
					return fmt.Errorf("explain of %s.%s: %d plans", schema, table, len(plan))
				}
				c := insertCost{Table: table, Millis: plan[0].Execution, WALBytes: plan[0].Plan.WALBytes,
					WALFPI: plan[0].Plan.WALFPI, SharedRead: plan[0].Plan.Read}
				for _, tr := range plan[0].Triggers {
					c.TriggerMs += tr.Time
				}
				out[schema] = append(out[schema], c)
			}
			return errRollback
		})
		if err != nil && !errors.Is(err, errRollback) {
			t.Fatalf("anatomy of %s: %v", schema, err)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "insert anatomy at %d stored orders: %d new orders per schema, right after a CHECKPOINT\n", r.stored, anatomyOrders)
	fmt.Fprintf(&b, "%-7s %-9s %9s %11s %12s %8s %11s\n", "schema", "table", "ms", "trigger ms", "WAL bytes", "FPI", "blocks read")
	for _, schema := range []string{"public", "bare"} {
		for _, c := range out[schema] {
			fmt.Fprintf(&b, "%-7s %-9s %9.1f %11.1f %12d %8d %11d\n", schema, c.Table, c.Millis, c.TriggerMs, c.WALBytes, c.WALFPI, c.SharedRead)
		}
	}
	t.Log(b.String())
	if err := os.WriteFile(filepath.Join(r.logs, fmt.Sprintf("step-%d-insert-anatomy.txt", r.stored)), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}
