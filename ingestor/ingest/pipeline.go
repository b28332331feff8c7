package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/orderservice/orders/ingestor/metrics"
	"github.com/orderservice/orders/shared/model"
	"github.com/orderservice/orders/shared/retry"
)

// WaitFunc waits d (or until ctx ends) while keeping the consumer healthy
// and its fetching paused. The consumer provides it.
type WaitFunc func(ctx context.Context, d time.Duration) error

// Retry is the backoff policy for transient failures. Retries never stop
// while the failure lasts: skipping would lose orders.
type Retry = retry.Policy

// Consistency is what becomes of an order that breaks only consistency
// rules (model.ErrInconsistent): its figures or track numbers disagree,
// everything else is valid.
type Consistency string

const (
	// ConsistencyReject dead-letters it as invalid, like any invalid
	// order. The zero value means the same.
	ConsistencyReject Consistency = "reject"
	// ConsistencyAccept stores it as sent and counts it, by rule, in
	// ingestor_inconsistent_orders_total. Every other rule still applies.
	ConsistencyAccept Consistency = "accept"
)

// Options configure a Pipeline.
type Options struct {
	// MaxSize is the message size limit in bytes.
	MaxSize int
	// Retry is the backoff of transient failures.
	Retry Retry
	// Consistency is the policy for inconsistent orders.
	Consistency Consistency
}

// Pipeline handles batches; see the package documentation. Prepare and
// Commit are safe for concurrent use: the consumer commits up to
// BatchesInFlight batches at once, each in its own transaction, except a
// batch that erases (Batch.Exclusive), which it commits alone.
type Pipeline struct {
	log         *slog.Logger
	metrics     *metrics.Metrics
	decoder     model.Decoder
	store       Store
	cache       Cache
	dlq         DeadLetters
	retry       Retry
	consistency Consistency

	// dbFailing is true while database writes fail transiently.
	dbFailing atomic.Bool
	// announceFailing is true while announcing stored orders fails.
	announceFailing atomic.Bool
	// cacheMu guards cacheFailing, announceSkipUntil and announcePauses,
	// which track a failing cache (see setCache and announce).
	cacheMu           sync.Mutex
	cacheFailing      bool
	announceSkipUntil time.Time
	announcePauses    *backoff.ExponentialBackOff
	now               func() time.Time

	// outageMu guards outages, by stage ("db", "dlq").
	outageMu sync.Mutex
	outages  map[string]outage
}

// New returns a Pipeline writing to store, caching in cache and
// dead-lettering to dlq.
func New(log *slog.Logger, m *metrics.Metrics, store Store, cache Cache, dlq DeadLetters, o Options) *Pipeline {
	return &Pipeline{
		log: log, metrics: m, decoder: model.Decoder{MaxSize: o.MaxSize},
		store: store, cache: cache, dlq: dlq, retry: o.Retry, consistency: o.Consistency, now: time.Now,
		outages: map[string]outage{}, announcePauses: cachePause.BackOff(),
	}
}

// DatabaseFailing reports whether some batch's database write failed
// transiently and has not succeeded since: /readyz reports not ready.
func (p *Pipeline) DatabaseFailing() bool { return p.dbFailing.Load() }

// entry is one message on its way through the pipeline.
type entry struct {
	msg       *Message
	order     *model.Order
	canonical []byte
	sha       [sha256.Size]byte
	// tombstone is set for a tombstone, whose uid (the key) is erased.
	tombstone bool
	uid       string
	// rules are the consistency rules an accepted order breaks.
	rules []model.Rule
	// first is the index of the entry that carries the same uid earlier in
	// the batch, or -1.
	first  int
	reason Reason // set when the message is dead-lettered
	err    string
	// outcome is metrics.OutcomeStored, OutcomeDuplicate or OutcomeErased
	// once resolved (dead letters have a reason instead).
	outcome string
}

// Batch is a prepared batch: every message decoded, validated and
// canonically encoded, not yet written anywhere. Preparing is pure CPU work
// with no side effect, so the consumer prepares the next batch while the
// current one is being written.
type Batch struct {
	entries []entry
}

// Len is the number of messages in the batch.
func (b *Batch) Len() int { return len(b.entries) }

// Exclusive reports whether the batch erases orders (it holds a
// tombstone). Such a batch must be committed alone: after every batch
// consumed before it is done, and before any later one starts. Then an
// order and a tombstone of the same uid in different batches take effect
// in offset order, in the database and in the cache: a tombstone erases
// the orders before it and refuses those after it.
func (b *Batch) Exclusive() bool {
	for i := range b.entries {
		if b.entries[i].tombstone {
			return true
		}
	}
	return false
}

// Messages calls f for every message of the batch, in order.
func (b *Batch) Messages(f func(*Message)) {
	for i := range b.entries {
		f(b.entries[i].msg)
	}
}

// Keep drops the messages whose partition keep rejects (the consumer lost
// those partitions while the batch waited; their new owner handles them).
func (b *Batch) Keep(keep func(partition int32) bool) {
	kept := b.entries[:0]
	for _, e := range b.entries {
		if keep(e.msg.Partition) {
			kept = append(kept, e)
		}
	}
	b.entries = kept
}

// Handle prepares and commits msgs; see Prepare and Commit.
func (p *Pipeline) Handle(ctx context.Context, msgs []Message, wait WaitFunc) error {
	return p.Commit(ctx, p.Prepare(msgs), wait)
}

// Prepare decodes, validates and encodes every message canonically,
// spreading the work over the available cores: JSON decoding and validation
// are the CPU-heavy part of ingestion.
func (p *Pipeline) Prepare(msgs []Message) *Batch {
	entries := make([]entry, len(msgs))
	workers := runtime.GOMAXPROCS(0)
	if len(msgs) < 64 {
		workers = 1
	}
	chunk := max((len(msgs)+workers-1)/workers, 1)
	var wg sync.WaitGroup
	for lo := 0; lo < len(msgs); lo += chunk {
		hi := min(lo+chunk, len(msgs))
		wg.Go(func() {
			for i := lo; i < hi; i++ {
				entries[i] = p.prepareOne(&msgs[i])
			}
		})
	}
	wg.Wait()
	return &Batch{entries: entries}
}

// Commit gives every message of b a durable outcome. It returns nil when
// all are resolved (their offsets may be stored) and ctx's error when it
// was cancelled first (none may be stored).
//
// The tombstones of the batch are erased first, in one transaction. Then
// the orders are written, but not those whose uid a tombstone of the batch
// erases: one before the tombstone is erased with it (outcome erased, as
// if stored and deleted; dead-lettered as erased when its uid was erased
// before the batch already), one after it is dead-lettered as erased, like
// an order whose uid the store reports erased. The stored orders are cached,
// the erased ones removed from the cache (retried until done: an erasure
// is not complete while Redis still serves the order), and the changes
// announced to the readers.
func (p *Pipeline) Commit(ctx context.Context, b *Batch, wait WaitFunc) error {
	if b.Len() == 0 {
		return nil
	}
	p.metrics.BatchSize.Observe(float64(b.Len()))
	entries := b.entries

	erasures := p.resolveTombstones(entries)
	erased, err := p.erase(ctx, erasures, wait)
	if err != nil {
		return err
	}
	uids := make([]string, len(erasures))
	repeated := map[string]bool{}
	for i, er := range erasures {
		uids[i] = er.UID
		if erased[i].Repeated {
			repeated[er.UID] = true
		}
	}
	if len(repeated) > 0 {
		// An order that a later tombstone of the batch erases, of a uid
		// erased before the batch: in offset order it was refused first.
		for i := range entries {
			if e := &entries[i]; e.order != nil && e.outcome == metrics.OutcomeErased && repeated[e.order.OrderUID] {
				e.outcome, e.reason, e.err = "", ReasonErased, erasedText
			}
		}
	}

	// Resolve uids repeated within the batch; only first occurrences go to
	// the database.
	firstOf := make(map[string]int, len(entries))
	writes := make([]StoredOrder, 0, len(entries))
	writeIdx := make([]int, 0, len(entries))
	for i := range entries {
		e := &entries[i]
		if e.reason != "" || e.outcome != "" {
			continue
		}
		if j, ok := firstOf[e.order.OrderUID]; ok {
			e.first = j
			continue
		}
		firstOf[e.order.OrderUID] = i
		writes = append(writes, StoredOrder{Order: e.order, SHA256: e.sha})
		writeIdx = append(writeIdx, i)
	}

	results, err := p.write(ctx, writes, wait)
	if err != nil {
		return err
	}
	committed := p.now()
	cache := make([]CacheEntry, 0, len(results))
	for k, r := range results {
		e := &entries[writeIdx[k]]
		switch r.Status {
		case Inserted:
			e.outcome = metrics.OutcomeStored
			if !e.msg.Timestamp.IsZero() { // records without a timestamp have none to measure from
				p.metrics.EndToEnd.Observe(max(committed.Sub(e.msg.Timestamp).Seconds(), 0))
			}
			for _, r := range e.rules {
				p.metrics.InconsistentOrders.WithLabelValues(string(r)).Inc()
			}
		case Duplicate:
			e.outcome = metrics.OutcomeDuplicate
		case Conflict:
			e.reason, e.err = ReasonConflict, fmt.Sprintf("order %s is already stored with different content", e.order.OrderUID)
		case Rejected:
			e.reason, e.err = ReasonDBPermanent, rejectedText(r.Err)
		case Erased:
			e.reason, e.err = ReasonErased, erasedText
		}
		if e.outcome != "" {
			cache = append(cache, CacheEntry{UID: e.order.OrderUID, Canonical: e.canonical})
		}
	}
	for i := range entries {
		e := &entries[i]
		if e.reason != "" || e.first < 0 {
			continue
		}
		// A repeat within the batch follows its first occurrence.
		f := &entries[e.first]
		switch {
		case e.sha == f.sha && f.outcome != "":
			e.outcome = metrics.OutcomeDuplicate
		case e.sha == f.sha:
			e.reason, e.err = f.reason, f.err
		default:
			e.reason, e.err = ReasonConflict, fmt.Sprintf("order %s appears earlier in the batch (offset %d) with different content", e.order.OrderUID, f.msg.Offset)
		}
	}

	p.setCache(ctx, cache)
	changes := Changes{Stored: make([]string, len(cache)), Erased: uids}
	for i, c := range cache {
		changes.Stored[i] = c.UID
	}
	if err := p.announce(ctx, changes, wait); err != nil {
		return err
	}

	if err := p.deadLetter(ctx, entries, wait); err != nil {
		return err
	}

	for i := range entries {
		e := &entries[i]
		if e.reason != "" {
			p.metrics.Messages.WithLabelValues(metrics.OutcomeDeadLetter, string(e.reason)).Inc()
		} else {
			p.metrics.Messages.WithLabelValues(e.outcome, "").Inc()
		}
	}
	p.auditErasures(erasures, erased)
	return nil
}

// erasedText is the error of an order whose uid was erased before its
// batch.
const erasedText = "the order's uid was erased by an earlier tombstone; the order is not stored"

// resolveTombstones marks the batch's tombstones erased and settles the
// orders of their uids in offset order: an order before the uid's first
// tombstone is erased with it (never written: stored and then deleted comes
// to nothing stored), one after it is dead-lettered as erased. It returns
// one Erasure per tombstoned uid, named after its first tombstone.
func (p *Pipeline) resolveTombstones(entries []entry) []Erasure {
	first := map[string]int{}
	var erasures []Erasure
	for i := range entries {
		e := &entries[i]
		if !e.tombstone {
			continue
		}
		e.outcome = metrics.OutcomeErased
		if _, ok := first[e.uid]; !ok {
			first[e.uid] = i
			erasures = append(erasures, Erasure{UID: e.uid, Topic: e.msg.Topic, Partition: e.msg.Partition, Offset: e.msg.Offset})
		}
	}
	if len(erasures) == 0 {
		return nil
	}
	for i := range entries {
		e := &entries[i]
		if e.order == nil || e.reason != "" {
			continue
		}
		switch j, ok := first[e.order.OrderUID]; {
		case !ok:
		case j < i:
			e.reason, e.err = ReasonErased, fmt.Sprintf(
				"the order's uid was erased by a tombstone earlier in the batch (offset %d); the order is not stored", entries[j].msg.Offset)
		default:
			e.outcome = metrics.OutcomeErased
		}
	}
	return erasures
}

// erase erases the batch's tombstoned uids in one Store call, retrying
// transient failures, and returns what each erasure found.
func (p *Pipeline) erase(ctx context.Context, erasures []Erasure, wait WaitFunc) ([]EraseResult, error) {
	if len(erasures) == 0 {
		return nil, nil
	}
	var results []EraseResult
	err := p.withRetry(ctx, "db", wait, func() error {
		r, err := p.store.Erase(ctx, erasures)
		if err == nil && len(r) != len(erasures) {
			err = fmt.Errorf("store answered %d erasures of %d", len(r), len(erasures))
		}
		results = r
		return err
	})
	return results, err
}

// auditErasures counts and logs the erasures of a committed batch. The log
// line names the uid by its hash (HashUID) only; the erased_orders row is
// the durable record.
func (p *Pipeline) auditErasures(erasures []Erasure, results []EraseResult) {
	for i, er := range erasures {
		result := metrics.ErasureUnknown
		switch {
		case results[i].Deleted:
			result = metrics.ErasureDeleted
		case results[i].Repeated:
			result = metrics.ErasureRepeated
		}
		p.metrics.Erasures.WithLabelValues(result).Inc()
		h := HashUID(er.UID)
		p.log.Info("order erased", "uid_sha256", hex.EncodeToString(h[:]), "result", result,
			"topic", er.Topic, "partition", er.Partition, "offset", er.Offset)
	}
}

// announce tells the readers what the batch changed. For a batch that
// erased, the erased orders are first removed from the cache, and both
// steps are retried until done (stage "redis"): until then a reader could
// still serve an erased order. Otherwise a failure is counted and
// ingestion goes on, as for cache writes: the readers then see the new
// orders once their negative cache entries expire.
func (p *Pipeline) announce(ctx context.Context, c Changes, wait WaitFunc) error {
	if len(c.Erased) > 0 {
		return p.withRetry(ctx, "redis", wait, func() error {
			if err := p.cache.Delete(ctx, c.Erased); err != nil {
				return fmt.Errorf("remove erased orders from the cache: %w", err)
			}
			if err := p.cache.Announce(ctx, c); err != nil {
				p.metrics.EventsPublishErrors.Inc()
				return fmt.Errorf("announce erasures: %w", err)
			}
			p.metrics.EventsPublished.Inc()
			return nil
		})
	}
	if len(c.Stored) == 0 {
		return nil
	}
	p.cacheMu.Lock()
	skip := p.now().Before(p.announceSkipUntil)
	p.cacheMu.Unlock()
	if skip { // publishing failed moments ago: do not wait for it again
		p.metrics.EventsPublishErrors.Inc()
		return nil
	}
	err := p.cache.Announce(ctx, c)
	p.cacheMu.Lock()
	if err != nil {
		p.metrics.EventsPublishErrors.Inc()
		p.announceSkipUntil = p.now().Add(p.announcePauses.NextBackOff())
	} else {
		p.metrics.EventsPublished.Inc()
		p.announcePauses.Reset()
	}
	p.cacheMu.Unlock()
	if failing := err != nil; p.announceFailing.Swap(failing) != failing {
		if failing {
			p.log.Warn("announcing stored orders failing; readers see them once their negative cache expires", "err", err)
		} else {
			p.log.Info("announcing stored orders recovered")
		}
	}
	return nil
}

func (p *Pipeline) prepareOne(m *Message) entry {
	e := entry{msg: m, first: -1}
	if m.Tombstone() {
		if !model.UIDPattern.MatchString(string(m.Key)) {
			e.reason, e.err = ReasonMalformed, "tombstone (null value) without an order_uid as its key"
			return e
		}
		e.tombstone, e.uid = true, string(m.Key)
		return e
	}
	// Most messages are already canonical (the producer sends orders so):
	// then the bytes to hash and cache are the message's own.
	o, canonical, err := p.decoder.DecodeCanonical(m.Value)
	switch {
	case errors.Is(err, model.ErrTooLarge):
		e.reason, e.err = ReasonTooLarge, err.Error()
		return e
	case err != nil: // ErrEmpty, ErrMalformed
		e.reason, e.err = ReasonMalformed, err.Error()
		return e
	}
	if err := o.Validate(); err != nil {
		var ve *model.ValidationError
		if p.consistency != ConsistencyAccept || !errors.Is(err, model.ErrInconsistent) || !errors.As(err, &ve) {
			e.reason, e.err = ReasonInvalid, err.Error()
			return e
		}
		e.rules = ve.Rules()
	}
	if canonical == nil {
		if canonical, err = o.AppendCanonical(make([]byte, 0, len(m.Value)+256)); err != nil {
			e.reason, e.err = ReasonInvalid, err.Error()
			return e
		}
	}
	e.order, e.canonical, e.sha = o, canonical, sha256.Sum256(canonical)
	return e
}

// cachePause is how long announcements are skipped after one failed: a
// black-holed Redis would otherwise cost every batch the full cache
// timeout. It stays 5 s however long the failure lasts. (Cache writes need
// no pause here: the Cache skips a failing node itself, per node, so that
// one lost master of a cluster does not stop the others' writes.)
var cachePause = retry.Policy{Initial: 5 * time.Second, Max: 5 * time.Second}

// setCache writes the stored orders to the cache. Failures are logged once
// per state change and counted; they never fail the batch (the reader
// falls back to PostgreSQL for those orders). The Cache skips the nodes
// whose circuit is open (a black-holed Redis costs one timeout per probe,
// not one per batch); a small batch whose orders all belong to one lost
// master of a cluster must not stop the other masters' writes.
func (p *Pipeline) setCache(ctx context.Context, entries []CacheEntry) {
	if len(entries) == 0 {
		return
	}
	failed, err := p.cache.Set(ctx, entries)
	p.cacheMu.Lock()
	defer p.cacheMu.Unlock()
	if err != nil {
		p.metrics.RedisErrors.Add(float64(failed))
		if !p.cacheFailing {
			p.log.Warn("cache writes failing; orders are still stored, the reader falls back to PostgreSQL",
				"failed", failed, "err", err)
		}
		p.cacheFailing = true
		return
	}
	if p.cacheFailing {
		p.cacheFailing = false
		p.log.Info("cache writes recovered")
	}
}

// write stores orders, retrying transient failures; each retry writes only
// the orders still pending.
func (p *Pipeline) write(ctx context.Context, orders []StoredOrder, wait WaitFunc) ([]WriteResult, error) {
	results := make([]WriteResult, len(orders))
	pending := make([]int, len(orders))
	for i := range pending {
		pending[i] = i
	}
	err := p.withRetry(ctx, "db", wait, func() error {
		if len(pending) == 0 {
			return nil
		}
		batch := make([]StoredOrder, len(pending))
		for k, i := range pending {
			batch[k] = orders[i]
		}
		res, err := p.store.Write(ctx, batch)
		var still []int
		for k, i := range pending {
			if res[k].Status == Pending {
				still = append(still, i)
			} else {
				results[i] = res[k]
			}
		}
		pending = still
		if err == nil && len(pending) > 0 {
			err = errors.New("writer left orders pending without an error")
		}
		return err
	})
	return results, err
}

// deadLetter publishes the batch's dead letters, retrying until every one
// is acknowledged, and logs each (without personal data: uid, position and
// reason only).
func (p *Pipeline) deadLetter(ctx context.Context, entries []entry, wait WaitFunc) error {
	var letters []DeadLetter
	now := p.now()
	for i := range entries {
		e := &entries[i]
		if e.reason == "" {
			continue
		}
		l := DeadLetter{Msg: e.msg, Reason: e.reason, Error: e.err, Time: now}
		attrs := []any{"partition", e.msg.Partition, "offset", e.msg.Offset, "reason", e.reason}
		switch {
		case e.reason == ReasonErased:
			l.DropValue = "the order's uid is erased: its content is not kept"
			h := HashUID(e.order.OrderUID)
			attrs = append(attrs, "uid_sha256", hex.EncodeToString(h[:]))
		case e.order != nil:
			attrs = append(attrs, "uid", e.order.OrderUID)
		}
		letters = append(letters, l)
		if e.reason != ReasonDBPermanent { // decode/validation texts name fields, never values
			attrs = append(attrs, "err", e.err)
		}
		p.log.Warn("dead-lettering message", attrs...)
	}
	return p.withRetry(ctx, "dlq", wait, func() error {
		if len(letters) == 0 {
			return nil
		}
		delivered, err := p.dlq.Send(ctx, letters)
		var still []DeadLetter
		for i, ok := range delivered {
			if !ok {
				still = append(still, letters[i])
			}
		}
		letters = still
		if err == nil && len(letters) > 0 {
			err = errors.New("dead-letter producer left letters unacknowledged without an error")
		}
		return err
	})
}

// withRetry runs op until it succeeds or ctx ends, waiting with exponential
// backoff and jitter between attempts. It logs once when the stage starts
// failing and once when it recovers, never per attempt, however many
// batches in flight fail together (see outageBegin).
func (p *Pipeline) withRetry(ctx context.Context, stage string, wait WaitFunc, op func() error) error {
	b := p.retry.BackOff()
	failing := false
	attempts := 0
	defer func() {
		if failing { // abandoned while failing: no longer counts as this stage's failure
			p.outageEnd(stage, attempts, false)
		}
	}()
	for {
		err := op()
		if err == nil {
			if failing {
				failing = false
				p.outageEnd(stage, attempts, true)
			}
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: abandoned: %w", stage, ctx.Err())
		}
		if !failing {
			failing = true
			p.outageBegin(stage, err)
		}
		attempts++
		p.metrics.Retries.WithLabelValues(stage).Inc()
		if err := wait(ctx, b.NextBackOff()); err != nil {
			return fmt.Errorf("%s: abandoned: %w", stage, err)
		}
	}
}

// outage is the state of one failing stage across the batches in flight.
type outage struct {
	batches int       // batches currently retrying this stage
	since   time.Time // when the first of them started failing
}

// outageBegin records that one more batch fails at stage; the first one
// logs, sets the gauge and (for the database) makes /readyz fail.
func (p *Pipeline) outageBegin(stage string, err error) {
	p.outageMu.Lock()
	defer p.outageMu.Unlock()
	o := p.outages[stage]
	o.batches++
	if o.batches == 1 {
		o.since = time.Now()
		if stage == "db" {
			p.dbFailing.Store(true)
		}
		p.metrics.Outage.WithLabelValues(stage).Set(1)
		p.log.Warn("stage failing transiently; consumption paused, retrying with backoff",
			"stage", stage, "err", err)
	}
	p.outages[stage] = o
}

// outageEnd records that a batch no longer fails at stage (it succeeded if
// recovered); the last one logs the recovery and clears the gauge.
func (p *Pipeline) outageEnd(stage string, retries int, recovered bool) {
	p.outageMu.Lock()
	defer p.outageMu.Unlock()
	o := p.outages[stage]
	o.batches--
	p.outages[stage] = o
	if o.batches > 0 {
		return
	}
	p.metrics.Outage.WithLabelValues(stage).Set(0)
	if stage == "db" {
		p.dbFailing.Store(false)
	}
	if recovered {
		p.log.Info("stage recovered; consumption resumes", "stage", stage,
			"outage", time.Since(o.since).Round(time.Millisecond).String(), "retries", retries)
	}
}

// rejectedText is the dead-letter "error" header of a Rejected order: the
// store's error, which says why without quoting the order (see
// ErrPermanent).
func rejectedText(err error) string {
	if err == nil {
		return ErrPermanent.Error()
	}
	return err.Error()
}
