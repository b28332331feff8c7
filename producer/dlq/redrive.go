package dlq

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/orderservice/orders/producer/send"
)

// Headers a parked letter carries besides the letter's own.
const (
	HeaderParkedReason = "parked_reason"
	HeaderParkedAt     = "parked_at"
	HeaderDLQTopic     = "dlq_topic"
	HeaderDLQPartition = "dlq_partition"
	HeaderDLQOffset    = "dlq_offset"
)

// Defaults of a redrive.
const (
	DefaultGroupBase      = "order-dlq-redrive"
	DefaultParkingTopic   = "orders.dlq.parked"
	DefaultMaxRedrives    = 3
	DefaultCommitInterval = time.Second
)

// maxListed bounds the parked letters a Result describes one by one.
const maxListed = 20

// DefaultGroup is the progress group of a redrive with filter f: base for
// the zero filter, else base and a hash of the filter. Each filter keeps
// its own progress, so that letters one redrive passed over are still
// there for a redrive with another filter; the same filter resumes.
func DefaultGroup(base string, f *Filter) string {
	s := f.String()
	if s == "" {
		return base
	}
	sum := sha256.Sum256([]byte(s))
	return base + "-" + hex.EncodeToString(sum[:6])
}

// Action is what a redrive does with a letter.
type Action string

// Actions.
const (
	Send Action = "send" // republished to its source topic
	Park Action = "park" // copied to the parking topic
	Skip Action = "skip" // not selected by the filter
)

// Decision is what a redrive does with one selected letter.
type Decision struct {
	Action Action
	Letter *Letter
	// Topic and Partition are where the record goes; Partition is
	// kafka.PartitionAny when the partitioner picks it.
	Topic     string
	Partition int32
	// Why a letter is parked.
	Why string
}

// RedriveOptions configure a redrive.
type RedriveOptions struct {
	Filter Filter
	// To overrides every letter's source topic.
	To string
	// ParkingTopic receives letters that are not sent again.
	ParkingTopic string
	// MaxRedrives: a letter whose record has been redriven this many times
	// is parked instead.
	MaxRedrives int
	// Rate limits letters sent or parked per second (0: no limit).
	Rate float64
	// DryRun decides every letter but sends, parks and commits nothing.
	DryRun bool
	// CommitInterval is how often progress is committed while running
	// (DefaultCommitInterval when zero); it is also committed at the end.
	CommitInterval time.Duration
	// FlushTimeout bounds the wait for the records in flight at the end.
	FlushTimeout time.Duration
	// Plan, when set, is called with the decision on each selected letter
	// before it is carried out (a dry run's listing).
	Plan func(Decision)
}

// Brief describes a letter without its payload.
type Brief struct {
	Partition    int32     `json:"dlq_partition"`
	Offset       int64     `json:"dlq_offset"`
	Key          string    `json:"key"`
	Reason       string    `json:"reason"`
	Time         time.Time `json:"time"`
	Source       string    `json:"source"`
	RedriveCount int       `json:"redrive_count"`
	Why          string    `json:"why,omitempty"`
}

// BriefOf describes l.
func BriefOf(l *Letter) Brief {
	return Brief{Partition: l.Partition, Offset: l.Offset, Key: string(l.Key), Reason: l.Reason, Time: l.Time,
		Source: l.Source(), RedriveCount: l.RedriveCount}
}

// Result is the outcome of a redrive.
type Result struct {
	Group string
	// Letters is how many letters were to be examined (from the group's
	// position to the high watermarks), Examined how many were.
	Letters, Examined int64
	// Sent and Parked count acknowledged records (in a dry run, the
	// letters that would be); Failed the letters not redriven because of
	// an error; Skipped those the filter passed over.
	Sent, Parked, Skipped, Failed int64
	// ParkedLetters lists the first parked letters.
	ParkedLetters []Brief
	// Errors are the distinct errors of the failed letters.
	Errors []send.ErrorCount
	// CommitErr is set when the progress could not be committed at the
	// end: a next run repeats what this one did since its last commit.
	CommitErr error
}

// Redrive republishes selected letters of the reader's topic; its progress
// is the reader's group.
type Redrive struct {
	r      *Reader
	opts   RedriveOptions
	ranges []Range
	track  *tracker
	pacer  *send.Pacer
	p      *kafka.Producer // nil in a dry run
	// topics caches the partition count (or the error) of destinations.
	topics map[string]topicInfo

	reports     chan kafka.Event
	outstanding sync.WaitGroup
	eventsDone  chan struct{}
	stop        context.CancelCauseFunc

	examined, sent, parked, skipped, failed atomic.Int64

	mu     sync.Mutex
	listed []Brief
	errs   []send.ErrorCount
}

type topicInfo struct {
	partitions int
	err        error
}

// errDelivery stops a scan after a letter could not be redriven.
var errDelivery = errors.New("a letter could not be redriven")

// NewRedrive reads where the group stands and, unless it is a dry run,
// creates the producer and checks that the parking topic (and --to) exist.
func NewRedrive(ctx context.Context, r *Reader, opts RedriveOptions) (*Redrive, error) {
	if err := opts.Filter.Validate(); err != nil {
		return nil, err
	}
	if opts.MaxRedrives < 1 {
		return nil, fmt.Errorf("max redrives %d: want at least 1", opts.MaxRedrives)
	}
	if opts.CommitInterval <= 0 {
		opts.CommitInterval = DefaultCommitInterval
	}
	if opts.ParkingTopic == "" {
		opts.ParkingTopic = DefaultParkingTopic
	}
	ranges, err := r.Ranges(true)
	if err != nil {
		return nil, err
	}
	d := &Redrive{
		r: r, opts: opts, ranges: ranges, track: newTracker(ranges), pacer: send.NewPacer(opts.Rate),
		topics: map[string]topicInfo{},
	}
	for _, t := range []string{opts.ParkingTopic, opts.To} {
		if t == "" {
			continue
		}
		if _, err := d.topic(ctx, t); err != nil {
			return nil, err
		}
	}
	if opts.DryRun {
		return d, nil
	}
	conf := send.Defaults()
	conf["bootstrap.servers"] = r.cfg.Brokers
	conf["client.id"] = "order-producer-redrive"
	for k, v := range r.cfg.Properties {
		conf[k] = v
	}
	d.p, err = kafka.NewProducer(&conf)
	if err != nil {
		return nil, fmt.Errorf("create Kafka producer: %w", err)
	}
	d.reports = make(chan kafka.Event, 10_000)
	d.eventsDone = make(chan struct{})
	go send.DrainLogs(d.p.Logs(), r.cfg.Log)
	return d, nil
}

// Letters is how many letters the redrive examines.
func (d *Redrive) Letters() int64 {
	var n int64
	for _, r := range d.ranges {
		n += r.Len()
	}
	return n
}

// Progress returns the letters done so far (skipped, or sent or parked and
// acknowledged) and failed.
func (d *Redrive) Progress() (done, failed int64) {
	return d.skipped.Load() + d.sent.Load() + d.parked.Load(), d.failed.Load()
}

// Interval is the pacer's spacing of letters (0: no limit).
func (d *Redrive) Interval() time.Duration { return d.pacer.Interval() }

// Run redrives until every range is read, a letter fails, or ctx ends. The
// records in flight are then awaited (up to FlushTimeout) and the progress
// committed. It returns ctx's error when interrupted, an error naming the
// failures when a letter could not be redriven.
func (d *Redrive) Run(ctx context.Context) (Result, error) {
	scanCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	d.stop = stop
	if d.p != nil {
		go d.events()
	}

	committerDone := make(chan struct{})
	stopCommitter := make(chan struct{})
	go func() {
		defer close(committerDone)
		if d.opts.DryRun {
			return
		}
		t := time.NewTicker(d.opts.CommitInterval)
		defer t.Stop()
		for {
			select {
			case <-stopCommitter:
				return
			case <-t.C:
				// A failed commit is tried again at the next tick and
				// at the end, which reports its error.
				_ = d.commit()
			}
		}
	}()

	scanErr := d.r.Scan(scanCtx, d.ranges, func(l *Letter) error { return d.handle(scanCtx, l) })
	close(stopCommitter)
	<-committerDone
	commitErr := d.finish()
	res := d.result()
	res.CommitErr = commitErr

	switch {
	case ctx.Err() != nil:
		return res, ctx.Err()
	case res.Failed > 0 || errors.Is(context.Cause(scanCtx), errDelivery):
		return res, fmt.Errorf("%d letters were not redriven", res.Failed)
	case scanErr != nil:
		return res, scanErr
	case res.CommitErr != nil:
		return res, res.CommitErr
	}
	return res, nil
}

// handle decides one letter and carries the decision out.
func (d *Redrive) handle(ctx context.Context, l *Letter) error {
	d.examined.Add(1)
	if !d.opts.Filter.Match(l) {
		d.skipped.Add(1)
		if !d.opts.DryRun {
			d.track.skip(l.Partition, l.Offset)
		}
		return nil
	}
	dec, err := d.decide(ctx, l)
	if ctx.Err() != nil {
		return ctx.Err() // stopping: the letter is for the next run
	}
	if err != nil {
		d.fail(l, err)
		return errDelivery
	}
	if d.opts.Plan != nil {
		d.opts.Plan(dec)
	}
	if d.opts.DryRun {
		d.count(dec)
		return nil
	}
	if err := d.pacer.Wait(ctx); err != nil {
		return err
	}
	msg := d.record(dec)
	d.outstanding.Add(1)
	d.track.add(l.Partition, l.Offset)
	for {
		err := d.p.Produce(msg, d.reports)
		if err == nil {
			return nil
		}
		if !isCode(err, kafka.ErrQueueFull) {
			d.outstanding.Done()
			d.track.unadd(l.Partition, l.Offset)
			d.fail(l, fmt.Errorf("produce to %s: %w", dec.Topic, err))
			return errDelivery
		}
		// librdkafka's queue is full: wait for deliveries to make room.
		select {
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
			d.outstanding.Done()
			// Never handed over: the letter is for the next run, and
			// nothing after it is committed.
			d.track.unadd(l.Partition, l.Offset)
			return ctx.Err()
		}
	}
}

// decide says where a selected letter goes.
func (d *Redrive) decide(ctx context.Context, l *Letter) (Decision, error) {
	park := func(why string) (Decision, error) {
		return Decision{Action: Park, Letter: l, Topic: d.opts.ParkingTopic, Partition: kafka.PartitionAny, Why: why}, nil
	}
	switch {
	case l.ValueDropped != "":
		return park("the ingestor dropped the value: " + l.ValueDropped)
	case l.RedriveCount >= d.opts.MaxRedrives:
		return park(fmt.Sprintf("redriven %d times (max redrives %d)", l.RedriveCount, d.opts.MaxRedrives))
	}
	to := d.opts.To
	if to == "" {
		to = l.SourceTopic
	}
	if to == "" {
		return park("no " + HeaderSourceTopic + " header, and no topic to send it to was given")
	}
	n, err := d.topic(ctx, to)
	if err != nil {
		return Decision{}, err
	}
	// Back to the partition it came from, so that it keeps its place
	// beside the other records of its key; elsewhere, the partitioner's.
	p := kafka.PartitionAny
	if to == l.SourceTopic && l.SourcePartition >= 0 && int(l.SourcePartition) < n {
		p = l.SourcePartition
	}
	return Decision{Action: Send, Letter: l, Topic: to, Partition: p}, nil
}

// topic returns the number of partitions of a destination topic, asking
// the broker the first time.
func (d *Redrive) topic(ctx context.Context, name string) (int, error) {
	if ti, ok := d.topics[name]; ok {
		return ti.partitions, ti.err
	}
	md, err := send.AwaitTopic(ctx, d.r.c, d.r.cfg.Brokers, name, d.r.cfg.timeout())
	if ctx.Err() != nil {
		return 0, ctx.Err() // not cached: the topic is not known to be bad
	}
	ti := topicInfo{partitions: len(md.Partitions), err: err}
	d.topics[name] = ti
	return ti.partitions, ti.err
}

// inflight identifies a produced record in its delivery report.
type inflight struct {
	dec   Decision
	brief Brief
}

// record builds the record of a decision: for Send, the original key,
// value and headers with redrive-count incremented; for Park, the letter
// as it is, with where it was and why it is parked.
func (d *Redrive) record(dec Decision) *kafka.Message {
	l := dec.Letter
	var hs []kafka.Header
	switch dec.Action {
	case Send:
		hs = make([]kafka.Header, 0, len(l.Original)+1)
		for _, h := range l.Original {
			hs = append(hs, kafka.Header{Key: h.Key, Value: h.Value})
		}
		hs = append(hs, kafka.Header{Key: HeaderRedriveCount, Value: []byte(strconv.Itoa(l.RedriveCount + 1))})
	default:
		hs = make([]kafka.Header, 0, len(l.Headers)+5)
		for _, h := range l.Headers {
			hs = append(hs, kafka.Header{Key: h.Key, Value: h.Value})
		}
		add := func(k, v string) { hs = append(hs, kafka.Header{Key: k, Value: []byte(v)}) }
		add(HeaderParkedReason, dec.Why)
		add(HeaderParkedAt, time.Now().UTC().Format(time.RFC3339Nano))
		add(HeaderDLQTopic, d.r.cfg.Topic)
		add(HeaderDLQPartition, strconv.Itoa(int(l.Partition)))
		add(HeaderDLQOffset, strconv.FormatInt(l.Offset, 10))
	}
	topic := dec.Topic
	b := BriefOf(l)
	b.Why = dec.Why
	return &kafka.Message{
		TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: dec.Partition},
		Key:            l.Key,
		Value:          l.Value,
		Headers:        hs,
		Opaque:         &inflight{dec: Decision{Action: dec.Action, Topic: dec.Topic}, brief: b},
	}
}

// events handles delivery reports (on d.reports) and client errors (on the
// producer's events channel) until both close.
func (d *Redrive) events() {
	defer close(d.eventsDone)
	reports, events := d.reports, d.p.Events()
	for reports != nil || events != nil {
		select {
		case ev, ok := <-reports:
			if !ok {
				reports = nil
				continue
			}
			if m, isMsg := ev.(*kafka.Message); isMsg {
				d.report(m)
			}
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if e, isErr := ev.(kafka.Error); isErr && e.IsFatal() {
				d.recordError("fatal: "+e.Error(), "")
				d.stop(errDelivery)
			}
		}
	}
}

func (d *Redrive) report(m *kafka.Message) {
	defer d.outstanding.Done()
	in := m.Opaque.(*inflight)
	if err := m.TopicPartition.Error; err != nil {
		d.failed.Add(1)
		d.recordError(fmt.Sprintf("%s to %s: %v", in.dec.Action, in.dec.Topic, err), in.brief.Key)
		d.stop(errDelivery)
		return
	}
	d.track.ack(in.brief.Partition, in.brief.Offset)
	switch in.dec.Action {
	case Send:
		d.sent.Add(1)
	default:
		d.parked.Add(1)
		d.list(in.brief)
	}
}

// count records a dry run's decision.
func (d *Redrive) count(dec Decision) {
	switch dec.Action {
	case Send:
		d.sent.Add(1)
	default:
		d.parked.Add(1)
		b := BriefOf(dec.Letter)
		b.Why = dec.Why
		d.list(b)
	}
}

func (d *Redrive) list(b Brief) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.listed) < maxListed {
		d.listed = append(d.listed, b)
	}
}

// fail records a letter that could not be handed to the producer.
func (d *Redrive) fail(l *Letter, err error) {
	d.failed.Add(1)
	d.recordError(err.Error(), string(l.Key))
}

func (d *Redrive) recordError(msg, key string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range d.errs {
		if d.errs[i].Err == msg {
			d.errs[i].Count++
			return
		}
	}
	if len(d.errs) < 5 {
		d.errs = append(d.errs, send.ErrorCount{Err: msg, Count: 1, Key: key})
	}
}

// finish waits for the records in flight (up to FlushTimeout, then purges
// them: they count as failed) and commits the progress.
func (d *Redrive) finish() error {
	if d.p == nil {
		return nil
	}
	if left := d.p.Flush(int(d.opts.FlushTimeout.Milliseconds())); left > 0 {
		_ = d.p.Purge(kafka.PurgeQueue | kafka.PurgeInFlight | kafka.PurgeNonBlocking)
		d.p.Flush(1000)
	}
	// Every report has arrived (purged records report failure).
	d.outstanding.Wait()
	d.p.Close()
	close(d.reports)
	<-d.eventsDone
	return d.commit()
}

// commit commits what the tracker allows.
func (d *Redrive) commit() error {
	offs := d.track.uncommitted()
	if len(offs) == 0 {
		return nil
	}
	if err := d.r.Commit(offs); err != nil {
		return err
	}
	d.track.committed(offs)
	return nil
}

func (d *Redrive) result() Result {
	d.mu.Lock()
	defer d.mu.Unlock()
	return Result{
		Group: d.r.Group(), Letters: d.Letters(), Examined: d.examined.Load(),
		Sent: d.sent.Load(), Parked: d.parked.Load(), Skipped: d.skipped.Load(), Failed: d.failed.Load(),
		ParkedLetters: append([]Brief(nil), d.listed...), Errors: append([]send.ErrorCount(nil), d.errs...),
	}
}

func isCode(err error, code kafka.ErrorCode) bool {
	var kerr kafka.Error
	return errors.As(err, &kerr) && kerr.Code() == code
}
