package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lmittmann/tint"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// serviceLog takes a service's JSON log lines: every byte goes to the
// service's log file, and the console gets the lines a person watches
// (lifecycle, warnings, errors) while the access log lines ("msg":"request")
// are only counted for the traffic summary. Printing every request on a
// terminal made the console, not the reader, the limit under load.
type serviceLog struct {
	file    *os.File
	console *slog.Logger

	mu  sync.Mutex
	buf []byte

	requests atomic.Int64
	errors   atomic.Int64 // requests answered with a 5xx status
	audited  atomic.Int64 // audit records
}

// newServiceLog creates (truncates) dir/name.log and prints the other lines
// on con under name.
func newServiceLog(con *console, dir, name string) (*serviceLog, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create the log directory: %w", err)
	}
	path := filepath.Join(dir, name+".log")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create the %s log: %w", name, err)
	}
	return &serviceLog{
		file: f,
		console: slog.New(tint.NewTextHandler(con.Writer(name), &tint.Options{
			NoColor: !con.color, TimeFormat: time.TimeOnly, Level: slog.LevelDebug,
		})),
	}, nil
}

// Path is the log file's name.
func (l *serviceLog) Path() string { return l.file.Name() }

// Write stores p in the file (one write per pipe read, not per line) and
// handles its complete lines.
func (l *serviceLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	// A full disk must not stop the stack; the console still shows it.
	if _, err := l.file.Write(p); err != nil {
		l.console.Warn("write the log file", "err", err)
	}
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.line(bytes.TrimSuffix(l.buf[:i], []byte{'\r'}))
		l.buf = l.buf[i+1:]
	}
	if len(l.buf) > 64<<10 {
		l.line(l.buf)
		l.buf = l.buf[:0]
	}
	return len(p), nil
}

// Close handles an unterminated last line and closes the file.
func (l *serviceLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.line(l.buf)
		l.buf = nil
	}
	return l.file.Close()
}

// accessMarker is how a JSON access log line starts after its time and
// level; auditMarker marks the reader's audit records (one per read of
// personal data), per request too.
var (
	accessMarker = []byte(`"msg":"request",`)
	auditMarker  = []byte(`"log":"audit",`)
)

func (l *serviceLog) line(b []byte) {
	if bytes.Contains(b, accessMarker) {
		if isProbe(b) {
			return
		}
		l.requests.Add(1)
		if status, ok := jsonIntField(b, `"status":`); ok && status >= 500 {
			l.errors.Add(1)
		}
		return
	}
	if bytes.Contains(b, auditMarker) {
		l.audited.Add(1)
		return
	}
	rec, ok := parseJSONRecord(b)
	if !ok {
		// Not a log record (a panic, a library writing to stderr): as is.
		rec = slog.NewRecord(time.Now(), slog.LevelInfo, string(b), 0)
	}
	_ = l.console.Handler().Handle(context.Background(), rec)
}

// probeRoutes are the health endpoints that the stack itself (and, in a
// cluster, the orchestrator) polls: the summary is about API traffic, and a
// 503 from /readyz while the reader warms up is not an error to report.
var probeRoutes = [][]byte{[]byte(`"route":"/readyz"`), []byte(`"route":"/healthz"`)}

func isProbe(b []byte) bool {
	for _, r := range probeRoutes {
		if bytes.Contains(b, r) {
			return true
		}
	}
	return false
}

// traffic returns the requests, 5xx answers and audit records counted
// since the last call.
func (l *serviceLog) traffic() (requests, errors, audited int64) {
	return l.requests.Swap(0), l.errors.Swap(0), l.audited.Swap(0)
}

// jsonIntField finds key (e.g. `"status":`) in a JSON line and parses the
// integer after it.
func jsonIntField(b []byte, key string) (int, bool) {
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return 0, false
	}
	rest := b[i+len(key):]
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	n, err := strconv.Atoi(string(rest[:j]))
	return n, err == nil
}

// parseJSONRecord turns a slog JSON line back into a record, keeping the
// attributes in their order; "service" is dropped (the console prefix
// names the service).
func parseJSONRecord(b []byte) (slog.Record, bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return slog.Record{}, false
	}
	var (
		when  time.Time
		level = slog.LevelInfo
		msg   string
		attrs []slog.Attr
	)
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return slog.Record{}, false
		}
		key, _ := t.(string)
		var v any
		if err := dec.Decode(&v); err != nil {
			return slog.Record{}, false
		}
		s, _ := v.(string)
		switch key {
		case slog.TimeKey:
			when, _ = time.Parse(time.RFC3339Nano, s)
		case slog.LevelKey:
			_ = level.UnmarshalText([]byte(s))
		case slog.MessageKey:
			msg = s
		case "service":
		default:
			attrs = append(attrs, slog.Any(key, v))
		}
	}
	if when.IsZero() {
		when = time.Now()
	}
	rec := slog.NewRecord(when, level, msg, 0)
	rec.AddAttrs(attrs...)
	return rec, true
}

// formatCount writes n with thousands separators (12,345).
func formatCount(n int64) string {
	s := strconv.FormatInt(n, 10)
	if n < 0 {
		return "-" + formatCount(-n)
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// trafficLine is the summary of the requests l counted in the last
// interval, "" when idle.
func trafficLine(name string, l *serviceLog, every time.Duration) string {
	requests, errors, audited := l.traffic()
	if requests == 0 && audited == 0 {
		return ""
	}
	rate := float64(requests) / every.Seconds()
	line := fmt.Sprintf("%s: %s req in %s (%s/s), %s errors", name, formatCount(requests), every,
		formatCount(int64(rate+0.5)), formatCount(errors))
	if audited > 0 {
		line += ", " + formatCount(audited) + " personal-data reads audited"
	}
	return line
}

// startSummary prints, every --summary-every, the reader's requests and the
// orders the ingestor stored in that interval; an idle interval prints
// nothing. It stops first when the stack goes down.
func (s *stack) startSummary(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	every := s.cfg.summaryEvery
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", s.cfg.opsPort)
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		var last map[string]float64 // the ingestor's messages by outcome
		if s.ingestor != nil {
			last, _ = ingestorMessages(ctx, metricsURL)
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			var parts []string
			if l, ok := s.logs["reader"]; ok {
				if line := trafficLine("reader", l, every); line != "" {
					parts = append(parts, line)
				}
			}
			if s.ingestor != nil {
				now, err := ingestorMessages(ctx, metricsURL)
				if err == nil && last != nil {
					if line := ingestLine(last, now); line != "" {
						parts = append(parts, line)
					}
				}
				if err == nil {
					last = now
				}
			}
			if len(parts) > 0 {
				s.log.Info(strings.Join(parts, "; "))
			}
		}
	}()
	s.onStop(func() {
		cancel()
		<-done
	})
}

// ingestLine sums up the messages the ingestor handled between two scrapes.
func ingestLine(before, now map[string]float64) string {
	stored := int64(now["stored"] - before["stored"])
	dup := int64(now["duplicate"] - before["duplicate"])
	dead := int64(now["dead_lettered"] - before["dead_lettered"])
	if stored == 0 && dup == 0 && dead == 0 {
		return ""
	}
	line := "ingestor: " + formatCount(stored) + " orders stored"
	if dup > 0 {
		line += ", " + formatCount(dup) + " duplicates"
	}
	if dead > 0 {
		line += ", " + formatCount(dead) + " dead-lettered"
	}
	return line
}

// ingestorMessages scrapes ingestor_messages_total, summed by outcome.
func ingestorMessages(ctx context.Context, url string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", url, err)
	}
	out := map[string]float64{}
	if f, ok := families["ingestor_messages_total"]; ok {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" {
					out[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return out, nil
}
