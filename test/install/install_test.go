//go:build integration

// Package install installs kube-ecr-refresher the way README tells a
// stranger to: `make image` and `make chart` pushed to a local OCI registry
// (go-containerregistry's, in process), then README's install commands run
// against a real control plane with the registry's address in place of
// ghcr.io, and the binary taken out of the pushed amd64 image run on its
// own.
package install

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/test/controlplane"
	"github.com/kube-ecr-refresher/kube-ecr-refresher/test/fakeecr"
)

// published is where README says the image and chart are.
const published = "ghcr.io/kube-ecr-refresher/"

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// installCommands returns the shell commands of README's install block,
// continuation lines joined, comments dropped.
func installCommands(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)<!-- install:start -->\\s*```sh\\n(.*?)```\\s*<!-- install:end -->").FindSubmatch(raw)
	if m == nil {
		t.Fatal("README.md has no <!-- install:start --> ```sh ... ``` <!-- install:end --> block")
	}
	var cmds []string
	for _, line := range strings.Split(strings.ReplaceAll(string(m[1]), "\\\n", " "), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			cmds = append(cmds, line)
		}
	}
	return cmds
}

// words splits a command line as a shell would for these simple commands:
// on spaces, honouring single and double quotes.
func words(line string) []string {
	var out []string
	var cur strings.Builder
	var quote rune
	inWord := false
	for _, r := range line {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out
}

func TestInstallFromPublishedImageAndChart(t *testing.T) {
	root := repoRoot(t)
	versionRaw, err := os.ReadFile(filepath.Join(root, "VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	version := strings.TrimSpace(string(versionRaw))

	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(reg.Close)
	host := strings.TrimPrefix(reg.URL, "http://")
	local := func(s string) string { return strings.ReplaceAll(s, published, host+"/kube-ecr-refresher/") }

	// Publish, as the release workflow does (to ghcr.io there).
	imageRef := local(published + "kube-ecr-refresher:" + version)
	out := run(t, root, nil, "make", "--no-print-directory", "image", "VERSION="+version, "IMAGE_PUSH="+imageRef)
	digest := strings.TrimSpace(out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:])
	if !strings.HasPrefix(digest, "sha256:") {
		t.Fatalf("make image printed %q, want the index digest last", out)
	}
	run(t, root, nil, "make", "--no-print-directory", "chart")
	helm := strings.TrimSpace(run(t, root, nil, filepath.Join(root, "hack", "tools", "build.sh"), "helm"))
	home := t.TempDir()
	helmEnv := []string{"HELM_CONFIG_HOME=" + filepath.Join(home, "config"), "HELM_CACHE_HOME=" + filepath.Join(home, "cache"),
		"HELM_DATA_HOME=" + filepath.Join(home, "data")}
	run(t, root, helmEnv, helm, "push", "--plain-http", filepath.Join(root, "bin", "kube-ecr-refresher-"+version+".tgz"),
		"oci://"+host+"/kube-ecr-refresher/charts")

	plane := controlplane.StartForTest(t)
	bin, err := controlplane.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	kubeEnv := append([]string{"KUBECONFIG=" + plane.AdminKubeconfig()}, helmEnv...)

	// README's commands, with the local registry in place of ghcr.io.
	var manifest string
	cmds := installCommands(t)
	sawHelmInstall := false
	for _, line := range cmds {
		args := words(local(line))
		switch args[0] {
		case "kubectl":
			run(t, root, kubeEnv, filepath.Join(bin, "kubectl"), args[1:]...)
		case "helm":
			if len(args) < 2 || args[1] != "install" {
				t.Fatalf("README's install block runs %q: the test knows helm install only", line)
			}
			if !strings.Contains(line, "oci://"+published) {
				t.Fatalf("README installs from %q, not the published chart (oci://%s…)", line, published)
			}
			sawHelmInstall = true
			// The Pods cannot start here (no node): render against the API
			// server, which validates every object, and create nothing but
			// the namespace that --create-namespace would.
			if slices.Contains(args, "--create-namespace") {
				if i := slices.Index(args, "--namespace"); i >= 0 && i+1 < len(args) {
					_, err := plane.Client().CoreV1().Namespaces().Create(context.Background(),
						&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: args[i+1]}}, metav1.CreateOptions{})
					if err != nil {
						t.Fatal(err)
					}
				}
			}
			args = append(args, "--plain-http", "--dry-run=server",
				"--set", "image.repository="+local(published+"kube-ecr-refresher"))
			manifest = run(t, root, kubeEnv, helm, args[1:]...)
		default:
			t.Fatalf("README's install block runs %q: the test knows kubectl and helm only", line)
		}
	}
	if !sawHelmInstall {
		t.Fatalf("README's install block has no helm install: %q", cmds)
	}

	// The chart's default image is the one just pushed, by its appVersion.
	image := regexp.MustCompile(`(?m)^\s+image: "?([^"\s]+)"?`).FindStringSubmatch(manifest)
	if image == nil || image[1] != imageRef {
		t.Fatalf("the chart's Deployment runs image %v, want %s\n%s", image, imageRef, manifest)
	}
	ref, err := name.ParseReference(imageRef)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(ref)
	if err != nil || desc.Digest.String() != digest {
		t.Fatalf("%s in the registry: %v, %v; make image pushed %s", imageRef, desc, err, digest)
	}

	// The amd64 image's binary runs: --version, then one pass.
	img, err := remote.Image(ref, remote.WithPlatform(v1.Platform{OS: "linux", Architecture: "amd64"}))
	if err != nil {
		t.Fatal(err)
	}
	binary := extract(t, img, "kube-ecr-refresher")
	if got := run(t, root, nil, binary, "--version"); !strings.Contains(got, "kube-ecr-refresher "+version+" (go") {
		t.Errorf("--version of the image's binary: %q", got)
	}
	ecr := fakeecr.New()
	t.Cleanup(ecr.Close)
	ns := "installed"
	if _, err := plane.Client().CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := plane.Client().CoreV1().ServiceAccounts(ns).Get(context.Background(), "default", metav1.GetOptions{}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no default ServiceAccount in " + ns)
		}
		time.Sleep(100 * time.Millisecond)
	}
	once := exec.Command(binary, "--once")
	once.Env = []string{
		"HOME=" + t.TempDir(), "AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=AKIDINSTALLTEST",
		"AWS_SECRET_ACCESS_KEY=install-test-secret", "AWS_EC2_METADATA_DISABLED=true",
		"AWS_ENDPOINT_URL_ECR=" + ecr.URL, "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null",
		"KUBE_ECR_REFRESHER_KUBECONFIG=" + plane.AdminKubeconfig(),
		"KUBE_ECR_REFRESHER_TARGET_NAMESPACES=" + ns, "KUBE_ECR_REFRESHER_LEASE_NAMESPACE=default",
		"KUBE_ECR_REFRESHER_HEALTH_ADDR=",
	}
	if out, err := once.CombinedOutput(); err != nil {
		t.Fatalf("--once with the image's binary: %v\n%s", err, out)
	}
	s, err := plane.Client().CoreV1().Secrets(ns).Get(context.Background(), "ecr-pull-secret", metav1.GetOptions{})
	if err != nil || s.Labels["app.kubernetes.io/managed-by"] != "kube-ecr-refresher" {
		t.Errorf("after --once: %v, %v", s, err)
	}
}

// extract writes the file at path of img's layers to a temporary executable.
func extract(t *testing.T, img v1.Image, path string) string {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
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
			if strings.TrimPrefix(h.Name, "/") == path {
				dst := filepath.Join(t.TempDir(), filepath.Base(path))
				b, err := io.ReadAll(tr)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(dst, b, 0o755); err != nil {
					t.Fatal(err)
				}
				rc.Close()
				return dst
			}
		}
		rc.Close()
	}
	t.Fatalf("no %s in the image", path)
	return ""
}
