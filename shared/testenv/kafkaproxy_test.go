package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestKafkaBehindProxy: the broker advertises the proxy, so a client that
// bootstraps from the broker's own listener still goes through the proxy
// and loses the broker when the proxy cuts or stalls, while a Direct
// client goes on; after Restore both produce again.
func TestKafkaBehindProxy(t *testing.T) {
	t.Parallel()
	for _, fault := range []struct {
		name   string
		inject func(*Proxy)
	}{
		{"cut", (*Proxy).Cut},
		{"stall", (*Proxy).Stall},
	} {
		t.Run(fault.name, func(t *testing.T) {
			t.Parallel()
			k := KafkaBehindProxy(t)
			topic := k.Topic(t, "proxied", 1)
			client := func(name string, opts ...kgo.Opt) *kgo.Client {
				t.Helper()
				cl, err := kgo.NewClient(append(opts, kgo.DefaultProduceTopic(topic))...)
				if err != nil {
					t.Fatalf("%s client: %v", name, err)
				}
				t.Cleanup(cl.Close)
				return cl
			}
			// Seeded with the broker's own address, yet routed by metadata.
			behind := client("behind", kgo.SeedBrokers(k.Proxy.Target()))
			direct := client("direct", kgo.SeedBrokers(k.Brokers), k.Direct())
			// endOffset asks the partition's leader, at the address the
			// broker advertises (franz-go gives up on a produce it cannot
			// send only when its records time out; a request ends with ctx).
			endOffset := func(cl *kgo.Client) (int64, error) {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
				if err == nil {
					err = ends.Error()
				}
				o, _ := ends.Lookup(topic, 0)
				return o.Offset, err
			}
			produce := func(cl *kgo.Client) error {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				return cl.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr()
			}

			ctx := context.Background()
			brokers, err := kadm.NewClient(direct).ListBrokers(ctx)
			if err != nil || len(brokers) != 1 {
				t.Fatalf("list brokers: %v, %v", brokers, err)
			}
			if got := brokers[0].Host + ":" + itoa(uint16(brokers[0].Port)); got != k.Proxy.Addr() || k.Brokers != got {
				t.Fatalf("the broker advertises %s (Brokers %s), want the proxy %s", got, k.Brokers, k.Proxy.Addr())
			}
			for name, cl := range map[string]*kgo.Client{"behind": behind, "direct": direct} {
				if err := produce(cl); err != nil {
					t.Fatalf("%s: produce before the fault: %v", name, err)
				}
			}

			fault.inject(k.Proxy)
			if o, err := endOffset(behind); err == nil {
				t.Fatalf("asked the leader through a proxy that is %s: end offset %d", fault.name, o)
			}
			if err := produce(direct); err != nil {
				t.Fatalf("direct produce during the fault: %v", err)
			}
			if o, err := endOffset(direct); err != nil || o != 3 {
				t.Fatalf("direct end offset during the fault: %d, %v; want 3", o, err)
			}

			k.Proxy.Restore()
			Await(t, "the leader answering through the proxy again", 20*time.Second, func() bool {
				o, err := endOffset(behind)
				return err == nil && o == 3
			})
			if err := produce(behind); err != nil {
				t.Fatalf("produce through the proxy after the fault: %v", err)
			}
		})
	}
}
