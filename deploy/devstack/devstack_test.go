package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderservice/orders/migrations"
	"github.com/orderservice/orders/reader/pii"
	"github.com/orderservice/orders/shared/model"
	"github.com/orderservice/orders/shared/probe"
	"github.com/orderservice/orders/shared/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestConsolePrefixesWholeLines(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		close  bool
		want   string
	}{
		{"one line", []string{"hello\n"}, false, "reader   | hello\n"},
		{"split line", []string{"hel", "lo\nwor", "ld\n"}, false, "reader   | hello\nreader   | world\n"},
		{"partial line waits", []string{"no newline"}, false, ""},
		{"close flushes the rest", []string{"a\nb"}, true, "reader   | a\nreader   | b\n"},
		{"CRLF", []string{"x\r\n"}, false, "reader   | x\n"},
		{"empty line kept", []string{"\n"}, false, "reader   | \n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			w := newConsole(&out, false).Writer("reader")
			for _, s := range tt.writes {
				if n, err := w.Write([]byte(s)); err != nil || n != len(s) {
					t.Fatalf("Write(%q) = %d, %v", s, n, err)
				}
			}
			if tt.close {
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
			}
			if got := out.String(); got != tt.want {
				t.Errorf("output %q, want %q", got, tt.want)
			}
		})
	}
}

func TestConsoleNeverInterleavesLines(t *testing.T) {
	var out bytes.Buffer
	con := newConsole(&out, false)
	var wg sync.WaitGroup
	for _, name := range []string{"ingestor", "reader", "producer"} {
		w := con.Writer(name)
		wg.Go(func() {
			for i := range 200 {
				// Byte by byte: the worst case for interleaving.
				for _, b := range []byte(fmt.Sprintf("%s line %d\n", name, i)) {
					_, _ = w.Write([]byte{b})
				}
			}
		})
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 600 {
		t.Fatalf("%d lines, want 600", len(lines))
	}
	for _, l := range lines {
		prefix, rest, ok := strings.Cut(l, " | ")
		if !ok || strings.TrimSpace(prefix)+" line" != rest[:strings.LastIndex(rest, " ")] {
			t.Fatalf("mixed line %q", l)
		}
	}
}

func TestNextMigrationVersion(t *testing.T) {
	tests := []struct {
		names []string
		want  int
	}{
		{nil, 1},
		{[]string{"000001_orders.up.sql", "000001_orders.down.sql"}, 2},
		{[]string{"000001_a.up.sql", "000009_b.down.sql", "000010_c.up.sql", "README.md"}, 11},
		{[]string{"notes.sql", "1_x.up.sql"}, 2},
	}
	for _, tt := range tests {
		got, err := nextMigrationVersion(tt.names)
		if err != nil || got != tt.want {
			t.Errorf("nextMigrationVersion(%v) = %d, %v; want %d", tt.names, got, err, tt.want)
		}
	}
}

func TestMigrateCreateWritesNextPair(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"000001_orders.up.sql", "000001_orders.down.sql"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("-- x\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	if err := run(t.Context(), []string{"migrate", "create", "--dir", dir, "Add order-status"}, noEnv, &out); err != nil {
		t.Fatalf("migrate create: %v\n%s", err, out.String())
	}
	if _, _, err := createMigration(dir, "second one"); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	want := []string{
		"000001_orders.down.sql", "000001_orders.up.sql",
		"000002_add_order_status.down.sql", "000002_add_order_status.up.sql",
		"000003_second_one.down.sql", "000003_second_one.up.sql",
	}
	if !slices.Equal(got, want) {
		t.Errorf("files %v, want %v", got, want)
	}

	for _, bad := range []string{"", "drop;table", "../escape", "ÜBER"} {
		if _, _, err := createMigration(dir, bad); err == nil {
			t.Errorf("createMigration(%q) succeeded, want an error", bad)
		}
	}
}

func noEnv(string) string { return "" }

// freePort returns a loopback port nothing listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	_, p, err := net.SplitHostPort(testenv.FreeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

func TestBrokerOnlyServesTopicsAndLargeRecordsUntilInterrupted(t *testing.T) {
	port := freePort(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := &testenv.Buffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"--broker-only", "--kafka-port", strconv.Itoa(port)}, noEnv, out) }()

	client, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ProducerBatchMaxBytes(4<<20),
		// Uncompressed, so that the broker sees the record's full size.
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	adm := kadm.NewClient(client)

	var topics kadm.TopicDetails
	err = probe.Wait(ctx, 20*time.Second, func(ctx context.Context) error {
		select {
		case err := <-done:
			return probe.Permanent(fmt.Errorf("run returned early: %w\n%s", err, out.String()))
		default:
		}
		topics, err = adm.ListTopics(ctx)
		return err
	})
	if err != nil {
		t.Fatalf("broker never answered: %v", err)
	}
	for name, partitions := range map[string]int{ordersTopic: ordersPartitions, dlqTopic: 1} {
		if got := len(topics[name].Partitions); got != partitions {
			t.Errorf("topic %s has %d partitions, want %d (topics: %v)", name, got, partitions, topics.Names())
		}
	}

	// The producer's --bad mode sends a record over 1 MiB: the broker must
	// take it so that the ingestor is the one to reject it.
	big := bytes.Repeat([]byte("x"), 2<<20)
	pctx, pcancel := context.WithTimeout(ctx, 20*time.Second)
	defer pcancel()
	if err := client.ProduceSync(pctx, &kgo.Record{Topic: ordersTopic, Value: big}).FirstErr(); err != nil {
		t.Fatalf("produce a 2 MiB record: %v", err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after interrupt = %v, want nil (a clean exit)", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return within 15 s of the interrupt")
	}
	if !strings.Contains(out.String(), addr) {
		t.Errorf("output does not name the broker address %s:\n%s", addr, out.String())
	}
}

func TestMigrateUpCreatesDatabaseAndDownReverts(t *testing.T) {
	pg := testenv.Postgres(t) // a server with trust auth (and the roles existing)
	name := "devstack_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	dsn, err := withDatabase(pg.URL, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := pg.Pool.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
	})

	var out bytes.Buffer
	if err := run(t.Context(), []string{"migrate", "up", "--database", dsn}, noEnv, &out); err != nil {
		t.Fatalf("migrate up: %v\n%s", err, out.String())
	}
	versions := migrationVersions(t)
	newest := versions[len(versions)-1]
	if !strings.Contains(out.String(), fmt.Sprintf("schema version %d ", newest)) {
		t.Errorf("migrate up printed %q, want the schema version %d", out.String(), newest)
	}
	if got := tableCount(t, dsn); got != 4 {
		t.Errorf("%d order tables after migrate up, want 4", got)
	}
	// Again: an up-to-date schema is a no-op, not an error.
	if err := run(t.Context(), []string{"migrate", "up"}, func(k string) string {
		if k == "DATABASE_URL" {
			return dsn
		}
		return ""
	}, &out); err != nil {
		t.Fatalf("second migrate up: %v", err)
	}

	// down reverts the newest migration only; --all every one.
	if len(versions) > 1 {
		out.Reset()
		if err := run(t.Context(), []string{"migrate", "down", "--database", dsn}, noEnv, &out); err != nil {
			t.Fatalf("migrate down: %v\n%s", err, out.String())
		}
		if prev := versions[len(versions)-2]; !strings.Contains(out.String(), fmt.Sprintf("schema version %d ", prev)) {
			t.Errorf("migrate down printed %q, want the schema version %d", out.String(), prev)
		}
		if got := tableCount(t, dsn); got != 4 {
			t.Errorf("%d order tables after reverting the newest migration, want 4", got)
		}
	}
	out.Reset()
	if err := run(t.Context(), []string{"migrate", "down", "--all", "--database", dsn}, noEnv, &out); err != nil {
		t.Fatalf("migrate down --all: %v\n%s", err, out.String())
	}
	if got := tableCount(t, dsn); got != 0 {
		t.Errorf("%d order tables after migrate down, want 0", got)
	}
	if !strings.Contains(out.String(), "no migration applied") {
		t.Errorf("migrate down printed %q, want no migration applied", out.String())
	}
	// Nothing left to revert is not an error either.
	if err := run(t.Context(), []string{"migrate", "down", "--database", dsn}, noEnv, &out); err != nil {
		t.Fatalf("migrate down on an empty schema: %v", err)
	}
}

// migrationVersions lists the versions of the embedded migrations,
// ascending.
func migrationVersions(t *testing.T) []uint64 {
	t.Helper()
	names, err := fs.Glob(migrations.FS(), "*.up.sql")
	if err != nil || len(names) == 0 {
		t.Fatalf("no migrations: %v", err)
	}
	var out []uint64
	for _, n := range names {
		v, err := strconv.ParseUint(n[:strings.IndexByte(n, '_')], 10, 64)
		if err != nil {
			t.Fatalf("migration %s: %v", n, err)
		}
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}

func tableCount(t *testing.T, dsn string) int {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	err = conn.QueryRow(t.Context(), `SELECT count(*) FROM information_schema.tables
		WHERE table_schema = 'public' AND table_name IN ('orders', 'delivery', 'payment', 'items')`).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestStackRunsSeedsAndStopsCleanly is `make run` end to end on private
// resources: a testenv database and Redis key prefix, free ports. It builds
// the services (from the Go build cache after the first time), waits for
// the seeded orders to be stored and served, then interrupts and expects a
// clean exit with every service stopped.
func TestStackRunsSeedsAndStopsCleanly(t *testing.T) {
	pg := testenv.Postgres(t)
	rd := testenv.Redis(t)
	// The services read their key prefixes from the environment that
	// devstack passes on.
	t.Setenv("INGESTOR_REDIS_KEY_PREFIX", rd.Prefix)
	t.Setenv("READER_REDIS_KEY_PREFIX", rd.Prefix)
	env := map[string]string{"DATABASE_URL": pg.URL, "REDIS_URL": rd.URL}
	readerPort, readerOpsPort, opsPort, kafkaPort := freePort(t), freePort(t), freePort(t), freePort(t)
	artifacts := t.TempDir() // not the repository's .artifacts: a developer's keys stay

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := &testenv.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{
			"--reader-port", strconv.Itoa(readerPort),
			"--reader-ops-port", strconv.Itoa(readerOpsPort),
			"--ops-port", strconv.Itoa(opsPort),
			"--kafka-port", strconv.Itoa(kafkaPort),
			"--generate", "20", "--seed", "42",
			"--artifacts", artifacts,
			"--summary-every", "1s",
		}, func(k string) string { return env[k] }, out)
	}()

	// Cold builds of the services (cgo librdkafka) take a minute or more.
	err := probe.Wait(ctx, 5*time.Minute, func(context.Context) error {
		select {
		case err := <-done:
			return probe.Permanent(fmt.Errorf("run returned before the stack was up: %w", err))
		default:
		}
		if !strings.Contains(out.String(), "Press Ctrl-C to stop.") {
			return fmt.Errorf("not up yet")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v\noutput:\n%s", err, out.String())
	}

	var stored int
	if err := pg.Pool.QueryRow(ctx, "SELECT count(*) FROM orders").Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != 21 {
		t.Errorf("%d orders stored, want 21 (the sample and 20 generated)", stored)
	}
	if !strings.Contains(out.String(), "21 orders stored (21 new)") {
		t.Errorf("output does not report the stored orders:\n%s", out.String())
	}
	// The API keys: written where the banner says, shown in the banner,
	// given to the reader.
	keysFile, credsFile := filepath.Join(artifacts, "dev-keys"), filepath.Join(artifacts, "dev-credentials.env")
	tokens := checkCredentialFiles(t, keysFile, credsFile)
	piiKey, supportKey := tokens["ORDERS_PII_TOKEN"], tokens["ORDERS_SUPPORT_TOKEN"]
	sample := testenv.Sample(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", readerPort)
	if got := httpGet(t, base+"/order/"+sample.OrderUID, piiKey); !strings.Contains(got, sample.OrderUID) {
		t.Errorf("reader's /order/%s answered %q", sample.OrderUID, got)
	}
	for _, want := range []string{
		base[len("http://127.0.0.1"):] + "/swagger/", fmt.Sprintf(":%d/metrics", opsPort), fmt.Sprintf(":%d/metrics", readerOpsPort),
		piiKey, supportKey, credsFile,
		fmt.Sprintf(`curl -H "Authorization: Bearer $ORDERS_SUPPORT_TOKEN" http://localhost:%d/order/`, readerPort),
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q", want)
		}
	}
	// The banner's order links came from the reader, asked with a token.
	if !regexp.MustCompile(fmt.Sprintf(`order +http://localhost:%d/order/\S+`, readerPort)).MatchString(out.String()) {
		t.Errorf("summary lists no order (the reader refused the devstack's token?):\n%s", out.String())
	}
	t.Run("views", func(t *testing.T) { checkViews(t, base, sample, piiKey, supportKey) })
	t.Run("logs", func(t *testing.T) {
		checkLogs(t, out, filepath.Join(artifacts, "logs"), base+"/order/"+sample.OrderUID, supportKey, opsPort)
	})

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after interrupt = %v, want nil\n%s", err, out.String())
		}
	case <-time.After(time.Minute):
		t.Fatal("run did not return within a minute of the interrupt")
	}
	for _, port := range []int{readerPort, readerOpsPort, opsPort, kafkaPort} {
		if err := portFree(context.Background(), port); err != nil {
			t.Errorf("port %d still in use after the stack stopped: %v", port, err)
		}
	}
	lines := out.String()
	for _, stopped := range []string{"ingestor stopped", "reader stopped", "kafka broker stopped"} {
		if !strings.Contains(lines, stopped) {
			t.Errorf("output lacks %q", stopped)
		}
	}
	if strings.Index(lines, "ingestor stopped took") > strings.Index(lines, "reader stopped took") {
		t.Errorf("the reader stopped before the ingestor:\n%s", lines)
	}
}

// checkLogs sends requests to the running reader and expects them summed up
// on the console, never printed one by one, and each in the reader's log
// file; the ingestor's stored orders are read from its metrics.
func checkLogs(t *testing.T, out *testenv.Buffer, dir, url, token string, opsPort int) {
	for _, name := range []string{"reader.log", "ingestor.log"} {
		if !strings.Contains(out.String(), name) {
			t.Errorf("banner does not name %s:\n%s", name, out.String())
		}
	}
	const n = 200
	for range n {
		httpGet(t, url, token)
	}
	summary := regexp.MustCompile(`reader: [0-9,]+ req in 1s \([0-9,]+/s\), 0 errors`)
	awaitSummary := func() {
		// On a timeout, what the console said and the 5xx answers logged tell why.
		defer func() {
			if t.Failed() {
				data, _ := os.ReadFile(filepath.Join(dir, "reader.log"))
				var bad []string
				for _, l := range strings.Split(string(data), "\n") {
					if strings.Contains(l, `"status":5`) {
						bad = append(bad, l)
					}
				}
				t.Logf("console:\n%s\n5xx in reader.log:\n%s", out.String(), strings.Join(bad, "\n"))
			}
		}()
		testenv.Await(t, "a traffic summary on the console", 15*time.Second, func() bool {
			return summary.MatchString(out.String())
		})
	}
	awaitSummary()
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.Contains(l, "request_id") || strings.Contains(l, `"msg":"request"`) {
			t.Fatalf("a request printed on the console: %q", l)
		}
	}
	path := strings.TrimPrefix(url, "http://127.0.0.1")
	path = path[strings.Index(path, "/"):]
	var got int
	testenv.Await(t, strconv.Itoa(n)+" requests in reader.log", 10*time.Second, func() bool {
		data, err := os.ReadFile(filepath.Join(dir, "reader.log"))
		if err != nil {
			t.Fatal(err)
		}
		got = 0
		for _, l := range strings.Split(string(data), "\n") {
			if strings.Contains(l, `"msg":"request"`) && strings.Contains(l, `"path":"`+path+`"`) {
				got++
			}
		}
		return got >= n
	})
	if data, err := os.ReadFile(filepath.Join(dir, "ingestor.log")); err != nil || !strings.Contains(string(data), "ingestor started") {
		t.Errorf("ingestor.log lacks the start line (%v):\n%.500s", err, data)
	}
	stored, err := ingestorMessages(t.Context(), fmt.Sprintf("http://127.0.0.1:%d/metrics", opsPort))
	if err != nil || stored["stored"] < 21 {
		t.Errorf("ingestor metrics: %v stored, %v; want at least the 21 seeded", stored, err)
	}
}

func httpGet(t *testing.T, url, token string) string {
	t.Helper()
	code, body := httpGetStatus(t, url, token)
	if code != http.StatusOK {
		t.Errorf("GET %s: %d", url, code)
	}
	return body
}

// httpGetStatus GETs url, with token as a bearer credential unless empty.
func httpGetStatus(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// checkViews asks the running reader for the sample order with each dev
// key: the PII key sees it as ingested, the support key with its personal
// data masked, no key gets 401.
func checkViews(t *testing.T, base string, sample *model.Order, piiKey, supportKey string) {
	url := base + "/order/" + sample.OrderUID
	full, err := sample.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	masked, err := pii.MaskJSON(full)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(full, masked) {
		t.Fatal("masking the sample changes nothing: the check below would prove nothing")
	}
	for _, tc := range []struct {
		name, token string
		code        int
		body        []byte // JSON, compared as values
	}{
		{"PII key", piiKey, http.StatusOK, full},
		{"support key", supportKey, http.StatusOK, masked},
		{"no key", "", http.StatusUnauthorized, nil},
		{"unknown key", "ord_" + strings.Repeat("0", 43), http.StatusUnauthorized, nil},
	} {
		code, body := httpGetStatus(t, url, tc.token)
		if code != tc.code {
			t.Errorf("%s: GET /order/%s: %d, want %d: %.300s", tc.name, sample.OrderUID, code, tc.code, body)
			continue
		}
		if tc.body != nil && !jsonEqual(t, []byte(body), tc.body) {
			t.Errorf("%s: GET /order/%s answered\n%s\nwant\n%s", tc.name, sample.OrderUID, body, tc.body)
		}
	}
	// The order list needs orders:read, which both keys have.
	for _, token := range []string{piiKey, supportKey} {
		if code, body := httpGetStatus(t, base+"/orders?limit=1", token); code != http.StatusOK {
			t.Errorf("GET /orders: %d %.300s", code, body)
		}
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Errorf("not JSON: %v: %.300s", err, a)
		return false
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(va, vb)
}
