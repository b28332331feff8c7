package testenv

import (
	"os"
	"sync"
	"testing"
)

// process holds what is shared by every test of the process: throwaway
// servers and containers, stopped by Main.
var process struct {
	mu    sync.Mutex
	stops []func()
}

// atExit registers stop to run when Main's tests end, newest first.
func atExit(stop func()) {
	process.mu.Lock()
	defer process.mu.Unlock()
	process.stops = append(process.stops, stop)
}

// Main runs the tests of m, then stops the throwaway servers and containers
// the tests started, and exits with the tests' status. Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	Shutdown()
	os.Exit(code)
}

// Shutdown stops every throwaway server and container started so far. Main
// calls it; call it yourself from a TestMain that must do more after m.Run.
func Shutdown() {
	process.mu.Lock()
	stops := process.stops
	process.stops = nil
	process.mu.Unlock()
	for i := len(stops) - 1; i >= 0; i-- {
		stops[i]()
	}
}
