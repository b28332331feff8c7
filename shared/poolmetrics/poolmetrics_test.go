package poolmetrics_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/orderservice/orders/shared/poolmetrics"
	"github.com/orderservice/orders/shared/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestCollector scrapes a real pool of 3 connections with 2 of them held,
// under each service's metric names.
func TestCollector(t *testing.T) {
	pg := testenv.Postgres(t)
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(pg.URL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 3
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	for range 2 {
		c, err := pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Release()
	}

	type want struct {
		typ   dto.MetricType
		check func(float64) bool
		what  string
	}
	tests := []struct {
		service string
		want    map[string]want
	}{
		{"ingestor", map[string]want{
			"ingestor_db_pool_open_connections":           {dto.MetricType_GAUGE, func(v float64) bool { return v == 2 }, "2"},
			"ingestor_db_pool_max_connections":            {dto.MetricType_GAUGE, func(v float64) bool { return v == 3 }, "3"},
			"ingestor_db_pool_acquires_total":             {dto.MetricType_COUNTER, func(v float64) bool { return v == 2 }, "2"},
			"ingestor_db_pool_acquire_wait_seconds_total": {dto.MetricType_COUNTER, func(v float64) bool { return v > 0 }, "> 0"},
		}},
		{"reader", map[string]want{
			"reader_db_pool_open_connections":           {dto.MetricType_GAUGE, func(v float64) bool { return v == 2 }, "2"},
			"reader_db_pool_max_connections":            {dto.MetricType_GAUGE, func(v float64) bool { return v == 3 }, "3"},
			"reader_db_pool_acquires_total":             {dto.MetricType_COUNTER, func(v float64) bool { return v == 2 }, "2"},
			"reader_db_pool_acquire_wait_seconds_total": {dto.MetricType_COUNTER, func(v float64) bool { return v > 0 }, "> 0"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.service, func(t *testing.T) {
			var reads atomic.Int32
			reg := prometheus.NewPedanticRegistry()
			reg.MustRegister(poolmetrics.New(tt.service, func() *pgxpool.Stat {
				reads.Add(1)
				return pool.Stat()
			}))
			families, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			if n := reads.Load(); n != 1 {
				t.Errorf("one scrape read the pool's state %d times, want once", n)
			}
			if len(families) != len(tt.want) {
				t.Errorf("%d metric families, want %d", len(families), len(tt.want))
			}
			for _, f := range families {
				w, ok := tt.want[f.GetName()]
				if !ok {
					t.Errorf("unexpected metric %s", f.GetName())
					continue
				}
				if f.GetType() != w.typ {
					t.Errorf("%s is a %v, want %v", f.GetName(), f.GetType(), w.typ)
				}
				if f.GetHelp() == "" {
					t.Errorf("%s has no help", f.GetName())
				}
				m := f.GetMetric()[0]
				v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
				if !w.check(v) {
					t.Errorf("%s = %v, want %s", f.GetName(), v, w.what)
				}
			}
		})
	}
}
