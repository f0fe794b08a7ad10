package rdt

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// schemaLine is one line of a schemata file: "L3:0=7ff;1=7ff" or
// "MB:0=100;1=100" (resctrl.rst, "Schemata files - general concepts").
type schemaLine struct {
	Resource string
	Domains  []domainValue
}

// domainValue is one "id=value" of a line. Value is kept as text: hex for a
// cache mask, decimal for MB.
type domainValue struct {
	ID    int
	Value string
}

// maxDomainID bounds domain ids so a malformed file cannot make us allocate;
// cache ids are small (one per socket or die).
const maxDomainID = 1 << 16

// parseSchemata parses a schemata file. The kernel pads resource names with
// spaces to align the colons, so lines are trimmed.
func parseSchemata(s string) ([]schemaLine, error) {
	var out []schemaLine
	for raw := range strings.SplitSeq(s, "\n") {
		line := strings.TrimSpace(raw)
		if line == "" {
			continue
		}
		l, err := parseSchemaLine(line)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

func parseSchemaLine(line string) (schemaLine, error) {
	name, rest, ok := strings.Cut(line, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" || strings.ContainsAny(name, " \t=;") {
		return schemaLine{}, fmt.Errorf("schemata line %q: missing ':' after a resource name", line)
	}
	l := schemaLine{Resource: name}
	seen := map[int]bool{}
	for dom := range strings.SplitSeq(rest, ";") {
		id, val, ok := strings.Cut(strings.TrimSpace(dom), "=")
		n, err := strconv.Atoi(id)
		if !ok || err != nil || n < 0 || n > maxDomainID {
			return schemaLine{}, fmt.Errorf("schemata line %q: missing '=' or non-numeric domain in %q", line, dom)
		}
		if val == "" || strings.ContainsAny(val, " \t=:") {
			return schemaLine{}, fmt.Errorf("schemata line %q: bad value %q for domain %d", line, val, n)
		}
		if seen[n] {
			return schemaLine{}, fmt.Errorf("schemata line %q: domain %d given twice", line, n)
		}
		seen[n] = true
		l.Domains = append(l.Domains, domainValue{ID: n, Value: val})
	}
	return l, nil
}

// formatSchemata writes lines in the kernel's input format, domains in id
// order, one resource per line, so it can go to resctrl in one write.
func formatSchemata(lines []schemaLine) string {
	var b strings.Builder
	for _, l := range lines {
		doms := slices.Clone(l.Domains)
		slices.SortFunc(doms, func(a, b domainValue) int { return a.ID - b.ID })
		b.WriteString(l.Resource)
		b.WriteByte(':')
		for i, d := range doms {
			if i > 0 {
				b.WriteByte(';')
			}
			fmt.Fprintf(&b, "%d=%s", d.ID, d.Value)
		}
		b.WriteByte('\n')
	}
	return b.String()
}
