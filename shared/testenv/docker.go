package testenv

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/ory/dockertest/v3"
	dc "github.com/ory/dockertest/v3/docker"
)

// containerTTL bounds a container's life when the test process dies before
// Main can remove it.
const containerTTL = 600

var docker struct {
	once sync.Once
	pool *dockertest.Pool
	err  error
}

// dockerPool returns a pool for the Docker engine, or why there is none. The
// ping is bounded so that machines without an engine pay nothing for it.
func dockerPool() (*dockertest.Pool, error) {
	docker.once.Do(func() {
		pool, err := dockertest.NewPool("")
		if err != nil {
			docker.err = fmt.Errorf("no Docker engine (%w)", err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := pool.Client.PingWithContext(ctx); err != nil {
			docker.err = fmt.Errorf("no Docker engine (%w)", err)
			return
		}
		pool.MaxWait = 2 * time.Minute
		docker.pool = pool
	})
	return docker.pool, docker.err
}

// runContainer starts a container that removes itself when stopped and is
// purged by Shutdown, and returns the host address of its port.
func runContainer(pool *dockertest.Pool, opts *dockertest.RunOptions, port string) (*dockertest.Resource, string, error) {
	res, err := pool.RunWithOptions(opts, func(hc *dc.HostConfig) {
		hc.AutoRemove = true
		hc.RestartPolicy = dc.RestartPolicy{Name: "no"}
	})
	if err != nil {
		return nil, "", fmt.Errorf("start %s:%s container: %w", opts.Repository, opts.Tag, err)
	}
	_ = res.Expire(containerTTL) // best effort: Shutdown purges it anyway
	atExit(func() { _ = pool.Purge(res) })
	hostPort := res.GetHostPort(port)
	if hostPort == "" {
		return nil, "", fmt.Errorf("%s:%s container publishes no %s", opts.Repository, opts.Tag, port)
	}
	return res, hostPort, nil
}

// dockerPostgres starts postgres:16 with trust authentication, so that the
// migration's password-less roles can log in, and returns a superuser URL.
func dockerPostgres(pool *dockertest.Pool) (string, error) {
	_, hp, err := runContainer(pool, &dockertest.RunOptions{
		Repository: "postgres", Tag: "16",
		Env: []string{"POSTGRES_HOST_AUTH_METHOD=trust"},
		Cmd: []string{"postgres", "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "max_connections=300"},
	}, "5432/tcp")
	if err != nil {
		return "", err
	}
	return "postgres://postgres@" + hp + "/postgres?sslmode=disable", nil
}

// dockerRedis starts redis:7 without persistence and returns its URL.
func dockerRedis(pool *dockertest.Pool) (string, error) {
	_, hp, err := runContainer(pool, &dockertest.RunOptions{
		Repository: "redis", Tag: "7",
		Cmd: []string{"redis-server", "--save", "", "--appendonly", "no"},
	}, "6379/tcp")
	if err != nil {
		return "", err
	}
	return "redis://" + hp + "/0", nil
}

// dockerKafka starts a single-node KRaft apache/kafka:3.9. Kafka clients
// connect to the advertised address, so the host port is chosen first and
// advertised as is.
func dockerKafka(pool *dockertest.Pool) (string, error) {
	addr, err := freeAddr()
	if err != nil {
		return "", err
	}
	_, port, _ := net.SplitHostPort(addr)
	_, hp, err := runContainer(pool, &dockertest.RunOptions{
		Repository: "apache/kafka", Tag: "3.9.0",
		Env: []string{
			"KAFKA_NODE_ID=1",
			"KAFKA_PROCESS_ROLES=broker,controller",
			"KAFKA_LISTENERS=PLAINTEXT://:9092,CONTROLLER://:9093",
			"KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://127.0.0.1:" + port,
			"KAFKA_CONTROLLER_LISTENER_NAMES=CONTROLLER",
			"KAFKA_LISTENER_SECURITY_PROTOCOL_MAP=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
			"KAFKA_CONTROLLER_QUORUM_VOTERS=1@localhost:9093",
			"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR=1",
			"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR=1",
			"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR=1",
			"KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS=0",
			"KAFKA_GROUP_MIN_SESSION_TIMEOUT_MS=1000",
			// Like kfake: topics exist only when a test creates them.
			"KAFKA_AUTO_CREATE_TOPICS_ENABLE=false",
		},
		ExposedPorts: []string{"9092/tcp"},
		PortBindings: map[dc.Port][]dc.PortBinding{
			"9092/tcp": {{HostIP: "127.0.0.1", HostPort: port}},
		},
	}, "9092/tcp")
	if err != nil {
		return "", err
	}
	return hp, nil
}
