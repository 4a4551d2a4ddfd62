package supervisor

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"
	"time"
)

// BinaryName is the supervisor's file name next to the berth executable.
const BinaryName = "berth-supervisor"

// Install puts a static supervisor binary into dir (<data>/supervisor) and
// returns its path. The binary is, in order: the file bin names (when not
// ""); berth-supervisor next to the running executable (make build puts
// it there); or, in a source checkout with a Go toolchain (go build
// ./cmd/berth, go test), one built from this module's cmd/berth-supervisor
// with CGO_ENABLED=0, once per process. It is copied under a name of its
// content's hash, never overwritten: containers keep mounting the file they
// were created with across restarts.
func Install(ctx context.Context, dir, bin string) (string, error) {
	b, err := binary(ctx, bin)
	if err != nil {
		return "", err
	}
	if err := checkStatic(b); err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	dst := filepath.Join(dir, BinaryName+"-"+hex.EncodeToString(sum[:8]))
	if got, err := os.ReadFile(dst); err == nil && bytes.Equal(got, b) {
		return dst, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return "", err
	}
	_, werr := tmp.Write(b)
	if err := errors.Join(werr, tmp.Chmod(0o555), tmp.Sync(), tmp.Close()); err != nil {
		_ = os.Remove(tmp.Name())
		return "", err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		_ = os.Remove(tmp.Name())
		return "", err
	}
	return dst, nil
}

// binary reads the supervisor binary from where Install finds it.
func binary(ctx context.Context, bin string) ([]byte, error) {
	if bin != "" {
		return os.ReadFile(bin)
	}
	if self, err := os.Executable(); err == nil {
		if b, err := os.ReadFile(filepath.Join(filepath.Dir(self), BinaryName)); err == nil {
			return b, nil
		}
	}
	return built(ctx)
}

var build struct {
	sync.Mutex
	bin []byte
}

// buildTimeout bounds the one build from source.
const buildTimeout = 5 * time.Minute

// built builds cmd/berth-supervisor from the source this package was
// compiled from, once per process.
func built(ctx context.Context) ([]byte, error) {
	build.Lock()
	defer build.Unlock()
	if build.bin != nil {
		return build.bin, nil
	}
	root, err := sourceRoot()
	if err != nil {
		return nil, err
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(goruntime.GOROOT(), "bin", "go")
		if _, serr := os.Stat(gobin); serr != nil {
			return nil, fmt.Errorf("no %s next to the berth executable and no Go toolchain to build one (%s); build it with make build or pass --supervisor", BinaryName, err)
		}
	}
	tmp, err := os.MkdirTemp("", "berth-supervisor-build-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	out := filepath.Join(tmp, BinaryName)
	ctx, cancel := context.WithTimeout(ctx, buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, gobin, "build", "-trimpath", "-ldflags=-s -w", "-o", out, "./cmd/berth-supervisor")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goruntime.GOARCH)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build %s from %s: %w: %s", BinaryName, root, err, strings.TrimSpace(string(msg)))
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return nil, err
	}
	build.bin = b
	return b, nil
}

// sourceRoot is the module directory this package was compiled from, when
// it is still there (not with -trimpath, nor on another machine).
func sourceRoot() (string, error) {
	_, file, _, ok := goruntime.Caller(0)
	if !ok || !filepath.IsAbs(file) {
		return "", fmt.Errorf("no %s next to the berth executable, and berth was built without its source path (-trimpath): build it with make build or pass --supervisor", BinaryName)
	}
	root := filepath.Dir(filepath.Dir(file))
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil || !bytes.Contains(gomod, []byte("module github.com/berth-dev/berth\n")) {
		return "", fmt.Errorf("no %s next to the berth executable, and berth's source is not at %s: build it with make build or pass --supervisor", BinaryName, root)
	}
	return root, nil
}

// checkStatic makes sure b is a Linux executable for this machine that
// needs no dynamic loader: it runs inside images without a libc.
func checkStatic(b []byte) error {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("%s is not an ELF executable: %w", BinaryName, err)
	}
	defer func() { _ = f.Close() }()
	want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "386": elf.EM_386, "arm": elf.EM_ARM,
		"riscv64": elf.EM_RISCV, "ppc64le": elf.EM_PPC64, "s390x": elf.EM_S390}[goruntime.GOARCH]
	if want != 0 && f.Machine != want {
		return fmt.Errorf("%s is built for %v, not %s", BinaryName, f.Machine, goruntime.GOARCH)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked: build it with CGO_ENABLED=0", BinaryName)
		}
	}
	return nil
}
