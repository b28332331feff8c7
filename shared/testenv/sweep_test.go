package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// deadPid is above any pid_max, so no process has it.
const deadPid = 999_999_999

func TestAbandoned(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name    string
		pid     int
		age     time.Duration
		abandon bool
	}{
		{"fresh, creator alive", os.Getpid(), time.Minute, false},
		{"fresh, creator gone", deadPid, time.Minute, false}, // another pid namespace, maybe
		{"two hours, creator alive", os.Getpid(), 2 * time.Hour, false},
		{"two hours, creator gone", deadPid, 2 * time.Hour, true},
		{"two days, creator alive", os.Getpid(), 48 * time.Hour, true},
	}
	for _, tt := range tests {
		if got := abandoned(tt.pid, now.Add(-tt.age).Unix()); got != tt.abandon {
			t.Errorf("%s: abandoned = %v, want %v", tt.name, got, tt.abandon)
		}
	}
}

// TestSweepDropsOnlyAbandonedTestDatabases plants databases as crashed and
// running test processes leave them and checks which ones sweep drops.
func TestSweepDropsOnlyAbandonedTestDatabases(t *testing.T) {
	t.Parallel()
	srv, err := pgServerOnce()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	old := time.Now().Add(-2 * time.Hour).Unix()
	tests := []struct {
		name    string
		comment string // "" for none
		dropped bool
	}{
		{"t_" + randomHex(8), fmt.Sprintf("%s pid=%d created=%d", sweepMark, deadPid, old), true},
		{"t_" + randomHex(8), fmt.Sprintf("%s pid=%d created=%d", sweepMark, os.Getpid(), old), false},
		{"t_" + randomHex(8), fmt.Sprintf("%s pid=%d created=%d", sweepMark, deadPid, time.Now().Unix()), false},
		{"t_" + randomHex(8), "", false},
		{"t_" + randomHex(8), "someone else's database", false},
		{"x_" + randomHex(8), fmt.Sprintf("%s pid=%d created=%d", sweepMark, deadPid, old), false},
	}
	for _, tt := range tests {
		if _, err := srv.admin.Exec(ctx, "CREATE DATABASE "+ident(tt.name)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = srv.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(tt.name)) })
		if tt.comment != "" {
			if _, err := srv.admin.Exec(ctx, "COMMENT ON DATABASE "+ident(tt.name)+" IS "+literal(tt.comment)); err != nil {
				t.Fatal(err)
			}
		}
	}
	srv.sweep(ctx)
	for _, tt := range tests {
		var exists bool
		err := srv.admin.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", tt.name).Scan(&exists)
		if err != nil {
			t.Fatal(err)
		}
		if exists == tt.dropped {
			t.Errorf("%s (comment %q): exists = %v, want dropped = %v", tt.name, tt.comment, exists, tt.dropped)
		}
	}
}

func TestSweepServerDirs(t *testing.T) {
	tmp := t.TempDir()
	tests := []struct {
		dir     string
		owner   string // "" for no owner file
		removed bool
	}{
		{"testenv-pg-dead", fmt.Sprint(deadPid), true},
		{"testenv-redis-dead", fmt.Sprint(deadPid), true},
		{"testenv-pg-alive", fmt.Sprint(os.Getpid()), false},
		{"testenv-pg-starting", "", false},
		{"testenv-pg-garbage", "not a pid", false},
		{"other-dead", fmt.Sprint(deadPid), false},
	}
	for _, tt := range tests {
		d := filepath.Join(tmp, tt.dir)
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if tt.owner != "" {
			if err := os.WriteFile(filepath.Join(d, ownerFile), []byte(tt.owner), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	sweepServerDirs(tmp)
	for _, tt := range tests {
		_, err := os.Stat(filepath.Join(tmp, tt.dir))
		if removed := errors.Is(err, os.ErrNotExist); removed != tt.removed {
			t.Errorf("%s (owner %q): removed = %v, want %v", tt.dir, tt.owner, removed, tt.removed)
		}
	}
}
