package send

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/orderservice/orders/producer/source"
)

// Writer is the --dry-run sink: it writes each message's value on its own
// line (NDJSON for orders, which --file reads back).
type Writer struct {
	w       *bufio.Writer
	written atomic.Int64
}

// NewWriter returns a sink that writes to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: bufio.NewWriterSize(w, 64<<10)} }

// Send writes m's value and a newline.
func (w *Writer) Send(ctx context.Context, m source.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := w.w.Write(m.Value); err != nil {
		return fmt.Errorf("write message: %w", err)
	}
	if err := w.w.WriteByte('\n'); err != nil {
		return fmt.Errorf("write message: %w", err)
	}
	w.written.Add(1)
	return nil
}

// Stats counts written messages as delivered.
func (w *Writer) Stats() Stats {
	n := w.written.Load()
	return Stats{Queued: n, Delivered: n}
}

// Close flushes the buffer.
func (w *Writer) Close(time.Duration) Stats {
	s := w.Stats()
	if err := w.w.Flush(); err != nil {
		s.Failed, s.Delivered = s.Delivered, 0
		s.Errors = []ErrorCount{{Err: err.Error(), Count: s.Failed}}
	}
	return s
}
