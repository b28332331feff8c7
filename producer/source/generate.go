package source

import (
	"io"

	"github.com/orderservice/orders/shared/ordergen"
)

// Generated yields n random valid orders from gen (n == 0: without end).
type Generated struct {
	gen  *ordergen.Generator
	n, i int
}

// Generate yields n orders from gen, or orders without end when n is 0.
// The same seed yields the same orders.
func Generate(gen *ordergen.Generator, n int) *Generated {
	return &Generated{gen: gen, n: n}
}

// Next returns the next order, or io.EOF after n.
func (g *Generated) Next() (Message, error) {
	if g.n > 0 && g.i >= g.n {
		return Message{}, io.EOF
	}
	g.i++
	return orderMessage(g.gen.Order())
}

// Len returns n, or -1 for an endless stream.
func (g *Generated) Len() int {
	if g.n == 0 {
		return -1
	}
	return g.n
}
