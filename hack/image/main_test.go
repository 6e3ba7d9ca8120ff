package main

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// dockerfileFinal returns the user, entrypoint and labels of the
// Dockerfile's final stage, with ${VERSION} as version.
func dockerfileFinal(t *testing.T, version string) (user string, entrypoint []string, labels map[string]string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(raw), "\\\n", " ")
	stages := regexp.MustCompile(`(?m)^FROM `).Split(text, -1)
	final := stages[len(stages)-1]
	labels = map[string]string{}
	for _, line := range strings.Split(final, "\n") {
		switch {
		case strings.HasPrefix(line, "USER "):
			user = strings.TrimSpace(strings.TrimPrefix(line, "USER "))
		case strings.HasPrefix(line, "ENTRYPOINT "):
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "ENTRYPOINT ")), &entrypoint); err != nil {
				t.Fatalf("ENTRYPOINT: %v", err)
			}
		case strings.HasPrefix(line, "LABEL "):
			for _, m := range regexp.MustCompile(`([\w.]+)="([^"]*)"`).FindAllStringSubmatch(line, -1) {
				labels[m[1]] = strings.ReplaceAll(m[2], "${VERSION}", version)
			}
		}
	}
	if user == "" || entrypoint == nil || len(labels) == 0 {
		t.Fatalf("Dockerfile's final stage: user %q, entrypoint %v, labels %v", user, entrypoint, labels)
	}
	return user, entrypoint, labels
}

func testOptions(t *testing.T) options {
	t.Helper()
	self, err := os.Executable() // a Go binary with build information
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return options{
		binaries: map[string]string{"linux/amd64": self, "linux/arm64": self},
		version:  "1.2.3", caBundle: ca, layout: filepath.Join(t.TempDir(), "layout"),
	}
}

// The image is what the Dockerfile builds: same user, entrypoint, labels,
// the binary at the same path, for both platforms.
func TestImageMatchesDockerfile(t *testing.T) {
	o := testOptions(t)
	if err := run(o); err != nil {
		t.Fatal(err)
	}
	p, err := layout.FromPath(o.layout)
	if err != nil {
		t.Fatal(err)
	}
	top, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	topManifest, err := top.IndexManifest()
	if err != nil || len(topManifest.Manifests) != 1 {
		t.Fatalf("layout index: %v, %v", topManifest, err)
	}
	idx, err := top.ImageIndex(topManifest.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var platforms []string
	for _, d := range im.Manifests {
		platforms = append(platforms, d.Platform.String())
	}
	if diff := cmp.Diff([]string{"linux/amd64", "linux/arm64"}, platforms); diff != "" {
		t.Errorf("platforms (-want +got):\n%s", diff)
	}
	wantUser, wantEntrypoint, wantLabels := dockerfileFinal(t, o.version)
	for _, d := range im.Manifests {
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.Architecture != d.Platform.Architecture || cf.OS != "linux" {
			t.Errorf("%s: config says %s/%s", d.Platform, cf.OS, cf.Architecture)
		}
		if cf.Config.User != wantUser {
			t.Errorf("%s: user %q, Dockerfile %q", d.Platform, cf.Config.User, wantUser)
		}
		if diff := cmp.Diff(wantEntrypoint, cf.Config.Entrypoint); diff != "" {
			t.Errorf("%s: entrypoint (-Dockerfile +image):\n%s", d.Platform, diff)
		}
		if diff := cmp.Diff(wantLabels, cf.Config.Labels); diff != "" {
			t.Errorf("%s: labels (-Dockerfile +image):\n%s", d.Platform, diff)
		}
		files := layerFiles(t, img)
		if h, ok := files[strings.TrimPrefix(wantEntrypoint[0], "/")]; !ok || h.Mode&0o111 == 0 {
			t.Errorf("%s: no executable %s in the image (%v)", d.Platform, wantEntrypoint[0], h)
		}
		for _, f := range []string{"etc/passwd", "etc/ssl/certs/ca-certificates.crt"} {
			if _, ok := files[f]; !ok {
				t.Errorf("%s: no %s", d.Platform, f)
			}
		}
	}
}

// layerFiles lists the files of an image's layers.
func layerFiles(t *testing.T, img v1.Image) map[string]*tar.Header {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*tar.Header{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			out[h.Name] = h
		}
		rc.Close()
	}
	return out
}

// The same inputs make the same image, byte for byte.
func TestImageIsReproducible(t *testing.T) {
	o := testOptions(t)
	a, err := build(o)
	if err != nil {
		t.Fatal(err)
	}
	b, err := build(o)
	if err != nil {
		t.Fatal(err)
	}
	da, _ := a.Digest()
	db, _ := b.Digest()
	if da != db {
		t.Errorf("two builds: %s and %s", da, db)
	}
}

func TestSBOMListsTheModules(t *testing.T) {
	o := testOptions(t)
	raw, err := sbom(o)
	if err != nil {
		t.Fatal(err)
	}
	var doc spdxDocument
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	var purls []string
	for _, p := range doc.Packages {
		for _, r := range p.ExternalRefs {
			purls = append(purls, r.Locator)
		}
	}
	joined := strings.Join(purls, "\n")
	for _, want := range []string{"pkg:golang/github.com/google/go-containerregistry@", "pkg:golang/stdlib@"} {
		if !strings.Contains(joined, want) {
			t.Errorf("SBOM lacks %s:\n%s", want, joined)
		}
	}
	if doc.SPDXVersion != "SPDX-2.3" || len(doc.Relationships) == 0 {
		t.Errorf("SBOM header: %+v", doc)
	}
}

func TestRunRejectsMissingInputs(t *testing.T) {
	if err := run(options{}); err == nil {
		t.Error("no binaries: no error")
	}
	o := testOptions(t)
	o.layout = ""
	if err := run(o); err == nil {
		t.Error("no destination: no error")
	}
	o = testOptions(t)
	o.caBundle = filepath.Join(t.TempDir(), "missing")
	if err := run(o); err == nil || !strings.Contains(err.Error(), "CA bundle") {
		t.Errorf("missing CA bundle: %v", err)
	}
}
