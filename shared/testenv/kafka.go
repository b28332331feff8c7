package testenv

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderservice/orders/shared/probe"
)

// KafkaEnv is a Kafka cluster to test against.
type KafkaEnv struct {
	// Brokers is the bootstrap address list (host:port[,host:port]), as
	// librdkafka's bootstrap.servers takes it.
	Brokers string
	// Fake is the in-process cluster when the source is kfake, else nil.
	// Tests may use it for fault injection; code that needs it cannot run
	// against a real broker.
	Fake *kfake.Cluster
}

// kafkaCluster finds a shared cluster on its first call (none, with the
// reason as its source, means kfake); every later call returns the same
// answer.
var kafkaCluster = sync.OnceValues(func() (found, error) {
	brokers, source, err := findKafka(defaultSources())
	return found{brokers, source}, err
})

// Kafka returns a Kafka cluster: the one named by TEST_KAFKA_BROKERS, a
// container when a Docker engine answers, else a new in-process kfake
// cluster closed when the test ends. Topics are not created automatically
// (as on a production broker): create them with Topic. Consumer groups
// accept session timeouts down to one second, for fast rebalances.
func Kafka(t testing.TB) *KafkaEnv {
	t.Helper()
	shared, err := kafkaCluster()
	if err != nil {
		t.Fatalf("testenv: Kafka: %v", err)
	}
	if shared.addr != "" {
		return &KafkaEnv{Brokers: shared.addr}
	}
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		// Lets tests use short session timeouts, as the Docker broker does.
		kfake.GroupMinSessionTimeout(time.Second),
	)
	if err != nil {
		t.Fatalf("testenv: Kafka: TEST_KAFKA_BROKERS unset, %s, and kfake failed: %v", shared.source, err)
	}
	t.Cleanup(c.Close)
	return &KafkaEnv{Brokers: strings.Join(c.ListenAddrs(), ","), Fake: c}
}

// KafkaBrokers returns a new in-process kfake cluster of n brokers, closed
// when the test ends, whatever TEST_KAFKA_BROKERS or Docker offer: for
// tests of replicated topics (ReplicatedTopic) and of clients that talk to
// several brokers.
func KafkaBrokers(t testing.TB, n int) *KafkaEnv {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(n), kfake.GroupMinSessionTimeout(time.Second))
	if err != nil {
		t.Fatalf("testenv: kfake with %d brokers: %v", n, err)
	}
	t.Cleanup(c.Close)
	return &KafkaEnv{Brokers: strings.Join(c.ListenAddrs(), ","), Fake: c}
}

// findKafka returns a shared cluster's brokers, or no brokers and why there
// is no shared one (kfake is then used).
func findKafka(src sources) (brokers, source string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if b := src.getenv("TEST_KAFKA_BROKERS"); b != "" {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := pingKafka(pctx, b); err != nil {
			return "", "", fmt.Errorf("TEST_KAFKA_BROKERS=%s: %w", b, err)
		}
		return b, "TEST_KAFKA_BROKERS", nil
	}
	pool, err := src.docker()
	if err != nil {
		return "", err.Error(), nil
	}
	b, err := dockerKafka(pool)
	if err != nil {
		return "", "", fmt.Errorf("TEST_KAFKA_BROKERS unset; docker: %w", err)
	}
	err = probe.Wait(ctx, 2*time.Minute, func(ctx context.Context) error { return pingKafka(ctx, b) })
	if err != nil {
		return "", "", fmt.Errorf("docker apache/kafka did not answer: %w", err)
	}
	return b, "docker apache/kafka", nil
}

// pingKafka asks the cluster for its brokers.
func pingKafka(ctx context.Context, brokers string) error {
	adm, err := newAdmin(brokers)
	if err != nil {
		return err
	}
	defer adm.Close()
	_, err = adm.ListBrokers(ctx)
	return err
}

func newAdmin(brokers string) (*kadm.Client, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...))
	if err != nil {
		return nil, err
	}
	return kadm.NewClient(cl), nil
}

// Topic creates a topic named base-<random> with the given number of
// partitions and waits until every partition has a leader. The name is
// unique so that tests sharing a broker never see each other's records.
func (k *KafkaEnv) Topic(t testing.TB, base string, partitions int32) string {
	t.Helper()
	return k.ReplicatedTopic(t, base, partitions, 1)
}

// ReplicatedTopic is Topic with rf replicas of each partition (at most the
// number of brokers).
func (k *KafkaEnv) ReplicatedTopic(t testing.TB, base string, partitions int32, rf int16) string {
	t.Helper()
	name := base + "-" + randomHex(4)
	if err := k.createTopic(name, partitions, rf); err != nil {
		t.Fatalf("testenv: Kafka %s: create topic %s: %v", k.Brokers, name, err)
	}
	return name
}

func (k *KafkaEnv) createTopic(name string, partitions int32, rf int16) error {
	adm, err := newAdmin(k.Brokers)
	if err != nil {
		return err
	}
	defer adm.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := adm.CreateTopic(ctx, partitions, rf, nil, name)
	if err != nil {
		return err
	}
	if resp.Err != nil {
		return resp.Err
	}
	// A real broker answers CreateTopics before every partition has a
	// leader; clients that start right away would see errors.
	return probe.Wait(ctx, time.Minute, func(ctx context.Context) error {
		md, err := adm.Metadata(ctx, name)
		if err != nil {
			return err
		}
		td, ok := md.Topics[name]
		if !ok || td.Err != nil {
			if td.Err != nil {
				return fmt.Errorf("topic %s not in metadata yet: %w", name, td.Err)
			}
			return fmt.Errorf("topic %s not in metadata yet", name)
		}
		if int32(len(td.Partitions)) != partitions {
			return fmt.Errorf("topic %s has %d of %d partitions", name, len(td.Partitions), partitions)
		}
		for _, p := range td.Partitions {
			if p.Leader < 0 || p.Err != nil {
				return fmt.Errorf("topic %s partition %d has no leader yet", name, p.Partition)
			}
		}
		return nil
	})
}
