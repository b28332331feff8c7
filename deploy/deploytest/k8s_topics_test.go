package deploytest

import (
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// topicsJob creates the ingestor's topics, as kafka-init does in compose.
const topicsJob = "Job/orders-topics"

// kafkaTopicsPath is where the apache/kafka image keeps kafka-topics.sh.
const kafkaTopicsPath = "/opt/kafka/bin/kafka-topics.sh"

// ingestorTopicKeys are the ingestor settings the topics Job must take from
// the ingestor's ConfigMap rather than copy: where Kafka is, which topic the
// ingestor consumes and which one it dead-letters to.
var ingestorTopicKeys = []string{"INGESTOR_KAFKA_BROKERS", "INGESTOR_KAFKA_TOPIC", "INGESTOR_KAFKA_DLQ_TOPIC"}

// ingestorPartitions is the partition count Job/orders-topics creates the
// ingestor's topic with: the ceiling for the ingestor's replicas.
func (b *k8sBase) ingestorPartitions(t testing.TB) int {
	t.Helper()
	v := b.envNames(t, b.container(t, topicsJob))["TOPIC_PARTITIONS"]
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s: TOPIC_PARTITIONS %q, want a positive count", topicsJob, v)
	}
	return n
}

// jobScript returns the shell script a container runs with bash -c.
func jobScript(t testing.TB, c map[string]any) string {
	t.Helper()
	var cmd []string
	for _, a := range digList(c, "command") {
		s, _ := a.(string)
		cmd = append(cmd, s)
	}
	args := digList(c, "args")
	if !slices.Equal(cmd, []string{"/bin/bash", "-c"}) || len(args) != 1 {
		t.Fatalf("command %v with %d args, want /bin/bash -c and one script", cmd, len(args))
	}
	s, _ := args[0].(string)
	return s
}

// usesVar reports whether a shell script expands $name or ${name...}.
func usesVar(script, name string) bool {
	return regexp.MustCompile(`\$\{?` + regexp.QuoteMeta(name) + `\b`).MatchString(script)
}

func TestK8sTopicsJob(t *testing.T) {
	t.Parallel()
	b := loadK8s(t)
	c := loadCompose(t)
	job := b.object(t, topicsJob)
	pod := digMap(job, "spec", "template", "spec")
	ctr := b.container(t, topicsJob)
	env := b.envNames(t, ctr)
	script := jobScript(t, ctr)

	// A one-shot that retries for a while and cleans up after itself, like
	// the migration Job.
	if rp := digString(pod, "restartPolicy"); rp != "OnFailure" && rp != "Never" {
		t.Errorf("restartPolicy %q, want OnFailure or Never", rp)
	}
	for _, f := range []string{"backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished"} {
		if n, ok := asInt(dig(job, "spec", f)); !ok || n < 1 {
			t.Errorf("spec.%s %v, want a positive number", f, dig(job, "spec", f))
		}
	}

	// The security settings every workload has.
	if dig(pod, "automountServiceAccountToken") != false {
		t.Error("automountServiceAccountToken is not false: the Job needs no Kubernetes API")
	}
	if dig(pod, "securityContext", "runAsNonRoot") != true {
		t.Error("pod securityContext.runAsNonRoot is not true")
	}
	// apache/kafka names its user (appuser) instead of numbering it: the
	// kubelet refuses runAsNonRoot without a numeric runAsUser.
	if uid, ok := asInt(dig(pod, "securityContext", "runAsUser")); !ok || uid == 0 {
		t.Errorf("pod securityContext.runAsUser %v, want a non-zero uid", dig(pod, "securityContext", "runAsUser"))
	}
	if digString(pod, "securityContext", "seccompProfile", "type") != "RuntimeDefault" {
		t.Error("pod seccompProfile is not RuntimeDefault")
	}
	if dig(ctr, "securityContext", "allowPrivilegeEscalation") != false || dig(ctr, "securityContext", "readOnlyRootFilesystem") != true {
		t.Error("container securityContext must forbid privilege escalation and use a read-only root")
	}
	if !slices.Contains(digList(ctr, "securityContext", "capabilities", "drop"), any("ALL")) {
		t.Error("container securityContext does not drop ALL capabilities")
	}
	for _, kind := range []string{"requests", "limits"} {
		for _, res := range []string{"cpu", "memory"} {
			if dig(ctr, "resources", kind, res) == nil {
				t.Errorf("resources.%s.%s is not set", kind, res)
			}
		}
	}
	// With a read-only root, every place the Kafka tools write (their log
	// directory, the JVM's temporary files) is on a writable emptyDir.
	scratch := map[string]bool{}
	for _, v := range digList(pod, "volumes") {
		if dig(v, "emptyDir") != nil {
			scratch[digString(v, "name")] = true
		}
	}
	writable := func(p string) bool {
		for _, m := range digList(ctr, "volumeMounts") {
			mp := digString(m, "mountPath")
			if scratch[digString(m, "name")] && dig(m, "readOnly") != true && (p == mp || strings.HasPrefix(p, mp+"/")) {
				return true
			}
		}
		return false
	}
	for _, p := range []string{env["LOG_DIR"], "/tmp"} {
		if !strings.HasPrefix(p, "/") || !writable(p) {
			t.Errorf("%q (LOG_DIR or the JVM's temporary directory) is not on a writable emptyDir mount", p)
		}
	}

	// kafka-topics.sh from the image compose's kafka-init runs, pinned in
	// the kustomization like every other image.
	_, composeTag, _ := strings.Cut(c.service(t, "kafka-init").Image, ":")
	for _, i := range b.k.Images {
		if i.Name == digString(ctr, "image") && i.NewTag != composeTag {
			t.Errorf("kustomization pins %s:%s; compose's kafka-init runs tag %s", i.Name, i.NewTag, composeTag)
		}
	}
	if !strings.Contains(script, kafkaTopicsPath) || !strings.Contains(script, "--create --if-not-exists") {
		t.Errorf("the script does not run %s --create --if-not-exists:\n%s", kafkaTopicsPath, script)
	}
	// Kubernetes expands $(NAME) and turns $$ into $ in command and args
	// before the shell sees them: the script must not contain either.
	if m := regexp.MustCompile(`\$\$|\$\([A-Za-z_][A-Za-z0-9_]*\)`).FindString(script); m != "" {
		t.Errorf("the script contains %q, which Kubernetes would expand", m)
	}

	// Brokers and topic names are references to the ingestor's ConfigMap
	// keys, so the Job and the ingestor cannot disagree.
	ingCtr := b.container(t, "Deployment/ingestor")
	var ingCM string
	for _, ef := range digList(ingCtr, "envFrom") {
		if name := digString(ef, "configMapRef", "name"); name != "" {
			if _, ok := b.configMaps[name]["INGESTOR_KAFKA_TOPIC"]; ok {
				ingCM = name
			}
		}
	}
	if ingCM == "" {
		t.Fatal("Deployment/ingestor imports no ConfigMap with INGESTOR_KAFKA_TOPIC")
	}
	refs := map[string]string{} // ingestor key -> the Job's variable
	for _, e := range digList(ctr, "env") {
		if ref := digMap(e, "valueFrom", "configMapKeyRef"); ref != nil && digString(ref, "name") == ingCM {
			refs[digString(ref, "key")] = digString(e, "name")
		}
	}
	ingEnv := b.envNames(t, ingCtr)
	for _, key := range ingestorTopicKeys {
		v, ok := refs[key]
		switch {
		case !ok:
			t.Errorf("the Job takes no variable from %s key %s (configMapKeyRef)", ingCM, key)
		case !usesVar(script, v):
			t.Errorf("the script never expands $%s (%s of %s)", v, key, ingCM)
		}
		for _, e := range digList(ctr, "env") {
			if val, ok := digMap(e)["value"]; ok && val == ingEnv[key] {
				t.Errorf("env %s copies the value of %s (%q): refer to the key instead", digString(e, "name"), key, val)
			}
		}
	}

	// The partition counts are compose's, for the topic names the ingestor
	// uses; every setting of the Job's own ConfigMap is used by the script.
	want := topicPartitions(t, c)
	for name, key := range map[string]string{"TOPIC_PARTITIONS": "INGESTOR_KAFKA_TOPIC", "DLQ_TOPIC_PARTITIONS": "INGESTOR_KAFKA_DLQ_TOPIC"} {
		topic := ingEnv[key]
		n, err := strconv.Atoi(env[name])
		if err != nil || n < 1 || n != want[topic] {
			t.Errorf("%s %q: compose's kafka-init creates %s (%s) with %d partitions", name, env[name], topic, key, want[topic])
		}
	}
	if rf, err := strconv.Atoi(env["TOPIC_REPLICATION_FACTOR"]); err != nil || rf < 1 {
		t.Errorf("TOPIC_REPLICATION_FACTOR %q, want a positive number", env["TOPIC_REPLICATION_FACTOR"])
	}
	var own []string
	for _, ef := range digList(ctr, "envFrom") {
		if name := digString(ef, "configMapRef", "name"); name != "" && name != ingCM {
			for k := range b.configMaps[name] {
				own = append(own, k)
			}
		}
	}
	for _, k := range []string{"TOPIC_PARTITIONS", "DLQ_TOPIC_PARTITIONS", "TOPIC_REPLICATION_FACTOR", "KAFKA_COMMAND_CONFIG"} {
		if !slices.Contains(own, k) {
			t.Errorf("the Job's own ConfigMap (envFrom) lacks %s", k)
		}
	}
	for _, k := range own {
		if !usesVar(script, k) {
			t.Errorf("the Job imports %s, which its script never expands", k)
		}
	}
}

// stubKafkaTopics stands in for kafka-topics.sh: it logs each call, keeps
// each topic's partition count in a file, and answers --create (with and
// without --if-not-exists) and --describe the way Kafka 3.9's tool does.
const stubKafkaTopics = `#!/usr/bin/env bash
set -eu
printf '%s\n' "$*" >>"$STUB_DIR/calls"
if [[ -n ${STUB_FAIL:-} ]]; then
	echo "Error while executing topic command : Timed out waiting for a node assignment." >&2
	exit 1
fi
op= topic= partitions= ifnotexists=
while (($#)); do
	case $1 in
	--create | --describe) op=$1 ;;
	--if-not-exists) ifnotexists=1 ;;
	--topic) topic=$2; shift ;;
	--partitions) partitions=$2; shift ;;
	esac
	shift
done
f=$STUB_DIR/topic.$topic
case $op in
--create)
	if [[ -e $f ]]; then
		[[ -n $ifnotexists ]] && exit 0
		echo "Error while executing topic command : Topic '$topic' already exists." >&2
		exit 1
	fi
	echo "$partitions" >"$f"
	echo "Created topic $topic."
	;;
--describe)
	if [[ ! -e $f ]]; then
		echo "Error while executing topic command : Topic '$topic' does not exist as expected" >&2
		exit 1
	fi
	n=$(<"$f")
	printf 'Topic: %s\tTopicId: 7vCk1v8oQ3CQw3OUTn3y8A\tPartitionCount: %s\tReplicationFactor: 3\tConfigs: \n' "$topic" "$n"
	for ((p = 0; p < n; p++)); do
		printf '\tTopic: %s\tPartition: %d\tLeader: 1\tReplicas: 1,2,3\tIsr: 1,2,3\tElr: \tLastKnownElr: \n' "$topic" "$p"
	done
	;;
*)
	echo "stub: unexpected call" >&2
	exit 2
	;;
esac
`

// topicsRun is what one run of the Job's script did against the stub.
type topicsRun struct {
	calls  []string          // kafka-topics.sh argument lists
	topics map[string]string // topic -> partitions, afterwards
	err    error
	stderr string
}

// runTopicsScript runs script with bash, env as its whole environment (plus
// PATH), kafka-topics.sh replaced by the stub, and existing topics already
// there.
func runTopicsScript(t *testing.T, bash, script string, env map[string]string, existing map[string]int) topicsRun {
	t.Helper()
	dir := t.TempDir()
	stub := filepath.Join(dir, "kafka-topics.sh")
	if err := os.WriteFile(stub, []byte(stubKafkaTopics), 0o755); err != nil {
		t.Fatal(err)
	}
	for topic, n := range existing {
		if err := os.WriteFile(filepath.Join(dir, "topic."+topic), []byte(itoa(n)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.CommandContext(t.Context(), bash, "-c", strings.ReplaceAll(script, kafkaTopicsPath, stub))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "STUB_DIR=" + dir}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	r := topicsRun{topics: map[string]string{}, err: cmd.Run(), stderr: stderr.String()}
	if calls, err := os.ReadFile(filepath.Join(dir, "calls")); err == nil {
		r.calls = strings.Split(strings.TrimSpace(string(calls)), "\n")
	}
	files, _ := filepath.Glob(filepath.Join(dir, "topic.*"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		r.topics[strings.TrimPrefix(filepath.Base(f), "topic.")] = strings.TrimSpace(string(b))
	}
	return r
}

// renderedEnv resolves a rendered container's environment as the kubelet
// does: envFrom ConfigMaps, then env values and configMapKeyRefs, looked up
// in the rendered ConfigMaps (so under their generated names).
func renderedEnv(t testing.TB, objs map[string]map[string]any, c map[string]any) map[string]string {
	t.Helper()
	data := func(name string) map[string]any {
		cm, ok := objs["ConfigMap/"+name]
		if !ok {
			t.Errorf("ConfigMap %q is not in the rendered output", name)
		}
		return digMap(cm, "data")
	}
	out := map[string]string{}
	for _, ef := range digList(c, "envFrom") {
		if name := digString(ef, "configMapRef", "name"); name != "" {
			for k, v := range data(name) {
				out[k], _ = v.(string)
			}
		}
	}
	for _, e := range digList(c, "env") {
		name := digString(e, "name")
		switch {
		case digMap(e, "valueFrom", "configMapKeyRef") != nil:
			ref := digMap(e, "valueFrom", "configMapKeyRef")
			v, ok := data(digString(ref, "name"))[digString(ref, "key")]
			if !ok {
				t.Errorf("env %s: rendered ConfigMap %s has no key %s", name, digString(ref, "name"), digString(ref, "key"))
			}
			out[name], _ = v.(string)
		case digMap(e, "valueFrom", "secretKeyRef") != nil:
			out[name] = "<secret>"
		default:
			out[name] = digString(e, "value")
		}
	}
	return out
}

// TestK8sTopicsScript renders deploy/k8s, resolves the Job's environment
// from the rendered ConfigMaps, and runs its script with bash against a
// stub kafka-topics.sh: the topics it creates are the ingestor's, with
// compose's partition counts, and a rerun changes nothing.
func TestK8sTopicsScript(t *testing.T) {
	t.Parallel()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash to run the Job's script with")
	}
	objs := renderedObjects(t)
	ctr := digMap(objs[topicsJob], "spec", "template", "spec", "containers", 0)
	ingCtr := digMap(objs["Deployment/ingestor"], "spec", "template", "spec", "containers", 0)
	if ctr == nil || ingCtr == nil {
		t.Fatalf("the rendered output lacks %s or Deployment/ingestor", topicsJob)
	}
	c := loadCompose(t)
	if img := digString(ctr, "image"); img != c.service(t, "kafka-init").Image {
		t.Errorf("%s renders image %q; compose's kafka-init runs %q", topicsJob, img, c.service(t, "kafka-init").Image)
	}
	script := jobScript(t, ctr)
	env := renderedEnv(t, objs, ctr)
	ing := renderedEnv(t, objs, ingCtr)
	partitions := topicPartitions(t, c)
	brokers, topic, dlq := ing["INGESTOR_KAFKA_BROKERS"], ing["INGESTOR_KAFKA_TOPIC"], ing["INGESTOR_KAFKA_DLQ_TOPIC"]
	if brokers == "" || partitions[topic] == 0 || partitions[dlq] == 0 {
		t.Fatalf("ingestor brokers %q, topics %q and %q; compose partitions %v", brokers, topic, dlq, partitions)
	}
	wantTopics := map[string]string{topic: itoa(partitions[topic]), dlq: itoa(partitions[dlq])}

	// An operator's edit of config/ingestor.env: the same rendering with
	// other brokers and topic names in the ingestor's ConfigMap.
	var ingCM map[string]any
	for _, ef := range digList(ingCtr, "envFrom") {
		if name := digString(ef, "configMapRef", "name"); name != "" {
			ingCM = digMap(objs["ConfigMap/"+name], "data")
		}
	}
	if ingCM == nil {
		t.Fatal("rendered Deployment/ingestor imports no ConfigMap")
	}
	ingCM["INGESTOR_KAFKA_BROKERS"], ingCM["INGESTOR_KAFKA_TOPIC"], ingCM["INGESTOR_KAFKA_DLQ_TOPIC"] = "b1:9093,b2:9093", "shop.orders", "shop.orders.dlq"
	renamed := renderedEnv(t, objs, ctr)

	with := func(k, v string) map[string]string {
		e := map[string]string{}
		for ek, ev := range env {
			e[ek] = ev
		}
		e[k] = v
		return e
	}

	t.Run("fresh cluster", func(t *testing.T) {
		t.Parallel()
		r := runTopicsScript(t, bash, script, env, nil)
		if r.err != nil {
			t.Fatalf("script failed: %v\n%s", r.err, r.stderr)
		}
		if !maps.Equal(r.topics, wantTopics) {
			t.Errorf("topics %v, want %v (the ingestor's, with compose's partition counts)", r.topics, wantTopics)
		}
		creates := 0
		for _, call := range r.calls {
			if !strings.Contains(call, "--bootstrap-server "+brokers+" ") {
				t.Errorf("call %q does not go to the ingestor's brokers %s", call, brokers)
			}
			if strings.Contains(call, "--command-config") {
				t.Errorf("call %q passes --command-config although KAFKA_COMMAND_CONFIG is empty", call)
			}
			if strings.Contains(call, "--create") {
				creates++
				if !strings.Contains(call, "--if-not-exists") || !strings.Contains(call, "--replication-factor "+env["TOPIC_REPLICATION_FACTOR"]) {
					t.Errorf("call %q: want --if-not-exists and --replication-factor %s", call, env["TOPIC_REPLICATION_FACTOR"])
				}
			}
		}
		if creates != len(wantTopics) {
			t.Errorf("%d --create calls, want %d: %q", creates, len(wantTopics), r.calls)
		}
	})
	t.Run("rerun", func(t *testing.T) {
		t.Parallel()
		r := runTopicsScript(t, bash, script, env, map[string]int{topic: partitions[topic], dlq: partitions[dlq]})
		if r.err != nil {
			t.Fatalf("a second run fails: %v\n%s", r.err, r.stderr)
		}
		if !maps.Equal(r.topics, wantTopics) {
			t.Errorf("topics %v after a rerun, want them unchanged: %v", r.topics, wantTopics)
		}
	})
	t.Run("more partitions already", func(t *testing.T) {
		t.Parallel()
		r := runTopicsScript(t, bash, script, env, map[string]int{topic: 2 * partitions[topic]})
		if r.err != nil {
			t.Fatalf("a topic with more partitions than asked fails the Job: %v\n%s", r.err, r.stderr)
		}
	})
	t.Run("fewer partitions already", func(t *testing.T) {
		t.Parallel()
		r := runTopicsScript(t, bash, script, env, map[string]int{topic: 1})
		if r.err == nil || !strings.Contains(r.stderr, topic+" has 1 partitions") {
			t.Errorf("an existing %s with 1 partition: err %v, stderr %q; want a failure naming it", topic, r.err, r.stderr)
		}
	})
	t.Run("kafka unreachable", func(t *testing.T) {
		t.Parallel()
		r := runTopicsScript(t, bash, script, with("STUB_FAIL", "1"), nil)
		if r.err == nil || len(r.calls) != 1 {
			t.Errorf("kafka-topics.sh failing: err %v after %d calls; want the script to stop at the first", r.err, len(r.calls))
		}
	})
	t.Run("secured cluster", func(t *testing.T) {
		t.Parallel()
		const props = "/etc/kafka-admin/client.properties"
		r := runTopicsScript(t, bash, script, with("KAFKA_COMMAND_CONFIG", props), nil)
		if r.err != nil {
			t.Fatalf("script failed: %v\n%s", r.err, r.stderr)
		}
		for _, call := range r.calls {
			if !strings.Contains(call, "--command-config "+props) {
				t.Errorf("call %q lacks --command-config %s", call, props)
			}
		}
	})
	t.Run("renamed in config/ingestor.env", func(t *testing.T) {
		t.Parallel()
		r := runTopicsScript(t, bash, script, renamed, nil)
		if r.err != nil {
			t.Fatalf("script failed: %v\n%s", r.err, r.stderr)
		}
		want := map[string]string{"shop.orders": itoa(partitions[topic]), "shop.orders.dlq": itoa(partitions[dlq])}
		if !maps.Equal(r.topics, want) {
			t.Errorf("after renaming the ingestor's topics, the Job creates %v, want %v", r.topics, want)
		}
		for _, call := range r.calls {
			if !strings.Contains(call, "--bootstrap-server b1:9093,b2:9093 ") {
				t.Errorf("call %q ignores the ingestor's new brokers", call)
			}
		}
	})
}
