package deploytest

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/resmap"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// renderK8s renders deploy/k8s with kustomize's own library, as `kubectl
// apply -k` does, on a copy where each git-ignored secrets file (secrets.env,
// reader-api-keys) is its X.example (a developer's real files stay out of
// the test).
func renderK8s(t testing.TB) resmap.ResMap {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "k8s")
	src := path(t, k8sDir)
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if _, err := os.Stat(p + ".example"); err == nil {
			return nil // the real file of an example
		}
		if real, ok := strings.CutSuffix(rel, ".example"); ok {
			copyFile(t, p, filepath.Join(dir, real))
		}
		copyFile(t, p, filepath.Join(dir, rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	res, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build deploy/k8s: %v", err)
	}
	return res
}

// renderedObjects renders deploy/k8s and returns its objects by "Kind/name",
// with the names kustomize gave them (generated ones carry their hash).
func renderedObjects(t testing.TB) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, r := range renderK8s(t).Resources() {
		m, err := r.Map()
		if err != nil {
			t.Fatal(err)
		}
		out[r.GetKind()+"/"+r.GetName()] = m
	}
	return out
}

// TestKustomizeBuild renders deploy/k8s and checks what the hand-written
// checks cannot: that it renders at all, that generated names (with their
// content hash) replaced every reference, and that every object lands in
// the namespace.
func TestKustomizeBuild(t *testing.T) {
	t.Parallel()
	res := renderK8s(t)
	kinds := map[string]int{}
	var cmNames, secretNames []string
	for _, r := range res.Resources() {
		kinds[r.GetKind()]++
		if r.GetKind() != "Namespace" && r.GetNamespace() != "orders" {
			t.Errorf("%s/%s renders in namespace %q", r.GetKind(), r.GetName(), r.GetNamespace())
		}
		if r.GetLabels()["app.kubernetes.io/part-of"] != "orders" {
			t.Errorf("%s/%s lacks the part-of label", r.GetKind(), r.GetName())
		}
		switch r.GetKind() {
		case "ConfigMap":
			cmNames = append(cmNames, r.GetName())
		case "Secret":
			secretNames = append(secretNames, r.GetName())
		}
	}
	for kind, want := range map[string]int{"Deployment": 2, "Service": 2, "PodDisruptionBudget": 2, "HorizontalPodAutoscaler": 1, "Job": 2, "ConfigMap": 3, "Secret": 2, "Namespace": 1, "NetworkPolicy": 3} {
		if kinds[kind] != want {
			t.Errorf("%d %s rendered, want %d", kinds[kind], kind, want)
		}
	}
	yml, err := res.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	out := string(yml)
	// Generated names carry a hash; a reference kustomize failed to rewrite
	// would still name the bare generator.
	for _, bare := range []string{"name: ingestor-config\n", "name: ingestor-config,", "name: reader-config\n", "name: topics-config\n", "name: orders-secrets\n", "name: orders-secrets,"} {
		if strings.Contains(out, bare) {
			t.Errorf("rendered output still refers to %q without its hash", strings.TrimSpace(bare))
		}
	}
	// The API keys Secret alone keeps its name, so that an edit updates it
	// in place (TestK8sReaderKeysSecret).
	if !slices.Contains(secretNames, readerKeysSecret) {
		t.Errorf("Secrets %v: no %s without a hash suffix", secretNames, readerKeysSecret)
	}
	for _, names := range [][]string{cmNames, secretNames} {
		for _, n := range names {
			if !strings.Contains(out, "name: "+n+"\n") || strings.Count(out, n) < 2 {
				t.Errorf("generated %s is not referenced by any workload", n)
			}
		}
	}
	// The Kafka tools image is pinned to the one compose runs kafka-init with.
	kafkaTools := "image: " + loadCompose(t).service(t, "kafka-init").Image
	// The services' images carry the kustomization's pinned tags
	// (TestK8sImagesPinned).
	var want []string
	for _, i := range loadK8s(t).k.Images {
		if i.Name != "apache/kafka" {
			want = append(want, "image: "+i.Name+":"+i.NewTag)
		}
	}
	if len(want) != 3 {
		t.Errorf("kustomization images %v: want the ingestor, reader and migrate images", want)
	}
	for _, img := range append(want, kafkaTools) {
		if !strings.Contains(out, img) {
			t.Errorf("rendered output lacks %s (kustomization images)", img)
		}
	}
}
