package docker_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/runtime/docker"
	"github.com/berth-dev/berth/runtime/docker/dockertest"
	"github.com/berth-dev/berth/runtime/runtimetest"
)

// What `docker info` says decides whether a disk limit is enforceable;
// a pure function of it (and of the data root's mount options), so every
// storage driver can be checked on one machine.
func TestDiskLimitSupport(t *testing.T) {
	backing := func(fs string) [][2]string {
		return [][2]string{{"Backing Filesystem", fs}, {"Supports d_type", "true"}}
	}
	seen := func(o string) func(string) (string, bool) {
		return func(dir string) (string, bool) {
			if dir != "/var/lib/docker" {
				t.Errorf("mount options asked for %q, want the engine's data root", dir)
			}
			return o, true
		}
	}
	unseen := func(string) (string, bool) { return "", false }
	for _, c := range []struct {
		name, driver string
		status       [][2]string
		opts         func(string) (string, bool)
		ok           bool
		why          string
	}{
		{"overlay2 on ext4", "overlay2", backing("extfs"), seen("rw,relatime"), false, "storage driver overlay2 on extfs cannot enforce a per-sandbox disk limit"},
		{"overlay2 on xfs with pquota", "overlay2", backing("xfs"), seen("rw,relatime,attr2,inode64,logbufs=8,logbsize=32k,prjquota"), true, ""},
		{"overlay2 on xfs without pquota", "overlay2", backing("xfs"), seen("rw,relatime,attr2,inode64,noquota"), false, "overlay2 on xfs without the pquota mount option"},
		{"overlay2 on xfs of a remote engine", "overlay2", backing("xfs"), unseen, false, "cannot see to check for pquota"},
		{"overlay2, no backing filesystem reported", "overlay2", nil, unseen, false, "overlay2 on an unknown filesystem"},
		{"btrfs", "btrfs", [][2]string{{"Build Version", "Btrfs v6.2"}}, unseen, true, ""},
		{"zfs", "zfs", nil, unseen, true, ""},
		{"devicemapper", "devicemapper", nil, unseen, true, ""},
		{"vfs", "vfs", nil, unseen, false, "storage driver vfs cannot"},
		{"fuse-overlayfs (rootless)", "fuse-overlayfs", nil, unseen, false, "storage driver fuse-overlayfs cannot"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := docker.DiskLimitSupport(c.driver, c.status, "/var/lib/docker", c.opts)
			if got.DiskLimit != c.ok || (c.ok && got.NoDiskLimit != "") {
				t.Errorf("%+v, want DiskLimit %v", got, c.ok)
			}
			if !c.ok && (!strings.Contains(got.NoDiskLimit, c.why) || !strings.Contains(got.NoDiskLimit, "docker engine")) {
				t.Errorf("reason %q, want it to name the docker engine and say %q", got.NoDiskLimit, c.why)
			}
		})
	}
}

// The mount options of the filesystem holding a directory, as the xfs
// pquota check reads them: a directory on a tmpfs mounted here with an
// option of the test's choosing, under the filesystem of / (the longest
// mount point wins).
func TestMountOptions(t *testing.T) {
	if os.Geteuid() != 0 {
		if runtimetest.InCI() {
			t.Fatal("CI=true but not root: cannot mount a tmpfs")
		}
		t.Skip("not root: cannot mount a tmpfs")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m,mode=0750", "berth-test", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, filepath.Join(dir, "sub")} {
		o, ok := docker.MountOptions(p)
		if !ok || !strings.Contains(","+o+",", ",mode=750,") {
			t.Errorf("mount options of %s: %q, %v; want the tmpfs's (mode=750)", p, o, ok)
		}
	}
	if o, ok := docker.MountOptions(filepath.Dir(dir)); !ok || strings.Contains(o, "mode=750") {
		t.Errorf("mount options of %s, outside the tmpfs: %q, %v", filepath.Dir(dir), o, ok)
	}
	if _, ok := docker.MountOptions(filepath.Join(dir, "missing")); ok {
		t.Error("mount options of a missing directory: ok")
	}
}

// On the engine at hand: Capabilities agrees with what Create does with a
// disk limit. Where the engine cannot enforce one, Create refuses it
// (NotSupported) instead of making a container that ignores it; where it
// can, a write past the limit fails inside the container.
func TestDiskLimitOnThisEngine(t *testing.T) {
	rt := dockertest.New(t)
	image := runtimetest.BaseImage(t, rt)
	ctx := testctx.Context(t)
	c, err := rt.Capabilities(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const limit = 64 << 20
	spec := runtime.Spec{
		Name: "berth-disk-" + uniq(), Image: image,
		Labels:    map[string]string{runtimetest.LabelTest: t.Name()},
		Resources: runtime.Resources{DiskBytes: limit},
	}
	if !c.DiskLimit {
		if c.NoDiskLimit == "" {
			t.Error("no disk limit and no reason")
		}
		id, err := rt.Create(ctx, spec)
		if err == nil {
			runtimetest.RemoveOnCleanup(t, rt, id)
		}
		if !berth.IsKind(err, berth.NotSupported) || !strings.Contains(err.Error(), c.NoDiskLimit) {
			t.Fatalf("create with a disk limit on an engine that cannot enforce it: %v; want not_supported saying %q", err, c.NoDiskLimit)
		}
		t.Logf("this engine: %s (the enforcing side is tested where the engine can: TestDiskLimitEnforced)", c.NoDiskLimit)
		return
	}
	diskLimitEnforced(t, rt, spec)
}

// The enforcing side, on an engine that can enforce a disk limit whatever
// this machine's engine is: a private dockerd (its own data root, exec
// root, socket, managed containerd and network namespace, no networking)
// whose storage driver is btrfs, on a loop-mounted btrfs pool the test
// makes.
func TestDiskLimitEnforced(t *testing.T) {
	rt := btrfsEngine(t)
	ctx := testctx.Context(t)
	c, err := rt.Capabilities(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !c.DiskLimit {
		t.Fatalf("an engine on the btrfs storage driver: %+v, want DiskLimit", c)
	}
	image := runtimetest.BaseImage(t, rt)
	diskLimitEnforced(t, rt, runtime.Spec{
		Name: "berth-disk-" + uniq(), Image: image,
		Labels:    map[string]string{runtimetest.LabelTest: t.Name()},
		Resources: runtime.Resources{DiskBytes: 64 << 20},
	})
}

// diskLimitEnforced creates a container of spec (which has a disk limit)
// and checks that writes within the limit work and a write past it fails.
func diskLimitEnforced(t *testing.T, rt runtime.Runtime, spec runtime.Spec) {
	t.Helper()
	ctx := testctx.Context(t)
	id, err := rt.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	runtimetest.RemoveOnCleanup(t, rt, id)
	if err := rt.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	sh := func(script string) (int, string) {
		var out strings.Builder
		code, err := rt.Exec(ctx, id, runtime.ExecSpec{Cmd: []string{"/bin/sh", "-c", script}, Stdout: &out, Stderr: &out})
		if err != nil {
			t.Fatal(err)
		}
		return code, out.String()
	}
	mib := spec.Resources.DiskBytes >> 20
	if code, out := sh(fmt.Sprintf("dd if=/dev/zero of=/within bs=1M count=%d conv=fsync", mib/4)); code != 0 {
		t.Fatalf("writing a quarter of the %d MiB limit: exit %d: %s", mib, code, out)
	}
	code, out := sh(fmt.Sprintf("dd if=/dev/zero of=/past bs=1M count=%d conv=fsync", 2*mib))
	if code == 0 || !(strings.Contains(out, "Disk quota exceeded") || strings.Contains(out, "No space left on device")) {
		t.Fatalf("writing twice the %d MiB limit: exit %d, %q; want the write refused (quota exceeded or no space)", mib, code, out)
	}
}

func uniq() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// btrfsEngine starts a private Docker engine on the btrfs storage driver
// and returns a runtime for it; cleanup stops it and removes its pool. It
// needs root, dockerd, btrfs-progs and loop devices: without them the test
// is skipped, or fails under CI, where they are installed (.ci/run,
// .ci/docker-up).
func btrfsEngine(t *testing.T) *docker.Docker {
	t.Helper()
	why := ""
	switch {
	case os.Geteuid() != 0:
		why = "not root (the private engine mounts a btrfs loop pool)"
	case !have("dockerd"):
		why = "dockerd not installed"
	case !have("unshare"):
		why = "unshare (util-linux) not installed"
	case !have("mkfs.btrfs"):
		why = "btrfs-progs not installed"
	}
	if why == "" {
		if _, err := os.Stat("/dev/loop-control"); err != nil {
			why = "no loop devices: " + err.Error()
		}
	}
	if why != "" {
		if runtimetest.InCI() {
			t.Fatalf("CI=true but a private btrfs engine cannot run: %s", why)
		}
		t.Skipf("skipping: %s", why)
	}
	dir := t.TempDir()
	pool, root, execRoot := filepath.Join(dir, "pool.img"), filepath.Join(dir, "root"), filepath.Join(dir, "exec")
	sock := filepath.Join(dir, "d.sock")
	run := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
		}
	}
	f, err := os.Create(pool)
	if err != nil {
		t.Fatal(err)
	}
	err = f.Truncate(2 << 30) // sparse
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	run("mkfs.btrfs", "-q", pool)
	for _, d := range []string{root, execRoot} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	run("mount", "-o", "loop", pool, root) // the loop device detaches itself at umount
	t.Cleanup(func() {
		if out, err := exec.Command("umount", root).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", root, err, out)
		}
	})

	var log bytes.Buffer
	// In a network namespace of its own: an engine started with --bridge
	// none deletes the host's docker0 (moby's removeDefaultBridgeInterface),
	// which the machine's engine needs. Its unix socket is a path, reachable
	// from here all the same, and its containers have no network.
	cmd := exec.Command("unshare", "--net", "dockerd", "--data-root", root, "--exec-root", execRoot, "--pidfile", filepath.Join(dir, "pid"),
		"-H", "unix://"+sock, "--storage-driver", "btrfs", "--config-file", filepath.Join(dir, "daemon.json"),
		"--bridge", "none", "--iptables=false", "--ip6tables=false", "--ip-masq=false", "--userland-proxy=false")
	if err := os.WriteFile(filepath.Join(dir, "daemon.json"), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		// Registered after the umount, so it runs first: the engine (and
		// its containerd) stop, then the pool goes.
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Errorf("stop the private dockerd: %v", err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Logf("the private dockerd exited: %v", err) // SIGTERM's exit status, at most
			}
		case <-time.After(2 * time.Minute): // hang guard
			_ = cmd.Process.Kill()
			t.Errorf("the private dockerd did not stop within 2 minutes (killed: %v):\n%s", <-done, log.String())
		}
	})
	rt, err := docker.New("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Close() })
	exited := false
	testctx.Eventually(t, "the private dockerd answers", func() bool {
		select {
		case err := <-done:
			done <- err
			exited = true
			return true
		default:
		}
		return rt.Ping(testctx.Context(t)) == nil
	})
	if exited {
		t.Fatalf("the private dockerd exited:\n%s", log.String())
	}
	return rt
}

func have(name string) bool { _, err := exec.LookPath(name); return err == nil }
