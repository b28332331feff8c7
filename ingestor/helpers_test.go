package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"

	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderservice/orders/ingestor/config"
	"github.com/orderservice/orders/shared/model"
	"github.com/orderservice/orders/shared/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// env is one test's private world: a database, a Redis prefix, a Kafka
// cluster with an orders topic and a dead-letter topic, and a group id.
type env struct {
	pg    *testenv.PG
	redis *testenv.RedisEnv
	kafka *testenv.KafkaEnv
	topic string
	dlq   string
	group string
	kcl   *kgo.Client
	adm   *kadm.Client
}

func newEnv(t testing.TB, partitions int32) *env {
	t.Helper()
	e := &env{pg: testenv.Postgres(t), redis: testenv.Redis(t), kafka: testenv.Kafka(t)}
	e.topic = e.kafka.Topic(t, "orders", partitions)
	e.dlq = e.kafka.Topic(t, "orders.dlq", 1)
	e.group = "order-ingestor-" + e.topic
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(strings.Split(e.kafka.Brokers, ",")...),
		kgo.DefaultProduceTopic(e.topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0),
	)
	if err != nil {
		t.Fatalf("kafka test client: %v", err)
	}
	t.Cleanup(cl.Close)
	e.kcl, e.adm = cl, kadm.NewClient(cl)
	return e
}

// config is the ingestor configuration for this env, with short timings:
// the documented defaults (Load applies them) with this env's servers.
func (e *env) config() config.Config {
	vars := map[string]string{
		"INGESTOR_DATABASE_URL": e.pg.URLAs("order_ingestor"), "INGESTOR_REDIS_URL": e.redis.URL,
		"INGESTOR_KAFKA_BROKERS": e.kafka.Brokers, "INGESTOR_KAFKA_TOPIC": e.topic, "INGESTOR_KAFKA_DLQ_TOPIC": e.dlq,
		"INGESTOR_KAFKA_GROUP": e.group, "INGESTOR_REDIS_KEY_PREFIX": e.redis.Prefix, "INGESTOR_OPS_ADDR": "127.0.0.1:0",
		"INGESTOR_BATCH_LINGER": "20ms", "INGESTOR_RETRY_INITIAL": "50ms", "INGESTOR_RETRY_MAX": "500ms",
		"INGESTOR_SHUTDOWN_TIMEOUT": "10s", "INGESTOR_KAFKA_PROPERTIES": "session.timeout.ms=6000",
	}
	c, err := config.Load(func(k string) string { return vars[k] })
	if err != nil {
		panic(fmt.Sprintf("the tests' own configuration: %v", err)) // no testing.TB here; a programming error
	}
	return c
}

// instance is an ingestor running in the test process.
type instance struct {
	ops    string
	logs   *testenv.Buffer // everything the instance logged (JSON lines)
	cancel context.CancelFunc
	done   chan error
}

// start runs serve in the background; the test's cleanup stops it.
func start(t testing.TB, cfg config.Config) *instance {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	in := &instance{cancel: cancel, done: make(chan error, 1), logs: &testenv.Buffer{}}
	log := slog.New(slog.NewJSONHandler(io.MultiWriter(t.Output(), in.logs), &slog.HandlerOptions{Level: slog.LevelInfo}))
	go func() { in.done <- serve(ctx, cfg, log, ready) }()
	select {
	case in.ops = <-ready:
	case err := <-in.done:
		cancel()
		t.Fatalf("ingestor did not start: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("ingestor did not start within 30s")
	}
	t.Cleanup(func() { _ = in.stop(t) })
	return in
}

// stop cancels the instance (as SIGTERM does) and returns serve's error.
func (in *instance) stop(t testing.TB) error {
	t.Helper()
	in.cancel()
	select {
	case err, ok := <-in.done:
		if !ok {
			return nil
		}
		close(in.done)
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("ingestor did not stop within 30s")
		return nil
	}
}

// sent is where one produced record landed.
type sent struct {
	uid       string
	partition int32
	offset    int64
}

// produce writes values to the given partitions (round robin over
// partitions when there are several) and returns where they went.
func (e *env) produce(t testing.TB, partitions int32, records ...*kgo.Record) []sent {
	t.Helper()
	for i, r := range records {
		r.Partition = int32(i) % partitions
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res := e.kcl.ProduceSync(ctx, records...)
	if err := res.FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	out := make([]sent, len(res))
	for i, r := range res {
		out[i] = sent{uid: string(r.Record.Key), partition: r.Record.Partition, offset: r.Record.Offset}
	}
	return out
}

// orderRecord encodes o as the producer does: key = uid, value = JSON.
func orderRecord(t testing.TB, o *model.Order) *kgo.Record {
	t.Helper()
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Key: []byte(o.OrderUID), Value: b}
}

// eventually polls cond until it returns "" or the deadline passes.
func eventually(t testing.TB, timeout time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %s", timeout, msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func count(t testing.TB, pool *pgxpool.Pool, query string, args ...any) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// dlqRecords reads the dead-letter topic from the start until want records
// arrived (and fails otherwise).
func (e *env) dlqRecords(t testing.TB, want int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(strings.Split(e.kafka.Brokers, ",")...),
		kgo.ConsumeTopics(e.dlq),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for len(out) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("dead-letter topic: got %d records, want %d", len(out), want)
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}

// dlqCount returns how many records the dead-letter topic holds.
func (e *env) dlqCount(t testing.TB) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := e.adm.ListEndOffsets(ctx, e.dlq)
	if err != nil {
		t.Fatalf("dlq end offsets: %v", err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

// committed returns the group's committed offset per partition.
func (e *env) committed(t testing.TB) map[int32]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := e.adm.FetchOffsets(ctx, e.group)
	if err != nil {
		t.Fatalf("fetch committed offsets: %v", err)
	}
	out := map[int32]int64{}
	resp.Each(func(o kadm.OffsetResponse) {
		if o.Topic == e.topic && o.Err == nil && o.At >= 0 {
			out[o.Partition] = o.At
		}
	})
	return out
}

func header(r *kgo.Record, key string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

// scrape returns the text of the instance's /metrics.
func scrape(t testing.TB, ops string) string {
	t.Helper()
	resp, err := http.Get("http://" + ops + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

// metric scrapes one sample (name plus exact label text, e.g.
// `ingestor_messages_total{outcome="stored",reason=""}`) from /metrics; 0
// when it is absent.
func metric(t testing.TB, ops, name string) float64 {
	t.Helper()
	v, _ := sample(scrape(t, ops), name)
	return v
}

// sample finds one sample (as for metric) in the text of a scrape, and
// reports whether it is there (an unparsable value counts as absent).
func sample(scraped, name string) (float64, bool) {
	for line := range strings.Lines(scraped) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

// hasMetric reports whether /metrics exposes the sample.
func hasMetric(t testing.TB, ops, sample string) bool {
	t.Helper()
	return strings.Contains(scrape(t, ops), "\n"+sample+" ")
}

func httpStatus(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// loadOrder reads an order back from the four tables.
func loadOrder(t testing.TB, pool *pgxpool.Pool, uid string) (*model.Order, []byte) {
	t.Helper()
	ctx := context.Background()
	var o model.Order
	var sum []byte
	err := pool.QueryRow(ctx, `SELECT order_uid, track_number, entry, locale, internal_signature, customer_id,
		delivery_service, shardkey, sm_id, date_created, oof_shard, content_sha256 FROM orders WHERE order_uid=$1`, uid).
		Scan(&o.OrderUID, &o.TrackNumber, &o.Entry, &o.Locale, &o.InternalSignature, &o.CustomerID,
			&o.DeliveryService, &o.ShardKey, &o.SmID, &o.DateCreated, &o.OofShard, &sum)
	if err != nil {
		t.Fatalf("load order %s: %v", uid, err)
	}
	o.DateCreated = o.DateCreated.UTC()
	d := &o.Delivery
	if err := pool.QueryRow(ctx, `SELECT name, phone, zip, city, address, region, email FROM delivery WHERE order_uid=$1`, uid).
		Scan(&d.Name, &d.Phone, &d.Zip, &d.City, &d.Address, &d.Region, &d.Email); err != nil {
		t.Fatalf("load delivery %s: %v", uid, err)
	}
	p := &o.Payment
	if err := pool.QueryRow(ctx, `SELECT transaction, request_id, currency, provider, amount, payment_dt, bank,
		delivery_cost, goods_total, custom_fee FROM payment WHERE order_uid=$1`, uid).
		Scan(&p.Transaction, &p.RequestID, &p.Currency, &p.Provider, &p.Amount, &p.PaymentDT, &p.Bank,
			&p.DeliveryCost, &p.GoodsTotal, &p.CustomFee); err != nil {
		t.Fatalf("load payment %s: %v", uid, err)
	}
	rows, _ := pool.Query(ctx, `SELECT chrt_id, track_number, price, rid, name, sale, size, total_price, nm_id, brand, status
		FROM items WHERE order_uid=$1 ORDER BY position`, uid)
	var it model.Item
	_, err = pgx.ForEachRow(rows, []any{&it.ChrtID, &it.TrackNumber, &it.Price, &it.RID, &it.Name, &it.Sale,
		&it.Size, &it.TotalPrice, &it.NmID, &it.Brand, &it.Status}, func() error {
		o.Items = append(o.Items, it)
		return nil
	})
	if err != nil {
		t.Fatalf("load items %s: %v", uid, err)
	}
	return &o, sum
}

func canonicalSHA(t testing.TB, o *model.Order) ([]byte, [32]byte) {
	t.Helper()
	c, err := o.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	return c, sha256.Sum256(c)
}

// checkNoPersonalData fails if the logs contain any customer's name,
// phone, e-mail or address.
func checkNoPersonalData(t testing.TB, logs string, orders ...*model.Order) {
	t.Helper()
	for _, o := range orders {
		d := o.Delivery
		for _, v := range []string{d.Name, d.Phone, d.Email, d.Address} {
			if strings.Contains(logs, v) {
				t.Errorf("logs contain personal data of order %s: %q", o.OrderUID, v)
			}
		}
	}
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// binary builds the ingestor once per test process.
func binary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ingestor-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "ingestor")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// proc is an ingestor binary running as a child process.
type proc struct {
	cmd  *exec.Cmd
	ops  string
	done chan error
}

// startBinary runs the built ingestor with cfg as its environment.
func startBinary(t testing.TB, cfg config.Config, name string) *proc {
	t.Helper()
	ops := testenv.FreeAddr(t)
	cmd := exec.Command(binary(t))
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"INGESTOR_KAFKA_BROKERS=" + cfg.KafkaBrokers,
		"INGESTOR_KAFKA_TOPIC=" + cfg.KafkaTopic,
		"INGESTOR_KAFKA_GROUP=" + cfg.KafkaGroup,
		"INGESTOR_KAFKA_DLQ_TOPIC=" + cfg.KafkaDLQTopic,
		"INGESTOR_KAFKA_PROPERTIES=" + string(cfg.KafkaProperties),
		"DATABASE_URL=" + cfg.DatabaseURL, // the unprefixed fallback
		"INGESTOR_REDIS_URL=" + cfg.RedisURL,
		"INGESTOR_REDIS_KEY_PREFIX=" + cfg.RedisKeyPrefix,
		"INGESTOR_OPS_ADDR=" + ops,
		"INGESTOR_BATCH_SIZE=" + strconv.Itoa(cfg.BatchSize),
		"INGESTOR_BATCH_LINGER=" + cfg.BatchLinger.String(),
		"INGESTOR_BATCHES_IN_FLIGHT=" + strconv.Itoa(cfg.BatchesInFlight),
		"INGESTOR_CONSISTENCY=" + string(cfg.Consistency),
		"INGESTOR_RETRY_INITIAL=50ms",
		"INGESTOR_RETRY_MAX=500ms",
		"INGESTOR_SHUTDOWN_TIMEOUT=10s",
		"INGESTOR_LOG_LEVEL=info",
	}
	for _, v := range []string{"GOGC", "GOMEMLIMIT", "GOMAXPROCS"} { // runtime tuning experiments
		if val, ok := os.LookupEnv(v); ok {
			cmd.Env = append(cmd.Env, v+"="+val)
		}
	}
	if _, isBench := t.(*testing.B); !isBench { // a benchmark's log is truncated anyway
		cmd.Stdout = &prefixWriter{t: t, prefix: name + ": "}
		cmd.Stderr = cmd.Stdout
	} else if path := os.Getenv("INGESTOR_BENCH_LOG"); path != "" { // the benchmark's ingestor log, to a file
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = f.Close() })
		cmd.Stdout, cmd.Stderr = f, f
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start ingestor: %v", err)
	}
	p := &proc{cmd: cmd, ops: ops, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if err := <-p.done; err != nil {
			t.Logf("%s: %v", name, err) // killed by the cleanup or the test: expected
		}
	})
	eventually(t, 30*time.Second, func() string {
		if s := httpStatus("http://" + ops + "/healthz"); s != http.StatusOK {
			return fmt.Sprintf("%s /healthz: %d", name, s)
		}
		return ""
	})
	return p
}

// kill sends SIGKILL and waits for the process to die.
func (p *proc) kill(t testing.TB) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill: %v", err)
	}
	err := <-p.done
	p.done <- err // for the cleanup
}

type prefixWriter struct {
	t      testing.TB
	prefix string
	mu     sync.Mutex
}

func (w *prefixWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for line := range strings.Lines(string(b)) {
		w.t.Log(w.prefix + strings.TrimRight(line, "\n"))
	}
	return len(b), nil
}
