package templates_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/runtime/docker/dockertest"
	"github.com/berth-dev/berth/runtime/runtimetest"
	"github.com/berth-dev/berth/templates"
)

func TestBuiltins(t *testing.T) {
	list := templates.List()
	var names []string
	for _, tmpl := range list {
		names = append(names, tmpl.Name)
		if tmpl.Description == "" || tmpl.Image == "" || tmpl.Build == nil {
			t.Errorf("template %+v: want description, image and a local build", tmpl)
		}
		lim, err := tmpl.Resources.Limits()
		if err != nil || lim.NanoCPUs <= 0 || lim.MemoryBytes <= 0 || lim.PidsLimit <= 0 {
			t.Errorf("template %s: limits %+v, %v", tmpl.Name, lim, err)
		}
	}
	if strings.Join(names, ",") != "base,debian" {
		t.Errorf("built-in templates = %v, want base,debian", names)
	}
	base, err := templates.Get("base")
	if err != nil || !strings.HasPrefix(base.Image, "berth/base:") {
		t.Errorf("Get(base) = %+v, %v", base, err)
	}
	if _, err := templates.Get("nope"); !berth.IsKind(err, berth.NotFound) {
		t.Errorf("Get(nope) = %v, want not_found", err)
	}
}

func TestLimits(t *testing.T) {
	for _, tc := range []struct {
		in   templates.Resources
		want runtime.Resources
		ok   bool
	}{
		{templates.Resources{VCPUs: 1.5, Memory: "512MiB", Pids: 100}, runtime.Resources{NanoCPUs: 1_500_000_000, MemoryBytes: 512 << 20, PidsLimit: 100}, true},
		{templates.Resources{Memory: "1GB"}, runtime.Resources{MemoryBytes: 1_000_000_000}, true},
		{templates.Resources{}, runtime.Resources{}, true},
		{templates.Resources{Memory: "lots"}, runtime.Resources{}, false},
		{templates.Resources{Disk: "10GB"}, runtime.Resources{DiskBytes: 10_000_000_000}, true},
		{templates.Resources{Disk: "huge"}, runtime.Resources{}, false},
		{templates.Resources{VCPUs: -1}, runtime.Resources{}, false},
	} {
		got, err := tc.in.Limits()
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("Limits(%+v) = %+v, %v; want %+v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
		if err != nil && !berth.IsKind(err, berth.Invalid) {
			t.Errorf("Limits(%+v) error kind %s, want invalid", tc.in, berth.KindOf(err))
		}
	}
}

func TestLoad(t *testing.T) {
	good := "name: web\ndescription: d\nimage: example.org/web:1\nresources: {vcpus: 1, memory: 1GB}\n"
	for _, tc := range []struct {
		name, yaml string
		ok         bool
	}{
		{"good", good, true},
		{"unknown field", good + "colour: blue\n", false},
		{"bad name", strings.Replace(good, "name: web", "name: Web/1", 1), false},
		{"no image", "name: web\n", false},
		{"bad source", good + "build: {source: magic}\n", false},
		{"debootstrap without suite", good + "build: {source: debootstrap}\n", false},
		{"dockerfile is gone", good + "build: {source: dockerfile}\n", false},
		{"relative workdir", good + "build: {source: busybox, workdir: work}\n", false},
		{"bad memory", strings.Replace(good, "1GB", "much", 1), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			list, err := templates.Load(fstest.MapFS{"web/template.yaml": {Data: []byte(tc.yaml)}})
			if (err == nil) != tc.ok {
				t.Fatalf("Load = %v, %v; want ok=%v", list, err, tc.ok)
			}
			if tc.ok && (len(list) != 1 || list[0].Name != "web" || list[0].Build != nil) {
				t.Errorf("Load = %+v", list)
			}
		})
	}
}

// The base image must run an agent's ordinary shell script, as root and as
// the unprivileged user. This builds it afresh under a throwaway tag.
func TestBaseImage(t *testing.T) {
	rt := dockertest.New(t)
	ctx := testctx.Context(t) // the test's deadline: a loaded machine builds slowly
	tmpl, err := templates.Get("base")
	if err != nil {
		t.Fatal(err)
	}
	tmpl.Image = "berth-test/base:" + randomID(t)
	t.Cleanup(func() { _ = rt.RemoveImage(context.Background(), tmpl.Image) })

	var progress bytes.Buffer
	start := time.Now()
	if err := templates.Ensure(ctx, rt, tmpl, &progress); err != nil {
		t.Fatalf("ensure: %v\n%s", err, progress.String())
	}
	t.Logf("base image built in %v", time.Since(start).Round(time.Millisecond))
	for _, step := range []string{"building " + tmpl.Image, "making the root filesystem (busybox)", "assembling the image",
		"loading " + tmpl.Image + " into the engine", "Loaded image: " + tmpl.Image} {
		if !strings.Contains(progress.String(), step) {
			t.Errorf("progress lacks %q:\n%s", step, progress.String())
		}
	}
	// The image id the engine has is the one assembled (its config's
	// digest), which the progress names.
	id, err := rt.ImageID(ctx, tmpl.Image)
	if err != nil || !strings.Contains(progress.String(), "image "+id+": 1 layer") {
		t.Errorf("engine's image id %q (%v) is not the one assembled:\n%s", id, err, progress.String())
	}
	// Building it again makes the same image: the tag stays where it was
	// and nothing is removed.
	progress.Reset()
	if err := templates.Make(ctx, rt, tmpl, &progress); err != nil {
		t.Fatalf("make again: %v\n%s", err, progress.String())
	}
	if again, err := rt.ImageID(ctx, tmpl.Image); err != nil || again != id || strings.Contains(progress.String(), "removed") {
		t.Errorf("a rebuild of the same template moved the tag: %q → %q (%v)\n%s", id, again, err, progress.String())
	}
	// Present now: a second Ensure does nothing and says nothing.
	progress.Reset()
	if err := templates.Ensure(ctx, rt, tmpl, &progress); err != nil || progress.Len() != 0 {
		t.Errorf("second ensure: %v, progress %q", err, progress.String())
	}

	lim, _ := tmpl.Resources.Limits()
	if c, err := rt.Capabilities(ctx); err != nil || !c.DiskLimit {
		lim.DiskBytes = 0 // as a create does where the engine cannot enforce it
	}
	id, err = rt.Create(ctx, runtime.Spec{
		Name:      "berth-tmpl-" + randomID(t),
		Image:     tmpl.Image,
		Env:       tmpl.Env,
		Resources: lim,
		Labels:    map[string]string{runtimetest.LabelTest: "templates"},
	})
	if err != nil {
		t.Fatal(err)
	}
	runtimetest.RemoveOnCleanup(t, rt, id)
	if err := rt.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	script := `set -e
mkdir /tmp/w$(id -u) && cd /tmp/w$(id -u)
printf 'b 2\na 1\nc 3\n' > data.txt
sort data.txt | awk '{ s += $2 } END { print "sum", s }'
sed -n 's/^c /see /p' data.txt
grep -c . data.txt
mkdir -p dir/sub && echo x > dir/sub/f && tar czf d.tgz dir && tar tzf d.tgz | wc -l
find /etc -name passwd
echo "$(id -un):$(id -u) $HOME"
wget --help >/dev/null 2>&1 && echo wget
`
	for _, user := range []string{"", "user"} {
		var out, errb bytes.Buffer
		code, err := rt.Exec(ctx, id, runtime.ExecSpec{Cmd: []string{"/bin/sh", "-c", script}, User: user, Stdout: &out, Stderr: &errb})
		if err != nil || code != 0 {
			t.Fatalf("script as %q: code %d err %v\n%s%s", user, code, err, out.String(), errb.String())
		}
		who := "root:0 /root"
		if user == "user" {
			who = "user:1000 /home/user"
		}
		want := "sum 6\nsee 3\n3\n3\n/etc/passwd\n" + who + "\nwget\n"
		if out.String() != want {
			t.Errorf("script as %q printed\n%s\nwant\n%s", user, out.String(), want)
		}
	}
	// The default working directory exists, for agents that assume it.
	var out bytes.Buffer
	if _, err := rt.Exec(ctx, id, runtime.ExecSpec{Cmd: []string{"pwd"}, Stdout: &out}); err != nil || out.String() != "/workspace\n" {
		t.Errorf("default cwd %q, %v; want /workspace", out.String(), err)
	}
}

func TestBaseNeedsStaticBusybox(t *testing.T) {
	rt := dockertest.New(t)
	old := templates.BusyboxPath
	t.Cleanup(func() { templates.BusyboxPath = old })
	templates.BusyboxPath = "/bin/true" // dynamically linked on every distribution
	tmpl, _ := templates.Get("base")
	tmpl.Image = "berth-test/never:" + randomID(t)
	err := templates.Make(context.Background(), rt, tmpl, nil)
	if !berth.IsKind(err, berth.Unavailable) || !strings.Contains(err.Error(), "busybox-static") {
		t.Errorf("Make with a dynamic busybox = %v, want unavailable naming busybox-static", err)
	}
}

// A template naming a registry image pulls it; with no registry reachable
// the answer is a clear Unavailable, quickly.
func TestPullUnreachable(t *testing.T) {
	rt := dockertest.New(t)
	tmpl := templates.Template{Name: "remote", Image: "127.0.0.1:1/berth/remote:1"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var progress bytes.Buffer
	err := templates.Ensure(ctx, rt, tmpl, &progress)
	if !berth.IsKind(err, berth.Unavailable) {
		t.Errorf("ensure of an unreachable image = %v (kind %s), want unavailable", err, berth.KindOf(err))
	}
	if !strings.Contains(progress.String(), "pulling "+tmpl.Image) {
		t.Errorf("progress %q does not say it pulls", progress.String())
	}
}

// The debian template needs the Debian mirror and takes minutes: opt in with
// BERTH_TEST_DEBIAN=1 (.ci/run does). BERTH_TEST_DEBIAN_CACHE names a
// directory that keeps the downloaded packages from one run to the next.
func TestDebianImage(t *testing.T) {
	if os.Getenv("BERTH_TEST_DEBIAN") == "" {
		t.Skip("set BERTH_TEST_DEBIAN=1 to build the debian template (needs the Debian mirror, takes minutes)")
	}
	if dir := os.Getenv("BERTH_TEST_DEBIAN_CACHE"); dir != "" {
		old := templates.DebootstrapCache
		templates.DebootstrapCache = dir
		t.Cleanup(func() { templates.DebootstrapCache = old })
	}
	rt := dockertest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	tmpl, err := templates.Get("debian")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := templates.Make(ctx, rt, tmpl, testWriter{t}); err != nil {
		t.Fatalf("make debian: %v", err)
	}
	t.Logf("debian image built in %v", time.Since(start).Round(time.Second))
	// Bridge network: the script installs a package with apt, which also
	// proves that the capabilities kept are enough for apt's privilege drop.
	id, err := rt.Create(ctx, runtime.Spec{Name: "berth-tmpl-debian-" + randomID(t), Image: tmpl.Image, Env: tmpl.Env,
		Network: runtime.NetworkBridge, Labels: map[string]string{runtimetest.LabelTest: "templates"}})
	if err != nil {
		t.Fatal(err)
	}
	runtimetest.RemoveOnCleanup(t, rt, id)
	if err := rt.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	script := `. /etc/os-release && echo "$VERSION_CODENAME"; bash -c 'echo bash $((6*7))'; apt-get --version | head -1 | cut -d' ' -f1; stat -c %G /etc/shadow; apt-get -qq update && apt-get -qq install -y --no-install-recommends jq >/dev/null && echo '{"a":7}' | jq .a`
	code, err := rt.Exec(ctx, id, runtime.ExecSpec{Cmd: []string{"/bin/sh", "-c", script}, Stdout: &out, Stderr: &errb})
	want := "bookworm\nbash 42\napt\nshadow\n7\n"
	if err != nil || code != 0 || out.String() != want {
		t.Errorf("debian script: code %d err %v\n%s%s\nwant\n%s", code, err, out.String(), errb.String(), want)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func randomID(t testing.TB) string {
	b := make([]byte, 5)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func TestDigestTag(t *testing.T) {
	def := "name: web\ndescription: d\nimage: berth/web\nbuild: {source: busybox, workdir: /w}\n"
	load := func(yaml string) string {
		t.Helper()
		list, err := templates.Load(fstest.MapFS{"web/template.yaml": {Data: []byte(yaml)}})
		if err != nil || len(list) != 1 {
			t.Fatalf("Load: %v, %v", list, err)
		}
		return list[0].Image
	}
	a, b := load(def), load(strings.Replace(def, "/w}", "/x}", 1))
	if !strings.HasPrefix(a, "berth/web:") || len(a) != len("berth/web:")+12 || a == b || a != load(def) {
		t.Errorf("digest tags %q and %q: want stable, content-derived, different", a, b)
	}
	list, err := templates.Load(fstest.MapFS{"web/template.yaml": {Data: []byte(strings.Replace(def, "berth/web", "localhost:5000/web:7", 1))}})
	if err != nil || list[0].Image != "localhost:5000/web:7" {
		t.Errorf("an explicit tag was changed: %v, %v", list, err)
	}
}

// The base image is reproducible: two builds from the same busybox are the
// same archive, byte for byte, and its configuration is the recipe's.
func TestImageReproducible(t *testing.T) {
	tmpl, err := templates.Get("base")
	if err != nil {
		t.Fatal(err)
	}
	if err := templates.CanBuild(tmpl); err != nil {
		if runtimetest.InCI() {
			t.Fatal(err)
		}
		t.Skip("SKIPPED: " + err.Error())
	}
	ctx := testctx.Context(t)
	archive := func() string {
		t.Helper()
		arc, err := templates.Archive(ctx, tmpl, nil)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		_, err = io.Copy(h, arc)
		if cerr := arc.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
		return hex.EncodeToString(h.Sum(nil))
	}
	if a, b := archive(), archive(); a != b {
		t.Errorf("two archives of base differ: sha256 %s and %s", a, b)
	}

	img, release, err := templates.Image(ctx, tmpl, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	// The template's env, sorted.
	want := "LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	if got := strings.Join(c.Env, " "); got != want {
		t.Errorf("env %q, want %q", got, want)
	}
	if strings.Join(c.Cmd, " ") != "/bin/sh" || len(c.Entrypoint) != 0 || c.WorkingDir != "/workspace" || c.User != "" ||
		c.Labels[templates.LabelTemplate] != "base" || cf.OS != "linux" || !cf.Created.Equal(templates.Epoch) {
		t.Errorf("config %+v created %v os %s", c, cf.Created, cf.OS)
	}
	if layers, err := img.Layers(); err != nil || len(layers) != 1 {
		t.Errorf("layers %v, %v; want one", layers, err)
	}
}
