package envconf

import (
	"encoding"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/kelseyhightower/envconfig"
)

// Var documents one setting of a service.
type Var struct {
	Name     string // the prefixed name, e.g. INGESTOR_BATCH_SIZE
	Fallback string // the unprefixed name also read (DATABASE_URL), or ""
	Default  string // the `default` tag: the value when unset
	Required bool   // unset is an error
	Desc     string // the `desc` tag: what it means

	field string // the struct field it fills
	key   string // Name without the prefix: how a Validator names it
}

// Names returns every name the setting may be given under: Name, then
// Fallback if any. (Each may also be given as its _FILE.)
func (v Var) Names() []string {
	if v.Fallback == "" {
		return []string{v.Name}
	}
	return []string{v.Name, v.Fallback}
}

// FileSuffix turns a variable's name into the name of the variable that
// holds the path of a file with its value.
const FileSuffix = "_FILE"

// maxFileSize bounds a value read from a file: a secret or a setting, not a
// document (and not /dev/zero by mistake).
const maxFileSize = 64 << 10

// varsTemplate makes envconfig list the variables it would read, so that
// the names follow envconfig's rules exactly.
var varsTemplate = template.Must(template.New("vars").Parse("{{range .}}{{.Name}}\t{{.Key}}\t{{.Alt}}\n{{end}}"))

// Vars lists the settings of spec, a pointer to a struct of flat fields
// tagged for envconfig, in declaration order. An invalid spec is a
// programming error and panics (a test of the service calling Vars finds
// it).
func Vars(prefix string, spec any) []Var {
	if prefix == "" {
		panic("envconf: the prefix must not be empty")
	}
	var b strings.Builder
	if err := envconfig.Usaget(prefix, spec, &b, varsTemplate); err != nil {
		panic(fmt.Sprintf("envconf: %T is not a configuration struct: %v", spec, err))
	}
	t := reflect.TypeOf(spec).Elem()
	var out []Var
	for line := range strings.Lines(b.String()) {
		parts := strings.Split(strings.TrimSuffix(line, "\n"), "\t")
		f, ok := t.FieldByName(parts[0])
		if !ok || len(f.Index) != 1 {
			panic(fmt.Sprintf("envconf: %T: field %s is inside a nested struct, which envconf does not support", spec, parts[0]))
		}
		v := Var{
			Name: parts[1], Default: f.Tag.Get("default"), Required: f.Tag.Get("required") == "true",
			Desc: f.Tag.Get("desc"), field: parts[0], key: strings.TrimPrefix(parts[1], prefix+"_"),
		}
		if parts[2] != "" && parts[2] != v.Name {
			v.Fallback = parts[2]
		}
		out = append(out, v)
	}
	return out
}

// Names returns every variable name the settings may be given under, the
// prefixed names and the unprefixed fallbacks, sorted. Deployment checks
// compare it with what compose and Kubernetes set.
func Names(vars []Var) []string {
	var out []string
	for _, v := range vars {
		out = append(out, v.Names()...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Validator is implemented by a configuration with rules beyond its
// fields' types: ranges and relations between settings. Load calls it
// after every field is set (a field whose value could not be converted
// holds its default then, and its checks are not reported twice).
type Validator interface {
	Validate(p *Problems)
}

// Load sets every field of spec (a pointer to a struct, as for Vars) from
// the variables getenv returns, then calls its Validate method if it has
// one. The error, an *Error, lists every bad variable.
func Load(prefix string, spec any, getenv func(string) string) error {
	vars := Vars(prefix, spec)
	fields := reflect.ValueOf(spec).Elem()
	p := &Problems{prefix: prefix, names: map[string]string{}, failed: map[string]bool{}}
	for _, v := range vars {
		field := fields.FieldByName(v.field)
		raw, from, err := lookup(v, getenv)
		if from != "" {
			p.names[v.key] = from
		}
		switch {
		case err != nil:
			p.fail(v.key, from, err.Error())
		case from == "" && v.Required:
			reason := "required"
			if v.Fallback != "" {
				reason += " (or set " + v.Fallback + ")"
			}
			p.fail(v.key, v.Name, reason)
		case from == "":
			if err := convert(field, v.Default); err != nil {
				panic(fmt.Sprintf("envconf: %s: the default %q is not valid: %v", v.Name, v.Default, err))
			}
		default:
			if err := convert(field, raw); err != nil {
				p.fail(v.key, from, reason(field.Type(), raw, err))
				// Validate sees the default, so that it reports only
				// genuine problems of the other settings.
				_ = convert(field, v.Default)
			}
		}
	}
	if val, ok := spec.(Validator); ok {
		val.Validate(p)
	}
	if len(p.list) > 0 {
		return &Error{Problems: p.list}
	}
	return nil
}

// lookup returns the value of v and the variable it came from ("" for
// unset): the prefixed name or its _FILE first, then the fallback or its
// _FILE.
func lookup(v Var, getenv func(string) string) (raw, from string, err error) {
	for _, name := range v.Names() {
		val, file := getenv(name), getenv(name+FileSuffix)
		switch {
		case val != "" && file != "":
			return "", name, fmt.Errorf("set together with %s%s; set only one", name, FileSuffix)
		case val != "":
			return val, name, nil
		case file != "":
			raw, err := readFile(file)
			return raw, name + FileSuffix, err
		}
	}
	return "", "", nil
}

// readFile returns the content of the file at path without its trailing
// newline. Its errors name the path, never the content.
func readFile(path string) (string, error) {
	f, err := os.Open(path) //nolint:gosec // G304: the operator names the file holding the value; reading it is the point
	if err != nil {
		return "", fmt.Errorf("cannot read the file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	switch {
	case err != nil:
		return "", fmt.Errorf("cannot read the file: %w", err)
	case len(b) > maxFileSize:
		return "", fmt.Errorf("the file %s is over %d KiB", path, maxFileSize>>10)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("the file %s is empty", path)
	}
	return s, nil
}

// convert sets field from raw by envconfig's own conversion, so that a
// value from a file or a default means exactly what it would in the
// environment (durations, integers of every size, TextUnmarshalers...).
// envconfig converts only what it reads from the process environment, so
// raw goes in as the default of a one-field struct whose variable is "=",
// a name no environment can hold (a name ends at its first '='); envconfig
// finds it unset and converts the default.
func convert(field reflect.Value, raw string) error {
	if raw == "" { // envconfig's "no default": the zero value
		field.SetZero()
		return nil
	}
	one := reflect.New(reflect.StructOf([]reflect.StructField{{
		Name: "V", Type: field.Type(),
		Tag: reflect.StructTag(`envconfig:"=" default:` + strconv.Quote(raw)),
	}}))
	if err := envconfig.Process("", one.Interface()); err != nil {
		if pe, ok := errors.AsType[*envconfig.ParseError](err); ok {
			return pe.Err
		}
		return err
	}
	field.Set(one.Elem().Field(0))
	return nil
}

// reason says why raw does not convert to typ, without repeating raw (it
// may be a secret, and the conversion errors of strconv and time quote it).
func reason(typ reflect.Type, raw string, err error) string {
	if typ == reflect.TypeFor[time.Duration]() {
		return "not a duration (e.g. 150ms, 2s, 1h)"
	}
	if decodes(typ) {
		if msg := err.Error(); !strings.Contains(msg, raw) {
			return msg // the type's own message, e.g. LogLevel's
		}
		return "not a valid " + typ.String()
	}
	outOfRange := errors.Is(err, strconv.ErrRange)
	switch typ.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if outOfRange {
			return fmt.Sprintf("out of range for a %d-bit integer", typ.Bits())
		}
		return "not an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if outOfRange {
			return fmt.Sprintf("out of range for a %d-bit unsigned integer", typ.Bits())
		}
		return "not a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "not a number"
	case reflect.Bool:
		return "not true or false"
	}
	return "not a valid " + typ.String()
}

// decodes tells whether typ converts itself, as envconfig prefers to its
// own rules for the kind.
func decodes(typ reflect.Type) bool {
	ptr := reflect.PointerTo(typ)
	return ptr.Implements(reflect.TypeFor[envconfig.Decoder]()) || ptr.Implements(reflect.TypeFor[envconfig.Setter]()) ||
		ptr.Implements(reflect.TypeFor[encoding.TextUnmarshaler]()) || ptr.Implements(reflect.TypeFor[encoding.BinaryUnmarshaler]())
}
