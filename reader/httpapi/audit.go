package httpapi

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/orderservice/orders/reader/auth"
	"github.com/prometheus/client_golang/prometheus"
)

// AuditLog is the audit stream: one JSON line for each response that
// carried an order's personal data unmasked, naming who read which order
// and when, never the data and never the credential itself:
//
//	{"time":"…","log":"audit","event":"pii_read","credential":"billing","kind":"api_key","order_uid":"…","request_id":"…","client":"192.0.2.7"}
//
// (a JWT's record adds "client_id", its OAuth client). The "log":"audit"
// member tells the records apart wherever the stream is collected. Lines
// are buffered and written by Run every FlushInterval and by Close, so that
// a read costs a copy into memory, not a write to the file.
type AuditLog struct {
	mu      sync.Mutex
	w       *bufio.Writer
	err     error // the first write error, reported by Close
	reads   *prometheus.CounterVec
	counted sync.Map // metric label → prometheus.Counter
	times   timeText
}

// AuditFlushInterval is the longest an audit record waits in memory.
const AuditFlushInterval = time.Second

// NewAuditLog writes the records to w; reads counts them by credential
// (its label "credential"; nil counts nothing).
func NewAuditLog(w io.Writer, reads *prometheus.CounterVec) *AuditLog {
	return &AuditLog{w: bufio.NewWriterSize(w, 64<<10), reads: reads}
}

// Run flushes the buffered records every AuditFlushInterval until ctx
// ends. The first failure to write is logged (records are lost from then
// on, as a full disk loses them); the caller flushes once more after the
// last request.
func (a *AuditLog) Run(ctx context.Context, log *slog.Logger) {
	tick := time.NewTicker(AuditFlushInterval)
	defer tick.Stop()
	logged := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := a.Flush(); err != nil && !logged {
				logged = true
				log.Error("audit records could not be written", "err", err)
			}
		}
	}
}

// Flush writes the buffered records.
func (a *AuditLog) Flush() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.w.Flush(); err != nil && a.err == nil {
		a.err = err
	}
	return a.err
}

// piiRead records that p was sent order uid unmasked.
func (a *AuditLog) piiRead(p *auth.Principal, uid, requestID string, client netip.Addr, at time.Time) {
	// Formatted straight into the writer's buffer: no copy, no
	// allocation (the lock is held for the few hundred nanoseconds).
	a.mu.Lock()
	b := a.w.AvailableBuffer()
	b = append(b, `{"time":"`...)
	b = a.times.append(b, at.UTC())
	b = append(b, `","log":"audit","event":"pii_read","credential":`...)
	b = appendJSONString(b, p.Name)
	b = append(b, `,"kind":`...)
	b = appendJSONString(b, string(p.Kind))
	if p.ClientID != "" {
		b = append(b, `,"client_id":`...)
		b = appendJSONString(b, p.ClientID)
	}
	b = append(b, `,"order_uid":`...)
	b = appendJSONString(b, uid)
	b = append(b, `,"request_id":`...)
	b = appendJSONString(b, requestID)
	b = append(b, `,"client":"`...)
	if client.IsValid() {
		b = client.AppendTo(b)
	}
	b = append(b, "\"}\n"...)
	_, _ = a.w.Write(b) // a failure is kept by the writer and reported by Flush
	a.mu.Unlock()
	if a.reads != nil {
		label := p.MetricName()
		c, ok := a.counted.Load(label)
		if !ok {
			c, _ = a.counted.LoadOrStore(label, a.reads.WithLabelValues(label))
		}
		c.(prometheus.Counter).Inc()
	}
}
