package deploytest

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// images describes each Dockerfile: the package it builds, and whether it
// is a long-running service (HEALTHCHECK and an exposed port) or a one-shot.
var images = []struct {
	file    string
	pkg     string // the Go package the build stage compiles into the image
	port    int    // the port HEALTHCHECK probes, 0 for one-shots
	expose  []int  // every exposed port
	health  string // path the HEALTHCHECK probes
	service string // compose service built from it
}{
	{"deploy/docker/ingestor.Dockerfile", "./ingestor", ingestorPort, []int{ingestorPort}, readyPath, "ingestor"},
	{"deploy/docker/reader.Dockerfile", "./reader", readerPort, []int{readerPort, readerOpsPort}, readyPath, "reader"},
	{"deploy/docker/producer.Dockerfile", "./producer", 0, nil, "", "producer"},
	{"deploy/docker/migrate.Dockerfile", "./deploy/migrate", 0, nil, "", "migrate"},
}

func loadStages(t testing.TB, file string) []Stage {
	t.Helper()
	instr, err := ParseDockerfile(string(readFile(t, file)))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return Stages(instr)
}

func TestParseIgnore(t *testing.T) {
	t.Parallel()
	ig, err := ParseIgnore(".git\nbin/\n**/*_test.go\n**/testdata\n.env\n**/.env\n!keep/.env\n")
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{
		".git/HEAD": true, "bin/reader": true, "reader/bin": false, "a/b/x_test.go": true, "x_test.go": true,
		"shared/model/testdata/model.json": true, "reader/main.go": false, ".env": true, "deploy/.env": true,
		"keep/.env": false, ".envrc": false, "go.work": false,
	} {
		if got := ig.Match(p); got != want {
			t.Errorf("Match(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestDockerfiles(t *testing.T) {
	t.Parallel()
	c := loadCompose(t)
	for _, img := range images {
		t.Run(filepath.Base(img.file), func(t *testing.T) {
			t.Parallel()
			stages := loadStages(t, img.file)
			if len(stages) < 2 {
				t.Fatalf("%d stages, want a multi-stage build", len(stages))
			}
			build, final := stages[0], stages[len(stages)-1]
			if build.From != "golang:1.26-bookworm" {
				t.Errorf("builder FROM %s, want golang:1.26-bookworm", build.From)
			}
			if !strings.HasPrefix(final.From, "gcr.io/distroless/") || !strings.HasSuffix(final.From, ":nonroot") {
				t.Errorf("runtime FROM %s, want a distroless :nonroot image", final.From)
			}
			var user, health, entry string
			var exposed []string
			for _, in := range final.Instr {
				switch in.Cmd {
				case "USER":
					user = in.Args
				case "HEALTHCHECK":
					health = in.Args
				case "EXPOSE":
					exposed = append(exposed, strings.Fields(in.Args)...)
				case "ENTRYPOINT":
					entry = in.Args
				case "COPY":
					flags, _ := Flags(in.Args)
					if flags["from"] != build.Name {
						t.Errorf("line %d: the runtime stage copies from %q, not the build stage", in.Line, flags["from"])
					}
				case "RUN":
					t.Errorf("line %d: RUN in the runtime stage (distroless has no shell)", in.Line)
				}
			}
			if user == "" || strings.HasPrefix(user, "root") || strings.HasPrefix(user, "0") {
				t.Errorf("runtime USER %q, want a non-root user", user)
			}
			if entry == "" {
				t.Error("no ENTRYPOINT")
			}
			if img.port == 0 {
				if health != "" || len(exposed) > 0 {
					t.Errorf("one-shot image has HEALTHCHECK %q / EXPOSE %v", health, exposed)
				}
			} else {
				var want []string
				for _, p := range img.expose {
					want = append(want, itoa(p))
				}
				if !slices.Equal(exposed, want) {
					t.Errorf("EXPOSE %v, want %v", exposed, want)
				}
				wantURL := "http://127.0.0.1:" + itoa(img.port) + img.health
				if !strings.Contains(health, `"`+wantURL+`"`) {
					t.Errorf("HEALTHCHECK %q does not probe %s", health, wantURL)
				}
				// The compose healthcheck repeats the image's (Compose
				// overrides it): they must probe the same URL.
				if hc := c.service(t, img.service).Healthcheck; hc == nil || !slices.Contains(hc.Test, wantURL) {
					t.Errorf("compose %s healthcheck does not probe %s", img.service, wantURL)
				}
			}
			if svc := c.service(t, img.service); svc.Build == nil || svc.Build.Dockerfile != img.file {
				t.Errorf("compose %s is not built from %s", img.service, img.file)
			}

			// The build stage compiles the package this table names.
			var built bool
			for _, in := range build.Instr {
				if in.Cmd == "RUN" && regexp.MustCompile(`go build [^&]*-o /out/\S+ `+regexp.QuoteMeta(img.pkg)+`(\s|$)`).MatchString(in.Args) {
					built = true
				}
			}
			if !built {
				t.Errorf("build stage never runs go build ... %s", img.pkg)
			}
		})
	}
}

// TestDockerBuildContext replays each build stage's COPY instructions from
// the repository into a scratch directory, leaving out what .dockerignore
// excludes, and asks the Go tool to load the image's package there (module
// cache only, no network). A missing workspace member, an ignored source
// file or an embed pattern with no files fails here instead of in
// `docker build`. It also checks cgo against the runtime image: a binary
// that links librdkafka needs CGO_ENABLED=1 and a glibc base.
func TestDockerBuildContext(t *testing.T) {
	t.Parallel()
	ig, err := ParseIgnore(string(readFile(t, ".dockerignore")))
	if err != nil {
		t.Fatal(err)
	}
	repo := root(t)
	for _, img := range images {
		t.Run(filepath.Base(img.file), func(t *testing.T) {
			t.Parallel()
			stages := loadStages(t, img.file)
			build, final := stages[0], stages[len(stages)-1]
			ctx := t.TempDir()
			for _, in := range build.Instr {
				if in.Cmd != "COPY" {
					continue
				}
				flags, args := Flags(in.Args)
				if flags["from"] != "" {
					continue
				}
				dst := args[len(args)-1]
				for _, src := range args[:len(args)-1] {
					matches, err := filepath.Glob(filepath.Join(repo, src))
					if err != nil || len(matches) == 0 {
						t.Errorf("line %d: COPY %s matches nothing", in.Line, src)
						continue
					}
					for _, m := range matches {
						copyContext(t, repo, m, filepath.Join(ctx, dst), strings.HasSuffix(dst, "/"), ig)
					}
				}
			}
			env := build.Env()
			cmd := exec.Command("go", "list", "-e", "-deps", "-f", "{{if .Error}}ERROR {{.ImportPath}}: {{.Error}}{{end}}{{if .DepsErrors}}ERROR {{.ImportPath}}: {{.DepsErrors}}{{end}}{{.ImportPath}}", img.pkg)
			cmd.Dir = ctx
			cmd.Env = append(os.Environ(), "GOPROXY=off", "GOFLAGS=-mod=readonly", "GOWORK=", "CGO_ENABLED="+env["CGO_ENABLED"])
			out, err := cmd.CombinedOutput()
			if err != nil || strings.Contains(string(out), "ERROR ") {
				t.Fatalf("go list %s in the replayed build context: %v\n%s", img.pkg, err, out)
			}
			deps := strings.Fields(string(out))
			kafka := slices.ContainsFunc(deps, func(p string) bool {
				return strings.HasPrefix(p, "github.com/confluentinc/confluent-kafka-go/")
			})
			switch {
			case kafka && env["CGO_ENABLED"] != "1":
				t.Errorf("%s links confluent-kafka-go but builds with CGO_ENABLED=%q", img.pkg, env["CGO_ENABLED"])
			case kafka && !strings.Contains(final.From, "/base-debian"):
				t.Errorf("%s needs glibc (librdkafka) but runs on %s", img.pkg, final.From)
			case !kafka && env["CGO_ENABLED"] != "0":
				t.Errorf("%s needs no cgo: build it with CGO_ENABLED=0 for a static binary", img.pkg)
			}
		})
	}
}

// copyContext copies src (a file or directory in the repository) to dst the
// way COPY does, skipping what .dockerignore excludes.
func copyContext(t testing.TB, repo, src, dst string, dstIsDir bool, ig *Ignore) {
	t.Helper()
	info, err := os.Stat(src)
	if err != nil {
		t.Fatal(err)
	}
	if !info.IsDir() {
		rel, _ := filepath.Rel(repo, src)
		if ig.Match(filepath.ToSlash(rel)) {
			return
		}
		if dstIsDir {
			dst = filepath.Join(dst, filepath.Base(src))
		}
		copyFile(t, src, dst)
		return
	}
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(repo, p)
		if ig.Match(filepath.ToSlash(rel)) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		under, _ := filepath.Rel(src, p)
		copyFile(t, p, filepath.Join(dst, under))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func copyFile(t testing.TB, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
