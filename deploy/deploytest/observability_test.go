package deploytest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

type promConfig struct {
	Global struct {
		ScrapeInterval     string `yaml:"scrape_interval"`
		EvaluationInterval string `yaml:"evaluation_interval"`
	} `yaml:"global"`
	RuleFiles     []string       `yaml:"rule_files"`
	ScrapeConfigs []scrapeConfig `yaml:"scrape_configs"`
}

type scrapeConfig struct {
	JobName       string `yaml:"job_name"`
	MetricsPath   string `yaml:"metrics_path"`
	StaticConfigs []struct {
		Targets []string `yaml:"targets"`
	} `yaml:"static_configs"`
	DNSSDConfigs []struct {
		Names []string `yaml:"names"`
		Type  string   `yaml:"type"`
		Port  int      `yaml:"port"`
	} `yaml:"dns_sd_configs"`
}

type alertRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func loadAlerts(t testing.TB) alertRules {
	t.Helper()
	var r alertRules
	readYAML(t, &r, "deploy/prometheus/alerts.yml")
	return r
}

// alertExprs maps each alert name to its expression.
func alertExprs(t testing.TB) map[string]string {
	out := map[string]string{}
	for _, g := range loadAlerts(t).Groups {
		for _, r := range g.Rules {
			out[r.Alert] = r.Expr
		}
	}
	return out
}

type dashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []templateVar `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type templateVar struct {
	Name       string `json:"name"`
	Type       string `json:"type"`
	Query      string `json:"query"` // label_values(...) or, for a datasource, its type
	Datasource *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	Current struct {
		Value any `json:"value"`
	} `json:"current"`
	Multi      bool   `json:"multi"`
	IncludeAll bool   `json:"includeAll"`
	AllValue   string `json:"allValue"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	FieldConfig struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
		Overrides []struct {
			Matcher struct {
				ID      string `json:"id"`
				Options any    `json:"options"`
			} `json:"matcher"`
			Properties []struct {
				ID    string `json:"id"`
				Value any    `json:"value"`
			} `json:"properties"`
		} `json:"overrides"`
	} `json:"fieldConfig"`
	Targets []struct {
		RefID      string `json:"refId"`
		Expr       string `json:"expr"`
		Datasource *struct {
			UID string `json:"uid"`
		} `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // collapsed rows keep theirs inside
}

// dashboardPanels returns every panel that is not a row, rows' panels
// included.
func dashboardPanels(t testing.TB) []panel {
	var out []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if p.Type != "row" {
				out = append(out, p)
			}
			walk(p.Panels)
		}
	}
	walk(loadDashboard(t).Panels)
	return out
}

func loadDashboard(t testing.TB) dashboard {
	t.Helper()
	var d dashboard
	if err := json.Unmarshal(readFile(t, "deploy/grafana/dashboards/orders.json"), &d); err != nil {
		t.Fatalf("parse dashboard: %v", err)
	}
	return d
}

// dashboardExprs maps "panel title/refId" to each query expression.
func dashboardExprs(t testing.TB) map[string]string {
	out := map[string]string{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				out[p.Title+"/"+tg.RefID] = tg.Expr
			}
			walk(p.Panels)
		}
	}
	walk(loadDashboard(t).Panels)
	return out
}

func TestPrometheusConfig(t *testing.T) {
	t.Parallel()
	var cfg promConfig
	readYAML(t, &cfg, "deploy/prometheus/prometheus.yml")
	for _, d := range []string{cfg.Global.ScrapeInterval, cfg.Global.EvaluationInterval} {
		if _, err := time.ParseDuration(d); err != nil {
			t.Errorf("global interval %q: %v", d, err)
		}
	}
	// Rule files are read inside the container, where compose mounts
	// deploy/prometheus at /etc/prometheus.
	if len(cfg.RuleFiles) == 0 {
		t.Error("prometheus.yml loads no rule files")
	}
	for _, f := range cfg.RuleFiles {
		rel, ok := strings.CutPrefix(f, "/etc/prometheus/")
		if !ok {
			t.Errorf("rule file %s is outside the mounted /etc/prometheus", f)
			continue
		}
		if _, err := os.Stat(path(t, "deploy/prometheus", rel)); err != nil {
			t.Errorf("rule file %s: %v", f, err)
		}
	}
	targets := map[string][]string{}
	for _, sc := range cfg.ScrapeConfigs {
		if sc.MetricsPath != "" && sc.MetricsPath != metricsPath {
			t.Errorf("job %s scrapes %s, services serve %s", sc.JobName, sc.MetricsPath, metricsPath)
		}
		for _, s := range sc.StaticConfigs {
			targets[sc.JobName] = append(targets[sc.JobName], s.Targets...)
		}
		for _, d := range sc.DNSSDConfigs {
			for _, n := range d.Names {
				targets[sc.JobName] = append(targets[sc.JobName], n+":"+itoa(d.Port))
			}
		}
	}
	// The scaled ingestor must be discovered through DNS (every replica),
	// not a static target (one replica at random).
	if got, want := targets["ingestor"], []string{"ingestor:" + itoa(ingestorPort)}; !slices.Equal(got, want) {
		t.Errorf("ingestor targets = %v, want %v", got, want)
	}
	if !slices.ContainsFunc(cfg.ScrapeConfigs, func(sc scrapeConfig) bool {
		return sc.JobName == "ingestor" && len(sc.DNSSDConfigs) == 1 && len(sc.StaticConfigs) == 0
	}) {
		t.Error("the ingestor job must use dns_sd_configs only")
	}
	if got, want := targets["reader"], []string{"reader:" + itoa(readerOpsPort)}; !slices.Equal(got, want) {
		t.Errorf("reader targets = %v, want %v", got, want)
	}
	// Every scraped service name is a compose service.
	c := loadCompose(t)
	for job, ts := range targets {
		for _, target := range ts {
			host, _, _ := strings.Cut(target, ":")
			if _, ok := c.Services[host]; !ok && host != "localhost" {
				t.Errorf("job %s scrapes %s, which is no compose service", job, target)
			}
		}
	}
}

func TestAlertRules(t *testing.T) {
	t.Parallel()
	r := loadAlerts(t)
	seen := map[string]bool{}
	for _, g := range r.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("group %q is unnamed or empty", g.Name)
		}
		for _, rule := range g.Rules {
			if rule.Alert == "" {
				t.Errorf("group %s: a rule has no alert name (recording rules do not belong here)", g.Name)
				continue
			}
			if seen[rule.Alert] {
				t.Errorf("alert %s defined twice", rule.Alert)
			}
			seen[rule.Alert] = true
			if strings.TrimSpace(rule.Expr) == "" || len(MetricNames(rule.Expr)) == 0 {
				t.Errorf("%s: expression %q selects no metric", rule.Alert, rule.Expr)
			}
			if d, err := time.ParseDuration(rule.For); err != nil || d <= 0 {
				t.Errorf("%s: for %q: want a positive duration, so that one bad scrape does not page", rule.Alert, rule.For)
			}
			if s := rule.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("%s: severity %q, want warning or critical", rule.Alert, s)
			}
			if rule.Annotations["summary"] == "" || rule.Annotations["description"] == "" {
				t.Errorf("%s: needs summary and description annotations", rule.Alert)
			}
			if strings.Count(rule.Expr, "(") != strings.Count(rule.Expr, ")") {
				t.Errorf("%s: unbalanced parentheses in %q", rule.Alert, rule.Expr)
			}
		}
	}
	// The four conditions, each with the metric it must watch.
	for alert, metric := range map[string]string{
		"IngestorConsumerLagGrowing": "ingestor_consumer_lag",
		"IngestorDeadLetterRate":     "ingestor_messages_total",
		"IngestorNotReady":           "up",
		"ReaderHigh5xxRate":          "reader_http_requests_total",
	} {
		expr, ok := alertExprs(t)[alert]
		if !ok {
			t.Errorf("no alert %s", alert)
			continue
		}
		if !slices.Contains(MetricNames(expr), metric) {
			t.Errorf("%s does not watch %s: %s", alert, metric, expr)
		}
	}
}

func TestGrafanaProvisioning(t *testing.T) {
	t.Parallel()
	var ds struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name, UID, Type, URL string
		} `yaml:"datasources"`
	}
	readYAML(t, &ds, "deploy/grafana/provisioning/datasources/prometheus.yml")
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" {
		t.Fatalf("want one prometheus datasource, got %+v", ds.Datasources)
	}
	uid := ds.Datasources[0].UID
	if want := "http://prometheus:9090"; ds.Datasources[0].URL != want {
		t.Errorf("datasource url %s, want %s", ds.Datasources[0].URL, want)
	}
	if !slices.Contains(loadCompose(t).service(t, "prometheus").Ports, "127.0.0.1:9090:9090") {
		t.Error("compose prometheus does not serve 9090 on 127.0.0.1")
	}

	var prov struct {
		Providers []struct {
			Name    string `yaml:"name"`
			Type    string `yaml:"type"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, &prov, "deploy/grafana/provisioning/dashboards/orders.yml")
	if len(prov.Providers) != 1 || prov.Providers[0].Options.Path != grafanaDashboardDir {
		t.Errorf("dashboard provider %+v does not load %s", prov.Providers, grafanaDashboardDir)
	}

	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Error("dashboard needs a uid and a title")
	}
	// Panels query the datasource variable (TestDashboardVariables), whose
	// default is the provisioned datasource.
	dsVar := slices.IndexFunc(d.Templating.List, func(v templateVar) bool { return v.Type == "datasource" })
	if dsVar < 0 {
		t.Error("dashboard has no datasource variable")
	} else if v := d.Templating.List[dsVar]; v.Current.Value != uid {
		t.Errorf("datasource variable %s defaults to %v, want the provisioned uid %q", v.Name, v.Current.Value, uid)
	}
	ids := map[int]bool{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel id %d used twice", p.ID)
			}
			ids[p.ID] = true
			if p.Type != "row" {
				if p.Datasource == nil || p.Datasource.Type != "prometheus" {
					t.Errorf("panel %q does not use a prometheus datasource", p.Title)
				}
				if len(p.Targets) == 0 {
					t.Errorf("panel %q has no query", p.Title)
				}
			}
			for _, tg := range p.Targets {
				if len(MetricNames(tg.Expr)) == 0 {
					t.Errorf("panel %q query %s selects no metric: %q", p.Title, tg.RefID, tg.Expr)
				}
				if strings.Count(tg.Expr, "(") != strings.Count(tg.Expr, ")") {
					t.Errorf("panel %q query %s: unbalanced parentheses", p.Title, tg.RefID)
				}
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)

	// The panels the issue asks for, by the metric each must chart.
	exprs := dashboardExprs(t)
	for want, metric := range map[string]string{
		"ingest rate":             "ingestor_messages_total",
		"dead letters by reason":  "ingestor_messages_total",
		"consumer lag":            "ingestor_consumer_lag",
		"batch":                   "ingestor_db_write_seconds_bucket",
		"end-to-end latency":      "ingestor_end_to_end_seconds_bucket",
		"http rate":               "reader_http_requests_total",
		"http latency":            "reader_http_request_duration_seconds_bucket",
		"http errors":             "reader_http_requests_total",
		"cache hit ratio by tier": "reader_cache_lookups_total",
		"db pool":                 "reader_db_query_duration_seconds_sum",
		"warm-up":                 "reader_warmup_orders",
		"ingestor ready":          "ingestor_ready",
		"redis tier":              "reader_redis_up",
		"local cache":             "reader_local_cache_bytes",
	} {
		found := false
		for key, e := range exprs {
			title, _, _ := strings.Cut(key, "/")
			if strings.Contains(strings.ToLower(title), want) && slices.Contains(MetricNames(e), metric) {
				found = true
			}
		}
		if !found {
			t.Errorf("no panel titled like %q charts %s", want, metric)
		}
	}
	// by (reason) is what makes the dead-letter panel "by reason".
	if !regexp.MustCompile(`by \(reason\)`).MatchString(exprs["Dead letters by reason/A"]) {
		t.Errorf("dead-letter panel does not group by reason: %q", exprs["Dead letters by reason/A"])
	}
	if _, err := os.Stat(filepath.Join(path(t, "deploy/grafana/dashboards"), "orders.json")); err != nil {
		t.Error(err)
	}
}
