package deploytest

import (
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/orderservice/orders/reader/auth"
	"github.com/orderservice/orders/reader/auth/ratelimit"
	"github.com/orderservice/orders/shared/testenv"
)

// The reader's API keys secret, in compose and k8s.
const (
	readerKeysSecret        = "reader-api-keys" // the k8s Secret
	composeReaderKeysSecret = "reader_api_keys" // the compose secret
)

// secretish matches the names of variables that hold secrets.
var secretish = regexp.MustCompile(`PASSWORD|SECRET|TOKEN|_URL$|CREDENTIAL|API_KEY`)

// passwordFlag matches a password given as a command-line option.
var passwordFlag = regexp.MustCompile(`(?i)(--requirepass|--masterauth|--pass(word)?\b|(^|\s)-a\s|REDISCLI_AUTH=[^"$\s])`)

// commandLineSecrets lists what in one command line (entrypoint, command,
// args, a healthcheck test) would put a secret on a process's command line,
// where ps, /proc/*/cmdline and docker inspect show it: a password option,
// a compose ${VAR} or a Kubernetes $(VAR) naming a secret.
func commandLineSecrets(args []string, k8sSecretEnv map[string]bool) []string {
	var found []string
	// Joined: an option and its value may be separate arguments.
	if m := passwordFlag.FindString(strings.Join(args, " ") + " "); m != "" {
		found = append(found, fmt.Sprintf("password option %q", strings.TrimSpace(m)))
	}
	for _, a := range args {
		for _, m := range composeVarRE.FindAllStringSubmatch(strings.ReplaceAll(a, "$$", ""), -1) {
			if secretish.MatchString(m[1]) {
				found = append(found, "${"+m[1]+"}")
			}
		}
		// Kubernetes expands $(NAME) in command and args ($$ escapes it).
		for _, m := range regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`).FindAllStringSubmatch(strings.ReplaceAll(a, "$$", ""), -1) {
			if k8sSecretEnv[m[1]] {
				found = append(found, "$("+m[1]+")")
			}
		}
	}
	return found
}

func TestCommandLinesCarryNoSecret(t *testing.T) {
	t.Parallel()
	// The check can fail.
	for _, bad := range [][]string{
		{"redis-server", "--requirepass", "x"},
		{"redis-server", "--requirepass", "${REDIS_PASSWORD:?set it}"},
		{"sh", "-c", "psql ${POSTGRES_PASSWORD}"},
		{"redis-cli", "-a", "hunter2", "ping"},
		{"sh", "-c", "REDISCLI_AUTH=hunter2 redis-cli ping"},
		{"migrate", "--url", "$(DATABASE_URL)"},
	} {
		if len(commandLineSecrets(bad, map[string]bool{"DATABASE_URL": true})) == 0 {
			t.Errorf("commandLineSecrets(%q) finds nothing", bad)
		}
	}
	for _, good := range [][]string{
		{"--brokers", "kafka:9092", "--generate", "${DEMO_ORDERS:-1000}"},
		{"sh", "-c", `REDISCLI_AUTH="$$(cat "$$REDIS_PASSWORD_FILE")" redis-cli ping`},
		{"bash", "-c", `topics --bootstrap-server "$KAFKA_BROKERS"`},
	} {
		if found := commandLineSecrets(good, nil); len(found) != 0 {
			t.Errorf("commandLineSecrets(%q) = %v", good, found)
		}
	}

	for name, svc := range loadCompose(t).Services {
		args := slices.Concat(svc.Entrypoint, svc.Command)
		if svc.Healthcheck != nil {
			args = append(args, svc.Healthcheck.Test...)
		}
		if found := commandLineSecrets(args, nil); len(found) > 0 {
			t.Errorf("docker-compose.yml %s: a secret on the command line: %v", name, found)
		}
	}
	b := loadK8s(t)
	for key, o := range b.objects {
		spec := digMap(o, "spec", "template", "spec")
		for _, c := range slices.Concat(digList(spec, "initContainers"), digList(spec, "containers")) {
			secretEnv := map[string]bool{}
			for _, e := range digList(c, "env") {
				if digMap(e, "valueFrom", "secretKeyRef") != nil {
					secretEnv[digString(e, "name")] = true
				}
			}
			var args []string
			for _, field := range []string{"command", "args"} {
				for _, a := range digList(c, field) {
					s, _ := a.(string)
					args = append(args, s)
				}
			}
			if found := commandLineSecrets(args, secretEnv); len(found) > 0 {
				t.Errorf("deploy/k8s %s container %s: a secret on the command line: %v", key, digString(c, "name"), found)
			}
		}
	}
}

// TestComposePublishesOnlyTheReaderWidely: the reader's public port is the
// one port published on every host address; Prometheus and Grafana (no
// authentication, or one admin password) answer on the host's loopback
// only.
func TestComposePublishesOnlyTheReaderWidely(t *testing.T) {
	t.Parallel()
	c := loadCompose(t)
	for name, want := range map[string]string{"prometheus": "9090", "grafana": "3000"} {
		if got := c.service(t, name).Ports; !slices.Equal(got, []string{"127.0.0.1:" + want + ":" + want}) {
			t.Errorf("%s publishes %v, want only 127.0.0.1:%s:%s", name, got, want, want)
		}
	}
	for name, svc := range c.Services {
		for _, p := range svc.Ports {
			if name == "reader" && p == itoa(readerPort)+":"+itoa(readerPort) {
				continue
			}
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("%s publishes %q on every host address", name, p)
			}
		}
	}
}

// TestComposeSecrets: each secret a service is granted is declared, each
// declared secret is used, and the reader's keys file is the secret the
// reader is told to read.
func TestComposeSecrets(t *testing.T) {
	t.Parallel()
	c := loadCompose(t)
	granted := map[string]bool{}
	for name, svc := range c.Services {
		for _, s := range svc.Secrets {
			granted[s] = true
			if _, ok := c.Secrets[s]; !ok {
				t.Errorf("%s is granted secret %s, which is not declared", name, s)
			}
		}
	}
	tmpl := readEnvFile(t, ".env.template")
	for name, s := range c.Secrets {
		if !granted[name] {
			t.Errorf("secret %s is granted to no service", name)
		}
		if (s.File == "") == (s.Environment == "") {
			t.Errorf("secret %s: want exactly one of file and environment", name)
		}
		if _, ok := tmpl[s.Environment]; s.Environment != "" && !ok {
			t.Errorf("secret %s comes from %s, which .env.template does not list", name, s.Environment)
		}
	}

	rd := c.service(t, "reader")
	if !slices.Contains(rd.Secrets, composeReaderKeysSecret) {
		t.Errorf("the reader is not granted %s (secrets %v)", composeReaderKeysSecret, rd.Secrets)
	}
	if got, want := rd.Environment["READER_API_KEYS_FILE"], "/run/secrets/"+composeReaderKeysSecret; got != want {
		t.Errorf("compose READER_API_KEYS_FILE = %q, want %q (where compose mounts the secret)", got, want)
	}
	// The host file: its default is git-ignored and has an example that the
	// reader's own parser accepts.
	file := interpolate(c.Secrets[composeReaderKeysSecret].File)
	if file == "" {
		t.Fatalf("secret %s has no default file", composeReaderKeysSecret)
	}
	if out, err := exec.Command("git", "-C", root(t), "check-ignore", "-q", file).CombinedOutput(); err != nil {
		t.Errorf("%s is not git-ignored (%v %s)", file, err, out)
	}
	checkKeysExample(t, path(t, file+".example"))
	checkDockerIgnored(t, file, path(t, k8sDir, readerKeysSecret))
	if tmpl["READER_API_KEYS_PATH"] != file {
		t.Errorf(".env.template READER_API_KEYS_PATH = %q, compose's default %q", tmpl["READER_API_KEYS_PATH"], file)
	}

	// Redis reads its password from its secret, the one the services'
	// URLs embed.
	redis := c.service(t, "redis")
	if s := c.Secrets["redis_password"]; !slices.Contains(redis.Secrets, "redis_password") || s.Environment != "REDIS_PASSWORD" {
		t.Errorf("redis secrets %v, redis_password from %q: want redis_password from REDIS_PASSWORD", redis.Secrets, s.Environment)
	}
	if got := redis.Environment["REDIS_PASSWORD_FILE"]; got != "/run/secrets/redis_password" {
		t.Errorf("redis REDIS_PASSWORD_FILE = %q", got)
	}
	for _, svc := range []string{"ingestor", "reader"} {
		for k, v := range c.service(t, svc).Environment {
			if strings.HasSuffix(k, "REDIS_URL") && !strings.Contains(v, "${REDIS_PASSWORD:?") {
				t.Errorf("%s %s does not embed REDIS_PASSWORD", svc, k)
			}
		}
	}
}

// checkDockerIgnored: files stay out of every image build's context.
func checkDockerIgnored(t *testing.T, files ...string) {
	t.Helper()
	ig, err := ParseIgnore(string(readFile(t, ".dockerignore")))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		rel, err := filepath.Rel(root(t), path(t, strings.TrimPrefix(f, root(t))))
		if err != nil {
			t.Fatal(err)
		}
		if !ig.Match(filepath.ToSlash(rel)) {
			t.Errorf(".dockerignore lets %s into the build context", rel)
		}
	}
}

// checkKeysExample: an example keys file is one the reader loads.
func checkKeysExample(t *testing.T, file string) {
	t.Helper()
	if _, err := auth.NewKeyStore(file, ratelimit.Rate{}, nil, nil); err != nil {
		t.Errorf("the reader refuses %s: %v", file, err)
	}
	if b, err := os.ReadFile(file); err != nil || !strings.Contains(string(b), "keys new") {
		t.Errorf("%s does not say how to make a key (reader keys new)", file)
	}
}

func TestK8sNamespacePodSecurity(t *testing.T) {
	t.Parallel()
	b := loadK8s(t)
	labels := digMap(b.object(t, "Namespace/"+b.k.Namespace), "metadata", "labels")
	for _, mode := range []string{"enforce", "warn", "audit"} {
		if got := labels["pod-security.kubernetes.io/"+mode]; got != "restricted" {
			t.Errorf("namespace label pod-security.kubernetes.io/%s = %v, want restricted", mode, got)
		}
	}
	// A pinned enforce version: a cluster upgrade that tightens the
	// profile warns (warn, audit: latest) before it refuses pods.
	if v, _ := labels["pod-security.kubernetes.io/enforce-version"].(string); !regexp.MustCompile(`^v1\.\d+$`).MatchString(v) {
		t.Errorf("enforce-version %q, want a pinned v1.N", v)
	}
}

// restrictedViolations returns how a pod spec breaks the Pod Security
// Standards' restricted profile (as of Kubernetes 1.30), and this
// repository's own rule of a read-only root filesystem.
func restrictedViolations(spec map[string]any) []string {
	var v []string
	for _, host := range []string{"hostNetwork", "hostPID", "hostIPC"} {
		if dig(spec, host) == true {
			v = append(v, host)
		}
	}
	allowedVolumes := []string{"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"}
	for _, vol := range digList(spec, "volumes") {
		for k := range vol.(map[string]any) {
			if k != "name" && !slices.Contains(allowedVolumes, k) {
				v = append(v, fmt.Sprintf("volume %s is %s", digString(vol, "name"), k))
			}
		}
	}
	pod := digMap(spec, "securityContext")
	seccomp := func(sc map[string]any) string { return digString(sc, "seccompProfile", "type") }
	okSeccomp := func(t string) bool { return t == "RuntimeDefault" || t == "Localhost" }
	if s := seccomp(pod); s != "" && !okSeccomp(s) {
		v = append(v, "pod seccompProfile "+s)
	}
	if u, ok := asInt(dig(pod, "runAsUser")); ok && u == 0 {
		v = append(v, "pod runAsUser 0")
	}
	for _, sysctl := range digList(pod, "sysctls") {
		v = append(v, "sysctl "+digString(sysctl, "name"))
	}
	containers := slices.Concat(digList(spec, "initContainers"), digList(spec, "containers"))
	if len(containers) == 0 {
		v = append(v, "no containers")
	}
	for _, c := range containers {
		name := digString(c, "name")
		sc := digMap(c, "securityContext")
		if dig(sc, "privileged") == true {
			v = append(v, name+": privileged")
		}
		if dig(sc, "allowPrivilegeEscalation") != false {
			v = append(v, name+": allowPrivilegeEscalation not false")
		}
		if dig(sc, "runAsNonRoot") != true && (dig(pod, "runAsNonRoot") != true || dig(sc, "runAsNonRoot") == false) {
			v = append(v, name+": runAsNonRoot not true")
		}
		if u, ok := asInt(dig(sc, "runAsUser")); ok && u == 0 {
			v = append(v, name+": runAsUser 0")
		}
		if s := seccomp(sc); s != "" && !okSeccomp(s) || s == "" && !okSeccomp(seccomp(pod)) {
			v = append(v, name+": no RuntimeDefault or Localhost seccompProfile")
		}
		var drop []string
		for _, d := range digList(sc, "capabilities", "drop") {
			s, _ := d.(string)
			drop = append(drop, s)
		}
		if !slices.Contains(drop, "ALL") {
			v = append(v, name+": capabilities do not drop ALL")
		}
		for _, a := range digList(sc, "capabilities", "add") {
			if a != "NET_BIND_SERVICE" {
				v = append(v, fmt.Sprintf("%s: adds capability %v", name, a))
			}
		}
		if p := digString(sc, "procMount"); p != "" && p != "Default" {
			v = append(v, name+": procMount "+p)
		}
		for _, p := range digList(c, "ports") {
			if hp, _ := asInt(dig(p, "hostPort")); hp != 0 {
				v = append(v, fmt.Sprintf("%s: hostPort %d", name, hp))
			}
		}
		if dig(sc, "readOnlyRootFilesystem") != true {
			v = append(v, name+": root filesystem writable")
		}
	}
	return v
}

// podTemplates are the pod specs of every workload of deploy/k8s.
func podTemplates(b *k8sBase) map[string]map[string]any {
	out := map[string]map[string]any{}
	for key, o := range b.objects {
		if spec := digMap(o, "spec", "template", "spec"); spec != nil {
			out[key] = spec
		}
	}
	return out
}

func TestK8sPodsMeetRestrictedProfile(t *testing.T) {
	t.Parallel()
	b := loadK8s(t)
	pods := podTemplates(b)
	for _, want := range []string{"Deployment/reader", "Deployment/ingestor", "Job/orders-migrate", "Job/orders-topics"} {
		if _, ok := pods[want]; !ok {
			t.Errorf("no pod template of %s", want)
		}
	}
	for key, spec := range pods {
		if v := restrictedViolations(spec); len(v) > 0 {
			t.Errorf("%s breaks the restricted profile: %s", key, strings.Join(v, "; "))
		}
	}

	// The checker catches each kind of violation, on a copy of the reader.
	for _, tc := range []struct {
		name   string
		mutate func(spec map[string]any)
	}{
		{"host network", func(s map[string]any) { s["hostNetwork"] = true }},
		{"hostPath", func(s map[string]any) {
			s["volumes"] = append(digList(s, "volumes"), map[string]any{"name": "h", "hostPath": map[string]any{"path": "/"}})
		}},
		{"no seccomp", func(s map[string]any) { delete(digMap(s, "securityContext"), "seccompProfile") }},
		{"root", func(s map[string]any) { delete(digMap(s, "securityContext"), "runAsNonRoot") }},
		{"escalation", func(s map[string]any) {
			delete(digMap(s, "containers", 0, "securityContext"), "allowPrivilegeEscalation")
		}},
		{"capabilities kept", func(s map[string]any) { delete(digMap(s, "containers", 0, "securityContext"), "capabilities") }},
		{"capability added", func(s map[string]any) {
			digMap(s, "containers", 0, "securityContext", "capabilities")["add"] = []any{"SYS_ADMIN"}
		}},
		{"privileged", func(s map[string]any) { digMap(s, "containers", 0, "securityContext")["privileged"] = true }},
		{"writable root", func(s map[string]any) {
			delete(digMap(s, "containers", 0, "securityContext"), "readOnlyRootFilesystem")
		}},
		{"host port", func(s map[string]any) { digMap(s, "containers", 0, "ports", 0)["hostPort"] = 8080 }},
	} {
		fresh := digMap(loadK8s(t).object(t, "Deployment/reader"), "spec", "template", "spec")
		tc.mutate(fresh)
		if len(restrictedViolations(fresh)) == 0 {
			t.Errorf("%s: not reported", tc.name)
		}
	}
}

// A NetworkPolicy evaluator, enough for the policies of deploy/k8s: label
// selectors with matchLabels, peers with podSelector, namespaceSelector
// (both: the pod must match both) and ipBlock, numeric and named ports.

// endpoint is one side of a connection: a pod (namespace, its labels, the
// namespace's labels) or, with pod false, an address outside the cluster.
type endpoint struct {
	name      string
	pod       bool
	namespace string
	nsLabels  map[string]string
	labels    map[string]string
}

func selects(sel map[string]any, labels map[string]string) bool {
	if sel == nil {
		return false
	}
	for k, v := range digMap(sel, "matchLabels") {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// peerAllows reports whether one "from" entry of a policy in namespace ns
// admits src.
func peerAllows(peer map[string]any, ns string, src endpoint) bool {
	if dig(peer, "ipBlock") != nil {
		// Any address outside the cluster, for these tests.
		return !src.pod && digString(peer, "ipBlock", "cidr") == "0.0.0.0/0" && len(digList(peer, "ipBlock", "except")) == 0
	}
	if !src.pod {
		return false
	}
	nsSel, podSel := digMap(peer, "namespaceSelector"), digMap(peer, "podSelector")
	switch {
	case nsSel != nil && podSel != nil:
		return selects(nsSel, src.nsLabels) && selects(podSel, src.labels)
	case nsSel != nil:
		return selects(nsSel, src.nsLabels)
	case podSel != nil:
		return src.namespace == ns && selects(podSel, src.labels)
	}
	return false
}

// allowed reports whether src may open a TCP connection to port of dst (a
// pod in namespace ns with its container ports by name), under policies.
func allowed(policies []map[string]any, ns string, dst endpoint, ports map[string]int, port int, src endpoint) bool {
	isolated := false
	for _, p := range policies {
		spec := digMap(p, "spec")
		types := digList(spec, "policyTypes")
		if !selects(digMap(spec, "podSelector"), dst.labels) || len(types) > 0 && !slices.Contains(types, any("Ingress")) {
			continue
		}
		isolated = true
		for _, rule := range digList(spec, "ingress") {
			portOK := len(digList(rule, "ports")) == 0
			for _, rp := range digList(rule, "ports") {
				if proto := digString(rp, "protocol"); proto != "" && proto != "TCP" {
					continue
				}
				switch v := dig(rp, "port").(type) {
				case int:
					portOK = portOK || v == port
				case string:
					n, ok := ports[v]
					portOK = portOK || ok && n == port
				case nil:
					portOK = true
				}
			}
			peerOK := len(digList(rule, "from")) == 0
			for _, peer := range digList(rule, "from") {
				peerOK = peerOK || peerAllows(peer.(map[string]any), ns, src)
			}
			if portOK && peerOK {
				return true
			}
		}
	}
	return !isolated
}

func stringMap(m map[string]any) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = fmt.Sprint(v)
	}
	return out
}

func TestK8sNetworkPolicies(t *testing.T) {
	t.Parallel()
	b := loadK8s(t)
	ns := b.k.Namespace
	var policies []map[string]any
	for _, key := range slices.Sorted(maps.Keys(b.objects)) {
		if strings.HasPrefix(key, "NetworkPolicy/") {
			policies = append(policies, b.objects[key])
		}
	}
	// Every pod of the namespace is isolated: a new workload is closed
	// until a policy opens it.
	denyAll := false
	for _, p := range policies {
		spec := digMap(p, "spec")
		if sel := digMap(spec, "podSelector"); sel != nil && len(sel) == 0 && len(digList(spec, "ingress")) == 0 {
			denyAll = true
		}
	}
	if !denyAll {
		t.Error("no default-deny policy (podSelector {}, no ingress rule)")
	}

	nsLabels := func(n string) map[string]string { return map[string]string{"kubernetes.io/metadata.name": n} }
	pods := map[string]endpoint{}
	podPorts := map[string]map[string]int{}
	for key, spec := range podTemplates(b) {
		labels := stringMap(digMap(b.objects[key], "spec", "template", "metadata", "labels"))
		pods[key] = endpoint{name: key, pod: true, namespace: ns, nsLabels: nsLabels(ns), labels: labels}
		podPorts[key] = map[string]int{}
		for _, c := range digList(spec, "containers") {
			for _, p := range digList(c, "ports") {
				n, _ := asInt(dig(p, "containerPort"))
				podPorts[key][digString(p, "name")] = n
			}
		}
	}
	prometheus := endpoint{name: "Prometheus", pod: true, namespace: "monitoring", nsLabels: nsLabels("monitoring"),
		labels: map[string]string{"app.kubernetes.io/name": "prometheus"}}
	grafana := endpoint{name: "Grafana in monitoring", pod: true, namespace: "monitoring", nsLabels: nsLabels("monitoring"),
		labels: map[string]string{"app.kubernetes.io/name": "grafana"}}
	fakeProm := endpoint{name: "a pod labelled prometheus elsewhere", pod: true, namespace: "shop", nsLabels: nsLabels("shop"),
		labels: map[string]string{"app.kubernetes.io/name": "prometheus"}}
	shop := endpoint{name: "a pod of another namespace", pod: true, namespace: "shop", nsLabels: nsLabels("shop"),
		labels: map[string]string{"app": "shop"}}
	internet := endpoint{name: "a client outside the cluster"}
	reader, ingestor := pods["Deployment/reader"], pods["Deployment/ingestor"]

	for _, tc := range []struct {
		dst  string
		port int
		src  endpoint
		want bool
	}{
		{"Deployment/reader", readerPort, internet, true},
		{"Deployment/reader", readerPort, shop, true},
		{"Deployment/reader", readerPort, prometheus, true},
		{"Deployment/reader", readerPort, ingestor, true},
		{"Deployment/reader", readerOpsPort, prometheus, true},
		{"Deployment/reader", readerOpsPort, grafana, false},
		{"Deployment/reader", readerOpsPort, fakeProm, false},
		{"Deployment/reader", readerOpsPort, internet, false},
		{"Deployment/reader", readerOpsPort, shop, false},
		{"Deployment/reader", readerOpsPort, ingestor, false},
		{"Deployment/reader", readerOpsPort, reader, false},
		{"Deployment/ingestor", ingestorPort, prometheus, true},
		{"Deployment/ingestor", ingestorPort, grafana, false},
		{"Deployment/ingestor", ingestorPort, fakeProm, false},
		{"Deployment/ingestor", ingestorPort, internet, false},
		{"Deployment/ingestor", ingestorPort, reader, false},
		{"Deployment/ingestor", readerPort, prometheus, false},
		{"Job/orders-migrate", readerPort, internet, false},
		{"Job/orders-migrate", ingestorPort, prometheus, false},
		{"Job/orders-topics", readerPort, reader, false},
		{"Job/orders-topics", ingestorPort, prometheus, false},
	} {
		dst, ok := pods[tc.dst]
		if !ok {
			t.Errorf("no pods of %s", tc.dst)
			continue
		}
		if got := allowed(policies, ns, dst, podPorts[tc.dst], tc.port, tc.src); got != tc.want {
			t.Errorf("%s -> %s:%d allowed %v, want %v", tc.src.name, tc.dst, tc.port, got, tc.want)
		}
	}
	// Prometheus reaches the port each workload's annotations send it to.
	for _, key := range []string{"Deployment/reader", "Deployment/ingestor"} {
		port, _ := asInt(digString(b.objects[key], "spec", "template", "metadata", "annotations", "prometheus.io/port"))
		if !allowed(policies, ns, pods[key], podPorts[key], port, prometheus) {
			t.Errorf("Prometheus may not scrape %s on its annotated port %d", key, port)
		}
	}
	// Without the policies, everything is open: the evaluator is not
	// denying on its own.
	if !allowed(nil, ns, reader, podPorts["Deployment/reader"], readerOpsPort, internet) {
		t.Error("the evaluator denies with no policy at all")
	}
}

func TestK8sImagesPinned(t *testing.T) {
	t.Parallel()
	b := loadK8s(t)
	for _, i := range b.k.Images {
		if i.Digest == "" && (i.NewTag == "" || i.NewTag == "latest") {
			t.Errorf("kustomization image %s: tag %q; pin a version or a digest", i.Name, i.NewTag)
		}
	}
	pinned := regexp.MustCompile(`^[^@]+(:[\w][\w.-]{0,127}|@sha256:[0-9a-f]{64})$`)
	images := 0
	for key, o := range renderedObjects(t) {
		spec := digMap(o, "spec", "template", "spec")
		for _, c := range slices.Concat(digList(spec, "initContainers"), digList(spec, "containers")) {
			images++
			img := digString(c, "image")
			// The last colon after the last slash is the tag's.
			name := img[strings.LastIndex(img, "/")+1:]
			if !pinned.MatchString(img) || strings.HasSuffix(name, ":latest") || !strings.ContainsAny(name, ":@") {
				t.Errorf("%s runs %q: pin a version tag or a digest, never latest", key, img)
			}
		}
	}
	if images < 4 {
		t.Errorf("%d container images rendered, want the 4 workloads'", images)
	}
}

// TestK8sReaderKeysSecret: the reader reads its keys from the directory
// where Secret/reader-api-keys is mounted, in a way that lets an updated
// Secret reach the running pods.
func TestK8sReaderKeysSecret(t *testing.T) {
	t.Parallel()
	b := loadK8s(t)
	c := b.container(t, "Deployment/reader")
	file := b.envNames(t, c)["READER_API_KEYS_FILE"]
	if !filepath.IsAbs(file) {
		t.Fatalf("READER_API_KEYS_FILE %q is not an absolute path", file)
	}
	spec := digMap(b.object(t, "Deployment/reader"), "spec", "template", "spec")
	var volume string
	for _, m := range digList(c, "volumeMounts") {
		if digString(m, "mountPath") != filepath.Dir(file) {
			continue
		}
		volume = digString(m, "name")
		if digString(m, "subPath") != "" || digString(m, "subPathExpr") != "" {
			t.Error("the keys volume is mounted with a subPath: the kubelet never updates it")
		}
		if dig(m, "readOnly") != true {
			t.Error("the keys volume is not mounted readOnly")
		}
	}
	if volume == "" {
		t.Fatalf("no volume is mounted at %s, the directory of READER_API_KEYS_FILE %s", filepath.Dir(file), file)
	}
	var secret map[string]any
	for _, v := range digList(spec, "volumes") {
		if digString(v, "name") == volume {
			secret = digMap(v, "secret")
		}
	}
	if digString(secret, "secretName") != readerKeysSecret {
		t.Fatalf("volume %s is not Secret %s: %v", volume, readerKeysSecret, secret)
	}
	if len(digList(secret, "items")) > 0 {
		t.Error("the keys volume lists items: mount the whole Secret")
	}
	// The file is readable by the reader's user: through the group the
	// kubelet gives the volume (fsGroup), or by everyone.
	mode := 0o644
	if m, ok := asInt(dig(secret, "defaultMode")); ok {
		mode = m
	}
	pod := digMap(spec, "securityContext")
	fsGroup, hasGroup := asInt(dig(pod, "fsGroup"))
	group, _ := asInt(dig(pod, "runAsGroup"))
	if mode&0o004 == 0 && !(mode&0o040 != 0 && hasGroup && fsGroup == group) {
		t.Errorf("keys file mode %o, fsGroup %v, runAsGroup %d: the reader cannot read it", mode, dig(pod, "fsGroup"), group)
	}
	if mode&0o002 != 0 || mode&0o020 != 0 {
		t.Errorf("keys file mode %o is writable by others", mode)
	}

	// The Secret comes from the generator, under the file's name, and
	// keeps its name when the keys change, so that it is updated in place.
	var gen *generator
	for i, g := range b.k.SecretGenerator {
		if g.Name == readerKeysSecret {
			gen = &b.k.SecretGenerator[i]
		}
	}
	if gen == nil {
		t.Fatalf("kustomization generates no Secret %s", readerKeysSecret)
	}
	if !gen.Options.DisableNameSuffixHash {
		t.Errorf("Secret %s gets a hash suffix: a key change would roll the readers instead of reaching them", readerKeysSecret)
	}
	var keys []string
	for _, f := range gen.Files {
		k, _, ok := strings.Cut(f, "=")
		if !ok {
			k = filepath.Base(f)
		}
		keys = append(keys, k)
	}
	if !slices.Equal(keys, []string{filepath.Base(file)}) {
		t.Errorf("Secret %s holds %v, want only %s (READER_API_KEYS_FILE)", readerKeysSecret, keys, filepath.Base(file))
	}
	for _, p := range gen.filePaths() {
		checkKeysExample(t, path(t, k8sDir, p+".example"))
	}
	// Rendered, the Secret holds the example's content under that key.
	rendered := renderedObjects(t)["Secret/"+readerKeysSecret]
	if rendered == nil {
		t.Fatalf("kustomize renders no Secret/%s", readerKeysSecret)
	}
	if _, ok := digMap(rendered, "data")[filepath.Base(file)]; !ok {
		t.Errorf("rendered Secret/%s has no data key %s: %v", readerKeysSecret, filepath.Base(file), slices.Collect(maps.Keys(digMap(rendered, "data"))))
	}
}

// TestComposeRedisKeepsItsPasswordOffTheCommandLine runs the redis
// service's entrypoint script, as compose would, with the real redis-server
// and redis-cli: the password reaches Redis (it refuses clients without it,
// the healthcheck passes with it and fails with a wrong one), and appears
// neither in the server's command line nor in its environment.
func TestComposeRedisKeepsItsPasswordOffTheCommandLine(t *testing.T) {
	t.Parallel()
	svc := loadCompose(t).service(t, "redis")
	serverBin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not found (scripts/ensure-services.sh installs it): %v", err)
	}
	cliBin, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatalf("redis-cli not found: %v", err)
	}
	if !slices.Equal(svc.Entrypoint, []string{"/bin/sh", "-c"}) || len(svc.Command) != 1 {
		t.Fatalf("redis entrypoint %v command %v: want /bin/sh -c and one script", svc.Entrypoint, svc.Command)
	}
	script := composeShell(t, svc.Command[0])

	// Stand-ins for the image: its entrypoint (which drops root and runs
	// its arguments) records the command line and environment it was given
	// (what ps and /proc show of it, and of redis-server before Redis
	// rewrites its process title), then runs redis-server on a free port
	// with its files in a temporary directory; redis-cli finds that port.
	dir := t.TempDir()
	_, port, err := net.SplitHostPort(testenv.FreeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "bin")
	writeExec(t, filepath.Join(bin, "docker-entrypoint.sh"), `#!/bin/sh
[ "$1" = redis-server ] || { echo "docker-entrypoint.sh: unexpected $1" >&2; exit 2; }
shift
printf '%s\n' "$0" "$@" >"`+dir+`/argv"
env >"`+dir+`/environ"
cd "`+dir+`"
exec "`+serverBin+`" "$@" --port `+port+` --bind 127.0.0.1 --save ''
`)
	writeExec(t, filepath.Join(bin, "redis-cli"), "#!/bin/sh\nexec \""+cliBin+"\" -p "+port+" \"$@\"\n")
	const password = "s3cret-Pa55word_for.the~test"
	pwFile := filepath.Join(dir, "redis_password")
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for k, v := range svc.Environment {
		env[k] = v
	}
	env["REDIS_PASSWORD_FILE"] = pwFile
	env["PATH"] = bin + string(os.PathListSeparator) + os.Getenv("PATH")

	p := start(t, "redis", "/bin/sh", env, "-c", script)
	cli := func(auth string, args ...string) (string, error) {
		cmd := exec.Command(filepath.Join(bin, "redis-cli"), args...)
		cmd.Env = append(os.Environ(), "REDISCLI_AUTH="+auth)
		out, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	waitFor(t, "redis-server", 20*time.Second, func() error {
		if err := p.exited(); err != nil {
			t.Fatal(err)
		}
		out, err := cli(password, "ping")
		if err == nil && out != "PONG" {
			err = fmt.Errorf("ping: %s", out)
		}
		return err
	})
	if out, _ := cli("", "ping"); !strings.Contains(out, "NOAUTH") {
		t.Errorf("redis answers a client without the password: %q", out)
	}
	if out, _ := cli(password, "config", "get", "maxmemory"); !strings.Contains(out, "268435456") {
		t.Errorf("the command's other options did not reach Redis: maxmemory %q", out)
	}
	for _, f := range []string{"argv", "environ"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if f == "argv" && !strings.Contains(string(b), "\n-\n") {
			t.Errorf("redis-server is not told to read its configuration from stdin: %q", b)
		}
		if strings.Contains(string(b), password) {
			t.Errorf("the password is in redis-server's %s", f)
		}
	}

	// The compose healthcheck, with the same files.
	if svc.Healthcheck == nil || len(svc.Healthcheck.Test) != 2 || svc.Healthcheck.Test[0] != "CMD-SHELL" {
		t.Fatalf("redis healthcheck %v: want CMD-SHELL and a command", svc.Healthcheck)
	}
	check := composeShell(t, svc.Healthcheck.Test[1])
	health := func(pwFile string) error {
		cmd := exec.Command("/bin/sh", "-c", check)
		cmd.Env = []string{"PATH=" + env["PATH"], "REDIS_PASSWORD_FILE=" + pwFile}
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		return nil
	}
	if err := health(pwFile); err != nil {
		t.Errorf("healthcheck fails on a healthy Redis: %v", err)
	}
	wrong := filepath.Join(dir, "wrong")
	if err := os.WriteFile(wrong, []byte("not-it\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if health(wrong) == nil {
		t.Error("healthcheck passes with a wrong password")
	}

	// An empty secret stops the container instead of starting Redis
	// without a password.
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Env = []string{"PATH=" + env["PATH"], "REDIS_PASSWORD_FILE=" + empty}
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "empty") {
		t.Errorf("an empty password: %v %s, want a refusal", err, out)
	}
}

// composeShell is a script of docker-compose.yml as the container's shell
// gets it: compose turns $$ into $, and must have nothing of its own to
// interpolate (a ${VAR} would put a value of .env into the script).
func composeShell(t *testing.T, s string) string {
	t.Helper()
	if m := composeVarRE.FindString(strings.ReplaceAll(s, "$$", "")); m != "" {
		t.Errorf("compose interpolates %s into the script", m)
	}
	return strings.ReplaceAll(s, "$$", "$")
}

func writeExec(t *testing.T, file, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
}
