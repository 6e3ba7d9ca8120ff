package config

import (
	"fmt"
	"strings"
)

// Markdown renders every setting as a Markdown table (variable, flag,
// default, description), one row per Config field in field order, from the
// struct tags. README.md includes it verbatim; a test keeps the two in sync.
func Markdown() string {
	var b strings.Builder
	b.WriteString("| Variable | Flag | Default | Description |\n")
	b.WriteString("|---|---|---|---|\n")
	for _, s := range settings() {
		def := ""
		if s.def != "" {
			def = "`" + s.def + "`"
		}
		fmt.Fprintf(&b, "| `%s` | `--%s` | %s | %s |\n", s.env(), s.flag(), def, markdownCell(s.desc))
	}
	return b.String()
}

// markdownCell escapes what would break a table cell.
func markdownCell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}
