package redis

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"

	"github.com/orderservice/orders/reader/cache"
	"github.com/orderservice/orders/shared/model"
	"github.com/orderservice/orders/shared/redisconn"
	"github.com/orderservice/orders/shared/retry"
)

// DefaultHealthInterval is how long a quiet subscription waits before it
// pings Redis, and then how long it waits for the answer: a connection that
// died without a reset (a host gone, a black-holing firewall) is noticed
// within twice this.
const DefaultHealthInterval = time.Second

// SubscriberOptions configure a Subscriber.
type SubscriberOptions struct {
	Logger *slog.Logger
	// Subscribed is set to 1 while subscribed, 0 while not; may be nil.
	Subscribed prometheus.Gauge
	// HealthInterval is DefaultHealthInterval when zero.
	HealthInterval time.Duration
}

// Subscriber listens to the ingestor's events channel (model.EventsChannel
// of the cache's key prefix) and hands every announcement to a
// cache.Invalidator. It keeps the subscription up by itself: a connection
// that fails or stops answering pings is closed and a new one subscribes,
// after a pause of about 100 ms doubling to 5 s while Redis stays away. Every
// subscription, the first included, begins with Invalidator.Resync: what
// was announced while it was not listening is lost.
type Subscriber struct {
	client     goredis.UniversalClient
	channel    string
	to         cache.Invalidator
	log        *slog.Logger
	subscribed prometheus.Gauge
	health     time.Duration
	first      chan struct{} // closed at the first subscription
}

// NewSubscriber returns a Subscriber on c's connection settings, key prefix
// and circuit-free client: pub/sub has a connection of its own.
func NewSubscriber(c *Cache, to cache.Invalidator, o SubscriberOptions) *Subscriber {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.HealthInterval <= 0 {
		o.HealthInterval = DefaultHealthInterval
	}
	return &Subscriber{
		client: c.client, channel: model.EventsChannel(c.prefix), to: to, log: o.Logger,
		subscribed: o.Subscribed, health: o.HealthInterval, first: make(chan struct{}),
	}
}

// Channel is the channel listened to.
func (s *Subscriber) Channel() string { return s.channel }

// Subscribed is closed once the first subscription is confirmed.
func (s *Subscriber) Subscribed() <-chan struct{} { return s.first }

// resubscribe paces new subscriptions while Redis stays away; the jitter
// keeps readers that lost it together from coming back in step.
var resubscribe = retry.Policy{Initial: 100 * time.Millisecond, Max: 5 * time.Second, Jitter: 0.5}

// Run listens until ctx ends.
func (s *Subscriber) Run(ctx context.Context) {
	s.set(0)
	pauses := resubscribe.BackOff()
	lost := false
	for attempt := 0; ctx.Err() == nil; attempt++ {
		confirmed, err := s.session(ctx, attempt)
		s.set(0)
		if ctx.Err() != nil {
			return
		}
		if confirmed {
			pauses.Reset()
		}
		pause := pauses.NextBackOff()
		if confirmed || !lost {
			s.log.Warn("events channel lost: new orders are seen once their negative cache entries expire; resubscribing",
				"channel", s.channel, "retry_in", pause.String(), "err", err)
		}
		lost = true
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// session subscribes on a new connection and serves it until it fails or
// ctx ends. It reports whether the subscription was confirmed. On a Redis
// Cluster each attempt after the first goes to the next master
// (redisconn.Subscribe): the cluster relays the channel to every node, and
// a lost master must not take the subscription with it.
func (s *Subscriber) session(ctx context.Context, attempt int) (confirmed bool, err error) {
	ps := redisconn.Subscribe(ctx, s.client, s.channel, attempt) // connects, or leaves it to the first Receive
	defer ps.Close()
	// A read waits for its timeout, not for ctx: closing the connection
	// ends it at once.
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer stop()
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, s.health)
		if err != nil {
			if ctx.Err() != nil {
				return confirmed, ctx.Err()
			}
			var ne net.Error
			if !pinged && confirmed && errors.As(err, &ne) && ne.Timeout() {
				// Quiet: make sure the connection still answers.
				if err := ps.Ping(ctx); err != nil {
					return confirmed, err
				}
				pinged = true
				continue
			}
			// Broken, or no answer to the ping: a new connection.
			return confirmed, err
		}
		pinged = false
		switch m := msg.(type) {
		case *goredis.Subscription:
			if m.Kind == "subscribe" && m.Channel == s.channel {
				s.to.Resync()
				s.set(1)
				if !confirmed {
					s.log.Info("listening to the events channel", "channel", s.channel)
				}
				confirmed = true
				select {
				case <-s.first:
				default:
					close(s.first)
				}
			}
		case *goredis.Message:
			s.apply(ctx, m.Payload)
		case *goredis.Pong:
		}
	}
}

// apply decodes one announcement and hands it on. Anyone who can publish
// on the channel can send anything: a message that does not decode is
// logged (without its content) and dropped.
func (s *Subscriber) apply(ctx context.Context, payload string) {
	ev, err := model.DecodeEvents([]byte(payload))
	if err != nil {
		s.log.Warn("events channel: message dropped", "channel", s.channel, "bytes", len(payload), "err", err)
		return
	}
	s.to.Invalidate(ctx, cache.Changes{Stored: ev.Stored, Erased: ev.Erased})
}

func (s *Subscriber) set(v float64) {
	if s.subscribed != nil {
		s.subscribed.Set(v)
	}
}
