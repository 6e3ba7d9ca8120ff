//go:build integration

package chart

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
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

// TestValuesMatchSchema asserts that values.yaml and values.schema.json
// describe the same keys: every key of values.yaml has a schema property
// (the schema rejects unknown keys, so a key it lacks could never be set),
// and every schema property is in values.yaml, where TestValuesDocumented
// makes sure it is documented; except the few listed in notInValues.
func TestValuesMatchSchema(t *testing.T) {
	notInValues := map[string]string{
		"global":             "Helm hands a parent chart's global block to every subchart; this chart reads none of it",
		"enabled":            "read by a parent chart's condition, not by this chart; documented at the top of values.yaml",
		"config.leaderElect": "removed; accepted only to explain why false fails (TestInvalidValues)",
	}
	var values map[string]any
	raw, err := os.ReadFile(filepath.Join(chartDir(t), "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &values); err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	raw, err = os.ReadFile(filepath.Join(chartDir(t), "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	definitions, _ := schema["definitions"].(map[string]any)
	// resolve follows a local $ref.
	resolve := func(node map[string]any) map[string]any {
		ref, ok := node["$ref"].(string)
		if !ok {
			return node
		}
		def, _ := definitions[strings.TrimPrefix(ref, "#/definitions/")].(map[string]any)
		return def
	}
	seen := map[string]bool{}
	var walk func(path string, values map[string]any, node map[string]any)
	walk = func(path string, values map[string]any, node map[string]any) {
		props, ok := resolve(node)["properties"].(map[string]any)
		if !ok {
			return // free-form (podSecurityContext, stringMap): values.yaml's keys are examples
		}
		for key, v := range values {
			prop, ok := props[key].(map[string]any)
			if !ok {
				t.Errorf("values.yaml has %s%s, which the schema does not allow", path, key)
				continue
			}
			if sub, ok := v.(map[string]any); ok {
				walk(path+key+".", sub, prop)
			}
		}
		for key := range props {
			if _, ok := values[key]; ok {
				continue
			}
			if _, ok := notInValues[path+key]; ok {
				seen[path+key] = true
				continue
			}
			t.Errorf("the schema allows %s%s, which values.yaml lacks: add it with a \"# --\" comment", path, key)
		}
	}
	walk("", values, schema)
	for key := range notInValues {
		if !seen[key] {
			t.Errorf("notInValues lists %s, which is in values.yaml or not in the schema", key)
		}
	}
}
