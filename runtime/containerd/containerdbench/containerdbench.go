// Package containerdbench makes the raw containerd client calls that berth's
// benchmark compares its containerd backend with: the same operations on an
// equally hardened container (tini as PID 1, no new privileges, the safe
// capabilities, the default seccomp profile, limits, the isolated CNI
// network), straight through the client, with none of berth's bookkeeping.
package containerdbench

import (
	"context"
	"io"
	"strconv"
	"syscall"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	gocni "github.com/containerd/go-cni"
	"github.com/distribution/reference"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/runtime"
	bc "github.com/berth-dev/berth/runtime/containerd"
)

// Raw talks to the containerd at address, in namespace.
type Raw struct {
	cli *containerd.Client
	ns  string
	cni gocni.CNI
}

// New returns a raw client; it does not contact the engine.
func New(address, namespace string) (*Raw, error) {
	cli, err := containerd.New(address, containerd.WithDefaultNamespace(namespace))
	if err != nil {
		return nil, err
	}
	cni, err := gocni.New(gocni.WithPluginDir([]string{bc.CNIDir}), gocni.WithConfListBytes(bc.IsolatedConfList()))
	if err != nil {
		return nil, err
	}
	return &Raw{cli: cli, ns: namespace, cni: cni}, nil
}

// Close releases the client.
func (r *Raw) Close() error { return r.cli.Close() }

func (r *Raw) ctx(ctx context.Context) context.Context { return namespaces.WithNamespace(ctx, r.ns) }

// CreateStart creates and starts a container configured as berth configures
// a sandbox and returns once it runs. The isolated network's firewall is
// berth's, made by its first sandbox.
func (r *Raw) CreateStart(ctx context.Context, image, id string, labels map[string]string, memory, pids int64) error {
	ctx = r.ctx(ctx)
	named, err := reference.ParseDockerRef(image)
	if err != nil {
		return err
	}
	img, err := r.cli.GetImage(ctx, named.String())
	if err != nil {
		return err
	}
	caps := make([]string, 0, len(runtime.SafeCapabilities))
	for _, c := range runtime.SafeCapabilities {
		caps = append(caps, "CAP_"+c)
	}
	cont, err := r.cli.NewContainer(ctx, id,
		containerd.WithImage(img),
		containerd.WithNewSnapshot(id, img),
		containerd.WithContainerLabels(labels),
		containerd.WithNewSpec(
			oci.WithImageConfig(img),
			oci.WithHostname(id),
			oci.WithProcessArgs(append([]string{"/sbin/berth-init", "--"}, runtime.IdleCommand...)...),
			oci.WithProcessCwd("/workspace"),
			oci.WithMounts([]specs.Mount{
				{Type: "bind", Source: bc.InitPath, Destination: "/sbin/berth-init", Options: []string{"bind", "ro", "nosuid", "nodev", "rprivate"}},
				{Type: "cgroup", Source: "cgroup", Destination: "/sys/fs/cgroup", Options: []string{"ro", "nosuid", "noexec", "nodev"}},
				{Type: "bind", Source: "/etc/resolv.conf", Destination: "/etc/resolv.conf", Options: []string{"bind", "ro", "nosuid", "nodev", "noexec", "rprivate"}},
			}),
			oci.WithNoNewPrivileges,
			oci.WithCapabilities(caps),
			seccomp.WithDefaultProfile(),
			oci.WithMemoryLimit(uint64(memory)),
			oci.WithMemorySwap(memory),
			oci.WithPidsLimit(pids),
		),
	)
	if err != nil {
		return err
	}
	task, err := cont.NewTask(ctx, cio.NullIO)
	if err != nil {
		return err
	}
	if _, err := r.cni.Setup(ctx, r.ns+"-"+id, "/proc/"+strconv.Itoa(int(task.Pid()))+"/ns/net"); err != nil {
		return err
	}
	return task.Start(ctx)
}

// Exec runs cmd, drains its output and returns its exit code.
func (r *Raw) Exec(ctx context.Context, id string, cmd []string, execID string) (int, error) {
	ctx = r.ctx(ctx)
	cont, err := r.cli.LoadContainer(ctx, id)
	if err != nil {
		return -1, err
	}
	task, err := cont.Task(ctx, nil)
	if err != nil {
		return -1, err
	}
	spec, err := cont.Spec(ctx)
	if err != nil {
		return -1, err
	}
	p := *spec.Process
	p.Args = cmd
	proc, err := task.Exec(ctx, execID, &p, cio.NewCreator(cio.WithStreams(nil, io.Discard, io.Discard)))
	if err != nil {
		return -1, err
	}
	defer func() { _, _ = proc.Delete(ctx) }()
	exited, err := proc.Wait(ctx)
	if err != nil {
		return -1, err
	}
	if err := proc.Start(ctx); err != nil {
		return -1, err
	}
	st := <-exited
	proc.IO().Wait()
	return int(st.ExitCode()), st.Error()
}

func (r *Raw) task(ctx context.Context, id string) (containerd.Task, error) {
	cont, err := r.cli.LoadContainer(ctx, id)
	if err != nil {
		return nil, err
	}
	return cont.Task(ctx, nil)
}

// Pause freezes the container's task.
func (r *Raw) Pause(ctx context.Context, id string) error {
	ctx = r.ctx(ctx)
	t, err := r.task(ctx, id)
	if err != nil {
		return err
	}
	return t.Pause(ctx)
}

// Unpause thaws it.
func (r *Raw) Unpause(ctx context.Context, id string) error {
	ctx = r.ctx(ctx)
	t, err := r.task(ctx, id)
	if err != nil {
		return err
	}
	return t.Resume(ctx)
}

// Remove kills the task, frees its address and deletes the container with
// its snapshot.
func (r *Raw) Remove(ctx context.Context, id string) error {
	ctx = r.ctx(ctx)
	cont, err := r.cli.LoadContainer(ctx, id)
	if err != nil {
		return err
	}
	if t, err := cont.Task(ctx, nil); err == nil {
		exited, err := t.Wait(ctx)
		if err != nil {
			return err
		}
		if err := t.Kill(ctx, syscall.SIGKILL); err != nil {
			return err
		}
		<-exited
		if _, err := t.Delete(ctx); err != nil {
			return err
		}
	}
	if err := r.cni.Remove(ctx, r.ns+"-"+id, ""); err != nil {
		return err
	}
	return cont.Delete(ctx, containerd.WithSnapshotCleanup)
}
