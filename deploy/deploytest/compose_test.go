package deploytest

import (
	"bytes"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// compose models the parts of the Compose file format docker-compose.yml
// uses. Decoding with KnownFields turns a misspelt key (depend_on, heathcheck)
// into a test failure instead of a silently ignored setting.
type compose struct {
	Name     string                    `yaml:"name"`
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
	Secrets  map[string]composeSecret  `yaml:"secrets"`
}

// composeSecret is a top-level secret: a file on the host, or the value of
// a variable of compose's environment (.env).
type composeSecret struct {
	File        string `yaml:"file"`
	Environment string `yaml:"environment"`
}

type composeService struct {
	Image         string        `yaml:"image"`
	Hostname      string        `yaml:"hostname"`
	ContainerName string        `yaml:"container_name"`
	Build         *composeBuild `yaml:"build"`
	Profiles      []string      `yaml:"profiles"`
	DependsOn     map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Environment     map[string]string `yaml:"environment"`
	Entrypoint      []string          `yaml:"entrypoint"`
	Command         []string          `yaml:"command"`
	Ports           []string          `yaml:"ports"`
	Expose          []string          `yaml:"expose"`
	Volumes         []string          `yaml:"volumes"`
	Healthcheck     *composeHealth    `yaml:"healthcheck"`
	Restart         string            `yaml:"restart"`
	StopGracePeriod string            `yaml:"stop_grace_period"`
	ShmSize         string            `yaml:"shm_size"`
	// Secrets granted to the service (short syntax): each is the file
	// /run/secrets/<name> in the container.
	Secrets []string `yaml:"secrets"`
}

type composeBuild struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
}

type composeHealth struct {
	Test        []string `yaml:"test"`
	Interval    string   `yaml:"interval"`
	Timeout     string   `yaml:"timeout"`
	StartPeriod string   `yaml:"start_period"`
	Retries     int      `yaml:"retries"`
}

func loadCompose(t testing.TB) *compose {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(readFile(t, "docker-compose.yml")))
	dec.KnownFields(true)
	var c compose
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("parse docker-compose.yml: %v", err)
	}
	return &c
}

func (c *compose) service(t testing.TB, name string) composeService {
	t.Helper()
	s, ok := c.Services[name]
	if !ok {
		t.Fatalf("docker-compose.yml has no service %q", name)
	}
	return s
}

// topicPartitions reads the topics kafka-init creates and their partition
// counts from its command.
func topicPartitions(t testing.TB, c *compose) map[string]int {
	t.Helper()
	script := strings.Join(c.service(t, "kafka-init").Command, "\n")
	out := map[string]int{}
	re := regexp.MustCompile(`--create --if-not-exists --topic (\S+) --partitions (\d+)`)
	for _, m := range re.FindAllStringSubmatch(script, -1) {
		n, _ := strconv.Atoi(m[2])
		out[m[1]] = n
	}
	return out
}

func TestComposeInfrastructure(t *testing.T) {
	t.Parallel()
	c := loadCompose(t)

	kafka := c.service(t, "kafka")
	if kafka.Image != "apache/kafka:3.9.0" {
		t.Errorf("kafka image = %q, want apache/kafka:3.9.0", kafka.Image)
	}
	for k, want := range map[string]string{
		"KAFKA_PROCESS_ROLES":            "broker,controller",
		"KAFKA_NODE_ID":                  "1",
		"KAFKA_CONTROLLER_QUORUM_VOTERS": "1@kafka:9093",
		"KAFKA_ADVERTISED_LISTENERS":     "PLAINTEXT://kafka:9092",
	} {
		if got := kafka.Environment[k]; got != want {
			t.Errorf("kafka %s = %q, want %q (single-node KRaft)", k, got, want)
		}
	}
	if kafka.Healthcheck == nil || !strings.Contains(strings.Join(kafka.Healthcheck.Test, " "), "kafka-topics.sh") {
		t.Error("kafka needs a healthcheck that lists topics")
	}

	topics := topicPartitions(t, c)
	if topics["orders"] != 6 {
		t.Errorf("kafka-init creates orders with %d partitions, want 6 (topics: %v)", topics["orders"], topics)
	}
	if _, ok := topics["orders.dlq"]; !ok {
		t.Errorf("kafka-init does not create orders.dlq (topics: %v)", topics)
	}

	pg := c.service(t, "postgres")
	if !slices.ContainsFunc(pg.Volumes, func(v string) bool { return strings.HasSuffix(v, ":/var/lib/postgresql/data") }) {
		t.Errorf("postgres has no data volume: %v", pg.Volumes)
	}
	for _, svc := range c.Services {
		for _, v := range svc.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, ".") {
				if _, err := os.Stat(path(t, src)); err != nil {
					t.Errorf("bind mount %q: %v", v, err)
				}
			} else if _, ok := c.Volumes[src]; !ok {
				t.Errorf("volume %q is not declared under top-level volumes", src)
			}
		}
	}
	for name := range c.Volumes {
		used := false
		for _, svc := range c.Services {
			used = used || slices.ContainsFunc(svc.Volumes, func(v string) bool { return strings.HasPrefix(v, name+":") })
		}
		if !used {
			t.Errorf("volume %q is declared but no service mounts it", name)
		}
	}
}

func TestComposeServices(t *testing.T) {
	t.Parallel()
	c := loadCompose(t)

	ing := c.service(t, "ingestor")
	// `docker compose up --scale ingestor=3` fails on a fixed container name
	// or a published host port.
	if ing.ContainerName != "" {
		t.Errorf("ingestor has container_name %q: it could not scale", ing.ContainerName)
	}
	if len(ing.Ports) != 0 {
		t.Errorf("ingestor publishes ports %v: replicas would collide on the host port", ing.Ports)
	}
	if !slices.Contains(ing.Expose, strconv.Itoa(ingestorPort)) {
		t.Errorf("ingestor exposes %v, want %d", ing.Expose, ingestorPort)
	}

	rd := c.service(t, "reader")
	if !slices.Equal(rd.Ports, []string{itoa(readerPort) + ":" + itoa(readerPort)}) {
		t.Errorf("reader ports = %v, want only %d:%d (the ops port stays on the compose network)", rd.Ports, readerPort, readerPort)
	}
	if !slices.Contains(rd.Expose, itoa(readerOpsPort)) {
		t.Errorf("reader exposes %v, want %d", rd.Expose, readerOpsPort)
	}

	prod := c.service(t, "producer")
	if !slices.Equal(prod.Profiles, []string{"demo"}) {
		t.Errorf("producer profiles = %v, want [demo]", prod.Profiles)
	}
	if !slices.Contains(prod.Command, "orders") {
		t.Errorf("producer command %v does not feed topic orders", prod.Command)
	}

	for name, svc := range c.Services {
		if svc.Build != nil {
			if svc.Build.Context != "." {
				t.Errorf("%s: build context %q, want . (the workspace root)", name, svc.Build.Context)
			}
			if _, err := os.Stat(path(t, svc.Build.Dockerfile)); err != nil {
				t.Errorf("%s: dockerfile: %v", name, err)
			}
		}
		if svc.Image == "" {
			t.Errorf("%s has no image", name)
		}
		if svc.Build == nil && (strings.HasSuffix(svc.Image, ":latest") || !strings.Contains(svc.Image, ":")) {
			t.Errorf("%s: pin the image tag, got %q", name, svc.Image)
		}
	}

	// Prometheus and Grafana read the files this repository ships.
	if p := c.service(t, "prometheus"); !slices.Contains(p.Volumes, "./deploy/prometheus:/etc/prometheus:ro") {
		t.Errorf("prometheus volumes %v do not mount deploy/prometheus", p.Volumes)
	}
	g := c.service(t, "grafana")
	for _, want := range []string{"./deploy/grafana/provisioning:/etc/grafana/provisioning:ro", "./deploy/grafana/dashboards:" + grafanaDashboardDir + ":ro"} {
		if !slices.Contains(g.Volumes, want) {
			t.Errorf("grafana volumes %v lack %s", g.Volumes, want)
		}
	}
}

func TestComposeDependsOnHealth(t *testing.T) {
	t.Parallel()
	c := loadCompose(t)
	for name, svc := range c.Services {
		for dep, d := range svc.DependsOn {
			target, ok := c.Services[dep]
			if !ok {
				t.Errorf("%s depends on unknown service %s", name, dep)
				continue
			}
			switch d.Condition {
			case "service_healthy":
				if target.Healthcheck == nil || len(target.Healthcheck.Test) == 0 {
					t.Errorf("%s waits for %s to be healthy, but %s has no healthcheck", name, dep, dep)
				}
			case "service_completed_successfully":
				if target.Restart != "no" {
					t.Errorf("%s waits for one-shot %s, whose restart is %q (want \"no\")", name, dep, target.Restart)
				}
			default:
				t.Errorf("%s depends on %s with condition %q: use service_healthy or service_completed_successfully", name, dep, d.Condition)
			}
		}
	}
	// What each service needs before it can start doing its job.
	needs := map[string][]string{
		"kafka-init": {"kafka"},
		"migrate":    {"postgres"},
		"ingestor":   {"kafka-init", "migrate", "redis"},
		"reader":     {"migrate", "redis"},
		"producer":   {"kafka-init"},
		"grafana":    {"prometheus"},
	}
	for svc, deps := range needs {
		for _, dep := range deps {
			if _, ok := c.service(t, svc).DependsOn[dep]; !ok {
				t.Errorf("%s does not depend on %s", svc, dep)
			}
		}
	}
}

// composeVarRE matches ${VAR}, ${VAR:-default}, ${VAR:?error} and the like;
// $$ is Compose's escape for a literal $ and is skipped by the caller.
var composeVarRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(?::?[-?+])[^}]*)?\}`)

func TestEnvTemplateListsEveryComposeVariable(t *testing.T) {
	t.Parallel()
	var lines []string
	for _, l := range strings.Split(string(readFile(t, "docker-compose.yml")), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			lines = append(lines, l)
		}
	}
	raw := strings.ReplaceAll(strings.Join(lines, "\n"), "$$", "")
	used := map[string]bool{}
	for _, m := range composeVarRE.FindAllStringSubmatch(raw, -1) {
		used[m[1]] = true
	}
	if len(used) == 0 {
		t.Fatal("docker-compose.yml uses no ${VAR}: the regexp or the file is wrong")
	}
	tmpl := readEnvFile(t, ".env.template")
	for v := range used {
		if _, ok := tmpl[v]; !ok {
			t.Errorf(".env.template lacks %s, which docker-compose.yml uses", v)
		}
	}
	for v, val := range tmpl {
		if !used[v] {
			t.Errorf(".env.template lists %s, which docker-compose.yml never uses", v)
		}
		if strings.Contains(v, "PASSWORD") && val != "" {
			t.Errorf(".env.template ships a value for %s: leave secrets empty", v)
		}
	}
	// A required secret must stop `docker compose up` when unset instead of
	// starting with an empty password.
	for _, m := range regexp.MustCompile(`\$\{([A-Z_]*PASSWORD)([^}]*)\}`).FindAllStringSubmatch(raw, -1) {
		if !strings.HasPrefix(m[2], ":?") {
			t.Errorf("${%s%s}: use ${%s:?...} so that a missing password fails fast", m[1], m[2], m[1])
		}
	}
}

func TestComposeHasNoLiteralSecrets(t *testing.T) {
	t.Parallel()
	c := loadCompose(t)
	// With every ${...} removed, a URL's password part must be empty.
	literalPassword := func(v string) bool {
		v = composeVarRE.ReplaceAllString(v, "")
		return regexp.MustCompile(`://[^/@:]*:[^@/]+@`).MatchString(v)
	}
	if !literalPassword("postgres://u:secret@h/db") || literalPassword("postgres://u:${P:?x}@h/db") {
		t.Fatal("literalPassword is broken")
	}
	for name, svc := range c.Services {
		for k, v := range svc.Environment {
			// X_FILE naming a secret granted to the service is a path.
			if secret, ok := strings.CutPrefix(v, "/run/secrets/"); ok && strings.HasSuffix(k, "_FILE") {
				if !slices.Contains(svc.Secrets, secret) {
					t.Errorf("%s: %s names secret %s, which the service is not granted", name, k, secret)
				}
				continue
			}
			if strings.Contains(k, "PASSWORD") && !strings.HasPrefix(v, "${") {
				t.Errorf("%s: %s is a literal, take it from .env", name, k)
			}
			if literalPassword(v) {
				t.Errorf("%s: %s embeds a literal password", name, k)
			}
		}
		for _, arg := range svc.Command {
			if literalPassword(arg) {
				t.Errorf("%s: command embeds a literal password", name)
			}
		}
	}
}
