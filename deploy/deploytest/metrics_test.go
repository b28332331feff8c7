package deploytest

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orderservice/orders/reader/auth"
	"github.com/orderservice/orders/reader/auth/ratelimit"
	"github.com/orderservice/orders/shared/testenv"
)

// composeEnv is a compose service's environment with ${VAR:-default}
// replaced by its default; variables without a default (the secrets) are
// left empty for the caller to override.
func composeEnv(t testing.TB, service string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for k, v := range loadCompose(t).service(t, service).Environment {
		out[k] = interpolate(v)
	}
	return out
}

func interpolate(v string) string {
	return composeVarRE.ReplaceAllStringFunc(v, func(m string) string {
		inner := strings.TrimSuffix(strings.TrimPrefix(m, "${"), "}")
		if _, def, ok := strings.Cut(inner, ":-"); ok {
			return def
		}
		return ""
	})
}

// TestMetricsAfterTraffic runs the real ingestor, reader and producer
// binaries with the settings of docker-compose.yml against real PostgreSQL,
// Redis and Kafka (testenv), drives traffic through them (good orders, a
// duplicate, every class of bad message, a database outage and a Redis
// outage, HTTP reads that hit every cache tier), then checks:
//   - every metric the Grafana dashboard and the alert rules query is
//     exported by a service (or is Prometheus' own `up`);
//   - every metric deploy/README.md's table lists exists, has the type the
//     table says, and moved during the run;
//   - every service metric is in the table.
func TestMetricsAfterTraffic(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	bins := buildBinaries(t, "ingestor", "reader", "producer")

	pg := testenv.Postgres(t)
	rd := testenv.Redis(t)
	kf := testenv.Kafka(t)
	topic := kf.Topic(t, "orders", int32(topicPartitions(t, loadCompose(t))["orders"]))
	dlq := kf.Topic(t, "orders.dlq", 1)
	ingestorDB, pgProxy := testenv.ProxyURL(t, pg.URLAs("order_ingestor"))
	ingestorRedis, redisProxy := testenv.ProxyURL(t, rd.URL)

	s := newSampler()
	defer s.finish()

	// 1. Orders wait in Kafka before the ingestor starts, so that it finds
	// a backlog (consumer lag). The producer runs with the demo profile's
	// command line from docker-compose.yml, pointed at the test broker.
	const generated = 1500
	produce := func(args ...string) {
		t.Helper()
		p := start(t, "producer", bins["producer"], nil, append([]string{"--brokers", kf.Brokers, "--topic", topic, "--progress", "off"}, args...)...)
		select {
		case err := <-p.done:
			p.done <- err
			if err != nil {
				t.Fatalf("producer %v: %v\n%s", args, err, tail(p.out.String(), 4<<10))
			}
		case <-time.After(2 * time.Minute):
			t.Fatalf("producer %v did not finish", args)
		}
	}
	demo := slices.Clone(loadCompose(t).service(t, "producer").Command)
	for i := 0; i+1 < len(demo); i++ {
		demo[i+1] = interpolate(demo[i+1])
		switch demo[i] {
		case "--brokers", "--topic": // replaced above
			demo = slices.Delete(demo, i, i+2)
			i--
		case "--generate":
			demo[i+1] = fmt.Sprint(generated)
		case "--rate":
			demo[i+1] = "0" // as fast as possible: the test has no minute to spare
		}
	}
	produce(append(demo, "--seed", "7")...)
	produce("--sample")
	produce("--sample") // the same order again: a duplicate
	const bad = 6
	produce("--bad", fmt.Sprint(bad), "--seed", "7")
	const total = generated + 2 + bad

	// 2. The ingestor starts while PostgreSQL and Redis are cut off: it
	// retries (outage, retries), and when the database comes back it
	// finds most of the backlog still queued (lag).
	pgProxy.Cut()
	redisProxy.Cut()
	env := composeEnv(t, "ingestor")
	opsAddr := testenv.FreeAddr(t)
	for k, v := range map[string]string{
		"INGESTOR_KAFKA_BROKERS":    kf.Brokers,
		"INGESTOR_KAFKA_TOPIC":      topic,
		"INGESTOR_KAFKA_DLQ_TOPIC":  dlq,
		"INGESTOR_KAFKA_GROUP":      "deploytest-" + topic,
		"INGESTOR_DATABASE_URL":     ingestorDB,
		"INGESTOR_REDIS_URL":        ingestorRedis,
		"INGESTOR_REDIS_KEY_PREFIX": rd.Prefix,
		"INGESTOR_OPS_ADDR":         opsAddr,
		"INGESTOR_BATCH_SIZE":       "10", // many small batches: the backlog lasts
		"INGESTOR_RETRY_MAX":        "500ms",
		"INGESTOR_SHUTDOWN_TIMEOUT": "5s",
	} {
		if _, ok := env[k]; !ok {
			t.Fatalf("docker-compose.yml ingestor does not set %s", k)
		}
		env[k] = v
	}
	ing := start(t, "ingestor", bins["ingestor"], env)
	ingBase := "http://" + opsAddr
	waitFor(t, "ingestor /healthz", 30*time.Second, func() error {
		if err := ing.exited(); err != nil {
			t.Fatal(err)
		}
		code, _, err := httpGet(ctx, ingBase+livePath)
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("status %d", code)
		}
		return err
	})
	s.add("ingestor", ingBase+metricsPath)
	started := time.Now()
	// /readyz must say no while the database is unreachable.
	if code, body, err := httpGet(ctx, ingBase+readyPath); err != nil || code != http.StatusServiceUnavailable {
		t.Errorf("ingestor /readyz during a database outage: %d %s %v, want 503", code, body, err)
	}
	// The lag gauges refresh every 3 seconds: keep the outage longer than
	// that so the refresh after recovery sees the backlog.
	waitFor(t, "database retries", time.Minute, func() error {
		fams := s.families()
		if n := sum(fams["ingestor_retries_total"], map[string]string{"stage": "db"}); n < 3 || time.Since(started) < 4*time.Second {
			return fmt.Errorf("%v db retries after %s", n, time.Since(started).Round(time.Millisecond))
		}
		return nil
	})
	pgProxy.Restore()
	waitFor(t, "Redis write errors", time.Minute, func() error {
		if n := sum(s.families()["ingestor_redis_errors_total"], nil); n == 0 {
			return fmt.Errorf("none yet")
		}
		return nil
	})
	redisProxy.Restore()
	waitFor(t, "every message consumed", 2*time.Minute, func() error {
		if err := ing.exited(); err != nil {
			t.Fatal(err)
		}
		if n := sum(s.families()["ingestor_messages_total"], nil); n != total {
			return fmt.Errorf("ingestor_messages_total = %v, want %d", n, total)
		}
		return nil
	})
	waitFor(t, "ingestor /readyz", 30*time.Second, func() error {
		code, body, err := httpGet(ctx, ingBase+readyPath)
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("status %d: %s", code, body)
		}
		return err
	})
	fams := s.families()
	if n := sum(fams["ingestor_messages_total"], map[string]string{"outcome": "dead_lettered"}); n < 1 {
		t.Errorf("no dead letters counted after %d bad messages", bad)
	}
	if n := sum(fams["ingestor_messages_total"], map[string]string{"outcome": "duplicate"}); n != 1 {
		t.Errorf("%v duplicates counted, want 1 (the sample order sent twice)", n)
	}

	// 3. The reader starts on the stored orders (its warm-up loads them)
	// and serves reads that go through every cache tier.
	renv := composeEnv(t, "reader")
	listen, ops := testenv.FreeAddr(t), testenv.FreeAddr(t)
	// The reader's keys file, as `reader keys new` writes it: a key with
	// both grants and no rate limit of its own (the bursts below exceed any
	// default), and one allowed a request a second.
	keyLine := func(name, rate string) (token, line string) {
		t.Helper()
		token, hash, err := auth.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		r, err := ratelimit.ParseRate(rate)
		if err != nil {
			t.Fatal(err)
		}
		return token, auth.KeyLine(name, []string{auth.ScopeRead, auth.ScopePII}, hash, &r) + "\n"
	}
	token, line := keyLine("deploytest", "0")
	slowToken, slowLine := keyLine("deploytest-slow", "1/1")
	keysFile := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(keysFile, []byte(line+slowLine), 0o600); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"READER_API_KEYS_FILE":    keysFile,
		"READER_LISTEN_ADDR":      listen,
		"READER_OPS_ADDR":         ops,
		"READER_DATABASE_URL":     pg.URLAs("order_reader"),
		"READER_REDIS_URL":        rd.URL,
		"READER_REDIS_KEY_PREFIX": rd.Prefix,
		"READER_SHUTDOWN_TIMEOUT": "5s",
	} {
		if _, ok := renv[k]; !ok {
			t.Fatalf("docker-compose.yml reader does not set %s", k)
		}
		renv[k] = v
	}
	rdr := start(t, "reader", bins["reader"], renv)
	base := "http://" + listen
	waitFor(t, "reader /readyz", time.Minute, func() error {
		if err := rdr.exited(); err != nil {
			t.Fatal(err)
		}
		code, body, err := httpGet(ctx, base+readyPath)
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("status %d: %s", code, body)
		}
		return err
	})
	s.add("reader", "http://"+ops+metricsPath)
	// The liveness path the k8s probes use answers on the real binary.
	if code, body, err := httpGet(ctx, base+livePath); err != nil || code != http.StatusOK {
		t.Errorf("reader %s: %d %s %v", livePath, code, body, err)
	}

	warm := renv["READER_WARM_COUNT"]
	rows, err := pg.Pool.Query(ctx, "SELECT order_uid FROM orders ORDER BY date_created DESC, order_uid DESC")
	if err != nil {
		t.Fatal(err)
	}
	var uids []string
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			t.Fatal(err)
		}
		uids = append(uids, u)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(uids) != generated+1 {
		t.Fatalf("%d orders stored, want %d", len(uids), generated+1)
	}
	nWarm, err := strconv.Atoi(warm)
	if err != nil {
		t.Fatalf("warm-up count %q: %v", warm, err)
	}
	get := func(path string, want int) {
		t.Helper()
		code, body, err := httpGetAuth(ctx, base+path, token)
		if err != nil || code != want {
			t.Errorf("GET %s: %d %v, want %d: %.200s", path, code, err, want, body)
		}
	}
	for _, u := range []string{uids[0], uids[1], uids[nWarm], uids[nWarm+1], uids[len(uids)-1]} {
		get("/order/"+u, http.StatusOK) // local, redis or db tier
		get("/order/"+u, http.StatusOK) // now local
	}
	get("/order/no-such-order", http.StatusNotFound)
	get("/order/no-such-order", http.StatusNotFound) // negative tier
	get("/orders?limit=5", http.StatusOK)
	get("/order/"+url.PathEscape("not a uid!"), http.StatusBadRequest)
	// Refused requests, for the authentication metrics: no credential, an
	// unknown key, and a key past its rate (a reader without
	// authentication serves them all).
	for _, bad := range []string{"", "ord_" + strings.Repeat("0", 43)} {
		if _, _, err := httpGetAuth(ctx, base+"/orders?limit=1", bad); err != nil {
			t.Error(err)
		}
	}
	limited := 0
	for range 3 {
		code, _, err := httpGetAuth(ctx, base+"/orders?limit=1", slowToken)
		if err != nil {
			t.Error(err)
		}
		if code == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited == 0 {
		t.Error("3 requests at once with a key of 1 request/s: none refused with 429")
	}

	// Concurrent lookups of one uncached order share one load
	// (singleflight): fire bursts until the counter shows it.
	waitFor(t, "a shared load", time.Minute, func() error {
		uid := fmt.Sprintf("burst-%d", time.Now().UnixNano())
		var wg sync.WaitGroup
		gate := make(chan struct{})
		for range 32 {
			wg.Go(func() {
				<-gate
				_, _, _ = httpGetAuth(ctx, base+"/order/"+uid, token)
			})
		}
		close(gate)
		wg.Wait()
		fs, err := scrape(ctx, "http://"+ops+metricsPath)
		if err != nil {
			return err
		}
		if sum(fs["reader_singleflight_shared_total"], nil) == 0 {
			return fmt.Errorf("no shared load yet")
		}
		return nil
	})

	// 4. An order sent while the reader runs is announced to it on the
	// events channel (the sample again: a duplicate, announced as stored).
	// Cache writes and announcements pause for a while after the Redis
	// outage, so send until one gets through.
	waitFor(t, "an announcement the reader hears", time.Minute, func() error {
		produce("--sample")
		fs, err := scrape(ctx, "http://"+ops+metricsPath)
		if err != nil {
			return err
		}
		if sum(fs["reader_invalidations_total"], map[string]string{"kind": "stored"}) == 0 {
			return fmt.Errorf("none yet")
		}
		return nil
	})

	s.finish()
	for svc, err := range s.errs {
		if err != nil {
			t.Errorf("scraping %s: %v", svc, err)
		}
	}
	fams = s.families()

	// Every metric a dashboard panel or an alert queries exists.
	queries := dashboardExprs(t)
	for alert, e := range alertExprs(t) {
		queries["alert "+alert] = e
	}
	for where, e := range queries {
		for _, name := range MetricNames(e) {
			if name == "up" { // Prometheus' own, per scrape target
				continue
			}
			if _, ok := familyOf(name, fams); !ok {
				t.Errorf("%s queries %s, which neither service exports", where, name)
			}
		}
	}

	// Every metric of the README table exists, has its type and moved.
	listed := map[string]bool{}
	for _, m := range readmeMetrics(t) {
		if prefix, ok := strings.CutSuffix(m.Name, "*"); ok {
			var any, moved bool
			for name := range fams {
				if strings.HasPrefix(name, prefix) {
					any = true
					moved = moved || s.hasMoved(name)
					listed[name] = true
				}
			}
			if !any || !moved {
				t.Errorf("README lists %s: found %v, moved %v", m.Name, any, moved)
			}
			continue
		}
		listed[m.Name] = true
		f, ok := fams[m.Name]
		if !ok {
			t.Errorf("README lists %s, which no service exports", m.Name)
			continue
		}
		if got := strings.ToLower(f.GetType().String()); got != m.Type {
			t.Errorf("README says %s is a %s; it is a %s", m.Name, m.Type, got)
		}
		if by := s.exporter(m.Name); by != m.Service {
			t.Errorf("README says %s comes from %s; %s exports it", m.Name, m.Service, by)
		}
		if !s.hasMoved(m.Name) {
			t.Errorf("README lists %s, which did not move during the run", m.Name)
		}
		if m.Meaning == "" {
			t.Errorf("README gives %s no meaning", m.Name)
		}
	}
	for _, idle := range readmeIdle(t) {
		prefix, wild := strings.CutSuffix(idle, "*")
		found := false
		for name := range fams {
			if name == idle || wild && strings.HasPrefix(name, prefix) {
				found = true
				listed[name] = true
			}
		}
		if !found {
			t.Errorf("README says %s is exported, but no service exports it", idle)
		}
	}
	for name := range fams {
		if !listed[name] {
			t.Errorf("%s exports %s, missing from deploy/README.md's metrics table", s.exporter(name), name)
		}
	}
	if t.Failed() {
		var names []string
		for name, f := range fams {
			names = append(names, fmt.Sprintf("%s (%s, %s, moved %v)", name, s.exporter(name), strings.ToLower(f.GetType().String()), s.hasMoved(name)))
		}
		slices.Sort(names)
		t.Logf("exported:\n%s", strings.Join(names, "\n"))
	}
}
