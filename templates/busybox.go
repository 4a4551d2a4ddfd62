package templates

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"os"
	"os/exec"
	"path"
	"strings"

	"github.com/berth-dev/berth"
)

// BusyboxPath is the busybox the "base" template is made of. It must be
// statically linked (Debian: busybox-static), since the image has no libc.
var BusyboxPath = "/bin/busybox"

// The unprivileged user of the base image, for agents that drop root.
const (
	baseUser = "user"
	baseUID  = 1000
)

// busyboxRootfs returns a root filesystem, as a tar archive, made of the
// static busybox at bin: the binary, a link for each of its applets at the
// path busybox itself lists, and the few files and directories that programs
// and shell scripts expect, and the directories extra names (with parents
// first). Every file is dated Epoch and owned by number, so the same busybox
// gives the same bytes.
func busyboxRootfs(ctx context.Context, bin string, extra []string) ([]byte, error) {
	if err := checkStatic(bin); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, berth.Wrap(berth.Unavailable, err, "base template: read busybox")
	}
	out, err := exec.CommandContext(ctx, bin, "--list-full").Output()
	if err != nil {
		return nil, berth.Wrap(berth.Unavailable, err, "base template: busybox --list-full")
	}

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := Epoch
	dir := func(name string, mode int64, uid int) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Uid: uid, Gid: uid, ModTime: now})
	}
	file := func(name string, mode int64, body []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body)), ModTime: now}); err != nil {
			return err
		}
		_, err := tw.Write(body)
		return err
	}
	dirs := []struct {
		name string
		mode int64
		uid  int
	}{
		{"bin", 0o755, 0}, {"sbin", 0o755, 0}, {"usr", 0o755, 0}, {"usr/bin", 0o755, 0},
		{"usr/sbin", 0o755, 0}, {"usr/local", 0o755, 0}, {"usr/local/bin", 0o755, 0},
		{"usr/local/sbin", 0o755, 0}, {"etc", 0o755, 0}, {"root", 0o700, 0},
		{"home", 0o755, 0}, {"home/" + baseUser, 0o755, baseUID}, {"tmp", 0o1777, 0},
		{"var", 0o755, 0}, {"var/tmp", 0o1777, 0}, {"var/log", 0o755, 0}, {"run", 0o755, 0},
		{"proc", 0o555, 0}, {"sys", 0o555, 0}, {"dev", 0o755, 0}, {"mnt", 0o755, 0},
	}
	made := map[string]bool{}
	for _, d := range dirs {
		if err := dir(d.name, d.mode, d.uid); err != nil {
			return nil, err
		}
		made[d.name] = true
	}
	for _, name := range extra {
		if made[name] {
			continue
		}
		if err := dir(name, 0o755, 0); err != nil {
			return nil, err
		}
		made[name] = true
	}
	etc := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\n" +
			"user:x:1000:1000:user:/home/user:/bin/sh\n" +
			"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
		"etc/group":      "root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n",
		"etc/shadow":     "root:*:19000:0:99999:7:::\nuser:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n",
		"etc/os-release": "NAME=\"berth base\"\nID=berth-base\nPRETTY_NAME=\"berth base (BusyBox)\"\n",
		"etc/profile":    "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n",
	}
	for _, name := range []string{"etc/passwd", "etc/group", "etc/shadow", "etc/os-release", "etc/profile"} {
		mode := int64(0o644)
		if name == "etc/shadow" {
			mode = 0o600
		}
		if err := file(name, mode, []byte(etc[name])); err != nil {
			return nil, err
		}
	}
	if err := file("bin/busybox", 0o755, data); err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		name := strings.TrimSpace(sc.Text())
		if name == "" || name == "bin/busybox" || path.IsAbs(name) || strings.Contains(name, "..") {
			continue
		}
		hdr := &tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: "/bin/busybox", Mode: 0o777, ModTime: now}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// checkStatic refuses a dynamically linked busybox, which would build an
// image whose every command fails with "not found".
func checkStatic(bin string) error {
	f, err := elf.Open(bin)
	if err != nil {
		return berth.Wrap(berth.Unavailable, err, "base template needs a static busybox at "+bin+" (Debian: apt-get install busybox-static)")
	}
	defer func() { _ = f.Close() }() // opened read-only: nothing to flush
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return berth.Errorf(berth.Unavailable, "base template: %s is dynamically linked; install busybox-static", bin)
		}
	}
	return nil
}
