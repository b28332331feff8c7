package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/orderservice/orders/producer/dlq"
	"github.com/orderservice/orders/producer/progress"
)

// inspectGroup is the group id stats and ls give librdkafka, which wants
// one; they assign partitions by hand and never commit, so the group is
// never created on the broker.
const inspectGroup = "order-dlq-inspect"

// dlqConfig is the parsed command line of `producer dlq`.
type dlqConfig struct {
	cmd            string
	brokers, topic string
	props          map[string]string
	filter         dlq.Filter
	connectTimeout time.Duration
	verbose        bool

	// stats and ls
	json    bool
	payload bool
	limit   int

	// redrive
	dryRun       bool
	rate         float64
	maxRedrives  int
	to           string
	parking      string
	group        string
	flushTimeout time.Duration
	progress     progress.Mode
	interval     time.Duration
}

const dlqUsage = `Usage: producer dlq (stats | ls | redrive) [flags]

Reads the ingestor's dead-letter topic and puts letters back.

  stats    letters by reason, the oldest and newest, letters by source partition
  ls       the letters, one a line (--payload adds the value, --json prints NDJSON)
  redrive  republish letters to their source topic with redrive-count
           incremented; letters at --max-redrives go to a parking topic

stats and ls read the topic from its start to the high watermarks and stop.
redrive reads from its consumer group's committed offsets and commits each
letter once it is done; run 'producer dlq redrive --help' for its flags.
`

// strList collects a repeatable flag whose values may also be
// comma-separated.
type strList []string

func (l *strList) String() string { return strings.Join(*l, ",") }

func (l *strList) Set(s string) error {
	for v := range strings.SplitSeq(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

// partList is a repeatable, comma-separated list of partition numbers.
type partList []int32

func (l *partList) String() string {
	s := make([]string, len(*l))
	for i, p := range *l {
		s[i] = strconv.Itoa(int(p))
	}
	return strings.Join(s, ",")
}

func (l *partList) Set(s string) error {
	for v := range strings.SplitSeq(s, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 32)
		if err != nil || n < 0 {
			return fmt.Errorf("want partition numbers >= 0, got %q", v)
		}
		*l = append(*l, int32(n))
	}
	return nil
}

// timeFlag is an RFC 3339 time.
type timeFlag struct{ t *time.Time }

func (f timeFlag) String() string {
	if f.t == nil || f.t.IsZero() {
		return ""
	}
	return f.t.Format(time.RFC3339)
}

func (f timeFlag) Set(s string) error {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("want an RFC 3339 time such as 2026-01-02T15:04:05Z, got %q", s)
	}
	*f.t = t
	return nil
}

// brokersFrom is the default broker list: PRODUCER_BROKERS, KAFKA_BROKERS,
// or the local one.
func brokersFrom(getenv func(string) string) string {
	for _, k := range []string{"PRODUCER_BROKERS", "KAFKA_BROKERS"} {
		if v := getenv(k); v != "" {
			return v
		}
	}
	return "127.0.0.1:9092"
}

func parseDLQFlags(args []string, getenv func(string) string, stderr io.Writer) (*dlqConfig, error) {
	if len(args) == 0 {
		fmt.Fprint(stderr, dlqUsage)
		return nil, usagef("dlq: name a command: stats, ls or redrive")
	}
	c := &dlqConfig{cmd: args[0], props: map[string]string{}}
	switch c.cmd {
	case "stats", "ls", "redrive":
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stderr, dlqUsage)
		return nil, flag.ErrHelp
	default:
		fmt.Fprint(stderr, dlqUsage)
		return nil, usagef("dlq: unknown command %q: want stats, ls or redrive", c.cmd)
	}
	fs := flag.NewFlagSet("producer dlq "+c.cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: producer dlq %s [flags]\n\n", c.cmd)
		fs.PrintDefaults()
	}
	fs.StringVar(&c.brokers, "brokers", brokersFrom(getenv), "Kafka bootstrap `host:port[,host:port]` (env PRODUCER_BROKERS, KAFKA_BROKERS)")
	fs.StringVar(&c.topic, "topic", "orders.dlq", "the dead-letter `topic`")
	fs.Var(props(c.props), "X", "librdkafka property `key=value`, repeatable, for the consumer and the producer")
	fs.DurationVar(&c.connectTimeout, "connect-timeout", 10*time.Second, "how long to wait for each broker answer of the setup")
	fs.BoolVar(&c.verbose, "verbose", false, "print librdkafka's log")

	f := &c.filter
	fs.Var((*strList)(&f.Reasons), "reason", "only letters with this `reason` (repeatable or comma-separated)")
	fs.Var((*strList)(&f.Keys), "key", "only letters with this exact `key` (repeatable or comma-separated)")
	fs.StringVar(&f.KeyPattern, "key-pattern", "", "only letters whose key matches this `glob` (*, ?, [a-z])")
	fs.Var(timeFlag{&f.Since}, "since", "only letters dead-lettered at or after this RFC 3339 `time`")
	fs.Var(timeFlag{&f.Until}, "until", "only letters dead-lettered before this RFC 3339 `time`")
	fs.Var((*partList)(&f.Partitions), "partition", "only letters from these source `partitions` (e.g. 0,3)")
	fs.Int64Var(&f.OffsetFrom, "offset-from", 0, "only letters from source offset `N` on")
	var offsetTo count
	fs.Var(&offsetTo, "offset-to", "only letters up to source offset `M` (inclusive)")

	var mode *string // redrive's --progress
	switch c.cmd {
	case "stats":
		fs.BoolVar(&c.json, "json", false, "print the counts as one JSON object")
	case "ls":
		fs.BoolVar(&c.json, "json", false, "print one JSON object per letter (NDJSON)")
		fs.BoolVar(&c.payload, "payload", false, "print each letter's value too")
		fs.IntVar(&c.limit, "limit", 0, "stop after `N` letters (0: no limit)")
	case "redrive":
		fs.BoolVar(&c.dryRun, "dry-run", false, "print what would be sent and parked; send and commit nothing")
		fs.Float64Var(&c.rate, "rate", 0, "letters sent or parked per second, `R` (0: as fast as possible)")
		fs.IntVar(&c.maxRedrives, "max-redrives", dlq.DefaultMaxRedrives, "park letters whose record was redriven `N` times already")
		fs.StringVar(&c.to, "to", "", "send every letter to this `topic` instead of its source topic")
		fs.StringVar(&c.parking, "parking-topic", dlq.DefaultParkingTopic, "`topic` where letters that are not sent again go")
		fs.StringVar(&c.group, "group", "", "consumer `group` keeping the progress (default: "+dlq.DefaultGroupBase+", plus a hash of the filter when there is one)")
		fs.DurationVar(&c.flushTimeout, "flush-timeout", 30*time.Second, "how long to wait for deliveries at the end")
		mode = fs.String("progress", string(progress.Auto), "progress display: auto (bar on a terminal, else lines), bar, line, off")
		fs.DurationVar(&c.interval, "progress-interval", 5*time.Second, "period of the progress line when not on a terminal")
	}
	if err := parseDLQArgs(fs, args[1:]); err != nil {
		return nil, err
	}
	if mode != nil {
		var err error
		if c.progress, err = progress.ParseMode(*mode); err != nil {
			return nil, usageError{err}
		}
	}
	return c, c.check(offsetTo)
}

func parseDLQArgs(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// check validates the parsed flags.
func (c *dlqConfig) check(offsetTo count) error {
	if offsetTo.set {
		if offsetTo.n < 0 {
			return usagef("--offset-to: want M >= 0, got %d", offsetTo.n)
		}
		c.filter.OffsetEnd = int64(offsetTo.n) + 1
	}
	if err := c.filter.Validate(); err != nil {
		return usagef("filter: %v", err)
	}
	switch {
	case c.brokers == "":
		return usagef("--brokers is empty")
	case c.topic == "":
		return usagef("--topic is empty")
	case c.limit < 0:
		return usagef("--limit: want N >= 0, got %d", c.limit)
	case c.rate < 0:
		return usagef("--rate: want R >= 0, got %v", c.rate)
	case c.cmd == "redrive" && c.maxRedrives < 1:
		return usagef("--max-redrives: want N >= 1, got %d", c.maxRedrives)
	case c.cmd == "redrive" && c.parking == "":
		return usagef("--parking-topic is empty")
	case c.cmd == "redrive" && c.interval <= 0:
		return usagef("--progress-interval: want a positive duration, got %v", c.interval)
	case c.cmd == "redrive" && (c.parking == c.topic || c.to == c.topic):
		return usagef("redriving %s into itself: choose another --to or --parking-topic", c.topic)
	}
	return nil
}

// runDLQ is `producer dlq …`.
func runDLQ(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c, err := parseDLQFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	cfg := dlq.Config{Brokers: c.brokers, Topic: c.topic, Properties: c.props, Timeout: c.connectTimeout}
	if c.verbose {
		cfg.Log = stderr
	}
	group := inspectGroup
	if c.cmd == "redrive" {
		group = c.group
		if group == "" {
			group = dlq.DefaultGroup(dlq.DefaultGroupBase, &c.filter)
		}
	}
	r, err := dlq.Open(ctx, cfg, group)
	if err != nil {
		if ctx.Err() != nil {
			return errInterrupted
		}
		return err
	}
	defer r.Close()
	switch c.cmd {
	case "stats":
		err = dlqStats(ctx, c, r, stdout)
	case "ls":
		err = dlqList(ctx, c, r, stdout)
	default:
		err = dlqRedrive(ctx, c, r, stdout, stderr)
	}
	if ctx.Err() != nil {
		return errInterrupted
	}
	return err
}

// scanAll reads the whole topic, up to its high watermarks, calling fn on
// the letters the filter selects; it returns how many letters it read.
func scanAll(ctx context.Context, c *dlqConfig, r *dlq.Reader, fn func(*dlq.Letter) error) (int64, error) {
	ranges, err := r.Ranges(false)
	if err != nil {
		return 0, err
	}
	var n int64
	err = r.Scan(ctx, ranges, func(l *dlq.Letter) error {
		n++
		if !c.filter.Match(l) {
			return nil
		}
		return fn(l)
	})
	return n, err
}

func dlqStats(ctx context.Context, c *dlqConfig, r *dlq.Reader, stdout io.Writer) error {
	s := dlq.NewStats()
	n, err := scanAll(ctx, c, r, func(l *dlq.Letter) error {
		s.Add(l)
		return nil
	})
	if err != nil {
		return err
	}
	s.Scanned = n
	s.Done()
	if c.json {
		return json.NewEncoder(stdout).Encode(s)
	}
	filter := c.filter.String()
	if filter == "" {
		filter = "none"
	}
	fmt.Fprintf(stdout, "%s at %s: %d letters selected of %d (filter: %s)\n", c.topic, c.brokers, s.Letters, s.Scanned, filter)
	if s.Letters == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nreason\tletters")
	for _, reason := range s.Reasons() {
		fmt.Fprintf(tw, "%s\t%d\n", orDash(reason), s.ByReason[reason])
	}
	fmt.Fprintf(tw, "\nredriven before\t%d\n", s.Redriven)
	for _, e := range []struct {
		name string
		b    *dlq.Brief
	}{{"oldest", s.Oldest}, {"newest", s.Newest}} {
		fmt.Fprintf(tw, "%s\t%s\tkey %s\treason %s\tdlq %d/%d\tsource %s\n",
			e.name, e.b.Time.UTC().Format(time.RFC3339Nano), e.b.Key, orDash(e.b.Reason), e.b.Partition, e.b.Offset, e.b.Source)
	}
	fmt.Fprintln(tw, "\nsource partition\tletters\toffsets")
	for _, src := range s.BySource {
		p, offs := "?", "?"
		if src.Partition >= 0 {
			p = strconv.Itoa(int(src.Partition))
		}
		if src.FirstOffset >= 0 {
			offs = fmt.Sprintf("%d..%d", src.FirstOffset, src.LastOffset)
		}
		fmt.Fprintf(tw, "%s/%s\t%d\t%s\n", orDash(src.Topic), p, src.Letters, offs)
	}
	return tw.Flush()
}

// letterJSON is a letter as `ls --json` prints it.
type letterJSON struct {
	DLQPartition    int32        `json:"dlq_partition"`
	DLQOffset       int64        `json:"dlq_offset"`
	Key             string       `json:"key"`
	Reason          string       `json:"reason"`
	Error           string       `json:"error"`
	Time            time.Time    `json:"time"`
	SourceTopic     string       `json:"source_topic"`
	SourcePartition int32        `json:"source_partition"`
	SourceOffset    int64        `json:"source_offset"`
	RedriveCount    int          `json:"redrive_count"`
	ValueDropped    string       `json:"value_dropped,omitempty"`
	Headers         []headerJSON `json:"headers"`
	// Payload is the value when it is valid UTF-8, else PayloadBase64.
	Payload       *string `json:"payload,omitempty"`
	PayloadBase64 []byte  `json:"payload_base64,omitempty"`
}

type headerJSON struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// errLimit ends `ls --limit` early.
var errLimit = dlq.ErrStop

func dlqList(ctx context.Context, c *dlqConfig, r *dlq.Reader, stdout io.Writer) error {
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	if !c.json && !c.payload {
		fmt.Fprintln(tw, "DLQ\tTIME\tREASON\tREDRIVES\tKEY\tSOURCE\tERROR")
	}
	listed := 0
	_, err := scanAll(ctx, c, r, func(l *dlq.Letter) error {
		if c.limit > 0 && listed >= c.limit {
			return errLimit
		}
		listed++
		when := l.Time.UTC().Format(time.RFC3339Nano)
		switch {
		case c.json:
			j := letterJSON{
				DLQPartition: l.Partition, DLQOffset: l.Offset, Key: string(l.Key), Reason: l.Reason, Error: l.Error,
				Time: l.Time, SourceTopic: l.SourceTopic, SourcePartition: l.SourcePartition, SourceOffset: l.SourceOffset,
				RedriveCount: l.RedriveCount, ValueDropped: l.ValueDropped, Headers: []headerJSON{},
			}
			for _, h := range l.Original {
				j.Headers = append(j.Headers, headerJSON{Key: h.Key, Value: string(h.Value)})
			}
			if c.payload {
				if utf8.Valid(l.Value) {
					v := string(l.Value)
					j.Payload = &v
				} else {
					j.PayloadBase64 = l.Value
				}
			}
			return enc.Encode(j)
		case c.payload:
			fmt.Fprintf(stdout, "dlq %d/%d  %s  reason %s  redrives %d  key %s  source %s\n  error: %s\n  payload: %s\n",
				l.Partition, l.Offset, when, orDash(l.Reason), l.RedriveCount, printable(string(l.Key)), l.Source(),
				printable(l.Error), payloadText(l))
			return nil
		default:
			fmt.Fprintf(tw, "%d/%d\t%s\t%s\t%d\t%s\t%s\t%s\n", l.Partition, l.Offset, when, orDash(l.Reason), l.RedriveCount,
				printable(string(l.Key)), l.Source(), shorten(printable(l.Error), 100))
			return nil
		}
	})
	if ferr := tw.Flush(); err == nil {
		err = ferr
	}
	return err
}

// payloadText is a letter's value for a terminal.
func payloadText(l *dlq.Letter) string {
	switch {
	case l.ValueDropped != "":
		return "(dropped by the ingestor: " + l.ValueDropped + ")"
	case l.Value == nil:
		return "(null)"
	}
	return printable(string(l.Value))
}

// printable returns s, or s quoted when it holds invalid UTF-8 or control
// characters (which would garble a terminal).
func printable(s string) string {
	if utf8.ValidString(s) && strings.IndexFunc(s, func(r rune) bool { return unicode.IsControl(r) && r != '\t' }) < 0 {
		return s
	}
	return strconv.Quote(s)
}

// shorten cuts s to n runes, marking the cut.
func shorten(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// redriveOptions are the redrive's options from the flags.
func redriveOptions(c *dlqConfig) dlq.RedriveOptions {
	return dlq.RedriveOptions{
		Filter: c.filter, To: c.to, ParkingTopic: c.parking, MaxRedrives: c.maxRedrives, Rate: c.rate,
		DryRun: c.dryRun, FlushTimeout: c.flushTimeout,
	}
}

func dlqRedrive(ctx context.Context, c *dlqConfig, r *dlq.Reader, stdout, stderr io.Writer) error {
	opts := redriveOptions(c)
	if c.dryRun {
		opts.Plan = func(d dlq.Decision) {
			l := d.Letter
			if d.Action == dlq.Send {
				to := d.Topic
				if d.Partition >= 0 {
					to += "/" + strconv.Itoa(int(d.Partition))
				}
				fmt.Fprintf(stdout, "would send  dlq %d/%d  key %s  reason %s  to %s  redrive-count %d\n",
					l.Partition, l.Offset, printable(string(l.Key)), orDash(l.Reason), to, l.RedriveCount+1)
				return
			}
			fmt.Fprintf(stdout, "would park  dlq %d/%d  key %s  reason %s  to %s: %s\n",
				l.Partition, l.Offset, printable(string(l.Key)), orDash(l.Reason), d.Topic, d.Why)
		}
	}
	d, err := dlq.NewRedrive(ctx, r, opts)
	if err != nil {
		return err
	}
	filter := c.filter.String()
	if filter == "" {
		filter = "none"
	}
	fmt.Fprintf(stderr, "redrive of %s at %s: group %s, filter %s: %d letters from the group's position to the end\n",
		c.topic, c.brokers, r.Group(), filter, d.Letters())

	mode := c.progress
	if mode == progress.Auto {
		mode = progress.Line
		if progress.IsTerminal(stderr) {
			mode = progress.Bar
		}
	}
	labels := progress.Labels{Action: "redriving", Unit: "letters", Done: "done"}
	rep := progress.StartWith(stderr, mode, d.Letters(), c.interval, labels, func() progress.Counts {
		done, failed := d.Progress()
		return progress.Counts{Delivered: done, Failed: failed}
	})
	start := time.Now()
	res, runErr := d.Run(ctx)
	elapsed := time.Since(start)
	rep.Stop()
	summarizeRedrive(stderr, c, res, elapsed)
	if runErr != nil && ctx.Err() != nil {
		return errInterrupted
	}
	return runErr
}

func summarizeRedrive(w io.Writer, c *dlqConfig, res dlq.Result, elapsed time.Duration) {
	rate := float64(res.Sent+res.Parked) / max(elapsed.Seconds(), 1e-9)
	if c.dryRun {
		fmt.Fprintf(w, "dry run: examined %d of %d letters: would send %d, park %d; skipped %d, failed %d; nothing was sent or committed\n",
			res.Examined, res.Letters, res.Sent, res.Parked, res.Skipped, res.Failed)
	} else {
		fmt.Fprintf(w, "redrive: examined %d of %d letters: sent %d, parked %d, skipped %d, failed %d in %s (%s letters/s); group %s\n",
			res.Examined, res.Letters, res.Sent, res.Parked, res.Skipped, res.Failed, elapsed.Round(time.Millisecond),
			strconv.FormatFloat(rate, 'f', 0, 64), res.Group)
	}
	if res.Parked > 0 {
		where := c.parking
		if c.dryRun {
			where += ", in a real run"
		}
		fmt.Fprintf(w, "parked (%s):\n", where)
		for _, b := range res.ParkedLetters {
			fmt.Fprintf(w, "  dlq %d/%d  key %s  reason %s  source %s: %s\n", b.Partition, b.Offset, printable(b.Key), orDash(b.Reason), b.Source, b.Why)
		}
		if more := res.Parked - int64(len(res.ParkedLetters)); more > 0 {
			fmt.Fprintf(w, "  and %d more\n", more)
		}
	}
	for _, e := range res.Errors {
		if e.Key != "" {
			fmt.Fprintf(w, "  %d × %s (first: key %s)\n", e.Count, e.Err, printable(e.Key))
		} else {
			fmt.Fprintf(w, "  %d × %s\n", e.Count, e.Err)
		}
	}
	if res.CommitErr != nil {
		fmt.Fprintf(w, "progress not committed: %v (a next run repeats the letters since the last commit)\n", res.CommitErr)
	}
}
