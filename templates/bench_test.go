package templates_test

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/runtime/docker/dockerbench"
	"github.com/berth-dev/berth/runtime/docker/dockertest"
	"github.com/berth-dev/berth/templates"
)

// BenchmarkTemplateLoad measures how a template's image reaches the engine,
// from a root filesystem already made (debootstrap's minutes are the same
// whichever way): assembled here with an uncompressed layer and loaded
// (what berth does), the same with a gzipped layer, and the way berth did
// it before, `docker build` of a context holding the rootfs and a
// Dockerfile (FROM scratch, ADD, ENV, WORKDIR, CMD) with the classic
// builder. Rounds are interleaved; each one's rootfs starts with a file of
// its own, so that no engine reuses a layer or a build cache from an
// earlier round. It also times templates.Make of base end to end. The
// debian template joins with BERTH_TEST_DEBIAN=1 (one debootstrap first).
func BenchmarkTemplateLoad(b *testing.B) {
	rt := dockertest.New(b)
	raw, err := dockerbench.New()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := raw.Close(); err != nil {
			b.Errorf("close the raw engine client: %v", err)
		}
	})
	if dir := os.Getenv("BERTH_TEST_DEBIAN_CACHE"); dir != "" {
		old := templates.DebootstrapCache
		templates.DebootstrapCache = dir
		b.Cleanup(func() { templates.DebootstrapCache = old })
	}
	names := []string{"base"}
	rounds := map[string]int{"base": 7, "debian": 3}
	if os.Getenv("BERTH_TEST_DEBIAN") != "" {
		names = append(names, "debian")
	}
	ctx := context.Background()
	ways := []string{"oci, uncompressed layer", "oci, gzip layer", "docker build (before)"}
	type row struct {
		name string
		size int64
		d    map[string][]time.Duration
	}
	var rows []row
	var makes []time.Duration
	for i := 0; i < b.N; i++ {
		for _, tn := range names {
			tmpl, err := templates.Get(tn)
			if err != nil {
				b.Fatal(err)
			}
			img, release, err := templates.Image(ctx, tmpl, nil)
			if err != nil {
				b.Fatal(err)
			}
			r := row{name: tn, d: map[string][]time.Duration{}}
			layers, err := img.Layers()
			if err != nil {
				b.Fatal(err)
			}
			if r.size, err = layers[0].Size(); err != nil {
				b.Fatal(err)
			}
			cfg, err := img.ConfigFile()
			if err != nil {
				b.Fatal(err)
			}
			for range rounds[tn] {
				for _, way := range ways {
					tag := "berth-bench/" + tn + ":" + randomID(b)
					open := uniqueRootfs(b, layers[0], tag)
					start := time.Now()
					switch way {
					case ways[0]:
						err = load(ctx, rt, tag, withLayer(b, cfg, templates.RawLayer(open)))
					case ways[1]:
						l, lerr := tarball.LayerFromOpener(open)
						if lerr != nil {
							b.Fatal(lerr)
						}
						err = load(ctx, rt, tag, withLayer(b, cfg, l))
					case ways[2]:
						err = raw.BuildImage(ctx, buildContext(b, tmpl, open), tag)
					}
					r.d[way] = append(r.d[way], time.Since(start))
					if err != nil {
						b.Fatalf("%s, %s: %v", tn, way, err)
					}
					if err := raw.RemoveImage(ctx, tag); err != nil {
						b.Fatal(err)
					}
				}
			}
			release()
			rows = append(rows, r)
		}
		// The whole of a base build, as `berth template build base` does it.
		tmpl, _ := templates.Get("base")
		for range rounds["base"] {
			tmpl.Image = "berth-bench/make:" + randomID(b)
			start := time.Now()
			if err := templates.Make(ctx, rt, tmpl, nil); err != nil {
				b.Fatal(err)
			}
			makes = append(makes, time.Since(start))
			if err := raw.RemoveImage(ctx, tmpl.Image); err != nil {
				b.Fatal(err)
			}
		}
	}

	var out strings.Builder
	_, _ = fmt.Fprintf(&out, "\ntemplate image to the engine (Docker), from a made rootfs, same run, interleaved\n")
	tw := tabwriter.NewWriter(&out, 0, 0, 2, ' ', tabwriter.AlignRight)
	_, _ = fmt.Fprintln(tw, "template\trootfs\tway\tn\tp50\tmax\t")
	for _, r := range rows {
		for _, way := range ways {
			d := r.d[way]
			_, _ = fmt.Fprintf(tw, "%s\t%.1f MB\t%s\t%d\t%s\t%s\t\n", r.name, float64(r.size)/1e6, way, len(d), ms(pct(d, 50)), ms(pct(d, 100)))
			key := r.name + "-" + strings.NewReplacer(", ", "-", " ", "-", "(", "", ")", "").Replace(way)
			b.ReportMetric(float64(pct(d, 50).Microseconds())/1000, key+"-p50-ms")
		}
	}
	_, _ = fmt.Fprintf(tw, "base\t\ttemplates.Make (rootfs+assemble+load)\t%d\t%s\t%s\t\n", len(makes), ms(pct(makes, 50)), ms(pct(makes, 100)))
	b.ReportMetric(float64(pct(makes, 50).Microseconds())/1000, "base-make-p50-ms")
	if err := tw.Flush(); err != nil { // into a strings.Builder: cannot fail
		b.Fatal(err)
	}
	if _, err := fmt.Fprint(os.Stdout, out.String()); err != nil {
		b.Fatal(err)
	}
}

// load writes img as a docker-archive tagged tag straight into the engine.
func load(ctx context.Context, rt runtime.Runtime, tag string, img v1.Image) error {
	ref, err := name.NewTag(tag)
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(tarball.Write(ref, img, pw)) }()
	err = rt.LoadImage(ctx, pr, nil)
	_ = pr.Close() // stops the writer if the engine stopped reading
	return err
}

// withLayer is the image of cfg (less its layers' history) and one layer.
func withLayer(b *testing.B, cfg *v1.ConfigFile, l v1.Layer) v1.Image {
	cf := cfg.DeepCopy()
	cf.RootFS.DiffIDs, cf.History = nil, nil
	img, err := mutate.ConfigFile(empty.Image, cf)
	if err != nil {
		b.Fatal(err)
	}
	if img, err = mutate.AppendLayers(img, l); err != nil {
		b.Fatal(err)
	}
	return img
}

// uniqueRootfs opens layer's tar with a first entry of its own (a header
// and its data, then the layer's own entries and end): a layer no engine
// has seen.
func uniqueRootfs(b *testing.B, layer v1.Layer, mark string) tarball.Opener {
	var head bytes.Buffer
	tw := tar.NewWriter(&head)
	body := mark + "\n"
	if err := tw.WriteHeader(&tar.Header{Name: "bench-mark", Mode: 0o644, Size: int64(len(body)), ModTime: templates.Epoch}); err != nil {
		b.Fatal(err)
	}
	if _, err := io.WriteString(tw, body); err != nil {
		b.Fatal(err)
	}
	if err := tw.Flush(); err != nil { // no Close: the layer's tar ends the archive
		b.Fatal(err)
	}
	return func() (io.ReadCloser, error) {
		rc, err := layer.Uncompressed()
		if err != nil {
			return nil, err
		}
		return struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(head.Bytes()), rc), rc}, nil
	}
}

// buildContext is the build context berth sent `docker build` before: a
// Dockerfile equivalent to tmpl's recipe and the rootfs as rootfs.tar.
func buildContext(b *testing.B, tmpl templates.Template, open tarball.Opener) io.Reader {
	var env []string
	for k, v := range tmpl.Env {
		env = append(env, k+"="+v)
	}
	slices.Sort(env)
	dockerfile := fmt.Sprintf("FROM scratch\nADD rootfs.tar /\nENV %s\nWORKDIR %s\nCMD [\"%s\"]\nLABEL %s=%s\n",
		strings.Join(env, " "), tmpl.Build.WorkDir, strings.Join(tmpl.Build.Cmd, `", "`), templates.LabelTemplate, tmpl.Name)
	// The rootfs is read twice (size, then data), as the old code did with
	// a file whose size it knew.
	rc, err := open()
	if err != nil {
		b.Fatal(err)
	}
	size, err := io.Copy(io.Discard, rc)
	_ = rc.Close() // read-only
	if err != nil {
		b.Fatal(err)
	}
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		err := tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(dockerfile))})
		if err == nil {
			_, err = io.WriteString(tw, dockerfile)
		}
		if err == nil {
			err = tw.WriteHeader(&tar.Header{Name: "rootfs.tar", Mode: 0o644, Size: size})
		}
		if err == nil {
			var rc io.ReadCloser
			if rc, err = open(); err == nil {
				_, err = io.Copy(tw, rc)
				_ = rc.Close() // read-only
			}
		}
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	return pr
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p+99)/100 - 1
	return s[max(i, 0)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0fms", float64(d.Microseconds())/1000) }
