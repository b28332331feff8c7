package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/ory/dockertest/v3"
	dc "github.com/ory/dockertest/v3/docker"
)

// containerLabel marks the containers testenv starts; its value is
// "<pid> <unix time>" of the test process that started it (see sweepContainers).
const containerLabel = "org.orderservice.testenv"

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
		sweepContainers(pool)
	})
	return docker.pool, docker.err
}

// runContainer starts a container that removes itself when stopped and is
// purged by Shutdown, and returns the host address of its port.
func runContainer(pool *dockertest.Pool, opts *dockertest.RunOptions, port string) (*dockertest.Resource, string, error) {
	opts.Labels = map[string]string{containerLabel: fmt.Sprintf("%d %d", os.Getpid(), time.Now().Unix())}
	res, err := pool.RunWithOptions(opts, func(hc *dc.HostConfig) {
		hc.AutoRemove = true
		hc.RestartPolicy = dc.RestartPolicy{Name: "no"}
	})
	if err != nil {
		return nil, "", fmt.Errorf("start %s:%s container: %w", opts.Repository, opts.Tag, err)
	}
	// Not res.Expire: it stops the container right away, only gracefully.
	atExit(func() { _ = pool.Purge(res) })
	hostPort := res.GetHostPort(port)
	if hostPort == "" {
		return nil, "", fmt.Errorf("%s:%s container publishes no %s", opts.Repository, opts.Tag, port)
	}
	// GetHostPort says localhost, which may resolve to ::1 first.
	if host, p, err := net.SplitHostPort(hostPort); err == nil && host == "localhost" {
		hostPort = net.JoinHostPort("127.0.0.1", p)
	}
	return res, hostPort, nil
}

// sweepContainers removes the containers of test processes that died
// before Shutdown (a timeout, a kill), with the rule sweep applies to
// databases. Failures only leave litter.
func sweepContainers(pool *dockertest.Pool) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list, err := pool.Client.ListContainers(dc.ListContainersOptions{
		All: true, Filters: map[string][]string{"label": {containerLabel}}, Context: ctx,
	})
	if err != nil {
		return
	}
	for _, c := range list {
		var pid int
		var created int64
		if _, err := fmt.Sscanf(c.Labels[containerLabel], "%d %d", &pid, &created); err != nil {
			continue
		}
		if abandoned(pid, created) {
			_ = pool.Client.RemoveContainer(dc.RemoveContainerOptions{ID: c.ID, Force: true, RemoveVolumes: true, Context: ctx})
		}
	}
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
