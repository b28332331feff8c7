package testenv

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/orderservice/orders/shared/localserver"
	"github.com/orderservice/orders/shared/probe"
)

// helperProcess is what the test binary does when run with
// TESTENV_HELPER=1 (see TestMain): start throwaway servers, say so, and wait
// to be killed, without any cleanup.
func helperProcess() {
	ctx := context.Background()
	bin, err := localserver.PGBinDir(defaultSources().pgBinGlob, exec.LookPath)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	_, pg, err := startPostgres(ctx, bin)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	redisBin, err := exec.LookPath("redis-server")
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	_, rd, err := startRedis(ctx, redisBin)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Printf("started %d %s %d %s\n", pg.Pid(), pg.Dir, rd.Pid(), rd.Dir)
	select {} // until killed
}

// TestThrowawayServersDieWithTheTestProcess kills a process that started
// throwaway servers, as a test timeout or kill -9 would, and checks that the
// servers do not outlive it.
func TestThrowawayServersDieWithTheTestProcess(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "TESTENV_HELPER=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("helper: %v", err)
	}
	var pgPid, redisPid int
	var pgDir, redisDir string
	if _, err := fmt.Sscanf(line, "started %d %s %d %s", &pgPid, &pgDir, &redisPid, &redisDir); err != nil {
		t.Fatalf("helper said %q: %v", line, err)
	}
	// The helper dies without cleanup, so its directories are ours to remove.
	t.Cleanup(func() { os.RemoveAll(pgDir); os.RemoveAll(redisDir) })
	if !running(pgPid) || !running(redisPid) {
		t.Fatalf("servers not running before the kill")
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	err = probe.Wait(context.Background(), 30*time.Second, func(context.Context) error {
		if running(pgPid) || running(redisPid) {
			return fmt.Errorf("postgres (pid %d) running: %v, redis (pid %d) running: %v",
				pgPid, running(pgPid), redisPid, running(redisPid))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("servers outlived the process that started them: %v", err)
	}
}

// running reports whether pid is a live, non-zombie process.
func running(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false
	}
	return !strings.Contains(string(status), "State:\tZ")
}
