package deploytest

import (
	"fmt"
	"maps"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// kustomization models deploy/k8s/kustomization.yaml.
type kustomization struct {
	APIVersion string   `yaml:"apiVersion"`
	Kind       string   `yaml:"kind"`
	Namespace  string   `yaml:"namespace"`
	Resources  []string `yaml:"resources"`
	Labels     []struct {
		Pairs map[string]string `yaml:"pairs"`
	} `yaml:"labels"`
	ConfigMapGenerator []generator `yaml:"configMapGenerator"`
	SecretGenerator    []generator `yaml:"secretGenerator"`
	Images             []struct {
		Name    string `yaml:"name"`
		NewName string `yaml:"newName"`
		NewTag  string `yaml:"newTag"`
		Digest  string `yaml:"digest"`
	} `yaml:"images"`
}

type generator struct {
	Name  string   `yaml:"name"`
	Envs  []string `yaml:"envs"`
	Files []string `yaml:"files"` // [key=]path
	// Options are kustomize's generatorOptions of this generator.
	Options struct {
		DisableNameSuffixHash bool `yaml:"disableNameSuffixHash"`
	} `yaml:"options"`
}

// filePaths are the paths of g's files sources, without their keys.
func (g generator) filePaths() []string {
	var out []string
	for _, f := range g.Files {
		_, p, ok := strings.Cut(f, "=")
		if !ok {
			p = f
		}
		out = append(out, p)
	}
	return out
}

// k8sBase is the parsed kustomize base: its objects by "Kind/name", and the
// keys each generated ConfigMap and Secret holds.
type k8sBase struct {
	k          kustomization
	objects    map[string]map[string]any
	configMaps map[string]map[string]string
	secretKeys map[string]map[string]string
}

const k8sDir = "deploy/k8s"

func loadK8s(t testing.TB) *k8sBase {
	t.Helper()
	b := &k8sBase{objects: map[string]map[string]any{}, configMaps: map[string]map[string]string{}, secretKeys: map[string]map[string]string{}}
	readYAML(t, &b.k, k8sDir, "kustomization.yaml")
	for _, r := range b.k.Resources {
		for _, doc := range readYAMLDocs(t, k8sDir, r) {
			key := digString(doc, "kind") + "/" + digString(doc, "metadata", "name")
			if _, dup := b.objects[key]; dup {
				t.Errorf("%s defined twice", key)
			}
			b.objects[key] = doc
		}
	}
	for _, g := range b.k.ConfigMapGenerator {
		b.configMaps[g.Name] = map[string]string{}
		for _, f := range g.Envs {
			for k, v := range readEnvFile(t, k8sDir, f) {
				b.configMaps[g.Name][k] = v
			}
		}
	}
	// secrets.env holds real credentials and is not in git: the keys come
	// from the example it is copied from.
	for _, g := range b.k.SecretGenerator {
		b.secretKeys[g.Name] = map[string]string{}
		for _, f := range g.Envs {
			for k, v := range readEnvFile(t, k8sDir, f+".example") {
				b.secretKeys[g.Name][k] = v
			}
		}
	}
	return b
}

func (b *k8sBase) object(t testing.TB, key string) map[string]any {
	t.Helper()
	o, ok := b.objects[key]
	if !ok {
		t.Fatalf("deploy/k8s has no %s", key)
	}
	return o
}

// container returns the first container of a workload's pod template.
func (b *k8sBase) container(t testing.TB, key string) map[string]any {
	t.Helper()
	c := digMap(b.object(t, key), "spec", "template", "spec", "containers", 0)
	if c == nil {
		t.Fatalf("%s has no container", key)
	}
	return c
}

// envNames returns every variable a container gets: env entries (a
// ConfigMap key resolved to its value), and the keys of the ConfigMaps and
// Secrets it imports with envFrom.
func (b *k8sBase) envNames(t testing.TB, c map[string]any) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, e := range digList(c, "env") {
		name := digString(e, "name")
		if ref := digMap(e, "valueFrom", "configMapKeyRef"); ref != nil {
			cm, ok := b.configMaps[digString(ref, "name")]
			v, hasKey := cm[digString(ref, "key")]
			if !ok {
				t.Errorf("env %s refers to ConfigMap %q, which kustomize does not generate", name, digString(ref, "name"))
			} else if !hasKey {
				t.Errorf("env %s refers to key %q, missing from ConfigMap %s", name, digString(ref, "key"), digString(ref, "name"))
			}
			out[name] = v
			continue
		}
		if ref := digMap(e, "valueFrom", "secretKeyRef"); ref != nil {
			keys, ok := b.secretKeys[digString(ref, "name")]
			if !ok {
				t.Errorf("env %s refers to Secret %q, which kustomize does not generate", name, digString(ref, "name"))
			} else if _, ok := keys[digString(ref, "key")]; !ok {
				t.Errorf("env %s refers to key %q, missing from secrets.env.example", name, digString(ref, "key"))
			}
			out[name] = "<secret>"
			continue
		}
		out[name] = digString(e, "value")
	}
	for _, ef := range digList(c, "envFrom") {
		if name := digString(ef, "configMapRef", "name"); name != "" {
			cm, ok := b.configMaps[name]
			if !ok {
				t.Errorf("envFrom ConfigMap %q is not generated", name)
			}
			for k, v := range cm {
				out[k] = v
			}
		}
		if name := digString(ef, "secretRef", "name"); name != "" {
			for k := range b.secretKeys[name] {
				out[k] = "<secret>"
			}
		}
	}
	return out
}

func TestK8sStructure(t *testing.T) {
	t.Parallel()
	b := loadK8s(t)
	if b.k.APIVersion != "kustomize.config.k8s.io/v1beta1" || b.k.Kind != "Kustomization" {
		t.Errorf("kustomization.yaml is %s %s", b.k.APIVersion, b.k.Kind)
	}
	for _, want := range []string{
		"Namespace/orders", "Job/orders-migrate", "Job/orders-topics",
		"Deployment/ingestor", "Service/ingestor", "PodDisruptionBudget/ingestor",
		"Deployment/reader", "Service/reader", "PodDisruptionBudget/reader", "HorizontalPodAutoscaler/reader",
	} {
		if _, ok := b.objects[want]; !ok {
			t.Errorf("deploy/k8s lacks %s", want)
		}
	}
	for key, o := range b.objects {
		if digString(o, "apiVersion") == "" {
			t.Errorf("%s has no apiVersion", key)
		}
		if ns := digString(o, "metadata", "namespace"); ns != "" && ns != b.k.Namespace {
			t.Errorf("%s pins namespace %s; kustomize sets %s", key, ns, b.k.Namespace)
		}
	}
	if len(b.configMaps) == 0 || len(b.secretKeys) == 0 {
		t.Fatal("kustomization generates no ConfigMap or no Secret")
	}
	// The real secrets files must never be committed, and each has an
	// example (which the tests render in its place).
	for _, g := range b.k.SecretGenerator {
		for _, f := range g.filePaths() {
			out, err := exec.Command("git", "-C", root(t), "check-ignore", "-q", filepath.Join(k8sDir, f)).CombinedOutput()
			if err != nil {
				t.Errorf("%s is not ignored by git (%v %s): a deployment's secrets would be committed", filepath.Join(k8sDir, f), err, out)
			}
			readFile(t, k8sDir, f+".example")
		}
		for _, f := range g.Envs {
			out, err := exec.Command("git", "-C", root(t), "check-ignore", "-q", filepath.Join(k8sDir, f)).CombinedOutput()
			if err != nil {
				t.Errorf("%s is not ignored by git (%v %s): real credentials would be committed", filepath.Join(k8sDir, f), err, out)
			}
			for k, v := range b.secretKeys[g.Name] {
				if !strings.Contains(v, "CHANGE_ME") {
					t.Errorf("%s.example: %s has no CHANGE_ME placeholder", f, k)
				}
			}
		}
	}
	// Every image a manifest uses is listed under images, so an overlay can
	// pin tags in one place.
	var imgs []string
	for _, i := range b.k.Images {
		imgs = append(imgs, i.Name)
	}
	for key, o := range b.objects {
		for _, c := range digList(o, "spec", "template", "spec", "containers") {
			if img := digString(c, "image"); !slices.Contains(imgs, img) {
				t.Errorf("%s uses image %q, not listed under kustomization images %v", key, img, imgs)
			}
		}
	}
	// The images compose builds are the ones the manifests run.
	c := loadCompose(t)
	for svc, key := range map[string]string{"ingestor": "Deployment/ingestor", "reader": "Deployment/reader", "migrate": "Job/orders-migrate", "kafka-init": "Job/orders-topics"} {
		repo, _, _ := strings.Cut(c.service(t, svc).Image, ":")
		if img := digString(b.container(t, key), "image"); img != repo {
			t.Errorf("%s runs image %q; compose builds %s as %q", key, img, svc, repo)
		}
	}
}

func TestK8sWorkloads(t *testing.T) {
	t.Parallel()
	b := loadK8s(t)
	for _, w := range []struct {
		name string
		port int // probes and the Service
		ops  int // metrics (the annotations)
	}{{"ingestor", ingestorPort, ingestorPort}, {"reader", readerPort, readerOpsPort}} {
		t.Run(w.name, func(t *testing.T) {
			t.Parallel()
			d := b.object(t, "Deployment/"+w.name)
			c := b.container(t, "Deployment/"+w.name)
			podLabels := digMap(d, "spec", "template", "metadata", "labels")
			for k, v := range digMap(d, "spec", "selector", "matchLabels") {
				if podLabels[k] != v {
					t.Errorf("selector %s=%v does not match the pod labels %v", k, v, podLabels)
				}
			}

			// Named ports, probes and the Service all land on the one port.
			ports := map[string]int{}
			for _, p := range digList(c, "ports") {
				n, _ := asInt(dig(p, "containerPort"))
				ports[digString(p, "name")] = n
			}
			portOf := func(v any) int {
				if n, ok := asInt(v); ok {
					return n
				}
				s, _ := v.(string)
				if n, ok := ports[s]; ok {
					return n
				}
				t.Errorf("port %v is no container port of %s", v, w.name)
				return 0
			}
			if got, want := slices.Sorted(maps.Values(ports)), slices.Compact([]int{min(w.port, w.ops), max(w.port, w.ops)}); !slices.Equal(got, want) {
				t.Errorf("container ports %v, want only %v", ports, want)
			}
			for probe, wantPath := range map[string]string{"readinessProbe": readyPath, "livenessProbe": livePath} {
				hg := digMap(c, probe, "httpGet")
				if hg == nil {
					t.Errorf("no %s.httpGet", probe)
					continue
				}
				if got := digString(hg, "path"); got != wantPath {
					t.Errorf("%s path %s, want %s", probe, got, wantPath)
				}
				if got := portOf(hg["port"]); got != w.port {
					t.Errorf("%s port %d, want %d", probe, got, w.port)
				}
			}
			if sp := digMap(c, "startupProbe", "httpGet"); sp != nil && portOf(sp["port"]) != w.port {
				t.Errorf("startupProbe port is not %d", w.port)
			}
			ann := digMap(d, "spec", "template", "metadata", "annotations")
			if ann["prometheus.io/port"] != itoa(w.ops) || ann["prometheus.io/path"] != metricsPath || ann["prometheus.io/scrape"] != "true" {
				t.Errorf("prometheus annotations %v, want scrape true, port %d, path %s", ann, w.ops, metricsPath)
			}
			svc := b.object(t, "Service/"+w.name)
			for k, v := range digMap(svc, "spec", "selector") {
				if podLabels[k] != v {
					t.Errorf("Service selector %s=%v matches no pod label", k, v)
				}
			}
			for _, p := range digList(svc, "spec", "ports") {
				if n, _ := asInt(dig(p, "port")); n != w.port || portOf(dig(p, "targetPort")) != w.port {
					t.Errorf("Service port %v -> %v, want %d -> %d", dig(p, "port"), dig(p, "targetPort"), w.port, w.port)
				}
			}

			// Requests and limits for both resources: the scheduler and the
			// HPA need requests, limits keep one pod from starving a node.
			for _, kind := range []string{"requests", "limits"} {
				for _, res := range []string{"cpu", "memory"} {
					if dig(c, "resources", kind, res) == nil {
						t.Errorf("resources.%s.%s is not set", kind, res)
					}
				}
			}
			if dig(d, "spec", "template", "spec", "securityContext", "runAsNonRoot") != true {
				t.Error("pod securityContext.runAsNonRoot is not true")
			}
			if dig(c, "securityContext", "allowPrivilegeEscalation") != false || dig(c, "securityContext", "readOnlyRootFilesystem") != true {
				t.Error("container securityContext must forbid privilege escalation and use a read-only root")
			}

			// Each workload has a PodDisruptionBudget selecting its pods.
			pdb := b.object(t, "PodDisruptionBudget/"+w.name)
			sel := digMap(pdb, "spec", "selector", "matchLabels")
			if len(sel) == 0 {
				t.Error("PodDisruptionBudget selects nothing")
			}
			for k, v := range sel {
				if podLabels[k] != v {
					t.Errorf("PodDisruptionBudget selector %s=%v matches no pod label", k, v)
				}
			}
			if dig(pdb, "spec", "minAvailable") == nil && dig(pdb, "spec", "maxUnavailable") == nil {
				t.Error("PodDisruptionBudget sets neither minAvailable nor maxUnavailable")
			}
		})
	}
}

func TestK8sScaling(t *testing.T) {
	t.Parallel()
	b := loadK8s(t)
	// The count Job/orders-topics creates the ingestor's topic with
	// (TestK8sTopicsJob ties it to compose's kafka-init).
	partitions := b.ingestorPartitions(t)
	// A consumer group member past the partition count gets no partition.
	if n, ok := asInt(dig(b.object(t, "Deployment/ingestor"), "spec", "replicas")); !ok || n < 1 || n > partitions {
		t.Errorf("ingestor replicas %v, want 1..%d (the partitions of orders)", dig(b.object(t, "Deployment/ingestor"), "spec", "replicas"), partitions)
	}
	if s, _ := asInt(dig(b.object(t, "Deployment/ingestor"), "spec", "strategy", "rollingUpdate", "maxSurge")); s != 0 {
		t.Errorf("ingestor maxSurge %d: a surge could exceed the partition count", s)
	}
	for key, o := range b.objects {
		if !strings.HasPrefix(key, "HorizontalPodAutoscaler/") {
			continue
		}
		target := digString(o, "spec", "scaleTargetRef", "name")
		if _, ok := b.objects["Deployment/"+target]; !ok {
			t.Errorf("%s scales unknown Deployment %q", key, target)
		}
		maxR, _ := asInt(dig(o, "spec", "maxReplicas"))
		minR, _ := asInt(dig(o, "spec", "minReplicas"))
		if minR < 1 || maxR < minR {
			t.Errorf("%s: min %d max %d", key, minR, maxR)
		}
		if target == "ingestor" && maxR > partitions {
			t.Errorf("%s lets the ingestor reach %d replicas, past %d partitions", key, maxR, partitions)
		}
	}
	hpa := b.object(t, "HorizontalPodAutoscaler/reader")
	if digString(hpa, "spec", "scaleTargetRef", "kind") != "Deployment" || digString(hpa, "spec", "scaleTargetRef", "name") != "reader" {
		t.Error("the reader HPA does not target Deployment/reader")
	}
	if minR, _ := asInt(dig(hpa, "spec", "minReplicas")); minR < 2 {
		t.Errorf("reader HPA minReplicas %d: a PodDisruptionBudget with one replica blocks node drains", minR)
	}
	// The HPA owns the reader's count; a replicas field would fight it on
	// every apply.
	if r := dig(b.object(t, "Deployment/reader"), "spec", "replicas"); r != nil {
		t.Errorf("Deployment/reader sets replicas %v although an HPA scales it", r)
	}
	if digString(b.container(t, "Deployment/reader"), "resources", "requests", "cpu") == "" {
		t.Error("the reader HPA scales on CPU, so the reader needs a CPU request")
	}
}

func TestK8sMigrationJob(t *testing.T) {
	t.Parallel()
	b := loadK8s(t)
	job := b.object(t, "Job/orders-migrate")
	if rp := digString(job, "spec", "template", "spec", "restartPolicy"); rp != "OnFailure" && rp != "Never" {
		t.Errorf("migration Job restartPolicy %q", rp)
	}
	if _, ok := asInt(dig(job, "spec", "backoffLimit")); !ok {
		t.Error("migration Job has no backoffLimit")
	}
	c := b.container(t, "Job/orders-migrate")
	env := b.envNames(t, c)
	for _, want := range migrateVars(t) {
		if _, ok := env[want]; !ok {
			t.Errorf("migration Job does not set %s", want)
		}
	}
	if env["DATABASE_URL"] != "<secret>" {
		t.Error("the migration Job's DATABASE_URL must come from the Secret")
	}
	if dig(job, "spec", "template", "spec", "securityContext", "runAsNonRoot") != true {
		t.Error("migration Job must run as non-root")
	}
	// The compose migrate job gets the same variables.
	cm := loadCompose(t).service(t, "migrate").Environment
	for _, want := range migrateVars(t) {
		if _, ok := cm[want]; !ok && want != "MIGRATE_TIMEOUT" {
			t.Errorf("compose migrate does not set %s", want)
		}
	}
}

// migrateVars are the variables deploy/migrate reads, from its doc comment
// (the program is package main and cannot be imported).
func migrateVars(t testing.TB) []string {
	src := string(readFile(t, "deploy/migrate/main.go"))
	var out []string
	for _, v := range []string{"DATABASE_URL", "ORDER_INGESTOR_PASSWORD", "ORDER_READER_PASSWORD", "MIGRATE_TIMEOUT", "LOG_FORMAT"} {
		if !strings.Contains(src, fmt.Sprintf("getenv(%q)", v)) && !strings.Contains(src, fmt.Sprintf("%q}", v)) {
			t.Errorf("deploy/migrate no longer reads %s: update this list", v)
		}
		out = append(out, v)
	}
	return out
}
