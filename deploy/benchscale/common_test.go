package benchscale

// What the benchmarks of this package share, without the build tag, so
// that `make test` compiles it (and BenchmarkIngestors) even though it
// never runs the benchmarks.

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderservice/orders/ingestor/ingest"
	"github.com/orderservice/orders/shared/ordergen"
	"github.com/orderservice/orders/shared/testenv"
)

// storedOrder is an order as the ingestor writes it: with the SHA-256 of
// its canonical JSON.
type storedOrder = ingest.StoredOrder

func TestMain(m *testing.M) { testenv.Main(m) }

// commands are the packages of the commands the benchmarks start, by
// binary name: the three services and the uncached GETs' reference
// server.
var commands = map[string]string{
	"ingestor": "./ingestor", "reader": "./reader", "producer": "./producer",
	"refreader": "./deploy/benchscale/refreader",
}

// buildBinaries builds the named commands (of commands) in one go build
// and returns their binaries by name.
func buildBinaries(t testing.TB, root string, names ...string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	args := []string{"build", "-o", dir + string(os.PathSeparator)}
	bins := map[string]string{}
	for _, name := range names {
		pkg, ok := commands[name]
		if !ok {
			t.Fatalf("no command %q to build", name)
		}
		args = append(args, pkg)
		bins[name] = filepath.Join(dir, name)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bins
}

// topicRecords is the number of records in topic (the sum of its end offsets).
func topicRecords(t testing.TB, adm *kadm.Client, topic string) int64 {
	t.Helper()
	ends, err := adm.ListEndOffsets(context.Background(), topic)
	if err != nil {
		t.Fatalf("end offsets of %s: %v", topic, err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

func writeNDJSON(t testing.TB, path string, orders []storedOrder) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	enc := json.NewEncoder(w)
	for _, o := range orders {
		if err := enc.Encode(o.Order); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// scrapeMetrics returns the text of /metrics at the ops address ("" if it
// does not answer).
func scrapeMetrics(ops string) string {
	resp, err := http.Get("http://" + ops + "/metrics") //nolint:noctx // local, and polled
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var b strings.Builder
	_, _ = bufio.NewReader(resp.Body).WriteTo(&b)
	return b.String()
}

// sample finds one sample (name plus exact label text) in a scrape.
func sample(scraped, name string) (float64, bool) {
	for line := range strings.Lines(scraped) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

func freeAddr(t testing.TB) string { return testenv.FreeAddr(t) }

func generateRange(first int64, n int) []storedOrder {
	gen := ordergen.New(first + 1_000_003)
	out := make([]storedOrder, n)
	for i := range out {
		o := gen.Order()
		retime(o, first+int64(i))
		c, err := o.Canonical()
		if err != nil {
			panic(fmt.Sprintf("canonical encoding of a generated order: %v", err))
		}
		out[i] = storedOrder{Order: o, SHA256: sha256.Sum256(c)}
	}
	return out
}

// deleteKeys removes the Redis keys under prefix (what a process of a run
// wrote), so that runs do not fill Redis.
func deleteKeys(ctx context.Context, t testing.TB, rc *redis.Client, prefix string) {
	iter := rc.Scan(ctx, 0, prefix+"*", 10_000).Iterator()
	var batch []string
	flush := func() {
		if len(batch) > 0 {
			if err := rc.Unlink(ctx, batch...).Err(); err != nil {
				t.Logf("unlink: %v", err)
			}
			batch = batch[:0]
		}
	}
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 10_000 {
			flush()
		}
	}
	flush()
	if err := iter.Err(); err != nil {
		t.Logf("scan %s*: %v", prefix, err)
	}
}

// repoRoot is the workspace's root (where go.work is), two levels up.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.work")); err != nil {
		t.Fatalf("the repository root (go.work) is not %s: %v", root, err)
	}
	return root
}

// readLoad is the machine's load average now ("1.23 0.98 0.70").
func readLoad(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		t.Fatal(err)
	}
	s, err := loadAverage(string(b))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// produceFile sends orders to topic with the producer binary (--file).
func produceFile(t testing.TB, producer, brokers, topic string, orders []storedOrder) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "orders.ndjson")
	writeNDJSON(t, file, orders)
	defer os.Remove(file)
	out, err := exec.Command(producer, "--brokers", brokers, "--topic", topic, "--file", file, "--progress", "off").CombinedOutput()
	if err != nil {
		t.Fatalf("producer: %v\n%s", err, out)
	}
}

// newAdmin is an admin client of the brokers, closed at cleanup.
func newAdmin(t testing.TB, brokers string) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// histogramOver counts, in a scrape, the observations of the histogram
// metric (its series whose labels contain labels) above the bucket bound
// le, and all of them: over = count - bucket{le}.
func histogramOver(scraped, metric, labels, le string) (over, total float64) {
	for line := range strings.Lines(scraped) {
		line = strings.TrimSpace(line)
		rest, ok := strings.CutPrefix(line, metric+"_bucket{")
		if !ok || !strings.Contains(rest, labels) {
			continue
		}
		i := strings.LastIndexByte(rest, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(rest[i+1:], 64)
		if err != nil {
			continue
		}
		switch {
		case strings.Contains(rest, `le="+Inf"`):
			total += v
			over += v
		case strings.Contains(rest, `le="`+le+`"`):
			over -= v
		}
	}
	return over, total
}
