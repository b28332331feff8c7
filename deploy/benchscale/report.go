package benchscale

import (
	"errors"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// row is what one step measured.
type row struct {
	// Stored is how many orders the database held when the step's ingest
	// began; the reads (GET, warm-up, RSS, bytes) ran after it, with
	// Stored+Slice orders.
	Stored int `json:"stored"`
	Slice  int `json:"slice"`

	IngestRate    float64 `json:"ingest_orders_per_s"`
	IngestCPU1k   float64 `json:"ingest_cpu_s_per_1k"`
	IngestPeakRSS int64   `json:"ingest_peak_rss_bytes"`
	BareRate      float64 `json:"bare_copy_orders_per_s"`
	// IngestPGCPU1k is the PostgreSQL server's CPU per 1,000 orders during
	// the ingest (its backends of the run's database, the checkpointer,
	// background writer and WAL writer); only in results.json and the log.
	IngestPGCPU1k float64 `json:"ingest_postgres_cpu_s_per_1k"`

	GetP50  time.Duration `json:"get_p50_ns"`
	GetP99  time.Duration `json:"get_p99_ns"`
	GetRate float64       `json:"get_rate_per_s"`
	Gets    int           `json:"gets"`
	// GetErrors is how many of the Gets were not answered 200 (their
	// latency is in the percentiles).
	GetErrors int `json:"get_errors"`
	// RefGetP50 and RefGetP99 are the reference server's (refreader: one
	// query per GET, no cache), asked as many GETs at the same rate just
	// before the reader: the tail this machine gives the simplest server.
	RefGetP50 time.Duration `json:"ref_get_p50_ns"`
	RefGetP99 time.Duration `json:"ref_get_p99_ns"`

	Warm1k        time.Duration `json:"warm_1k_ns"`
	Warm100k      time.Duration `json:"warm_100k_ns"`
	Warmed100k    int           `json:"warmed_100k"`
	ReaderRSS     int64         `json:"reader_rss_bytes"`
	ReaderPeakRSS int64         `json:"reader_peak_rss_bytes"`

	BytesPerOrder     float64 `json:"bytes_per_order"`
	BareBytesPerOrder float64 `json:"bare_bytes_per_order"`

	LoadAverage string `json:"load_average"` // at the step's end

	// Anatomy is where an insert's time goes, per schema and table (see
	// TestScale's anatomy); only in results.json.
	Anatomy any `json:"insert_anatomy,omitempty"`
}

// ratio is the ingest rate over the bare reference's.
func (r row) ratio() float64 {
	if r.BareRate == 0 {
		return 0
	}
	return r.IngestRate / r.BareRate
}

// markdown renders rows as a markdown table.
func markdown(rows []row) string {
	var b strings.Builder
	b.WriteString("| stored orders | ingest orders/s | bare COPY orders/s | ingest ÷ bare | ingest CPU-s / 1k orders " +
		"| uncached GET p50 | p99 | reference server p99 | warm-up 1,000 | warm-up 100,000 | reader RSS, 100,000 cached " +
		"| bytes / order | bare bytes / order | load average |\n")
	b.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range rows {
		warm := seconds(r.Warm100k)
		if r.Warmed100k != 100_000 {
			warm += fmt.Sprintf(" (%s orders)", thousands(r.Warmed100k))
		}
		p99 := millis(r.GetP99)
		if r.GetErrors > 0 {
			p99 += fmt.Sprintf(" (%s of %s failed)", thousands(r.GetErrors), thousands(r.Gets))
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %.2f | %.3f | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			thousands(r.Stored), thousands(int(r.IngestRate+0.5)), thousands(int(r.BareRate+0.5)), r.ratio(),
			r.IngestCPU1k, millis(r.GetP50), p99, millis(r.RefGetP99), seconds(r.Warm1k), warm,
			megabytes(r.ReaderRSS), thousands(int(r.BytesPerOrder+0.5)), thousands(int(r.BareBytesPerOrder+0.5)),
			r.LoadAverage)
	}
	return b.String()
}

// thousands writes n with a comma between groups of three digits.
func thousands(n int) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func millis(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}
func seconds(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }
func megabytes(n int64) string       { return fmt.Sprintf("%.0f MB", float64(n)/1e6) }

// series is one line of a plot.
type series struct {
	name  string
	value func(row) float64
}

// figure is one plot: its file, title, unit and lines, and the target
// (a dashed line) when there is one.
type figure struct {
	file, title, unit string
	lines             []series
	target            float64
}

var figures = []figure{
	{file: "ingest-rate.png", title: "Ingest rate", unit: "orders/s", lines: []series{
		{"broker → ingestor → committed rows", func(r row) float64 { return r.IngestRate }},
		{"bare reference (COPY, one transaction)", func(r row) float64 { return r.BareRate }},
	}},
	{file: "ingest-cpu.png", title: "Ingestor CPU per 1,000 orders", unit: "CPU-s", lines: []series{
		{"ingestor process", func(r row) float64 { return r.IngestCPU1k }},
	}},
	{file: "get-latency.png", title: "Uncached GET /order/{uid}", unit: "ms", target: 10, lines: []series{
		{"p50", func(r row) float64 { return float64(r.GetP50) / float64(time.Millisecond) }},
		{"p99", func(r row) float64 { return float64(r.GetP99) / float64(time.Millisecond) }},
		{"reference server p99", func(r row) float64 { return float64(r.RefGetP99) / float64(time.Millisecond) }},
	}},
	{file: "warm-up.png", title: "Reader warm-up", unit: "s", target: 3, lines: []series{
		{"1,000 orders", func(r row) float64 { return r.Warm1k.Seconds() }},
		{"100,000 orders", func(r row) float64 { return r.Warm100k.Seconds() }},
	}},
	{file: "bytes-per-order.png", title: "PostgreSQL bytes per order (tables + indexes)", unit: "bytes", lines: []series{
		{"service schema", func(r row) float64 { return r.BytesPerOrder }},
		{"bare reference", func(r row) float64 { return r.BareBytesPerOrder }},
	}},
	{file: "reader-rss.png", title: "Reader RSS with 100,000 orders cached", unit: "MB", target: 300, lines: []series{
		{"VmRSS", func(r row) float64 { return float64(r.ReaderRSS) / 1e6 }},
	}},
}

// plots writes one PNG per figure into dir, each figure against the
// number of stored orders.
func plots(rows []row, dir string) error {
	if len(rows) == 0 {
		return errors.New("no rows to plot")
	}
	for _, f := range figures {
		if err := plotFigure(f, rows, filepath.Join(dir, f.file)); err != nil {
			return fmt.Errorf("%s: %w", f.file, err)
		}
	}
	return nil
}

func plotFigure(f figure, rows []row, path string) error {
	p := plot.New()
	p.Title.Text = f.title
	p.X.Label.Text = "stored orders (millions)"
	p.Y.Label.Text = f.unit
	p.Y.Min = 0
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	p.Legend.Left = true
	top := 0.0
	for i, s := range f.lines {
		xys := make(plotter.XYs, len(rows))
		for k, r := range rows {
			xys[k] = plotter.XY{X: float64(r.Stored) / 1e6, Y: s.value(r)}
			top = max(top, xys[k].Y)
		}
		line, points, err := plotter.NewLinePoints(xys)
		if err != nil {
			return err
		}
		c := palette[i%len(palette)]
		line.Color, points.Color = c, c
		points.Shape = draw.CircleGlyph{}
		p.Add(line, points)
		p.Legend.Add(s.name, line, points)
	}
	if f.target > 0 {
		last := float64(rows[len(rows)-1].Stored) / 1e6
		t, err := plotter.NewLine(plotter.XYs{{X: 0, Y: f.target}, {X: max(last, 1e-3), Y: f.target}})
		if err != nil {
			return err
		}
		t.Color = color.RGBA{R: 200, A: 255}
		t.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(t)
		p.Legend.Add(fmt.Sprintf("target %g %s", f.target, f.unit), t)
		top = max(top, f.target)
	}
	p.Y.Max = top * 1.4 // room for the legend above the lines
	return p.Save(7*vg.Inch, 4*vg.Inch, path)
}

var palette = []color.Color{
	color.RGBA{R: 31, G: 119, B: 180, A: 255},
	color.RGBA{R: 255, G: 127, B: 14, A: 255},
	color.RGBA{R: 44, G: 160, B: 44, A: 255},
}

// Markers delimit the generated section of BENCHMARKS.md.
const (
	sectionBegin = "<!-- bench-scale:begin (written by make bench-scale) -->"
	sectionEnd   = "<!-- bench-scale:end -->"
)

// replaceSection returns doc with the text between the bench-scale
// markers replaced by content.
func replaceSection(doc, content string) (string, error) {
	return replaceBetween(doc, sectionBegin, sectionEnd, content)
}

// replaceBetween returns doc with the text between the begin and end
// markers replaced by content; both markers must be there, once each, in
// that order.
func replaceBetween(doc, begin, end, content string) (string, error) {
	if strings.Count(doc, begin) != 1 || strings.Count(doc, end) != 1 {
		return "", fmt.Errorf("want the markers %q and %q once each", begin, end)
	}
	before, rest, _ := strings.Cut(doc, begin)
	_, after, ok := strings.Cut(rest, end)
	if !ok {
		return "", fmt.Errorf("%q comes before %q", end, begin)
	}
	return before + begin + "\n" + strings.Trim(content, "\n") + "\n" + end + after, nil
}

// updateSection rewrites the bench-scale section of the file at path.
func updateSection(path, content string) error {
	return updateBetween(path, sectionBegin, sectionEnd, content)
}

// updateBetween rewrites the text between the begin and end markers of the
// file at path, keeping the file's permissions.
func updateBetween(path, begin, end, content string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	doc, err := replaceBetween(string(b), begin, end, content)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, []byte(doc), fi.Mode().Perm()) //nolint:gosec // the developer's own file, named by SCALE_BENCHMARKS_MD
}
