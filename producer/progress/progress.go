// Package progress shows how a run is going: a progress bar on a terminal
// (github.com/schollz/progressbar), a periodic one-line summary when the
// output is a file or a pipe, so that logs stay readable.
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Counts is what the reporter shows: messages confirmed and failed.
type Counts struct {
	Delivered int64
	Failed    int64
}

// Mode picks how progress is shown.
type Mode string

// Modes.
const (
	Auto Mode = "auto" // Bar on a terminal, Line otherwise
	Bar  Mode = "bar"
	Line Mode = "line"
	Off  Mode = "off"
)

// ParseMode accepts auto, bar, line and off.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case Auto, Bar, Line, Off:
		return m, nil
	}
	return "", fmt.Errorf("progress mode %q: want auto, bar, line or off", s)
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Reporter renders progress from a counts function until Stop.
type Reporter struct {
	stop chan struct{}
	wg   sync.WaitGroup
}

// Labels name what is counted.
type Labels struct {
	Action string // the bar's description, "sending"
	Unit   string // counted per second, "msg"
	Done   string // what the line's first count is, "delivered"
}

// Messages are the labels of sending messages.
var Messages = Labels{Action: "sending", Unit: "msg", Done: "delivered"}

// Start begins reporting messages sent to w. total is the expected number
// of messages (-1 when unknown); interval is the period of the one-line
// summary (the bar refreshes on its own, faster). Mode Auto must have been
// resolved already: it is treated as Line.
func Start(w io.Writer, mode Mode, total int64, interval time.Duration, counts func() Counts) *Reporter {
	return StartWith(w, mode, total, interval, Messages, counts)
}

// StartWith is Start for things other than messages sent.
func StartWith(w io.Writer, mode Mode, total int64, interval time.Duration, l Labels, counts func() Counts) *Reporter {
	r := &Reporter{stop: make(chan struct{})}
	switch mode {
	case Off:
		return r
	case Bar:
		r.run(100*time.Millisecond, bar(w, total, l, counts))
	default:
		r.run(interval, line(w, total, l, counts))
	}
	return r
}

// Stop ends reporting and waits for the last render.
func (r *Reporter) Stop() {
	close(r.stop)
	r.wg.Wait()
}

// run calls render every period, and once more with final=true at Stop.
func (r *Reporter) run(period time.Duration, render func(final bool)) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				render(false)
			case <-r.stop:
				render(true)
				return
			}
		}
	}()
}

func bar(w io.Writer, total int64, l Labels, counts func() Counts) func(bool) {
	b := progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(l.Action),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString(l.Unit),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionFullWidth(),
	)
	return func(final bool) {
		c := counts()
		desc := l.Action
		if c.Failed > 0 {
			desc = fmt.Sprintf("%s (%d failed)", l.Action, c.Failed)
		}
		if !b.IsFinished() {
			b.Describe(desc)
			_ = b.Set64(c.Delivered + c.Failed)
		}
		if final {
			// The bar stays on screen at its last state, above the
			// summary.
			_ = b.Exit()
			fmt.Fprintln(w)
		}
	}
}

// line prints "progress: 1200/5000 delivered, 0 failed, 400 msg/s" where
// the rate is over the last period.
func line(w io.Writer, total int64, l Labels, counts func() Counts) func(bool) {
	last, lastAt := int64(0), time.Now()
	return func(final bool) {
		if final {
			return // the caller prints the final summary
		}
		c := counts()
		now := time.Now()
		done := c.Delivered + c.Failed
		rate := float64(done-last) / now.Sub(lastAt).Seconds()
		last, lastAt = done, now
		of := ""
		if total >= 0 {
			of = fmt.Sprintf("/%d", total)
		}
		fmt.Fprintf(w, "progress: %d%s %s, %d failed, %.0f %s/s\n", c.Delivered, of, l.Done, c.Failed, rate, l.Unit)
	}
}
