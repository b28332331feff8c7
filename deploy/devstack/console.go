package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sync"
)

// console interleaves the output of the stack's processes on one writer,
// a whole line at a time, each line prefixed with the name of the process
// that wrote it ("reader   | ..."), like docker compose does.
type console struct {
	mu    sync.Mutex
	w     io.Writer
	color bool
	width int
	next  int // index into palette for the next new name
}

// palette holds ANSI foreground colours given to names in turn.
var palette = []string{"36", "33", "32", "35", "34", "31", "96", "93"}

func newConsole(w io.Writer, color bool) *console {
	return &console{w: w, color: color, width: len("postgres")}
}

// isTerminal tells whether w is a character device, where colour helps;
// NO_COLOR (https://no-color.org) turns colour off everywhere.
func isTerminal(w io.Writer, getenv func(string) string) bool {
	if getenv("NO_COLOR") != "" {
		return false
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Writer returns a writer whose complete lines appear on the console under
// name. Close it to print a last line that has no trailing newline.
func (c *console) Writer(name string) *lineWriter {
	c.mu.Lock()
	defer c.mu.Unlock()
	prefix := fmt.Sprintf("%-*s | ", c.width, name)
	if c.color {
		prefix = "\x1b[" + palette[c.next%len(palette)] + "m" + prefix + "\x1b[0m"
		c.next++
	}
	return &lineWriter{c: c, prefix: []byte(prefix)}
}

func (c *console) writeLine(prefix, line []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// A console write that fails (closed terminal) must not stop the stack:
	// the processes keep running and are stopped by the signal that follows.
	_, _ = c.w.Write(append(append(append([]byte{}, prefix...), line...), '\n'))
}

// lineWriter buffers a partial line until its newline arrives, so lines
// of different processes never mix.
type lineWriter struct {
	c      *console
	prefix []byte
	mu     sync.Mutex
	buf    []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.c.writeLine(w.prefix, bytes.TrimSuffix(w.buf[:i], []byte{'\r'}))
		w.buf = w.buf[i+1:]
	}
	// Keep the buffer small when a process writes lines without end.
	if len(w.buf) > 64<<10 {
		w.c.writeLine(w.prefix, w.buf)
		w.buf = w.buf[:0]
	}
	return len(p), nil
}

// Close flushes a final unterminated line.
func (w *lineWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.c.writeLine(w.prefix, w.buf)
		w.buf = nil
	}
	return nil
}
