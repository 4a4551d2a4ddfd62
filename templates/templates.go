// Package templates holds berth's built-in sandbox templates and makes their
// images present on a runtime.
//
// A template is a directory with a template.yaml: name, description, image
// reference, default resources and environment, and the recipe of the image
// (its build section). The built-in ones are embedded in the binary. A built
// image whose reference names no tag is tagged with a digest of the template
// directory (and of the way berth assembles images), so editing a template
// never reuses an image built from its old definition, and building an
// unchanged one is a no-op.
//
// No container registry need be reachable, and no engine builder is used: a
// template with a build section is assembled here as an OCI image, its root
// filesystem made at build time from what the host has (the static busybox
// for "base") or can fetch from the Debian mirror (debootstrap for
// "debian"), and loaded into the engine as a docker-archive tarball, which
// Docker and containerd both take. A template without a build section names
// an image that is pulled from its registry when it is not present.
package templates

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/dustin/go-humanize"
	"go.yaml.in/yaml/v3"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/runtime"
)

// Template is a sandbox template.
type Template struct {
	Name        string            `yaml:"name" json:"name"`
	Description string            `yaml:"description" json:"description"`
	Image       string            `yaml:"image" json:"image"`
	Build       *Build            `yaml:"build" json:"-"`
	Resources   Resources         `yaml:"resources" json:"resources"`
	Env         map[string]string `yaml:"env" json:"env,omitempty"`
}

// Build is a template's recipe: how its image is made when it is not
// present. The image is one layer, the root filesystem that Source makes,
// and a configuration from the fields below and the template's Env (also
// the image's environment). berth assembles it itself (see Image) and loads
// it into the engine, so no engine builder is needed: containerd has none,
// and a Dockerfile FROM scratch with one ADD and a few settings says no
// more than these fields do.
type Build struct {
	// Source names the maker of the root filesystem:
	//   "busybox":     the host's static busybox (see BusyboxPath) and a
	//                  minimal /etc;
	//   "debootstrap": `debootstrap --variant=Variant Suite <dir> Mirror`.
	Source  string `yaml:"source"`
	Suite   string `yaml:"suite"`
	Variant string `yaml:"variant"`
	Mirror  string `yaml:"mirror"`

	// The image's configuration. WorkDir is made in the root filesystem
	// (owned by root, mode 0755) when the source does not make it.
	Cmd        []string          `yaml:"cmd"`
	Entrypoint []string          `yaml:"entrypoint"`
	WorkDir    string            `yaml:"workdir"`
	User       string            `yaml:"user"`
	Labels     map[string]string `yaml:"labels"` // LabelTemplate is added
}

// Resources are a template's default limits, in the API's units.
type Resources struct {
	VCPUs  float64 `yaml:"vcpus" json:"vcpus"`
	Memory string  `yaml:"memory" json:"memory"` // e.g. "1GB", "512MiB"
	Disk   string  `yaml:"disk" json:"disk"`     // the sandbox's own filesystem; applied only where the engine can enforce it (runtime.Capabilities)
	Pids   int64   `yaml:"pids" json:"pids"`
}

// Limits converts r into a runtime's limits. Sizes follow go-humanize:
// "1GB" is 10^9 bytes, "1GiB" 2^30.
func (r Resources) Limits() (runtime.Resources, error) {
	var out runtime.Resources
	if r.VCPUs < 0 || r.Pids < 0 {
		return out, berth.Errorf(berth.Invalid, "resources: negative vcpus or pids")
	}
	out.NanoCPUs = int64(r.VCPUs * 1e9)
	out.PidsLimit = r.Pids
	if r.Memory != "" {
		n, err := humanize.ParseBytes(r.Memory)
		if err != nil {
			return out, berth.Wrap(berth.Invalid, err, fmt.Sprintf("resources: bad memory size %q", r.Memory))
		}
		out.MemoryBytes = int64(n)
	}
	if r.Disk != "" {
		n, err := humanize.ParseBytes(r.Disk)
		if err != nil {
			return out, berth.Wrap(berth.Invalid, err, fmt.Sprintf("resources: bad disk size %q", r.Disk))
		}
		out.DiskBytes = int64(n)
	}
	return out, nil
}

//go:embed */template.yaml
var builtin embed.FS

// The built-in templates, parsed once. A broken embedded template is a bug
// that every test run catches, hence the panic.
var all = func() map[string]Template {
	list, err := Load(builtin)
	if err != nil {
		panic("templates: built-in: " + err.Error())
	}
	m := make(map[string]Template, len(list))
	for _, t := range list {
		m[t.Name] = t
	}
	return m
}()

// List returns the built-in templates, sorted by name.
func List() []Template {
	out := make([]Template, 0, len(all))
	for _, t := range all {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Get returns the built-in template called name.
func Get(name string) (Template, error) {
	t, ok := all[name]
	if !ok {
		return Template{}, berth.Errorf(berth.NotFound, "template %q not found", name)
	}
	return t, nil
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// Load reads the templates of fsys: every top-level directory holding a
// template.yaml is one template.
func Load(fsys fs.FS) ([]Template, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, err
	}
	var out []Template
	seen := map[string]bool{}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		raw, err := fs.ReadFile(fsys, path.Join(e.Name(), "template.yaml"))
		if err != nil {
			continue
		}
		t, err := parse(raw)
		if err != nil {
			return nil, fmt.Errorf("%s/template.yaml: %w", e.Name(), err)
		}
		if seen[t.Name] {
			return nil, fmt.Errorf("%s/template.yaml: duplicate template %q", e.Name(), t.Name)
		}
		seen[t.Name] = true
		if t.Build != nil && !hasTag(t.Image) {
			dir, err := fs.Sub(fsys, e.Name())
			if err != nil {
				return nil, err
			}
			d, err := digest(dir)
			if err != nil {
				return nil, err
			}
			t.Image += ":" + d
		}
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// hasTag reports whether an image reference names a tag or digest (a colon
// after the last slash: before it, a colon is a registry's port).
func hasTag(ref string) bool {
	return strings.Contains(ref[strings.LastIndex(ref, "/")+1:], ":") || strings.Contains(ref, "@")
}

// assembly names the way this package turns a recipe into an image. It is
// part of every digest tag: change it when a change here (the rootfs makers,
// the image's layout) makes a different image of an unchanged template.
const assembly = "oci-1"

// digest identifies a template directory's contents. A built template whose
// image names no tag is tagged with it, so that a changed definition makes a
// new image instead of reusing a stale one under the same name.
func digest(dir fs.FS) (string, error) {
	h := sha256.New()
	_, _ = fmt.Fprintf(h, "%s\x00", assembly) // a hash never fails a write
	err := fs.WalkDir(dir, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(dir, name)
		if err != nil {
			return err
		}
		_, _ = fmt.Fprintf(h, "%s\x00%d\x00", name, len(data)) // a hash never fails a write
		h.Write(data)
		return nil
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}

func parse(raw []byte) (Template, error) {
	var t Template
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&t); err != nil {
		return t, err
	}
	switch {
	case !nameRE.MatchString(t.Name):
		return t, fmt.Errorf("bad name %q", t.Name)
	case t.Image == "":
		return t, fmt.Errorf("image is required")
	}
	if b := t.Build; b != nil {
		switch b.Source {
		case "busybox":
		case "debootstrap":
			if b.Suite == "" || b.Mirror == "" {
				return t, fmt.Errorf("debootstrap build needs suite and mirror")
			}
		default:
			return t, fmt.Errorf("unknown build source %q", b.Source)
		}
		if b.WorkDir != "" && !path.IsAbs(b.WorkDir) {
			return t, fmt.Errorf("build: workdir %q is not absolute", b.WorkDir)
		}
	}
	if _, err := t.Resources.Limits(); err != nil {
		return t, err
	}
	return t, nil
}

// Ensure makes t's image present on rt: nothing if it is there already,
// otherwise it is built (templates with a build section) or pulled, with
// progress lines written to progress (nil discards). Concurrent calls for the
// same image share one build; only the first caller sees its progress.
func Ensure(ctx context.Context, rt runtime.Runtime, t Template, progress io.Writer) error {
	ok, err := rt.ImagePresent(ctx, t.Image)
	if err != nil || ok {
		return err
	}
	return once(ctx, t.Image, func() error { return Make(ctx, rt, t, progress) })
}

// Make builds or pulls t's image now, whether or not it is present: the
// API's "build" action.
func Make(ctx context.Context, rt runtime.Runtime, t Template, progress io.Writer) error {
	if progress == nil {
		progress = io.Discard
	}
	if t.Build == nil {
		// Progress is informational: a reader that went away must not
		// fail the pull or build.
		_, _ = fmt.Fprintf(progress, "pulling %s\n", t.Image)
		return rt.PullImage(ctx, t.Image, progress)
	}
	_, _ = fmt.Fprintf(progress, "building %s for template %s (%s)\n", t.Image, t.Name, t.Build.Source)
	return build(ctx, rt, t, progress)
}

// inflight deduplicates concurrent builds of one image.
var inflight = struct {
	sync.Mutex
	m map[string]*call
}{m: map[string]*call{}}

type call struct {
	done chan struct{}
	err  error
}

func once(ctx context.Context, key string, fn func() error) error {
	inflight.Lock()
	if c, ok := inflight.m[key]; ok {
		inflight.Unlock()
		select {
		case <-c.done:
			return c.err
		case <-ctx.Done():
			return berth.Wrap(berth.Unavailable, ctx.Err(), "waiting for image "+key)
		}
	}
	c := &call{done: make(chan struct{})}
	inflight.m[key] = c
	inflight.Unlock()

	c.err = fn()
	inflight.Lock()
	delete(inflight.m, key)
	inflight.Unlock()
	close(c.done)
	return c.err
}
