package redisconn

import (
	"context"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/redis/go-redis/v9"

	"github.com/orderservice/orders/shared/retry"
)

// BreakerPolicy is the pause of a node's circuit after each failure in a
// row: 100 ms doubling to 5 s, without jitter (while a circuit is open a
// process sends one probe per pause, too few to need spreading).
var BreakerPolicy = retry.Policy{Initial: 100 * time.Millisecond, Max: 5 * time.Second}

// Breaker is a circuit breaker per Redis node, for a cache that must cost
// neither errors nor latency when Redis, or one master of a cluster, is
// down. After commands to a node fail, that node's commands are skipped
// for a pause that grows with each failure in a row (its Policy); once the
// pause is over one command probes the node, and the first success closes
// its circuit. The keys of the other nodes are served all along: with one
// master of three lost, two thirds of the keys stay cached.
//
// Every user of one client should share its Breaker (the reader's cache
// and its rate limiter do): a node one of them found failing is then
// skipped by all of them at once, instead of each waiting for a timeout
// of its own before it notices, and the one probe per pause is the only
// command any of them sends the node until it answers.
//
// Closed circuits cost one map lookup under a mutex; the breaker holds
// state only for nodes that failed.
type Breaker struct {
	client redis.UniversalClient
	policy retry.Policy
	notify func(Change)

	mu       sync.Mutex
	circuits map[string]*circuit // open circuits by node address
}

type circuit struct {
	key       string    // a key routed to the node when it failed
	openUntil time.Time // the pause ends
	pauses    *backoff.ExponentialBackOff
	probing   bool
}

// Change is a circuit opening or closing, as NewBreaker's notify receives
// it (for logs and metrics).
type Change struct {
	Node string
	// Open is true when the node's circuit opened (Err failed it, Pause is
	// the first pause), false when it closed: the node answered, or it no
	// longer serves the keys it served (a replica took over its slots).
	Open  bool
	Err   error
	Pause time.Duration
	// AllClosed reports that every node's circuit is closed now.
	AllClosed bool
}

// NewBreaker returns a breaker for the nodes of c. notify, if not nil, is
// called (without the breaker's lock) on every change.
func NewBreaker(c redis.UniversalClient, p retry.Policy, notify func(Change)) *Breaker {
	if notify == nil {
		notify = func(Change) {}
	}
	return &Breaker{client: c, policy: p, notify: notify, circuits: map[string]*circuit{}}
}

// Route returns the node that key's commands go to (see Node). While a
// cluster client has no slot map (every node it knows failed: node ""), it
// does not try to load one until the pause of that failure is over, so
// that an unreachable cluster costs no round trip per command.
func (b *Breaker) Route(ctx context.Context, key string) string {
	b.mu.Lock()
	c := b.circuits[""]
	waiting := c != nil && time.Now().Before(c.openUntil)
	b.mu.Unlock()
	if waiting {
		return ""
	}
	return Node(ctx, b.client, key)
}

// Allow reports whether a command may go to node: always while its circuit
// is closed, once per pause while it is open (the probe, which Done or
// Release must follow).
func (b *Breaker) Allow(node string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.circuits[node]
	if c == nil {
		return true
	}
	if c.probing || time.Now().Before(c.openUntil) {
		return false
	}
	c.probing = true
	return true
}

// Done records how the commands sent to node went: err nil means the node
// answered (a miss is an answer), which closes its circuit; an error opens
// it, or starts the next, longer pause. key is one of the keys sent.
func (b *Breaker) Done(node, key string, err error) {
	b.mu.Lock()
	c := b.circuits[node]
	if err == nil {
		if c == nil {
			others := len(b.circuits) > 0
			b.mu.Unlock()
			if others {
				// A node answers while another's circuit is open: maybe
				// in its place (it took over the other's slots).
				b.forgetObsolete()
			}
			return
		}
		delete(b.circuits, node)
		all := len(b.circuits) == 0
		b.mu.Unlock()
		b.notify(Change{Node: node, AllClosed: all})
		b.forgetObsolete()
		return
	}
	if c != nil {
		c.probing = false
		c.key = key
		c.openUntil = time.Now().Add(c.pauses.NextBackOff())
		b.mu.Unlock()
		return
	}
	c = &circuit{key: key, pauses: b.policy.BackOff()}
	pause := c.pauses.NextBackOff()
	c.openUntil = time.Now().Add(pause)
	b.circuits[node] = c
	b.mu.Unlock()
	b.notify(Change{Node: node, Open: true, Err: err, Pause: pause})
}

// Release ends a probe whose caller gave up before the node answered: that
// says nothing about the node, whose next command probes it again.
func (b *Breaker) Release(node string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if c := b.circuits[node]; c != nil {
		c.probing = false
	}
}

// Closed reports whether every node's circuit is closed. The circuit of a
// node that no longer serves its key's slot (the cluster gave the slot to
// another node, as when a replica replaces a lost master) is forgotten
// first: no command goes to that node any more.
func (b *Breaker) Closed() bool {
	b.forgetObsolete()
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.circuits) == 0
}

// forgetObsolete drops the circuits of nodes that no longer serve the key
// they failed for. Routing needs no lock (and no round trip); the circuit
// is dropped only if it is still the one routed.
func (b *Breaker) forgetObsolete() {
	b.mu.Lock()
	if len(b.circuits) == 0 {
		b.mu.Unlock()
		return
	}
	keys := make(map[string]string, len(b.circuits))
	for node, c := range b.circuits {
		if node != "" { // no slot map: only a command's success tells
			keys[node] = c.key
		}
	}
	b.mu.Unlock()
	for node, key := range keys {
		if now := Node(context.Background(), b.client, key); now == "" || now == node {
			continue
		}
		b.mu.Lock()
		c, ok := b.circuits[node]
		if ok && c.key == key {
			delete(b.circuits, node)
		}
		all := len(b.circuits) == 0
		b.mu.Unlock()
		if ok && c.key == key {
			b.notify(Change{Node: node, AllClosed: all})
		}
	}
}
