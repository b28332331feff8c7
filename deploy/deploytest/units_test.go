package deploytest

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// A dashboard unit must suit what its query computes: a percent axis under
// requests per second reads 3 req/s as 300 %. The test below infers the
// quantity of every panel query from its PromQL (the metric names'
// Prometheus suffixes, then what rate, aggregations, histogram_quantile
// and division do to them) and checks the panel's unit against the units
// that quantity allows.

// quantity is what a query's values measure.
type quantity string

const (
	qSeconds        quantity = "seconds"
	qBytes          quantity = "bytes"
	qCount          quantity = "count" // things: messages, partitions, connections
	qState          quantity = "state" // 0 or 1
	qRatio          quantity = "ratio" // a share of a whole, 0 to 1
	qPerSecond      quantity = "per second"
	qBusy           quantity = "seconds per second" // average number of things busy
	qBytesPerSecond quantity = "bytes per second"

	// Not displayable as such: the raw series of a counter or a histogram.
	qCounterSeconds quantity = "counter of seconds"
	qCounterBytes   quantity = "counter of bytes"
	qCounter        quantity = "counter"
	qBucketSeconds  quantity = "histogram buckets of seconds"
	qBucketBytes    quantity = "histogram buckets of bytes"
	qBucket         quantity = "histogram buckets"
	// The rate of buckets, histogram_quantile's input.
	qBucketRateSeconds quantity = "bucket rate of seconds"
	qBucketRateBytes   quantity = "bucket rate of bytes"
	qBucketRate        quantity = "bucket rate"
)

// metricQuantities classifies a metric by its name, first match wins: the
// Prometheus naming conventions (base units in the name, _total for
// counters, _bucket/_sum/_count for histograms) and the project's 0/1
// gauges.
var metricQuantities = []struct {
	pattern *regexp.Regexp
	q       quantity
}{
	{regexp.MustCompile(`^up$|_up$|_ready$|_outage$`), qState},
	{regexp.MustCompile(`_seconds_bucket$`), qBucketSeconds},
	{regexp.MustCompile(`_bytes_bucket$`), qBucketBytes},
	{regexp.MustCompile(`_bucket$`), qBucket},
	{regexp.MustCompile(`_seconds_(sum|total)$`), qCounterSeconds},
	{regexp.MustCompile(`_bytes_(sum|total)$`), qCounterBytes},
	{regexp.MustCompile(`_(sum|count|total)$`), qCounter},
	{regexp.MustCompile(`_seconds$`), qSeconds},
	{regexp.MustCompile(`_bytes$`), qBytes},
	{regexp.MustCompile(``), qCount}, // any other gauge
}

// rates maps what rate (and irate) turn each raw quantity into.
var rates = map[quantity]quantity{
	qCounterSeconds: qBusy,
	qCounterBytes:   qBytesPerSecond,
	qCounter:        qPerSecond,
	qBucketSeconds:  qBucketRateSeconds,
	qBucketBytes:    qBucketRateBytes,
	qBucket:         qBucketRate,
}

// quantiles maps histogram_quantile's input to its output.
var quantiles = map[quantity]quantity{
	qBucketRateSeconds: qSeconds,
	qBucketRateBytes:   qBytes,
	qBucketRate:        qCount,
}

// units lists the Grafana units that display each quantity.
var units = map[quantity][]string{
	qSeconds:        {"s"},
	qBytes:          {"bytes", "decbytes"},
	qCount:          {"short", "none"},
	qState:          {"bool_yes_no", "bool_on_off", "bool"},
	qRatio:          {"percentunit"},
	qPerSecond:      {"reqps", "ops", "cps"},
	qBusy:           {"short", "none"},
	qBytesPerSecond: {"Bps", "binBps"},
}

// typed is a query's quantity and, when it comes from one metric, that
// metric's name (to tell a share of one counter from a mean of a histogram).
type typed struct {
	q      quantity
	metric string
}

func classifyMetric(name string) quantity {
	for _, m := range metricQuantities {
		if m.pattern.MatchString(name) {
			return m.q
		}
	}
	panic("unreachable: the last pattern matches every name")
}

// queryQuantity infers what expr measures, or says why it cannot.
func queryQuantity(expr string) (quantity, error) {
	e, err := parsePromQL(expr)
	if err != nil {
		return "", err
	}
	tq, err := quantityOf(e)
	if err != nil {
		return "", err
	}
	if _, ok := units[tq.q]; !ok {
		return "", fmt.Errorf("a %s is not displayable: take its rate (or histogram_quantile)", tq.q)
	}
	return tq.q, nil
}

func quantityOf(e parser.Expr) (typed, error) {
	switch e := e.(type) {
	case *parser.ParenExpr:
		return quantityOf(e.Expr)
	case *parser.VectorSelector:
		return typed{classifyMetric(e.Name), e.Name}, nil
	case *parser.MatrixSelector:
		return quantityOf(e.VectorSelector)
	case *parser.AggregateExpr:
		in, err := quantityOf(e.Expr)
		if err != nil {
			return typed{}, err
		}
		switch e.Op {
		case parser.COUNT, parser.COUNT_VALUES:
			return typed{qCount, ""}, nil
		case parser.SUM:
			if in.q == qState { // how many are up
				return typed{qCount, in.metric}, nil
			}
		case parser.AVG:
			if in.q == qState { // the share that is up
				return typed{qRatio, in.metric}, nil
			}
		}
		return in, nil
	case *parser.Call:
		return callQuantity(e)
	case *parser.BinaryExpr:
		if e.Op != parser.DIV {
			return typed{}, fmt.Errorf("no unit rule for the %s operator", e.Op)
		}
		l, err := quantityOf(e.LHS)
		if err != nil {
			return typed{}, err
		}
		r, err := quantityOf(e.RHS)
		if err != nil {
			return typed{}, err
		}
		return divQuantity(l, r)
	}
	return typed{}, fmt.Errorf("no unit rule for %T %s", e, e)
}

func callQuantity(c *parser.Call) (typed, error) {
	switch c.Func.Name {
	case "rate", "irate":
		in, err := quantityOf(c.Args[0])
		if err != nil {
			return typed{}, err
		}
		out, ok := rates[in.q]
		if !ok {
			return typed{}, fmt.Errorf("%s of %s, a %s: rate only suits counters", c.Func.Name, in.metric, in.q)
		}
		return typed{out, in.metric}, nil
	case "increase":
		in, err := quantityOf(c.Args[0])
		if err != nil {
			return typed{}, err
		}
		out, ok := map[quantity]quantity{qCounterSeconds: qSeconds, qCounterBytes: qBytes, qCounter: qCount}[in.q]
		if !ok {
			return typed{}, fmt.Errorf("increase of %s, a %s: increase only suits counters", in.metric, in.q)
		}
		return typed{out, in.metric}, nil
	case "histogram_quantile":
		in, err := quantityOf(c.Args[1])
		if err != nil {
			return typed{}, err
		}
		out, ok := quantiles[in.q]
		if !ok {
			return typed{}, fmt.Errorf("histogram_quantile of %s, a %s: it takes the rate of _bucket series", in.metric, in.q)
		}
		return typed{out, in.metric}, nil
	}
	return typed{}, fmt.Errorf("no unit rule for the function %s", c.Func.Name)
}

// divQuantity: a counter's rate over its own rate is a share (5xx of all
// requests); a histogram's _sum rate over its _count rate is the mean of
// what it observes. Any other division has no rule.
func divQuantity(l, r typed) (typed, error) {
	if l.metric != "" && l.metric == r.metric && l.q == qPerSecond && r.q == qPerSecond {
		return typed{qRatio, l.metric}, nil
	}
	if base, ok := strings.CutSuffix(l.metric, "_sum"); ok && r.metric == base+"_count" && r.q == qPerSecond {
		switch l.q {
		case qBusy:
			return typed{qSeconds, base}, nil
		case qBytesPerSecond:
			return typed{qBytes, base}, nil
		case qPerSecond:
			return typed{qCount, base}, nil
		}
	}
	return typed{}, fmt.Errorf("no unit rule for %s (%s) / %s (%s)", l.metric, l.q, r.metric, r.q)
}

// TestQueryQuantity pins down the inference, including what it rejects.
func TestQueryQuantity(t *testing.T) {
	t.Parallel()
	tests := []struct {
		expr    string
		want    quantity
		wantErr string
	}{
		{`up{job="reader"}`, qState, ""},
		{`max by (stage) (ingestor_outage)`, qState, ""},
		{`sum(up)`, qCount, ""},
		{`avg(reader_redis_up)`, qRatio, ""},
		{`count(up)`, qCount, ""},
		{`ingestor_consumer_lag`, qCount, ""},
		{`reader_warmup_duration_seconds`, qSeconds, ""},
		{`sum by (instance) (reader_local_cache_bytes)`, qBytes, ""},
		{`sum(rate(ingestor_messages_total[5m]))`, qPerSecond, ""},
		{`rate(reader_db_pool_acquire_wait_seconds_total[1m])`, qBusy, ""},
		{`sum(rate(x_seconds_sum[1m]))`, qBusy, ""},
		{`rate(net_bytes_total[1m])`, qBytesPerSecond, ""},
		{`increase(ingestor_messages_total[1h])`, qCount, ""},
		{`histogram_quantile(0.99, sum by (le) (rate(x_seconds_bucket[5m])))`, qSeconds, ""},
		{`histogram_quantile(0.5, rate(x_bytes_bucket[5m]))`, qBytes, ""},
		{`histogram_quantile(0.99, sum by (le) (rate(ingestor_batch_size_bucket[5m])))`, qCount, ""},
		{`sum(rate(a_total{code=~"5.."}[5m])) / sum(rate(a_total[5m]))`, qRatio, ""},
		{`(sum(rate(h_seconds_sum[5m])) / sum(rate(h_seconds_count[5m])))`, qSeconds, ""},
		{`sum(rate(h_sum[5m])) / sum(rate(h_count[5m]))`, qCount, ""},
		{`rate(h_bytes_sum[5m]) / rate(h_bytes_count[5m])`, qBytes, ""},
		{`ingestor_messages_total`, "", "not displayable"},
		{`x_seconds_bucket`, "", "not displayable"},
		{`rate(ingestor_consumer_lag[5m])`, "", "rate only suits counters"},
		{`histogram_quantile(0.5, x_seconds_bucket)`, "", "rate of _bucket"},
		{`sum(rate(a_total[5m])) / sum(rate(b_total[5m]))`, "", "no unit rule"},
		{`rate(h_sum[5m]) / rate(other_count[5m])`, "", "no unit rule"},
		{`up * 2`, "", "no unit rule"},
		{`sum(rate(a_total[5m]`, "", "unclosed"},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			t.Parallel()
			got, err := queryQuantity(tt.expr)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("queryQuantity = %q, %v; want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("queryQuantity = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// targetUnit is the unit Grafana shows a query's series in: the panel's
// default, or an override that matches the query by refId.
func targetUnit(p panel, refID string) (string, error) {
	unit := p.FieldConfig.Defaults.Unit
	for _, o := range p.FieldConfig.Overrides {
		for _, prop := range o.Properties {
			if prop.ID != "unit" {
				continue
			}
			if o.Matcher.ID != "byFrameRefID" {
				return "", fmt.Errorf("a unit override matches %s, which this test cannot resolve to a query: match byFrameRefID", o.Matcher.ID)
			}
			if o.Matcher.Options == refID {
				u, ok := prop.Value.(string)
				if !ok {
					return "", fmt.Errorf("override unit %v is not a string", prop.Value)
				}
				unit = u
			}
		}
	}
	return unit, nil
}

// TestDashboardUnits checks that every panel query parses as PromQL and
// is shown in a unit that suits what it measures.
func TestDashboardUnits(t *testing.T) {
	t.Parallel()
	n := 0
	for _, p := range dashboardPanels(t) {
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			refs[tg.RefID] = true
		}
		for _, o := range p.FieldConfig.Overrides {
			if o.Matcher.ID == "byFrameRefID" && !refs[fmt.Sprint(o.Matcher.Options)] {
				t.Errorf("panel %q: an override matches query %v, which the panel does not have", p.Title, o.Matcher.Options)
			}
		}
		for _, tg := range p.Targets {
			n++
			where := fmt.Sprintf("panel %q query %s", p.Title, tg.RefID)
			q, err := queryQuantity(tg.Expr)
			if err != nil {
				t.Errorf("%s: %v\n%s", where, err, tg.Expr)
				continue
			}
			unit, err := targetUnit(p, tg.RefID)
			if err != nil {
				t.Errorf("%s: %v", where, err)
				continue
			}
			if !slices.Contains(units[q], unit) {
				t.Errorf("%s measures %s but is shown in unit %q (want one of %q): %s", where, q, unit, units[q], tg.Expr)
			}
		}
	}
	if n < 20 {
		t.Fatalf("only %d dashboard queries found", n)
	}
}

// TestDashboardVariables checks the template variables: a Prometheus
// datasource picker and an instance filter, and that every query uses
// both (a panel that ignores them shows data the viewer did not pick).
func TestDashboardVariables(t *testing.T) {
	t.Parallel()
	d := loadDashboard(t)
	vars := map[string]templateVar{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v
	}
	if ds, ok := vars["datasource"]; !ok || ds.Type != "datasource" || ds.Query != "prometheus" {
		t.Errorf("want a variable datasource of type datasource over prometheus datasources, got %+v", ds)
	}
	inst, ok := vars["instance"]
	switch {
	case !ok:
		t.Fatal("no instance variable")
	case inst.Type != "query" || inst.Datasource == nil || inst.Datasource.UID != "${datasource}":
		t.Errorf("instance must be a query variable on ${datasource}, got %+v", inst)
	case !inst.IncludeAll || inst.AllValue != ".*" || !inst.Multi:
		// Without allValue, "All" becomes a regex of the values seen at
		// load time and hides instances started later.
		t.Errorf("instance must allow All (as .*) and several values: %+v", inst)
	}
	m := regexp.MustCompile(`^label_values\((.+),\s*instance\)$`).FindStringSubmatch(inst.Query)
	if m == nil {
		t.Errorf("instance query %q is not label_values(<selector>, instance)", inst.Query)
	} else if names, err := promqlMetricNames(m[1]); err != nil || !slices.Equal(names, []string{"up"}) {
		// up lists every scraped target, so every instance is offered.
		t.Errorf("instance query selector %q: metrics %v, %v; want up", m[1], names, err)
	}

	want := &labels.Matcher{Type: labels.MatchRegexp, Name: "instance", Value: "$instance"}
	for _, p := range dashboardPanels(t) {
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q does not use the datasource variable", p.Title)
		}
		for _, tg := range p.Targets {
			if tg.Datasource == nil || tg.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q query %s does not use the datasource variable", p.Title, tg.RefID)
			}
			e, err := parsePromQL(tg.Expr)
			if err != nil {
				t.Errorf("panel %q query %s: %v", p.Title, tg.RefID, err)
				continue
			}
			parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
				vs, ok := n.(*parser.VectorSelector)
				if ok && !slices.ContainsFunc(vs.LabelMatchers, func(m *labels.Matcher) bool {
					return m.Type == want.Type && m.Name == want.Name && m.Value == want.Value
				}) {
					t.Errorf("panel %q query %s: %s does not filter on %s", p.Title, tg.RefID, vs, want)
				}
				return nil
			})
		}
	}
}
