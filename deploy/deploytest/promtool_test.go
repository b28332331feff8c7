package deploytest

import (
	"context"
	"errors"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// alertTestsFile holds the promtool unit tests of alerts.yml.
const alertTestsFile = "alerts_test.yml"

// TestAlertRulesPromtool runs the alert rules' unit tests with Prometheus'
// own rule evaluator: each alert fires on its scenario, with its labels and
// annotations, and stays quiet on the ones next to it.
func TestAlertRulesPromtool(t *testing.T) {
	t.Parallel()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool is not installed, so the alert rules cannot be tested: it comes with "+
			"Debian's prometheus package (scripts/ensure-services.sh installs it as root; `make test` runs it), "+
			"or run: sudo apt-get install --no-install-recommends prometheus (%v)", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, promtool, "test", "rules", alertTestsFile)
	cmd.Dir = path(t, "deploy/prometheus")
	out, err := cmd.CombinedOutput()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			t.Fatalf("promtool test rules %s failed (exit %d):\n%s", alertTestsFile, exit.ExitCode(), out)
		}
		t.Fatalf("run promtool: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("promtool test rules did not report SUCCESS:\n%s", out)
	}
}

type promtoolTests struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		Name          string `yaml:"name"`
		AlertRuleTest []struct {
			EvalTime  string `yaml:"eval_time"`
			Alertname string `yaml:"alertname"`
			ExpAlerts []struct {
				ExpLabels      map[string]string `yaml:"exp_labels"`
				ExpAnnotations map[string]string `yaml:"exp_annotations"`
			} `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// TestAlertTestsCoverEveryAlert keeps alerts_test.yml complete: promtool
// checks only the alerts a test names, and says nothing about an alert no
// test names (or a name no rule has), so every alert must have a case
// where it fires, with its severity and annotations, and one where it
// must not.
func TestAlertTestsCoverEveryAlert(t *testing.T) {
	t.Parallel()
	var tests promtoolTests
	readYAML(t, &tests, "deploy/prometheus", alertTestsFile)
	if !slices.Equal(tests.RuleFiles, []string{"alerts.yml"}) {
		t.Errorf("%s tests rule files %v, want [alerts.yml]", alertTestsFile, tests.RuleFiles)
	}
	rules := map[string]map[string]string{} // alert -> labels
	for _, g := range loadAlerts(t).Groups {
		for _, r := range g.Rules {
			rules[r.Alert] = r.Labels
		}
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, at := range tc.AlertRuleTest {
			labels, ok := rules[at.Alertname]
			if !ok {
				t.Errorf("test %q names %s, which alerts.yml does not define", tc.Name, at.Alertname)
				continue
			}
			if len(at.ExpAlerts) == 0 {
				quiet[at.Alertname] = true
				continue
			}
			fires[at.Alertname] = true
			for _, exp := range at.ExpAlerts {
				if exp.ExpLabels["severity"] != labels["severity"] {
					t.Errorf("test %q expects %s with severity %q, the rule has %q",
						tc.Name, at.Alertname, exp.ExpLabels["severity"], labels["severity"])
				}
				if exp.ExpAnnotations["summary"] == "" {
					t.Errorf("test %q expects %s without its summary: the annotation templates go untested", tc.Name, at.Alertname)
				}
			}
		}
	}
	for alert := range rules {
		if !fires[alert] {
			t.Errorf("%s has no test where it fires", alert)
		}
		if !quiet[alert] {
			t.Errorf("%s has no test where it stays quiet", alert)
		}
	}
	// The gap the absent() rules close: every target gone.
	for _, alert := range []string{"IngestorAbsent", "ReaderAbsent"} {
		if expr := alertExprs(t)[alert]; !strings.Contains(expr, "absent(") {
			t.Errorf("%s: %q does not use absent()", alert, expr)
		}
	}
}
