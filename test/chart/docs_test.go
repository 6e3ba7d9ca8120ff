//go:build integration

package chart

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestValuesDocumented asserts the helm-docs convention of values.yaml: every
// key has a "# --" comment right above it, or sits inside an object that has
// one (documented as a whole, like resources or podSecurityContext).
func TestValuesDocumented(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(chartDir(t), "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	keyLine := regexp.MustCompile(`^( *)([A-Za-z][\w.-]*):`)
	type frame struct {
		indent     int
		documented bool
	}
	var stack []frame
	var comment []string
	for i, line := range strings.Split(string(raw), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			comment = append(comment, trimmed)
			continue
		}
		m := keyLine.FindStringSubmatch(line)
		if m == nil {
			if trimmed == "" {
				comment = nil
			}
			continue
		}
		indent := len(m[1])
		for len(stack) > 0 && stack[len(stack)-1].indent >= indent {
			stack = stack[:len(stack)-1]
		}
		documented := len(comment) > 0 && strings.HasPrefix(comment[0], "# -- ")
		inherited := false
		for _, f := range stack {
			inherited = inherited || f.documented
		}
		isGroup := strings.HasSuffix(trimmed, ":")
		if !documented && !inherited && !isGroup {
			t.Errorf("values.yaml:%d: %s has no \"# --\" comment", i+1, m[2])
		}
		stack = append(stack, frame{indent: indent, documented: documented || inherited})
		comment = nil
	}
}
