// Package syncio has the writers that several goroutines may share: each
// Write goes through whole, never interleaved with another, and a Buffer may
// be read while it is written to.
package syncio

import (
	"bytes"
	"io"
	"sync"
)

// Writer serialises the writes of several goroutines (two loggers, a
// process's stdout and stderr) to one io.Writer, so that the lines each
// writes whole never mix.
type Writer struct {
	mu sync.Mutex
	w  io.Writer
}

// NewWriter returns a Writer that writes to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Write writes p to the underlying writer, after any Write under way.
func (l *Writer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Buffer is a bytes.Buffer that a service, a child process or a logger may
// write to while another goroutine reads it (a test waiting for a log
// line). The zero value is an empty buffer ready to use.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
