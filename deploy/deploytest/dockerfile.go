package deploytest

import (
	"bufio"
	"fmt"
	"regexp"
	"strings"
)

// Instruction is one Dockerfile instruction with its line continuations
// joined: Cmd is upper-case (FROM, COPY...), Args the rest of the line.
type Instruction struct {
	Cmd  string
	Args string
	Line int
}

// ParseDockerfile splits a Dockerfile into instructions. It handles comments,
// parser directives and backslash continuations, which is all the
// Dockerfiles in deploy/docker use (no heredocs).
func ParseDockerfile(src string) ([]Instruction, error) {
	var out []Instruction
	var cur strings.Builder
	start := 0
	sc := bufio.NewScanner(strings.NewReader(src))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 {
			if trimmed == "" || strings.HasPrefix(trimmed, "#") {
				continue
			}
			start = n
		} else if strings.HasPrefix(trimmed, "#") {
			continue // comments inside a continued instruction are dropped
		}
		if strings.HasSuffix(trimmed, `\`) {
			cur.WriteString(strings.TrimSuffix(trimmed, `\`))
			cur.WriteByte(' ')
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, Instruction{Cmd: strings.ToUpper(cmd), Args: strings.TrimSpace(args), Line: start})
		cur.Reset()
	}
	if cur.Len() != 0 {
		return nil, fmt.Errorf("line %d: continuation at end of file", start)
	}
	return out, sc.Err()
}

// Stage is one build stage: its FROM image, its name and its instructions.
type Stage struct {
	From  string
	Name  string
	Instr []Instruction
}

// Stages groups instructions by FROM.
func Stages(instr []Instruction) []Stage {
	var out []Stage
	for _, in := range instr {
		if in.Cmd == "FROM" {
			f := strings.Fields(in.Args)
			s := Stage{From: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.Name = f[2]
			}
			out = append(out, s)
			continue
		}
		if len(out) > 0 {
			out[len(out)-1].Instr = append(out[len(out)-1].Instr, in)
		}
	}
	return out
}

// Flags splits leading --flag=value words off an instruction's arguments.
func Flags(args string) (map[string]string, []string) {
	flags := map[string]string{}
	f := strings.Fields(args)
	for len(f) > 0 && strings.HasPrefix(f[0], "--") {
		k, v, _ := strings.Cut(strings.TrimPrefix(f[0], "--"), "=")
		flags[k] = v
		f = f[1:]
	}
	return flags, f
}

// Env returns the variables a stage's ENV instructions set (KEY=VALUE form).
func (s Stage) Env() map[string]string {
	out := map[string]string{}
	for _, in := range s.Instr {
		if in.Cmd != "ENV" {
			continue
		}
		for _, kv := range strings.Fields(in.Args) {
			if k, v, ok := strings.Cut(kv, "="); ok {
				out[k] = v
			}
		}
	}
	return out
}

// Ignore is a parsed .dockerignore: Match reports whether the build context
// leaves a path (slash-separated, relative to the context) out. Patterns
// follow Docker's rules closely enough for this repository: * and ? within a
// path element, ** across elements, a match on a directory excluding all
// below it, and ! re-including.
type Ignore struct {
	rules []ignoreRule
}

type ignoreRule struct {
	re     *regexp.Regexp
	negate bool
}

// ParseIgnore parses .dockerignore content.
func ParseIgnore(src string) (*Ignore, error) {
	var ig Ignore
	for _, line := range strings.Split(src, "\n") {
		p := strings.TrimSpace(line)
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		r := ignoreRule{}
		if strings.HasPrefix(p, "!") {
			r.negate = true
			p = p[1:]
		}
		p = strings.TrimPrefix(strings.TrimSuffix(p, "/"), "/")
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(p); i++ {
			switch c := p[i]; {
			case strings.HasPrefix(p[i:], "**/"):
				re.WriteString("(?:.*/)?")
				i += 2
			case strings.HasPrefix(p[i:], "**"):
				re.WriteString(".*")
				i++
			case c == '*':
				re.WriteString("[^/]*")
			case c == '?':
				re.WriteString("[^/]")
			default:
				re.WriteString(regexp.QuoteMeta(string(c)))
			}
		}
		re.WriteString("(?:/.*)?$")
		rx, err := regexp.Compile(re.String())
		if err != nil {
			return nil, fmt.Errorf("pattern %q: %w", line, err)
		}
		r.re = rx
		ig.rules = append(ig.rules, r)
	}
	return &ig, nil
}

// Match reports whether p is excluded from the build context.
func (ig *Ignore) Match(p string) bool {
	excluded := false
	for _, r := range ig.rules {
		if r.re.MatchString(p) {
			excluded = !r.negate
		}
	}
	return excluded
}
