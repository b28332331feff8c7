package deploytest

import (
	"regexp"
	"strings"
	"testing"

	ingestorconfig "github.com/orderservice/orders/ingestor/config"
	readerconfig "github.com/orderservice/orders/reader/config"
	"github.com/orderservice/orders/shared/envconf"
)

// docRow is a configuration table's row for one variable.
type docRow struct {
	fallback string // from "`NAME` (or `FALLBACK`)"
	def      string // the Default cell as written
}

// firstCellRE is the Variable cell: `NAME`, or `NAME` (or `FALLBACK`).
var firstCellRE = regexp.MustCompile("^`([A-Z0-9_]+)`(?: \\(or `([A-Z0-9_]+)`\\))?$")

// configRows parses the markdown tables of a file whose header has a
// Variable and a Default column, by variable.
func configRows(t *testing.T, elem ...string) map[string]docRow {
	t.Helper()
	rows := map[string]docRow{}
	defCol := -1 // the Default column of the table being read, -1 outside one
	for line := range strings.Lines(string(readFile(t, elem...))) {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") {
			defCol = -1
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		switch {
		case cells[0] == "Variable":
			for i, c := range cells {
				if c == "Default" {
					defCol = i
				}
			}
		case defCol < 0 || strings.HasPrefix(cells[0], "---"):
		case defCol >= len(cells):
			t.Errorf("%s: row %q has no Default cell", strings.Join(elem, "/"), line)
		default:
			m := firstCellRE.FindStringSubmatch(cells[0])
			if m == nil {
				t.Errorf("%s: row %q: want `NAME` or `NAME` (or `FALLBACK`) first", strings.Join(elem, "/"), line)
				continue
			}
			rows[m[1]] = docRow{fallback: m[2], def: cells[defCol]}
		}
	}
	return rows
}

// TestConfigIsDocumented: every setting of each service is a row of the
// configuration tables of README.md and of the service's README, with the
// fallback and the default its config package has (the tags are the only
// place defaults are written); and no row names a setting that does not
// exist.
func TestConfigIsDocumented(t *testing.T) {
	t.Parallel()
	for _, svc := range []struct {
		prefix string
		vars   []envconf.Var
		readme string
	}{
		{readerconfig.Prefix + "_", readerconfig.Vars(), "reader"},
		{ingestorconfig.Prefix + "_", ingestorconfig.Vars(), "ingestor"},
	} {
		for _, doc := range [][]string{{"README.md"}, {svc.readme, "README.md"}} {
			where := strings.Join(doc, "/")
			rows := configRows(t, doc...)
			known := map[string]bool{}
			for _, v := range svc.vars {
				known[v.Name] = true
				row, ok := rows[v.Name]
				if !ok {
					t.Errorf("%s does not document %s", where, v.Name)
					continue
				}
				want := "`" + v.Default + "`"
				switch {
				case v.Required && v.Default == "":
					want = "required"
				case v.Default == "":
					want = "(empty)"
				}
				if row.def != want {
					t.Errorf("%s: %s defaults to %s, the config package to %s", where, v.Name, row.def, want)
				}
				if row.fallback != v.Fallback {
					t.Errorf("%s: %s is also read as %q, the config package says %q", where, v.Name, row.fallback, v.Fallback)
				}
			}
			for name := range rows {
				if strings.HasPrefix(name, svc.prefix) && !known[name] {
					t.Errorf("%s documents %s, which the %s does not read", where, name, svc.readme)
				}
			}
		}
	}
}
