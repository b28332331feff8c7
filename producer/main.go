// Command producer feeds Kafka with orders for demos, load and tests: the
// sample order, generated orders, orders from a file, and deliberately bad
// messages that exercise the ingestor's dead-letter path.
//
//	producer --brokers 127.0.0.1:9092 --topic orders --generate 300 --seed 1
//
// `producer dlq stats|ls|redrive` inspects the dead-letter topic and puts
// letters back (dlqcmd.go, package dlq). See README.md for every flag.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/orderservice/orders/producer/progress"
	"github.com/orderservice/orders/producer/send"
	"github.com/orderservice/orders/producer/source"
	"github.com/orderservice/orders/shared/ordergen"
)

// Exit statuses.
const (
	exitOK          = 0
	exitFailure     = 1   // an error, or a message that was not delivered
	exitUsage       = 2   // bad flags
	exitInterrupted = 130 // Ctrl-C (128 + SIGINT), after flushing
)

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	go handleSignals(cancel)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	os.Exit(exitCode(err, os.Stderr))
}

// handleSignals cancels the run at the first SIGINT or SIGTERM, which
// flushes and reports. A later one exits at once, unless it follows the
// first within a second: tools like timeout(1) signal both the process and
// its group, and a single Ctrl-C must not skip the report.
func handleSignals(cancel context.CancelFunc) {
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	first := <-sig
	at := time.Now()
	cancel()
	for range sig {
		if time.Since(at) > time.Second {
			fmt.Fprintf(os.Stderr, "producer: %v again: exiting without waiting for deliveries\n", first)
			os.Exit(exitInterrupted)
		}
	}
}

// exitCode prints err (if any) and maps it to an exit status.
func exitCode(err error, stderr io.Writer) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, new(usageError)):
		fmt.Fprintf(stderr, "producer: %v\nRun 'producer --help' for usage.\n", err)
		return exitUsage
	case errors.Is(err, errInterrupted):
		fmt.Fprintln(stderr, "producer: interrupted")
		return exitInterrupted
	default:
		fmt.Fprintf(stderr, "producer: %v\n", err)
		return exitFailure
	}
}

// usageError is a problem with the command line.
type usageError struct{ error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// corrupterStream is the worker number whose seed the generator of bad
// messages uses: far above any real worker count, so that their uids never
// collide with those of --generate's orders, in this run or in a run of
// --generate with the same seed.
const corrupterStream = 1 << 30

// errInterrupted is returned when a signal stopped the run; what was sent
// has been flushed and reported.
var errInterrupted = errors.New("interrupted")

// config is the parsed command line.
type config struct {
	brokers, topic string
	props          map[string]string

	sample   bool
	generate int
	seed     int64
	seedSet  bool
	file     string
	raw      bool
	bad      int
	badRate  float64
	rate     float64
	duration time.Duration
	dryRun   bool
	workers  int

	connectTimeout time.Duration
	flushTimeout   time.Duration
	progress       progress.Mode
	interval       time.Duration
	verbose        bool
}

// count is an integer flag that remembers whether it was given, so that
// --generate 0 differs from no --generate, and help shows no fake default.
type count struct {
	n   int
	set bool
}

func (c *count) String() string {
	if c == nil || !c.set {
		return ""
	}
	return strconv.Itoa(c.n)
}

func (c *count) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return errors.New("not an integer")
	}
	c.n, c.set = n, true
	return nil
}

// props collects repeatable -X key=value flags.
type props map[string]string

func (p props) String() string { return "" }

func (p props) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || strings.TrimSpace(k) == "" {
		return fmt.Errorf("want key=value, got %q", s)
	}
	p[strings.TrimSpace(k)] = v
	return nil
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (*config, error) {
	c := &config{props: map[string]string{}}
	fs := flag.NewFlagSet("producer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: producer [flags] (--sample | --generate N | --file PATH | --bad K)
       producer dlq (stats | ls | redrive) [flags]   (see producer dlq --help)

Sends orders to Kafka (idempotent producer, acks=all, key = order_uid).

`)
		fs.PrintDefaults()
	}

	brokers := brokersFrom(getenv)
	topic := getenv("PRODUCER_TOPIC")
	if topic == "" {
		topic = "orders"
	}
	fs.StringVar(&c.brokers, "brokers", brokers, "Kafka bootstrap `host:port[,host:port]` (env PRODUCER_BROKERS, KAFKA_BROKERS)")
	fs.StringVar(&c.topic, "topic", topic, "topic to send to (env PRODUCER_TOPIC)")
	fs.Var(props(c.props), "X", "librdkafka property `key=value`, repeatable (overrides the defaults)")

	fs.BoolVar(&c.sample, "sample", false, "send the canonical sample order (model.json)")
	var generate, bad count
	fs.Var(&generate, "generate", "send `N` random valid orders (0: until --duration or Ctrl-C)")
	fs.Int64Var(&c.seed, "seed", 0, "random `seed` for --generate, --bad and --bad-rate (default: time-based, printed)")
	fs.IntVar(&c.workers, "workers", 4, "goroutines generating orders in parallel; part of what --seed reproduces")
	fs.StringVar(&c.file, "file", "", "send the orders in `PATH` (JSON array, object or NDJSON; - for stdin)")
	fs.BoolVar(&c.raw, "raw", false, "with --file: send elements as they are, without validating them")
	fs.Var(&bad, "bad", "send `K` bad messages cycling through every dead-letter class")
	fs.Float64Var(&c.badRate, "bad-rate", 0, "mix bad messages into the stream: fraction `P` in [0,1)")

	fs.Float64Var(&c.rate, "rate", 0, "messages per second, `R` (0: as fast as possible)")
	fs.DurationVar(&c.duration, "duration", 0, "stop sending after this long (0: no limit)")
	fs.BoolVar(&c.dryRun, "dry-run", false, "print message values to stdout, one per line, instead of sending")

	fs.DurationVar(&c.connectTimeout, "connect-timeout", 10*time.Second, "how long to wait for the broker before giving up")
	fs.DurationVar(&c.flushTimeout, "flush-timeout", 30*time.Second, "how long to wait for deliveries at the end")
	mode := fs.String("progress", string(progress.Auto), "progress display: auto (bar on a terminal, else lines), bar, line, off")
	fs.DurationVar(&c.interval, "progress-interval", 5*time.Second, "period of the progress line when not on a terminal")
	fs.BoolVar(&c.verbose, "verbose", false, "print librdkafka's log")

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usageError{err}
	}
	if fs.NArg() > 0 {
		return nil, usagef("unexpected argument %q", fs.Arg(0))
	}
	// -1: not given.
	c.generate, c.bad = -1, -1
	if generate.set {
		c.generate = generate.n
	}
	if bad.set {
		c.bad = bad.n
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "seed" {
			c.seedSet = true
		}
	})

	var err error
	if c.progress, err = progress.ParseMode(*mode); err != nil {
		return nil, usageError{err}
	}
	modes := []string{}
	if c.sample {
		modes = append(modes, "--sample")
	}
	if generate.set && c.generate < 0 {
		return nil, usagef("--generate: want N >= 0, got %d", c.generate)
	}
	if c.generate >= 0 {
		modes = append(modes, "--generate")
	}
	if c.file != "" {
		modes = append(modes, "--file")
	}
	if bad.set {
		modes = append(modes, "--bad")
		if c.bad < 1 {
			return nil, usagef("--bad: want K >= 1, got %d", c.bad)
		}
	}
	switch len(modes) {
	case 0:
		return nil, usagef("choose what to send: --sample, --generate N, --file PATH or --bad K")
	case 1:
	default:
		return nil, usagef("choose one of %s", strings.Join(modes, ", "))
	}
	switch {
	case c.raw && c.file == "":
		return nil, usagef("--raw only applies to --file")
	case c.badRate < 0 || c.badRate >= 1:
		return nil, usagef("--bad-rate: want a fraction in [0,1), got %v", c.badRate)
	case c.badRate > 0 && c.bad >= 0:
		return nil, usagef("--bad-rate mixes bad messages into --sample, --generate or --file; --bad sends only bad ones")
	case c.interval <= 0:
		return nil, usagef("--progress-interval: want a positive duration, got %v", c.interval)
	case c.workers < 1:
		return nil, usagef("--workers: want at least 1, got %d", c.workers)
	case c.rate < 0:
		return nil, usagef("--rate: want R >= 0, got %v", c.rate)
	case c.duration < 0:
		return nil, usagef("--duration: want a positive duration, got %v", c.duration)
	case c.brokers == "" && !c.dryRun:
		return nil, usagef("--brokers is empty")
	case c.topic == "" && !c.dryRun:
		return nil, usagef("--topic is empty")
	}
	if !c.seedSet {
		c.seed = time.Now().UnixNano()
	}
	return c, nil
}

// run is the whole program; main only adds the process around it.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "dlq" {
		return runDLQ(ctx, args[1:], getenv, stdout, stderr)
	}
	c, err := parseFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the generating workers
	src, err := openSource(ctx, c, stdin)
	if err != nil {
		return err
	}

	var sink send.Sink
	if c.dryRun {
		sink = send.NewWriter(stdout)
	} else {
		kcfg := send.Config{Brokers: c.brokers, Topic: c.topic, Properties: c.props}
		if c.verbose {
			kcfg.Log = stderr
		}
		k, err := send.New(kcfg)
		if err != nil {
			return err
		}
		if err := k.Check(ctx, c.connectTimeout); err != nil {
			k.Close(0)
			if ctx.Err() != nil {
				return errInterrupted
			}
			return err
		}
		sink = k
	}
	return produce(ctx, c, src, sink, stderr)
}

// openSource builds the message iterator the flags ask for.
func openSource(ctx context.Context, c *config, stdin io.Reader) (source.Source, error) {
	var src source.Source
	switch {
	case c.sample:
		s, err := source.Sample()
		if err != nil {
			return nil, err
		}
		src = s
	case c.generate >= 0:
		src = source.Generate(ctx, c.seed, c.generate, c.workers)
	case c.file != "":
		r, name := stdin, "stdin"
		if c.file != "-" {
			f, err := os.Open(c.file) //nolint:gosec // reading the file the user names is the point
			if err != nil {
				return nil, fmt.Errorf("--file: %w", err)
			}
			defer f.Close()
			r, name = f, c.file
		}
		s, err := source.File(r, name, c.raw)
		if err != nil {
			return nil, err
		}
		src = s
	case c.bad > 0:
		return source.Bad(source.NewCorrupter(ordergen.New(source.WorkerSeed(c.seed, corrupterStream))), c.bad), nil
	}
	if c.badRate > 0 {
		gen := ordergen.New(source.WorkerSeed(c.seed, corrupterStream))
		// Reproducible test data, not secrets: a seeded PRNG is what is wanted.
		rng := rand.New(rand.NewPCG(uint64(c.seed), 0x6261642d72617465)) //nolint:gosec // "bad-rate" stream
		src = source.Mix(src, source.NewCorrupter(gen), c.badRate, rng)
	}
	return src, nil
}

// produce sends everything src yields to sink, paced, with progress, and
// reports the outcome.
func produce(ctx context.Context, c *config, src source.Source, sink send.Sink, stderr io.Writer) error {
	sendCtx := ctx
	if c.duration > 0 {
		var cancel context.CancelFunc
		sendCtx, cancel = context.WithTimeout(ctx, c.duration)
		defer cancel()
	}

	mode := c.progress
	if mode == progress.Auto {
		mode = progress.Line
		if progress.IsTerminal(stderr) {
			mode = progress.Bar
		}
	}
	total := int64(source.Len(src))
	if c.badRate > 0 || c.duration > 0 {
		total = -1
	}
	rep := progress.Start(stderr, mode, total, c.interval, func() progress.Counts {
		s := sink.Stats()
		return progress.Counts{Delivered: s.Delivered, Failed: s.Failed}
	})

	start := time.Now()
	sendErr := pump(sendCtx, src, sink, send.NewPacer(c.rate))
	stats := sink.Close(c.flushTimeout)
	elapsed := time.Since(start)
	rep.Stop()

	summarize(stderr, c, stats, elapsed)
	switch {
	case ctx.Err() != nil:
		return errInterrupted
	case sendErr != nil && !errors.Is(sendErr, context.DeadlineExceeded):
		return sendErr
	case stats.Failed > 0:
		return fmt.Errorf("%d of %d messages were not delivered", stats.Failed, stats.Queued)
	}
	return nil
}

// pump moves messages from src to sink until src ends or ctx does. The
// source runs one batch ahead in its own goroutine so that generating
// orders overlaps with sending them; it stays a single goroutine, so a
// seeded run yields the same sequence.
func pump(ctx context.Context, src source.Source, sink send.Sink, pacer *send.Pacer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := prefetch(ctx, src, 256, 4)
	for b := range batches {
		if b.err != nil {
			return b.err
		}
		for _, m := range b.msgs {
			if err := pacer.Wait(ctx); err != nil {
				return err
			}
			if err := sink.Send(ctx, m); err != nil {
				return err
			}
		}
	}
	return ctx.Err()
}

type batch struct {
	msgs []source.Message
	err  error
}

// prefetch reads src in batches of size into a channel depth batches deep.
// The channel closes at the end of src, after an error, or when ctx ends.
func prefetch(ctx context.Context, src source.Source, size, depth int) <-chan batch {
	out := make(chan batch, depth)
	go func() {
		defer close(out)
		for {
			b := batch{msgs: make([]source.Message, 0, size)}
			for len(b.msgs) < size {
				m, err := src.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					b.err = err
					break
				}
				b.msgs = append(b.msgs, m)
			}
			last := b.err != nil || len(b.msgs) < size
			if len(b.msgs) > 0 || b.err != nil {
				select {
				case out <- b:
				case <-ctx.Done():
					return
				}
			}
			if last {
				return
			}
		}
	}()
	return out
}

// summarize prints the final report.
func summarize(w io.Writer, c *config, s send.Stats, elapsed time.Duration) {
	where := fmt.Sprintf("to %s at %s", c.topic, c.brokers)
	if c.dryRun {
		where = "to stdout (dry run)"
	}
	rate := float64(s.Delivered) / max(elapsed.Seconds(), 1e-9)
	noun := "messages"
	if s.Delivered == 1 {
		noun = "message"
	}
	fmt.Fprintf(w, "sent %d %s %s in %s (%s msg/s); failed %d",
		s.Delivered, noun, where, elapsed.Round(time.Millisecond), strconv.FormatFloat(rate, 'f', 0, 64), s.Failed)
	if c.generate >= 0 || c.bad > 0 || c.badRate > 0 {
		fmt.Fprintf(w, "; seed %d", c.seed)
	}
	fmt.Fprintln(w)
	for _, e := range s.Errors {
		if e.Key != "" {
			fmt.Fprintf(w, "  %d × %s (first: key %q)\n", e.Count, e.Err, e.Key)
		} else {
			fmt.Fprintf(w, "  %d × %s\n", e.Count, e.Err)
		}
		if strings.Contains(e.Err, "Message size too large") {
			fmt.Fprintln(w, "    the broker's or topic's max.message.bytes is below the message size (too_large is 1 MiB + 1 KiB uncompressed)")
		}
	}
}
