package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc: 100 on every
// Linux architecture Go supports (sysconf(_SC_CLK_TCK) would need cgo).
const clockTicks = 100

// ProcessCPU is the user + system CPU time a process has used so far, from
// /proc/<pid>/stat: what the benchmarks report beside their rates.
func ProcessCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseProcessStat(string(b))
}

// parseProcessStat reads utime and stime (fields 14 and 15) out of the text
// of a /proc/<pid>/stat file. The command name (field 2) is in parentheses
// and may itself hold spaces and parentheses, so the fields are counted
// from the last ')'.
func parseProcessStat(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("%q is not a /proc/<pid>/stat line", stat)
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state): utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("%q: too few fields", stat)
	}
	var ticks int64
	for _, v := range f[11:13] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%q: CPU time %q: %w", stat, v, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// BackendTimes is the CPU time of PostgreSQL backends so far, by pid.
type BackendTimes map[int]time.Duration

// BackendCPU reads the CPU time of the backends of pool's database that
// user is connected as, from /proc: empty when the server runs elsewhere
// (a container, another host); a backend that ended meanwhile is left out.
func BackendCPU(tb testing.TB, pool *pgxpool.Pool, user string) BackendTimes {
	tb.Helper()
	rows, err := pool.Query(context.Background(),
		"SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND usename = $1", user)
	if err != nil {
		tb.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		tb.Fatal(err)
	}
	out := BackendTimes{}
	for _, pid := range pids {
		d, err := ProcessCPU(int(pid))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			tb.Fatalf("PostgreSQL backend %d: %v", pid, err)
		}
		out[int(pid)] = d
	}
	return out
}

// Since is the CPU time used after before was read; a backend started
// meanwhile counts whole.
func (t BackendTimes) Since(before BackendTimes) time.Duration {
	var d time.Duration
	for pid, cpu := range t {
		d += cpu - before[pid]
	}
	return d
}
