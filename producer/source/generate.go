package source

import (
	"context"
	"io"

	"github.com/orderservice/orders/shared/ordergen"
)

// workerBuffer is how many encoded orders each generating worker may have
// ready ahead of the sender.
const workerBuffer = 512

// Generated yields random valid orders. With more than one worker, the
// orders are made and encoded in parallel, by one generator per worker, and
// merged round-robin: message i comes from worker i mod workers, so the
// stream is the same on every run with the same seed and worker count, on
// any machine. (Generating, mostly fake-data lookups and JSON encoding, is
// what limits throughput; one core does about 60,000 orders per second.)
type Generated struct {
	n, i    int
	single  *ordergen.Generator // workers == 1: ordergen.New(seed) exactly
	streams []chan Message      // workers > 1
}

// Generate yields n orders (endless when n is 0) from the given number of
// workers. Worker 0 uses ordergen.New(seed), so with one worker the stream
// is exactly that generator's sequence; worker k uses the seed
// WorkerSeed(seed, k). Ending ctx stops the workers.
func Generate(ctx context.Context, seed int64, n, workers int) *Generated {
	g := &Generated{n: n}
	if workers <= 1 {
		g.single = ordergen.New(seed)
		return g
	}
	g.streams = make([]chan Message, workers)
	for k := range g.streams {
		ch := make(chan Message, workerBuffer)
		g.streams[k] = ch
		go produceOrders(ctx, ordergen.New(WorkerSeed(seed, k)), k, workers, n, ch)
	}
	return g
}

// produceOrders makes the orders of indexes k, k+step, … below n (without
// end when n is 0) until ctx ends.
func produceOrders(ctx context.Context, gen *ordergen.Generator, k, step, n int, out chan<- Message) {
	defer close(out)
	for i := k; n == 0 || i < n; i += step {
		m, err := orderMessage(gen.Order())
		if err != nil {
			return // cannot happen for a generated order; Next reports io.ErrUnexpectedEOF
		}
		select {
		case out <- m:
		case <-ctx.Done():
			return
		}
	}
}

// WorkerSeed returns the generator seed of worker k: seed itself for worker
// 0, a scrambled derivative for the others, so that runs with nearby seeds
// (1, 2, …) share no worker streams.
func WorkerSeed(seed int64, k int) int64 {
	if k == 0 {
		return seed
	}
	x := uint64(seed) ^ uint64(k)*0xbf58476d1ce4e5b9
	x ^= x >> 31
	x *= 0x94d049bb133111eb
	x ^= x >> 29
	return int64(x)
}

// Next returns the next order, or io.EOF after n.
func (g *Generated) Next() (Message, error) {
	if g.n > 0 && g.i >= g.n {
		return Message{}, io.EOF
	}
	i := g.i
	g.i++
	if g.single != nil {
		return orderMessage(g.single.Order())
	}
	m, ok := <-g.streams[i%len(g.streams)]
	if !ok {
		return Message{}, io.ErrUnexpectedEOF
	}
	return m, nil
}

// Len returns n, or -1 for an endless stream.
func (g *Generated) Len() int {
	if g.n == 0 {
		return -1
	}
	return g.n
}
