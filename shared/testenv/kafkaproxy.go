package testenv

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ProxiedKafka is a Kafka cluster of one broker that clients reach through
// a Proxy, to take the broker away from the code under test and give it
// back.
//
// A proxy in front of the bootstrap address alone is not enough: Kafka
// clients learn broker addresses from metadata, and then connect to those.
// So the broker advertises the proxy's address: kfake advertises its
// listener's address, and its listener here reports the proxy's. Every
// client that uses Brokers, however it learnt the address, goes through the
// proxy; the test's own clients get past it with Direct.
type ProxiedKafka struct {
	*KafkaEnv // Brokers is the proxy's address
	Proxy     *Proxy
}

// KafkaBehindProxy starts an in-process kfake cluster behind a Proxy, both
// closed when the test ends. It is always kfake, whatever the environment
// names: only an in-process broker can be made to advertise the proxy.
func KafkaBehindProxy(t testing.TB) *ProxiedKafka {
	t.Helper()
	var proxy *Proxy
	listen := func(network, address string) (net.Listener, error) {
		ln, err := new(net.ListenConfig).Listen(context.Background(), network, address)
		if err != nil {
			return nil, err
		}
		proxy = NewProxy(t, ln.Addr().String())
		return advertised{ln, proxy.ln.Addr()}, nil
	}
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.GroupMinSessionTimeout(time.Second),
		kfake.ListenFn(listen),
	)
	if err != nil {
		t.Fatalf("testenv: KafkaBehindProxy: %v", err)
	}
	t.Cleanup(c.Close)
	return &ProxiedKafka{KafkaEnv: &KafkaEnv{Brokers: strings.Join(c.ListenAddrs(), ","), Fake: c}, Proxy: proxy}
}

// Direct is a franz-go option for the test's own clients (producers,
// admin): it dials the broker itself wherever the proxy's address is
// given or advertised, so that the test can produce and check offsets
// while the proxy keeps the broker from the code under test.
func (k *ProxiedKafka) Direct() kgo.Opt {
	return kgo.Dialer(func(ctx context.Context, network, host string) (net.Conn, error) {
		if host == k.Proxy.Addr() {
			host = k.Proxy.Target()
		}
		return new(net.Dialer).DialContext(ctx, network, host)
	})
}

// advertised is a listener that reports another address as its own: the
// address kfake puts in its metadata.
type advertised struct {
	net.Listener
	addr net.Addr
}

func (l advertised) Addr() net.Addr { return l.addr }
