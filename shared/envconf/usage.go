package envconf

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// Usage writes the -help text of command: a table of every variable of
// spec with its default and meaning, from the struct tags, then the
// conventions of this package.
func Usage(w io.Writer, command, prefix string, spec any) error {
	vars := Vars(prefix, spec)
	if _, err := fmt.Fprintf(w, "Usage: %s\n\nConfigured by environment variables:\n\n", command); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 1, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIABLE\tDEFAULT\tMEANING")
	for _, v := range vars {
		name := v.Name
		if v.Fallback != "" {
			name += " (or " + v.Fallback + ")"
		}
		def := v.Default
		switch {
		case v.Required && def == "":
			def = "required"
		case def == "":
			def = "(empty)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", name, def, v.Desc)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, `
The prefixed name wins over the unprefixed one; an empty variable counts as
unset. Any variable X may instead be given as X%[1]s, the path of a file
holding its value (as Docker and Kubernetes mount secrets; the trailing
newline is dropped); setting both X and X%[1]s is an error.
`, FileSuffix)
	return err
}
