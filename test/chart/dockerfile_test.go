//go:build integration

package chart

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestDockerfileLint runs BuildKit's Dockerfile checks (hack/tools/dockerfile-lint)
// on the Dockerfile, and on a bad one to show the linter really looks.
func TestDockerfileLint(t *testing.T) {
	lint := tool(t, "dockerfile-lint", "DOCKERFILE_LINT")
	tests := []struct {
		name      string
		path      string
		wantRules []string
	}{
		{name: "The Dockerfile has no findings", path: filepath.Join(repoRoot(t), "Dockerfile")},
		{
			name:      "A sloppy Dockerfile has findings",
			path:      filepath.Join("testdata", "sloppy.Dockerfile"),
			wantRules: []string{"ConsistentInstructionCasing", "JSONArgsRecommended", "LegacyKeyValueFormat", "StageNameCasing", "UndefinedVar"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := exec.Command(lint, tt.path).CombinedOutput()
			var rules []string
			for _, m := range regexp.MustCompile(`(?m)^WARNING: (\w+)`).FindAllStringSubmatch(string(out), -1) {
				if !slices.Contains(rules, m[1]) {
					rules = append(rules, m[1])
				}
			}
			slices.Sort(rules)
			if diff := cmp.Diff(tt.wantRules, rules); diff != "" {
				t.Errorf("rules reported (-want +got):\n%s\noutput:\n%s", diff, out)
			}
			var exit *exec.ExitError
			switch {
			case len(tt.wantRules) == 0 && err != nil:
				t.Errorf("dockerfile-lint: %v\n%s", err, out)
			case len(tt.wantRules) > 0 && !(errors.As(err, &exit) && exit.ExitCode() == 1):
				t.Errorf("dockerfile-lint exit: %v, want exit status 1", err)
			}
		})
	}
}

// goBuildLine returns the Dockerfile's RUN instruction that runs `go build`,
// with its continuation lines joined.
func goBuildLine(t *testing.T) string {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var inst strings.Builder
	var found []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") {
			continue
		}
		if cont, ok := strings.CutSuffix(line, `\`); ok {
			inst.WriteString(cont + " ")
			continue
		}
		inst.WriteString(line)
		if s := inst.String(); strings.HasPrefix(s, "RUN ") && strings.Contains(s, "go build") {
			found = append(found, strings.Join(strings.Fields(s), " "))
		}
		inst.Reset()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return only(t, "RUN go build instructions in the Dockerfile", found)
}

// makeVar returns the value of a simple Makefile variable assignment
// (NAME = v, NAME := v, NAME ?= v), or "" when there is none.
func makeVar(makefile, name string) string {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `\s*[:?]?=[ \t]*(.*?)[ \t]*$`)
	if m := re.FindStringSubmatch(makefile); m != nil {
		return m[1]
	}
	return ""
}

// buildFlagsDrift compares the Dockerfile's `go build` instruction with the
// Makefile's GOFLAGS_BUILD and LDFLAGS ($(VERSION) there is ${VERSION} in the
// Dockerfile) and with the recipe that uses them; nil when they match.
func buildFlagsDrift(run, makefile string) error {
	goflags, ldflags := makeVar(makefile, "GOFLAGS_BUILD"), makeVar(makefile, "LDFLAGS")
	if goflags == "" || ldflags == "" {
		return fmt.Errorf("makefile defines GOFLAGS_BUILD=%q and LDFLAGS=%q, want both", goflags, ldflags)
	}
	toDocker := strings.NewReplacer("$(VERSION)", "${VERSION}")
	want := "go build " + toDocker.Replace(goflags) + ` -ldflags "` + toDocker.Replace(ldflags) + `" `
	if !strings.Contains(run, want) {
		return fmt.Errorf("dockerfile's go build differs from the Makefile's flags:\n got: %s\nwant: ... %s...", run, want)
	}
	recipe := regexp.MustCompile(`CGO_ENABLED=0[^\n]*go build[^\n]*\$\(GOFLAGS_BUILD\)[^\n]*-ldflags ["']\$\(LDFLAGS\)["']`)
	if !recipe.MatchString(makefile) {
		return errors.New(`makefile has no "CGO_ENABLED=0 ... go build $(GOFLAGS_BUILD) ... -ldflags "$(LDFLAGS)"" recipe line`)
	}
	return nil
}

func TestBuildFlagsDrift(t *testing.T) {
	const run = `RUN --mount=type=cache,target=/root/.cache/go-build CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/kube-ecr-refresher ./cmd/kube-ecr-refresher`
	const recipe = "build:\n\tCGO_ENABLED=0 go build $(GOFLAGS_BUILD) -ldflags \"$(LDFLAGS)\" -o bin/kube-ecr-refresher ./cmd/kube-ecr-refresher\n"
	tests := []struct {
		name     string
		makefile string
		wantErr  bool
	}{
		{name: "Matching flags pass", makefile: "VERSION ?= dev\nGOFLAGS_BUILD = -trimpath\nLDFLAGS = -s -w -X main.version=$(VERSION)\n" + recipe},
		{name: "Simply expanded variables pass", makefile: "GOFLAGS_BUILD := -trimpath\nLDFLAGS := -s -w -X main.version=$(VERSION)\n" + recipe},
		{name: "A different linker flag fails", makefile: "GOFLAGS_BUILD = -trimpath\nLDFLAGS = -w -X main.version=$(VERSION)\n" + recipe, wantErr: true},
		{name: "An extra build flag fails", makefile: "GOFLAGS_BUILD = -trimpath -buildvcs=false\nLDFLAGS = -s -w -X main.version=$(VERSION)\n" + recipe, wantErr: true},
		{name: "A missing variable fails", makefile: "LDFLAGS = -s -w -X main.version=$(VERSION)\n" + recipe, wantErr: true},
		{name: "A recipe without cgo off fails", makefile: "GOFLAGS_BUILD = -trimpath\nLDFLAGS = -s -w -X main.version=$(VERSION)\nbuild:\n\tgo build $(GOFLAGS_BUILD) -ldflags \"$(LDFLAGS)\" ./cmd/kube-ecr-refresher\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := buildFlagsDrift(run, tt.makefile)
			if (err != nil) != tt.wantErr {
				t.Errorf("buildFlagsDrift() = %v, want error: %t", err, tt.wantErr)
			}
		})
	}
}

// TestBuildFlagsMatchMakefile asserts that the image is built with the same
// flags as `make build`.
func TestBuildFlagsMatchMakefile(t *testing.T) {
	run := goBuildLine(t)
	// The canonical flags, independent of the Makefile.
	for _, want := range []string{
		"CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build ",
		` -ldflags "-s -w -X main.version=${VERSION}" `,
		" ./cmd/kube-ecr-refresher",
	} {
		if !strings.Contains(run, want) {
			t.Errorf("Dockerfile's go build does not contain %q:\n%s", want, run)
		}
	}
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "Makefile"))
	if errors.Is(err, os.ErrNotExist) {
		t.Skip("no Makefile yet: only the Dockerfile's own flags were checked")
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := buildFlagsDrift(run, string(raw)); err != nil {
		t.Error(err)
	}
}
