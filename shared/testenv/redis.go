package testenv

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/orderservice/orders/shared/probe"
)

// RedisEnv is a Redis connection with a key space of its own.
type RedisEnv struct {
	// URL is the server's redis:// URL.
	URL string
	// Client is connected to URL and closed at cleanup.
	Client *redis.Client
	// Prefix ("t<hex>:") is unique to the test: give it to the code under
	// test as its key prefix. Keys under it are deleted at cleanup.
	Prefix string
}

// redisServer finds the server on its first call; every later call
// returns the same answer.
var redisServer = sync.OnceValues(func() (found, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	u, source, err := findRedis(ctx, defaultSources())
	return found{u, source}, err
})

// Redis returns a connection to a Redis server and a key prefix private to
// the test; it deletes the keys under the prefix when the test ends. It
// fails the test when no Redis server can be had.
func Redis(t testing.TB) *RedisEnv {
	t.Helper()
	srv, err := redisServer()
	if err != nil {
		t.Fatalf("testenv: Redis: %v", err)
	}
	u := srv.addr
	opts, err := redis.ParseURL(u)
	if err != nil {
		t.Fatalf("testenv: Redis (%s): %v", srv.source, err)
	}
	env := &RedisEnv{URL: u, Client: redis.NewClient(opts), Prefix: "t" + randomHex(6) + ":"}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// A fresh client: the test may have closed its own.
		c := redis.NewClient(opts)
		defer c.Close()
		if err := deletePrefix(ctx, c, env.Prefix); err != nil {
			t.Errorf("testenv: delete Redis keys %s*: %v", env.Prefix, err)
		}
		_ = env.Client.Close()
	})
	return env
}

// deletePrefix deletes every key starting with prefix. SCAN, unlike KEYS,
// does not block a server that other tests share.
func deletePrefix(ctx context.Context, c *redis.Client, prefix string) error {
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var batch []string
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 1000 {
			if err := c.Unlink(ctx, batch...).Err(); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if err := iter.Err(); err != nil {
		return err
	}
	if len(batch) > 0 {
		return c.Unlink(ctx, batch...).Err()
	}
	return nil
}

func findRedis(ctx context.Context, src sources) (url, source string, err error) {
	if u := src.getenv("TEST_REDIS_URL"); u != "" {
		if err := probe.Redis(ctx, u); err != nil {
			return "", "", fmt.Errorf("TEST_REDIS_URL: %w", err)
		}
		return u, "TEST_REDIS_URL", nil
	}
	var why reasons
	why.add("TEST_REDIS_URL unset")
	if pool, err := src.docker(); err != nil {
		why.add(err.Error())
	} else {
		u, err := dockerRedis(pool)
		if err != nil {
			return "", "", fmt.Errorf("%s; docker: %w", why, err)
		}
		err = probe.Wait(ctx, time.Minute, func(ctx context.Context) error { return probe.Redis(ctx, u) })
		if err != nil {
			return "", "", fmt.Errorf("docker redis:7 did not answer: %w", err)
		}
		return u, "docker redis:7", nil
	}
	local := "redis://" + src.redisAddr + "/0"
	if err := answers(src.redisAddr); err != nil {
		why.add(src.redisAddr + " " + errText(err))
	} else if err := probe.Redis(ctx, local); err != nil {
		why.add(src.redisAddr + ": " + err.Error())
	} else {
		return local, src.redisAddr, nil
	}
	bin, err := src.lookPath("redis-server")
	if err != nil {
		why.add("no redis-server binary found: install redis-server")
		return "", "", errors.New(why.String())
	}
	u, _, err := startRedis(ctx, bin)
	if err != nil {
		why.add("throwaway server: " + err.Error())
		return "", "", errors.New(why.String())
	}
	return u, "throwaway server", nil
}
