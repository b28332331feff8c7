package deploytest

import (
	"slices"
	"testing"
)

func TestMetricNames(t *testing.T) {
	t.Parallel()
	tests := []struct {
		expr string
		want []string
	}{
		{`up`, []string{"up"}},
		{`sum(rate(reader_http_requests_total{code=~"5.."}[5m])) by (route)`, []string{"reader_http_requests_total"}},
		{`sum by (route) (rate(a_total[$__rate_interval])) / ignoring(code) group_left sum(rate(b_total[1m]))`, []string{"a_total", "b_total"}},
		{`histogram_quantile(0.99, sum by (le) (rate(x_seconds_bucket{job="$job"}[5m])))`, []string{"x_seconds_bucket"}},
		{`max_over_time(lag[10m:1m]) offset 5m > 1e3 and on() vector(1)`, []string{"lag"}},
		{`deriv(sum(consumer_lag)[15m:]) > 0 unless absent(consumer_lag)`, []string{"consumer_lag"}},
		{`label_replace(m{a="x"}, "dst", "$1", "src", "(.*)")`, []string{"m"}},
		{`1 - (sum(rate(hits_total{tier="local"}[5m])) or vector(0)) / .5`, []string{"hits_total"}},
		{`a:recorded:rate5m * on(instance) group_right(job) b`, []string{"a:recorded:rate5m", "b"}},
		{`sum without (pod, instance) (c_total) # comment mentions not_a_metric`, []string{"c_total"}},
		{`${ds} and x == bool 2`, []string{"x"}},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			t.Parallel()
			if got := MetricNames(tt.expr); !slices.Equal(got, tt.want) {
				t.Errorf("MetricNames(%q) = %q, want %q", tt.expr, got, tt.want)
			}
		})
	}
}
