package deploytest

import (
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

// grafanaVars replaces Grafana's built-in interval variables with a
// duration, so that dashboard queries parse as plain PromQL.
var grafanaVars = strings.NewReplacer("$__rate_interval", "1m", "$__interval", "1m", "$__range", "1h")

// parsePromQL parses a dashboard or alert expression with Prometheus' own
// parser, Grafana's interval variables replaced.
func parsePromQL(expr string) (parser.Expr, error) {
	return parser.NewParser(parser.Options{}).ParseExpr(grafanaVars.Replace(expr))
}

// promqlMetricNames parses expr with Prometheus' own parser and returns the
// metric names of its vector selectors.
func promqlMetricNames(expr string) ([]string, error) {
	e, err := parsePromQL(expr)
	if err != nil {
		return nil, err
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			names = append(names, vs.Name)
		}
		return nil
	})
	slices.Sort(names)
	return slices.Compact(names), nil
}

// TestQueriesParse runs every dashboard and alert expression through
// Prometheus' parser (a syntax error would only show as an empty panel or a
// rule that never loads), and checks that MetricNames, the lexer the other
// tests use, finds exactly the metrics the parser finds.
func TestQueriesParse(t *testing.T) {
	t.Parallel()
	queries := dashboardExprs(t)
	for alert, e := range alertExprs(t) {
		queries["alert "+alert] = e
	}
	if len(queries) < 10 {
		t.Fatalf("only %d queries found", len(queries))
	}
	for where, e := range queries {
		names, err := promqlMetricNames(e)
		if err != nil {
			t.Errorf("%s: %v\n%s", where, err, e)
			continue
		}
		if got := MetricNames(e); !slices.Equal(got, names) {
			t.Errorf("%s: MetricNames = %v, the PromQL parser finds %v", where, got, names)
		}
	}
}

// TestAlertRulesLoad validates alerts.yml the way Prometheus does when it
// loads it (promtool check rules): structure, expressions, templates.
func TestAlertRulesLoad(t *testing.T) {
	t.Parallel()
	groups, errs := rulefmt.Parse(readFile(t, "deploy/prometheus/alerts.yml"), false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Errorf("alerts.yml: %v", err)
	}
	if groups == nil {
		t.Fatal("alerts.yml did not load")
	}
	n := 0
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			n++
			if time.Duration(r.For) <= 0 {
				t.Errorf("%s: no for duration", r.Alert)
			}
		}
	}
	if n != len(alertExprs(t)) {
		t.Errorf("Prometheus loads %d rules, the YAML has %d", n, len(alertExprs(t)))
	}
}
