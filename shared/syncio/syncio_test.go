package syncio_test

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/orderservice/orders/shared/syncio"
)

// TestConcurrentWrites has goroutines write lines to one writer at once (and,
// for a Buffer, read it meanwhile). Run with -race: without the lock the
// race detector reports the unguarded bytes.Buffer, and lines come out mixed.
func TestConcurrentWrites(t *testing.T) {
	const writers, lines = 8, 200
	tests := []struct {
		name string
		// open returns the shared writer, a read that is safe while others
		// write (nil: none), and the text once every write is done.
		open func() (w io.Writer, during, after func() string)
	}{
		{"Writer over a bytes.Buffer", func() (io.Writer, func() string, func() string) {
			var buf bytes.Buffer // not safe for concurrent use by itself
			return syncio.NewWriter(&buf), nil, buf.String
		}},
		{"Buffer (zero value)", func() (io.Writer, func() string, func() string) {
			b := &syncio.Buffer{}
			return b, b.String, b.String
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, during, after := tt.open()
			line := func(g, i int) string {
				return fmt.Sprintf("writer %d line %03d %s\n", g, i, strings.Repeat("x", 64))
			}
			var wg sync.WaitGroup
			for g := range writers {
				wg.Go(func() {
					for i := range lines {
						l := line(g, i)
						if n, err := w.Write([]byte(l)); err != nil || n != len(l) {
							t.Errorf("Write = %d, %v; want %d, nil", n, err, len(l))
							return
						}
					}
				})
			}
			if during != nil {
				wg.Go(func() {
					for range lines {
						if s := during(); len(s) > writers*lines*len(line(0, 0)) {
							t.Errorf("read %d bytes, more than was ever written", len(s))
							return
						}
					}
				})
			}
			wg.Wait()
			got := after()
			// Every line must be there whole, each writer's in its order.
			next := make([]int, writers)
			for l := range strings.Lines(got) {
				var g, i int
				if _, err := fmt.Sscanf(l, "writer %d line %d", &g, &i); err != nil || g < 0 || g >= writers || l != line(g, i) {
					t.Fatalf("mixed line %q", l)
				}
				if i != next[g] {
					t.Fatalf("writer %d: line %d after %d", g, i, next[g]-1)
				}
				next[g]++
			}
			for g, n := range next {
				if n != lines {
					t.Errorf("writer %d: %d lines, want %d", g, n, lines)
				}
			}
		})
	}
}
