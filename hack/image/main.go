// Command image assembles the controller's multi-arch OCI image without a
// container engine (`make image`), with go-containerregistry: one layer
// holding the static binary (plus, on an empty base, Debian's CA bundle and a
// passwd entry for the nonroot user 65532), the Dockerfile's user, entrypoint
// and labels, one manifest per platform under an OCI index, and an SPDX SBOM
// of the Go modules compiled in.
//
// With -base the layer goes on top of that image (the release uses
// gcr.io/distroless/static-debian12:nonroot, as the Dockerfile does); without
// it, on an empty image, as on machines that reach no registry. The result
// is written as an OCI layout (-layout) and/or pushed (-push, credentials
// from ~/.docker/config.json as docker login writes them).
package main

import (
	"archive/tar"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// What the Dockerfile's final stage sets; imagetest checks both agree.
const (
	binaryPath = "/kube-ecr-refresher"
	user       = "65532:65532"
	source     = "https://github.com/kube-ecr-refresher/kube-ecr-refresher"
)

// options are the command's flags.
type options struct {
	binaries map[string]string // platform (linux/amd64) -> binary path
	version  string
	base     string // empty: an empty image
	caBundle string // for an empty base
	layout   string
	push     string
	sbom     string
	created  time.Time
}

type binaryFlag map[string]string

func (b binaryFlag) String() string { return fmt.Sprint(map[string]string(b)) }
func (b binaryFlag) Set(v string) error {
	platform, path, ok := strings.Cut(v, "=")
	if !ok || !strings.HasPrefix(platform, "linux/") {
		return fmt.Errorf("want linux/ARCH=PATH, got %q", v)
	}
	b[platform] = path
	return nil
}

func main() {
	o := options{binaries: map[string]string{}}
	flag.Var(binaryFlag(o.binaries), "binary", "linux/ARCH=PATH of a static binary (repeat for each platform)")
	flag.StringVar(&o.version, "version", "dev", "version for the label org.opencontainers.image.version")
	flag.StringVar(&o.base, "base", "", "base image reference; empty: an empty image with -ca-bundle and a passwd entry")
	flag.StringVar(&o.caBundle, "ca-bundle", "/etc/ssl/certs/ca-certificates.crt", "CA certificates put in an image with no base")
	flag.StringVar(&o.layout, "layout", "", "directory to write the image to as an OCI layout")
	flag.StringVar(&o.push, "push", "", "reference to push the image index to (REGISTRY/REPO:TAG)")
	flag.StringVar(&o.sbom, "sbom", "", "file to write the SPDX SBOM (JSON) to")
	flag.Parse()
	if epoch := os.Getenv("SOURCE_DATE_EPOCH"); epoch != "" {
		var secs int64
		if _, err := fmt.Sscan(epoch, &secs); err != nil {
			fatal(fmt.Errorf("SOURCE_DATE_EPOCH: %w", err))
		}
		o.created = time.Unix(secs, 0).UTC()
	}
	if err := run(o); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "image:", err)
	os.Exit(1)
}

func run(o options) error {
	if len(o.binaries) == 0 {
		return errors.New("no -binary given")
	}
	if o.layout == "" && o.push == "" {
		return errors.New("give -layout, -push or both")
	}
	idx, err := build(o)
	if err != nil {
		return err
	}
	if o.sbom != "" {
		doc, err := sbom(o)
		if err != nil {
			return err
		}
		if err := os.WriteFile(o.sbom, doc, 0o644); err != nil {
			return err
		}
	}
	if o.layout != "" {
		if err := os.RemoveAll(o.layout); err != nil {
			return err
		}
		p, err := layout.Write(o.layout, empty.Index)
		if err != nil {
			return fmt.Errorf("write layout: %w", err)
		}
		if err := p.AppendIndex(idx); err != nil {
			return fmt.Errorf("write layout: %w", err)
		}
	}
	if o.push != "" {
		ref, err := name.ParseReference(o.push)
		if err != nil {
			return fmt.Errorf("-push: %w", err)
		}
		if err := remote.WriteIndex(ref, idx, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
			return fmt.Errorf("push %s: %w", ref, err)
		}
	}
	digest, err := idx.Digest()
	if err != nil {
		return err
	}
	fmt.Println(digest) // for cosign sign REF@DIGEST
	return nil
}

// build returns the image index: one image per platform, in platform order.
func build(o options) (v1.ImageIndex, error) {
	platforms := make([]string, 0, len(o.binaries))
	for p := range o.binaries {
		platforms = append(platforms, p)
	}
	slices.Sort(platforms)
	var idx v1.ImageIndex = mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range platforms {
		platform, err := v1.ParsePlatform(p)
		if err != nil {
			return nil, err
		}
		img, err := image(o, *platform, o.binaries[p])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: platform},
		})
	}
	return idx, nil
}

// image builds the image of one platform.
func image(o options, platform v1.Platform, binary string) (v1.Image, error) {
	bin, err := os.ReadFile(binary)
	if err != nil {
		return nil, err
	}
	files := []file{{path: binaryPath, mode: 0o755, data: bin}}
	var base v1.Image
	if o.base == "" {
		ca, err := os.ReadFile(o.caBundle)
		if err != nil {
			return nil, fmt.Errorf("CA bundle for an image with no base: %w", err)
		}
		files = append(files,
			file{path: "/etc/ssl/certs/ca-certificates.crt", mode: 0o644, data: ca},
			file{path: "/etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
			file{path: "/etc/group", mode: 0o644, data: []byte("root:x:0:\nnonroot:x:65532:\n")},
			file{path: "/home/nonroot/", mode: 0o700, uid: 65532},
			file{path: "/tmp/", mode: 0o1777},
		)
		base = mutate.MediaType(empty.Image, types.OCIManifestSchema1)
		base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	} else {
		ref, err := name.ParseReference(o.base)
		if err != nil {
			return nil, fmt.Errorf("-base: %w", err)
		}
		base, err = remote.Image(ref, remote.WithPlatform(platform), remote.WithAuthFromKeychain(authn.DefaultKeychain))
		if err != nil {
			return nil, fmt.Errorf("base %s: %w", ref, err)
		}
	}
	layerTar, err := tarOf(files, o.created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img, err := mutate.Append(base, mutate.Addendum{Layer: layer, History: v1.History{
		CreatedBy: "hack/image: " + binaryPath, Created: v1.Time{Time: o.created}}})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = platform.OS, platform.Architecture, platform.Variant
	cf.Created = v1.Time{Time: o.created}
	cf.Config.User = user
	cf.Config.Entrypoint = []string{binaryPath}
	cf.Config.Cmd = nil
	cf.Config.WorkingDir = "/"
	cf.Config.Labels = labels(o.version)
	if o.base == "" {
		cf.Config.Env = []string{"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"}
	}
	return mutate.ConfigFile(img, cf)
}

// labels are the Dockerfile's LABEL instruction.
func labels(version string) map[string]string {
	return map[string]string{
		"org.opencontainers.image.source":      source,
		"org.opencontainers.image.title":       "kube-ecr-refresher",
		"org.opencontainers.image.description": "Keeps Amazon ECR pull credentials fresh in Kubernetes",
		"org.opencontainers.image.licenses":    "Apache-2.0",
		"org.opencontainers.image.version":     version,
	}
}

type file struct {
	path string // a trailing slash makes a directory
	mode int64
	uid  int
	data []byte
}

// tarOf writes files, with their parent directories, as a reproducible tar.
func tarOf(files []file, mtime time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	slices.SortFunc(files, func(a, b file) int { return cmp.Compare(a.path, b.path) })
	for _, f := range files {
		rel := strings.TrimPrefix(f.path, "/")
		parts := strings.Split(strings.TrimSuffix(rel, "/"), "/")
		for i := 1; i < len(parts); i++ {
			d := strings.Join(parts[:i], "/") + "/"
			if dirs[d] {
				continue
			}
			dirs[d] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: mtime, Format: tar.FormatPAX}); err != nil {
				return nil, err
			}
		}
		h := &tar.Header{Name: rel, Mode: f.mode, Uid: f.uid, Gid: f.uid, ModTime: mtime, Format: tar.FormatPAX}
		if strings.HasSuffix(rel, "/") {
			if dirs[rel] {
				continue
			}
			dirs[rel] = true
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// marshal is json.MarshalIndent with a final newline.
func marshal(v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
