// Command dockerfile-lint runs BuildKit's Dockerfile checks (the ones behind
// `docker build --check`) offline, without a Docker engine or a registry.
//
// Usage: dockerfile-lint [-build-arg KEY=VALUE]... Dockerfile...
//
// Base images are not fetched: every FROM resolves to an empty-config Linux
// image for the requested platform, so the checks that need the base image's
// real configuration (its ENV, its platform) see a neutral stand-in. Every
// warning is an error: the command exits 1 on any finding and 2 on misuse.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerui"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "dockerfile-lint:", err)
		if errors.Is(err, errFindings) {
			os.Exit(1)
		}
		os.Exit(2)
	}
}

var errFindings = errors.New("lint findings")

type buildArgs map[string]string

func (b buildArgs) String() string { return fmt.Sprint(map[string]string(b)) }

func (b buildArgs) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("build arg %q: want KEY=VALUE", s)
	}
	b[k] = v
	return nil
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("dockerfile-lint", flag.ContinueOnError)
	bargs := buildArgs{}
	fs.Var(bargs, "build-arg", "build argument KEY=VALUE (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("usage: dockerfile-lint [-build-arg KEY=VALUE]... Dockerfile...")
	}
	var failed []string
	for _, path := range fs.Args() {
		n, err := lintFile(ctx, path, bargs, out)
		if err != nil {
			return err
		}
		if n > 0 {
			failed = append(failed, path)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%w in %s", errFindings, strings.Join(failed, ", "))
	}
	return nil
}

// lintFile prints the findings for one Dockerfile and returns their number
// (warnings plus a build error, if any).
func lintFile(ctx context.Context, path string, bargs buildArgs, out io.Writer) (int, error) {
	dt, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read dockerfile: %w", err)
	}
	// The source map ties findings to lines; like the Dockerfile frontend,
	// give it the definition of the (here: local) state the file comes from.
	src := llb.Local("dockerfile")
	def, err := src.Marshal(ctx)
	if err != nil {
		return 0, fmt.Errorf("marshal dockerfile source: %w", err)
	}
	smap := llb.NewSourceMap(&src, path, "Dockerfile", dt)
	smap.Definition = def
	res, err := dockerfile2llb.DockerfileLint(ctx, dt, dockerfile2llb.ConvertOpt{
		Config:       dockerui.Config{BuildArgs: bargs},
		SourceMap:    smap,
		MetaResolver: offlineResolver{},
	})
	if err != nil {
		return 0, fmt.Errorf("lint %s: %w", path, err)
	}
	if err := res.PrintTo(out, nil); err != nil {
		return 0, fmt.Errorf("print findings for %s: %w", path, err)
	}
	n := len(res.Warnings)
	if res.Error != nil {
		res.PrintErrorTo(out, nil)
		n++
	}
	if n == 0 {
		fmt.Fprintf(out, "%s: no findings\n", path)
	}
	return n, nil
}

// offlineResolver answers every base image lookup with an empty Linux image
// for the requested platform instead of asking a registry.
type offlineResolver struct{}

func (offlineResolver) ResolveImageConfig(_ context.Context, ref string, opt sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	p := ocispecs.Platform{OS: "linux", Architecture: "amd64"}
	if opt.ImageOpt != nil && opt.ImageOpt.Platform != nil {
		p = *opt.ImageOpt.Platform
	}
	img := ocispecs.Image{
		Platform: p,
		Config:   ocispecs.ImageConfig{Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}},
		RootFS:   ocispecs.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromString(ref)}},
	}
	dt, err := json.Marshal(img)
	if err != nil {
		return "", "", nil, fmt.Errorf("encode image config: %w", err)
	}
	return ref, "", dt, nil
}
