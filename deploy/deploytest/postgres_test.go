package deploytest

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// pgConf is the deployment's PostgreSQL configuration, the one file every
// deployment (and make bench-scale) runs with.
const pgConf = "deploy/postgres/postgresql.conf"

// TestPostgresConfigIsDeployed checks that compose runs PostgreSQL with the
// tuned configuration and that deploy/k8s carries the same file, so that
// what bench-scale measures is what either deployment runs.
func TestPostgresConfigIsDeployed(t *testing.T) {
	t.Parallel()
	want := readFile(t, pgConf)
	for _, setting := range []string{"shared_buffers", "max_wal_size", "checkpoint_timeout", "wal_compression", "wal_buffers", "effective_cache_size"} {
		if !bytes.Contains(want, []byte("\n"+setting+" = ")) {
			t.Errorf("%s does not set %s", pgConf, setting)
		}
	}

	pg := loadCompose(t).service(t, "postgres")
	const mount = "/etc/postgresql/postgresql.conf"
	if !slices.Contains(pg.Volumes, "./"+pgConf+":"+mount+":ro") {
		t.Errorf("compose postgres does not mount %s at %s read-only: %v", pgConf, mount, pg.Volumes)
	}
	if cmd := strings.Join(pg.Command, " "); !strings.Contains(cmd, "config_file="+mount) {
		t.Errorf("compose postgres command %q does not use config_file=%s", cmd, mount)
	}

	// deploy/k8s/postgres renders the same file as ConfigMap postgres-config.
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	res, err := k.Run(filesys.MakeFsOnDisk(), path(t, k8sDir, "postgres"))
	if err != nil {
		t.Fatalf("kustomize build %s/postgres: %v", k8sDir, err)
	}
	found := false
	for _, r := range res.Resources() {
		if r.GetKind() != "ConfigMap" || r.GetName() != "postgres-config" {
			continue
		}
		found = true
		if r.GetNamespace() != "orders" {
			t.Errorf("ConfigMap postgres-config in namespace %q, want orders", r.GetNamespace())
		}
		if got := r.GetDataMap()["postgresql.conf"]; got != string(want) {
			t.Errorf("ConfigMap postgres-config's postgresql.conf differs from %s: cp %s %s/postgres/", pgConf, pgConf, k8sDir)
		}
	}
	if !found {
		t.Errorf("%s/postgres renders no ConfigMap postgres-config", k8sDir)
	}
}
