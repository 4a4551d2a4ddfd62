// Package containerd is berth's containerd backend: it implements
// runtime.Runtime with containerd's Go client, in a namespace of its own
// (DefaultNamespace), with the Docker backend's labels, hardening and network
// guarantees. It is the only package of berth that imports containerd's
// client; nothing of it appears in its exported API.
//
// It uses the v2 client (github.com/containerd/containerd/v2/client) against
// the containerd that Debian 12 ships (1.6.20): the v2 client speaks the same
// gRPC services (containers, tasks, snapshots, images, content, leases,
// introspection), and every call berth makes avoids the services 1.6 lacks
// (the transfer service: Pull and Import are the client-side ones; sandbox
// API: not used). The conformance suite runs it against 1.6.20.
//
// berth must run as root on the engine's host: the exec streams are FIFOs
// on the host, bridge networking is set up from the host (CNI plugins and
// the firewall), and the kill of a cancelled exec finds its processes in the
// host's /proc.
package containerd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/defaults"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/identifiers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/distribution/reference"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/runtime"
)

var _ runtime.Runtime = (*Containerd)(nil)

// Defaults of the berth server's flags: the standalone containerd that
// .ci/containerd-up starts beside dockerd's, and berth's own namespace.
const (
	DefaultAddress   = "/run/berth-containerd/containerd.sock"
	DefaultNamespace = "berth"
)

// InitPath is the static init (Debian's tini-static, package tini) that is
// bind-mounted read-only into every container and runs as its PID 1: it
// forwards SIGTERM to the main command (so Stop is quick) and reaps what
// exec'd commands leave behind, as the Docker engine's --init does.
var InitPath = "/usr/bin/tini-static"

// initTarget is where the init appears inside the container.
const initTarget = "/sbin/berth-init"

// Labels of berth's own bookkeeping on a container. They are kept out of
// runtime.Container.Labels.
const (
	labelPrefix  = "berth.containerd/"
	labelImage   = labelPrefix + "image"   // the reference Create was given
	labelStarted = labelPrefix + "started" // RFC 3339 time of the last start
	labelIP      = labelPrefix + "ip"      // address of the last start
	labelExit    = labelPrefix + "exit"    // exit code of the last stopped task

	// labelNetworkMode records a container's runtime network mode, as the
	// Docker backend does.
	labelNetworkMode = "berth.network"
	// labelSupervisor marks a container whose PID 1 is berth's supervisor
	// (runtime.Spec.Supervisor), as the Docker backend marks it.
	labelSupervisor = "berth.supervisor"
)

// Containerd is a runtime.Runtime backed by containerd. It is safe for
// concurrent use.
type Containerd struct {
	cli       *containerd.Client
	address   string
	namespace string
	net       *networks
}

// New returns a runtime for the containerd at address (a unix socket path;
// "" is DefaultAddress) using namespace ("" is DefaultNamespace). It does not
// contact the engine: the gRPC connection is made lazily and again after a
// failure, so the server starts while containerd is down and works once it
// is back. (The client waits up to 2 s for a missing socket to appear, and
// retries a lost connection at most 2 s apart.)
func New(address, namespace string) (*Containerd, error) {
	if address == "" {
		address = DefaultAddress
	}
	if namespace == "" {
		namespace = DefaultNamespace
	}
	if err := identifiers.Validate(namespace); err != nil {
		return nil, berth.Wrap(berth.Invalid, err, "containerd: bad namespace")
	}
	cli, err := containerd.New(strings.TrimPrefix(address, "unix://"),
		containerd.WithDefaultNamespace(namespace), containerd.WithTimeout(2*time.Second))
	if err != nil {
		return nil, berth.Wrap(berth.Invalid, err, "containerd: bad engine address")
	}
	return &Containerd{cli: cli, address: address, namespace: namespace, net: newNetworks(namespace)}, nil
}

// Address is the engine address in use.
func (c *Containerd) Address() string { return c.address }

// Namespace is the containerd namespace berth's containers live in.
func (c *Containerd) Namespace() string { return c.namespace }

// Close releases the client's connection.
func (c *Containerd) Close() error { return c.cli.Close() }

func (c *Containerd) ctx(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, c.namespace)
}

// Ping reports whether the engine answers.
func (c *Containerd) Ping(ctx context.Context) error {
	if _, err := c.cli.Version(c.ctx(ctx)); err != nil {
		return berth.Wrap(berth.Unavailable, err, "container engine unreachable")
	}
	return nil
}

// idPattern is containerd's rule for identifiers (container ids here).
var idPattern = regexp.MustCompile(`^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$`)

// Create makes a hardened container from spec. Its id is its name:
// containerd has no separate names.
func (c *Containerd) Create(ctx context.Context, spec runtime.Spec) (string, error) {
	if spec.Image == "" {
		return "", berth.Errorf(berth.Invalid, "container spec: image is required")
	}
	id := spec.Name
	if id == "" {
		id = "berth-" + randomHex(8)
	}
	if len(id) > 76 || !idPattern.MatchString(id) {
		return "", berth.Errorf(berth.Invalid, "container spec: name %q is not a valid containerd id (letters, digits and . _ - between them, at most 76)", id)
	}
	if spec.Resources.DiskBytes > 0 {
		// Never make a container whose disk limit would be ignored.
		return "", berth.Errorf(berth.NotSupported, "create container %s: %s", id, noDiskLimit)
	}
	mode := spec.Network
	if mode == "" {
		mode = runtime.NetworkNone
	}
	if _, err := c.net.forMode(mode); err != nil {
		return "", err
	}
	for _, m := range spec.Mounts {
		if !filepath.IsAbs(m.Source) || !filepath.IsAbs(m.Target) {
			return "", berth.Errorf(berth.Invalid, "container spec: mount %s:%s: paths must be absolute", m.Source, m.Target)
		}
		if _, err := os.Stat(m.Source); err != nil {
			return "", berth.Wrap(berth.Invalid, err, "container spec: mount source "+m.Source)
		}
	}
	if spec.Supervisor == nil {
		if _, err := os.Stat(InitPath); err != nil {
			return "", berth.Wrap(berth.Internal, err, "containerd: the sandbox init "+InitPath+" is missing (install Debian's tini)")
		}
	}
	ctx = c.ctx(ctx)
	name, err := normalize(spec.Image)
	if err != nil {
		return "", err
	}
	img, err := c.cli.GetImage(ctx, name)
	if err != nil {
		return "", translate(err, "create container "+id+": image "+spec.Image)
	}
	labels := map[string]string{runtime.ManagedLabel: "true"}
	for k, v := range spec.Labels {
		labels[k] = v
	}
	labels[labelNetworkMode] = mode
	labels[labelImage] = spec.Image
	init := initTarget
	if spec.Supervisor != nil {
		init = runtime.SupervisorPath
		labels[labelSupervisor] = "true"
	}

	cmd := spec.Cmd
	if len(cmd) == 0 {
		cmd = runtime.IdleCommand
	}
	hostname := spec.Hostname
	if hostname == "" {
		hostname = id
	}
	if len(hostname) > 63 {
		hostname = hostname[:63]
	}
	opts := []oci.SpecOpts{
		oci.WithImageConfig(img),
		oci.WithHostname(hostname),
		oci.WithEnv(envList(spec.Env)),
		// The init as PID 1 (berth's supervisor, or tini), with the
		// command under it.
		oci.WithProcessArgs(append([]string{init, "--"}, cmd...)...),
		oci.WithMounts(mounts(spec.Mounts, mode, spec.Supervisor)),
		oci.WithNoNewPrivileges,
		oci.WithCapabilities(capabilities()),
		seccomp.WithDefaultProfile(),
		withResources(spec.Resources),
	}
	if spec.WorkDir != "" {
		opts = append(opts, oci.WithProcessCwd(spec.WorkDir))
	}
	if spec.User != "" {
		opts = append(opts, oci.WithUser(spec.User))
	}
	_, err = c.cli.NewContainer(ctx, id,
		containerd.WithImage(img),
		containerd.WithImageName(name),
		containerd.WithNewSnapshot(id, img),
		containerd.WithNewSpec(opts...),
		containerd.WithContainerLabels(labels),
	)
	if err != nil {
		if !cerrdefs.IsAlreadyExists(err) {
			// The snapshot was made before the failing step: remove it,
			// on its own deadline (ctx may be what failed).
			cctx, cancel := cleanupCtx(ctx)
			defer cancel()
			if rerr := c.cli.SnapshotService(defaults.DefaultSnapshotter).Remove(cctx, id); rerr != nil && !cerrdefs.IsNotFound(rerr) {
				err = errors.Join(err, rerr)
			}
		}
		return "", translate(err, "create container "+id)
	}
	return id, nil
}

// mounts are the bind mounts of a container: the sandbox init (berth's
// supervisor, read-only, and its socket directory; or tini), the host's
// resolv.conf on a network with outbound access, and the spec's own.
func mounts(ms []runtime.Mount, mode string, sv *runtime.Supervisor) []specs.Mount {
	init := []specs.Mount{{
		Type: "bind", Source: InitPath, Destination: initTarget,
		Options: []string{"bind", "ro", "nosuid", "nodev", "rprivate"},
	}}
	if sv != nil {
		init = []specs.Mount{{
			Type: "bind", Source: sv.Binary, Destination: runtime.SupervisorPath,
			Options: []string{"bind", "ro", "nosuid", "nodev", "rprivate"},
		}, {
			Type: "bind", Source: sv.SocketDir, Destination: runtime.SupervisorRunDir,
			Options: []string{"bind", "rw", "nosuid", "nodev", "noexec", "rprivate"},
		}}
	}
	out := append(init, specs.Mount{
		// The container's own cgroups, read-only, as the Docker engine
		// mounts them: a sandbox can read its limits.
		Type: "cgroup", Source: "cgroup", Destination: "/sys/fs/cgroup",
		Options: []string{"ro", "nosuid", "noexec", "nodev"},
	})
	if mode != runtime.NetworkNone {
		out = append(out, specs.Mount{
			Type: "bind", Source: resolvConf(), Destination: "/etc/resolv.conf",
			Options: []string{"bind", "ro", "nosuid", "nodev", "noexec", "rprivate"},
		})
	}
	for _, m := range ms {
		rw := "rw"
		if m.ReadOnly {
			rw = "ro"
		}
		// rbind with rprivate, as the Docker backend: a sandbox must not see
		// (or create) mounts that appear later under a workspace on the
		// host, nor propagate its own back.
		out = append(out, specs.Mount{
			Type: "bind", Source: m.Source, Destination: m.Target,
			Options: []string{"rbind", rw, "rprivate"},
		})
	}
	return out
}

// resolvConf is the host's resolver configuration to give a sandbox with
// outbound access; systemd-resolved's stub (127.0.0.53) is useless in another
// network namespace, its upstream list is what to give then.
func resolvConf() string {
	const upstream = "/run/systemd/resolve/resolv.conf"
	if b, err := os.ReadFile("/etc/resolv.conf"); err == nil && strings.Contains(string(b), "127.0.0.53") {
		if _, err := os.Stat(upstream); err == nil {
			return upstream
		}
	}
	return "/etc/resolv.conf"
}

func capabilities() []string {
	caps := make([]string, 0, len(runtime.SafeCapabilities))
	for _, c := range runtime.SafeCapabilities {
		caps = append(caps, "CAP_"+c)
	}
	return caps
}

// withResources applies runtime.Resources as the Docker engine does: CPU as
// a CFS quota over a 100 ms period, memory with no swap beyond it.
func withResources(r runtime.Resources) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		if s.Linux.Resources == nil {
			s.Linux.Resources = &specs.LinuxResources{}
		}
		res := s.Linux.Resources
		if r.NanoCPUs > 0 {
			period := uint64(100_000)
			quota := r.NanoCPUs * int64(period) / 1_000_000_000
			res.CPU = &specs.LinuxCPU{Period: &period, Quota: &quota}
		}
		if r.MemoryBytes > 0 {
			limit := r.MemoryBytes
			res.Memory = &specs.LinuxMemory{Limit: &limit, Swap: &limit}
		}
		if r.PidsLimit > 0 {
			limit := r.PidsLimit
			res.Pids = &specs.LinuxPids{Limit: &limit}
		}
		return nil
	}
}

// Start starts a created or stopped container in a new task; the container's
// snapshot, its root filesystem, is the one it had. A bridge container's
// network is set up in the task's new network namespace before its command
// runs.
func (c *Containerd) Start(ctx context.Context, id string) error {
	ctx = c.ctx(ctx)
	what := "start container " + id
	cont, err := c.cli.LoadContainer(ctx, id)
	if err != nil {
		return translate(err, what)
	}
	info, err := cont.Info(ctx)
	if err != nil {
		return translate(err, what)
	}
	if task, err := cont.Task(ctx, nil); err == nil {
		st, err := task.Status(ctx)
		if err != nil {
			return translate(err, what)
		}
		switch st.Status {
		case containerd.Running, containerd.Paused, containerd.Pausing:
			return nil
		}
		// A task that ended (its command exited) or never started: clear
		// it and its network.
		if err := c.deleteTask(ctx, cont, task, st.Status, true); err != nil {
			return translate(err, what)
		}
	} else if !cerrdefs.IsNotFound(err) {
		return translate(err, what)
	}
	network, err := c.net.forMode(info.Labels[labelNetworkMode])
	if err != nil {
		return err
	}
	// The firewall is checked while containerd makes the task (a dozen
	// iptables commands against one task): the task's command starts only
	// once both are done, so a failed check still fails the start.
	ready := make(chan error, 1)
	if network != nil {
		go func() {
			err := c.net.ensure(network)
			if err == nil {
				c.pruneAddresses(ctx, network)
			}
			ready <- err
		}()
	} else {
		ready <- nil
	}
	task, err := cont.NewTask(ctx, cio.NullIO)
	nerr := <-ready
	if err != nil {
		return translate(err, what)
	}
	if nerr != nil {
		dctx, cancel := cleanupCtx(ctx)
		defer cancel()
		_, derr := task.Delete(dctx, containerd.WithProcessKill)
		return errors.Join(nerr, translate(derr, what))
	}
	ip := ""
	if network != nil {
		ip, err = c.net.attach(ctx, network, id, task.Pid())
		if err != nil {
			dctx, cancel := cleanupCtx(ctx)
			defer cancel()
			_, derr := task.Delete(dctx, containerd.WithProcessKill)
			return errors.Join(err, translate(derr, what))
		}
	}
	if err := task.Start(ctx); err != nil {
		dctx, cancel := cleanupCtx(ctx)
		defer cancel()
		_, derr := task.Delete(dctx, containerd.WithProcessKill)
		if network != nil {
			derr = errors.Join(derr, c.net.detach(dctx, network, id))
		}
		return errors.Join(translate(err, what), derr)
	}
	_, err = cont.SetLabels(ctx, map[string]string{
		labelStarted: time.Now().UTC().Format(time.RFC3339Nano),
		labelIP:      ip,
		labelExit:    "",
	})
	return translate(err, what)
}

// pruneAddresses releases, once a process, the addresses on nw that
// containers of this namespace hold without a task: left by a berth or a
// containerd that died between a task's end and its CNI teardown, or by a
// container deleted behind berth's back. (Removing and stopping release
// them as they go.) A failure is retried by the next start.
func (c *Containerd) pruneAddresses(ctx context.Context, nw *network) {
	nw.once.Lock()
	done := nw.pruned
	nw.pruned = true
	nw.once.Unlock()
	if done {
		return
	}
	ids, err := c.net.leases(nw)
	if err != nil {
		nw.once.Lock()
		nw.pruned = false
		nw.once.Unlock()
		return
	}
	for _, id := range ids {
		if c.hasTask(ctx, id) {
			continue
		}
		if err := c.net.detach(ctx, nw, id); err != nil {
			nw.once.Lock()
			nw.pruned = false
			nw.once.Unlock()
		}
	}
}

// hasTask reports whether container id has a task (an unreachable engine
// counts as yes: nothing is released on a guess).
func (c *Containerd) hasTask(ctx context.Context, id string) bool {
	cont, err := c.cli.LoadContainer(ctx, id)
	if cerrdefs.IsNotFound(err) {
		return false
	}
	if err != nil {
		return true
	}
	_, err = cont.Task(ctx, nil)
	return !cerrdefs.IsNotFound(err)
}

// Pause freezes every process of a running container (cgroup freezer).
func (c *Containerd) Pause(ctx context.Context, id string) error {
	return c.freeze(ctx, id, true)
}

// Unpause thaws a paused container.
func (c *Containerd) Unpause(ctx context.Context, id string) error {
	return c.freeze(ctx, id, false)
}

func (c *Containerd) freeze(ctx context.Context, id string, pause bool) error {
	ctx = c.ctx(ctx)
	what := "unpause container " + id
	want := containerd.Paused
	if pause {
		what, want = "pause container "+id, containerd.Running
	}
	cont, err := c.cli.LoadContainer(ctx, id)
	if err != nil {
		return translate(err, what)
	}
	task, err := cont.Task(ctx, nil)
	if cerrdefs.IsNotFound(err) {
		return berth.Errorf(berth.Conflict, "%s: the container is not running", what)
	}
	if err != nil {
		return translate(err, what)
	}
	st, err := task.Status(ctx)
	if err != nil {
		return translate(err, what)
	}
	if st.Status != want {
		return berth.Errorf(berth.Conflict, "%s: the container is %s", what, stateOf(st.Status))
	}
	if pause {
		err = task.Pause(ctx)
	} else {
		err = task.Resume(ctx)
	}
	return translate(err, what)
}

// Stop sends the main process SIGTERM, waits up to timeout, then kills every
// process of the container; the task goes, the container and its snapshot
// stay.
func (c *Containerd) Stop(ctx context.Context, id string, timeout time.Duration) error {
	ctx = c.ctx(ctx)
	what := "stop container " + id
	cont, err := c.cli.LoadContainer(ctx, id)
	if err != nil {
		return translate(err, what)
	}
	task, err := cont.Task(ctx, nil)
	if cerrdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return translate(err, what)
	}
	st, err := task.Status(ctx)
	if err != nil {
		return translate(err, what)
	}
	if st.Status != containerd.Stopped && st.Status != containerd.Created {
		exited, err := task.Wait(ctx)
		if err != nil {
			return translate(err, what)
		}
		if err := task.Kill(ctx, syscall.SIGTERM); err != nil && !cerrdefs.IsNotFound(err) {
			return translate(err, what)
		}
		if st.Status == containerd.Paused || st.Status == containerd.Pausing {
			// A frozen process gets the signal when thawed.
			if err := task.Resume(ctx); err != nil && !cerrdefs.IsNotFound(err) && !cerrdefs.IsFailedPrecondition(err) {
				return translate(err, what)
			}
		}
		t := time.NewTimer(timeout)
		defer t.Stop()
		select {
		case <-exited:
		case <-t.C:
			if err := task.Kill(ctx, syscall.SIGKILL, containerd.WithKillAll); err != nil && !cerrdefs.IsNotFound(err) {
				return translate(err, what)
			}
			select {
			case <-exited:
			case <-ctx.Done():
				return translate(ctx.Err(), what)
			}
		case <-ctx.Done():
			return translate(ctx.Err(), what)
		}
	}
	return translate(c.deleteTask(ctx, cont, task, containerd.Stopped, true), what)
}

// deleteTask deletes a task (killing what is left of it unless its status
// says it is stopped), releases its network and, when record is set (the
// container stays), records its exit code.
func (c *Containerd) deleteTask(ctx context.Context, cont containerd.Container, task containerd.Task, status containerd.ProcessStatus, record bool) error {
	var opts []containerd.ProcessDeleteOpts
	if status != containerd.Stopped {
		opts = append(opts, containerd.WithProcessKill)
	}
	exit, err := task.Delete(ctx, opts...)
	if err != nil && !cerrdefs.IsNotFound(err) {
		return err
	}
	// The labels LoadContainer read: the network mode never changes.
	info, err := cont.Info(ctx, containerd.WithoutRefreshedMetadata)
	if err != nil {
		return err
	}
	var nerr error
	if network, _ := c.net.forMode(info.Labels[labelNetworkMode]); network != nil {
		nerr = c.net.detach(ctx, network, cont.ID())
	}
	if !record {
		return nerr
	}
	code := ""
	if exit != nil {
		code = strconv.Itoa(int(exit.ExitCode()))
	}
	_, lerr := cont.SetLabels(ctx, map[string]string{labelExit: code, labelIP: ""})
	return errors.Join(nerr, lerr)
}

// Remove deletes the container, its task and its snapshot.
func (c *Containerd) Remove(ctx context.Context, id string) error {
	ctx = c.ctx(ctx)
	what := "remove container " + id
	cont, err := c.cli.LoadContainer(ctx, id)
	if err != nil {
		return translate(err, what)
	}
	task, err := cont.Task(ctx, nil)
	switch {
	case err == nil:
		if err := c.deleteTask(ctx, cont, task, containerd.Unknown, false); err != nil {
			return translate(err, what)
		}
	case !cerrdefs.IsNotFound(err):
		return translate(err, what)
	}
	return translate(cont.Delete(ctx, containerd.WithSnapshotCleanup), what)
}

// Inspect reports a container's state.
func (c *Containerd) Inspect(ctx context.Context, id string) (runtime.Container, error) {
	ctx = c.ctx(ctx)
	cont, err := c.cli.LoadContainer(ctx, id)
	if err != nil {
		return runtime.Container{}, translate(err, "inspect container "+id)
	}
	return c.describe(ctx, cont)
}

func (c *Containerd) describe(ctx context.Context, cont containerd.Container) (runtime.Container, error) {
	what := "inspect container " + cont.ID()
	info, err := cont.Info(ctx, containerd.WithoutRefreshedMetadata)
	if err != nil {
		return runtime.Container{}, translate(err, what)
	}
	out := runtime.Container{
		ID:      info.ID,
		Name:    info.ID,
		Image:   info.Labels[labelImage],
		Labels:  map[string]string{},
		Created: info.CreatedAt,
	}
	if out.Image == "" {
		out.Image = info.Image
	}
	for k, v := range info.Labels {
		if !strings.HasPrefix(k, labelPrefix) {
			out.Labels[k] = v
		}
	}
	started := parseTime(info.Labels[labelStarted])
	out.StartedAt = started
	out.State = runtime.StateCreated
	if !started.IsZero() {
		out.State = runtime.StateExited
		out.ExitCode, _ = strconv.Atoi(info.Labels[labelExit])
	}
	task, err := cont.Task(ctx, nil)
	switch {
	case cerrdefs.IsNotFound(err):
		return out, nil
	case err != nil:
		return runtime.Container{}, translate(err, what)
	}
	st, err := task.Status(ctx)
	if cerrdefs.IsNotFound(err) {
		return out, nil
	}
	if err != nil {
		return runtime.Container{}, translate(err, what)
	}
	out.State = stateOf(st.Status)
	switch out.State {
	case runtime.StateExited:
		out.ExitCode = int(st.ExitStatus)
	case runtime.StateRunning, runtime.StatePaused:
		out.IPAddress = info.Labels[labelIP]
		out.Pid = int(task.Pid())
	}
	return out, nil
}

func stateOf(s containerd.ProcessStatus) runtime.State {
	switch s {
	case containerd.Running:
		return runtime.StateRunning
	case containerd.Paused, containerd.Pausing:
		return runtime.StatePaused
	case containerd.Stopped:
		return runtime.StateExited
	case containerd.Created:
		return runtime.StateCreated
	}
	return runtime.StateDead
}

// List returns the containers carrying every label in labels.
func (c *Containerd) List(ctx context.Context, labels map[string]string) ([]runtime.Container, error) {
	ctx = c.ctx(ctx)
	var conds []string
	if len(labels) == 0 {
		conds = append(conds, fmt.Sprintf("labels.%q", runtime.ManagedLabel))
	}
	for k, v := range labels {
		if v == "" {
			conds = append(conds, fmt.Sprintf("labels.%q", k))
		} else {
			conds = append(conds, fmt.Sprintf("labels.%q==%q", k, v))
		}
	}
	list, err := c.cli.Containers(ctx, strings.Join(conds, ","))
	if err != nil {
		return nil, translate(err, "list containers")
	}
	out := make([]runtime.Container, 0, len(list))
	for _, cont := range list {
		d, err := c.describe(ctx, cont)
		if berth.IsKind(err, berth.NotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// normalize turns a Docker-style reference ("berth/base:1") into the full
// name containerd stores images under ("docker.io/berth/base:1").
func normalize(ref string) (string, error) {
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return "", berth.Wrap(berth.Invalid, err, "image reference "+ref)
	}
	return named.String(), nil
}

// translate turns a containerd client error into a berth error.
func translate(err error, what string) error {
	if err == nil {
		return nil
	}
	var be *berth.Error
	switch {
	case errors.As(err, &be):
		return err
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		cerrdefs.IsUnavailable(err), cerrdefs.IsCanceled(err), cerrdefs.IsDeadlineExceeded(err), isNetErr(err):
		return berth.Wrap(berth.Unavailable, err, what+": container engine unreachable")
	case cerrdefs.IsNotFound(err):
		return berth.Wrap(berth.NotFound, err, what+": not found")
	case cerrdefs.IsAlreadyExists(err):
		return berth.Wrap(berth.Conflict, err, what+": already exists")
	case cerrdefs.IsConflict(err), cerrdefs.IsFailedPrecondition(err):
		return berth.Wrap(berth.Conflict, err, what+": "+err.Error())
	case cerrdefs.IsInvalidArgument(err):
		return berth.Wrap(berth.Invalid, err, what+": "+err.Error())
	}
	return berth.Wrap(berth.Internal, err, what)
}

func isNetErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}

func envList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

// cleanupCtx is a context for cleaning up after a failure: ctx's values
// (the namespace) without its cancellation, and a deadline of its own.
func cleanupCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
}

// noDiskLimit says why this backend refuses Resources.DiskBytes: the
// overlayfs snapshotter it unpacks images into has no per-snapshot quota
// (containerd's quota support is for other snapshotters and not in 1.6).
const noDiskLimit = "the containerd engine's overlayfs snapshotter cannot enforce a per-container disk limit"

// Capabilities reports what this engine can enforce beyond the common
// guarantees: no disk limit (see noDiskLimit). It asks the engine first, so
// that a down engine is Unavailable as the interface says.
func (c *Containerd) Capabilities(ctx context.Context) (runtime.Capabilities, error) {
	if err := c.Ping(ctx); err != nil {
		return runtime.Capabilities{}, err
	}
	return runtime.Capabilities{DiskLimit: false, NoDiskLimit: noDiskLimit}, nil
}
