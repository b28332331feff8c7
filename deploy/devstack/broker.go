package main

import (
	"fmt"
	"strconv"

	"github.com/twmb/franz-go/pkg/kfake"
)

const (
	ordersTopic      = "orders"
	ordersPartitions = 6
	dlqTopic         = "orders.dlq"
	// maxMessageBytes lets the broker accept oversized records (the
	// producer's --bad mode sends one over 1 MiB) so that rejecting them is
	// the ingestor's job, as it would be with a broker configured for large
	// messages, instead of the produce request failing.
	maxMessageBytes = 16 << 20
)

// startBroker runs an in-process Kafka-protocol broker on 127.0.0.1:port
// with the topics the services use already created.
func startBroker(port int) (*kfake.Cluster, error) {
	c, err := kfake.NewCluster(
		kfake.Ports(port),
		kfake.SeedTopics(ordersPartitions, ordersTopic),
		kfake.SeedTopics(1, dlqTopic),
		kfake.BrokerConfigs(map[string]string{"message.max.bytes": strconv.Itoa(maxMessageBytes)}),
	)
	if err != nil {
		return nil, fmt.Errorf("start kafka broker on port %d: %w", port, err)
	}
	return c, nil
}
