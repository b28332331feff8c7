package progress

import (
	"strings"
	"testing"
	"time"

	"github.com/orderservice/orders/shared/syncio"
)

func TestLineReportsPeriodically(t *testing.T) {
	var out syncio.Buffer
	r := Start(&out, Line, 100, 10*time.Millisecond, func() Counts { return Counts{Delivered: 42, Failed: 1} })
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "progress: 42/100 delivered, 1 failed") {
		if time.Now().After(deadline) {
			t.Fatalf("no progress line within 10s: %q", out.String())
		}
		time.Sleep(5 * time.Millisecond) // polling the output
	}
	r.Stop()
}

func TestBarRendersAndFinishes(t *testing.T) {
	var out syncio.Buffer
	r := Start(&out, Bar, 10, time.Hour, func() Counts { return Counts{Delivered: 10} })
	r.Stop()
	if !strings.Contains(out.String(), "sending") || !strings.Contains(out.String(), "10/10") {
		t.Errorf("bar output %q", out.String())
	}
}

func TestOffPrintsNothing(t *testing.T) {
	var out syncio.Buffer
	Start(&out, Off, 10, time.Millisecond, func() Counts { return Counts{} }).Stop()
	if out.String() != "" {
		t.Errorf("off printed %q", out.String())
	}
}

func TestParseMode(t *testing.T) {
	for _, tt := range []struct {
		in string
		ok bool
	}{{"auto", true}, {"bar", true}, {"line", true}, {"off", true}, {"fancy", false}, {"", false}} {
		if _, err := ParseMode(tt.in); (err == nil) != tt.ok {
			t.Errorf("ParseMode(%q) error %v", tt.in, err)
		}
	}
}

func TestIsTerminalOnABuffer(t *testing.T) {
	if IsTerminal(&syncio.Buffer{}) {
		t.Error("a buffer is not a terminal")
	}
}
