// Package docker is berth's Docker Engine backend: it implements
// runtime.Runtime over the engine's HTTP API with the official Go client. It
// is the only package of berth that imports the Docker SDK; nothing of the SDK
// appears in its exported API.
package docker

import (
	"context"
	"errors"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/runtime"
)

var _ runtime.Runtime = (*Docker)(nil)

// labelSupervisor marks a container whose PID 1 is berth's supervisor
// (runtime.Spec.Supervisor), for whoever inspects it.
const labelSupervisor = "berth.supervisor"

// Docker is a runtime.Runtime backed by a Docker Engine. It is safe for
// concurrent use.
type Docker struct {
	cli  *client.Client
	host string
	iso  isolation // the isolated network of runtime.NetworkBridge
	caps capsCache // Capabilities' last answer
}

// New returns a runtime for the engine at host: a URL such as
// "unix:///var/run/docker.sock" or "tcp://127.0.0.1:2375". An empty host
// means DOCKER_HOST from the environment, or the default local socket.
//
// New does not contact the engine: the server must be able to start while
// the engine is down. The API version is negotiated on the first call that
// reaches the engine (and again after a failed attempt), so a Debian engine
// speaking API 1.41 works with this newer client. (github.com/moby/moby/client
// v0.6.2 speaks API 1.40 to 1.56: its MinAPIVersion is "1.40"; Debian 12's
// docker.io 20.10 speaks 1.41, checked with the conformance suite. An engine
// older than 1.40 makes Ping fail with the client's "API version ... is not
// supported by this client".)
func New(host string) (*Docker, error) {
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if host != "" {
		opts = append(opts, client.WithHost(host))
	}
	cli, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, berth.Wrap(berth.Invalid, err, "docker: bad engine address")
	}
	return &Docker{cli: cli, host: cli.DaemonHost(), iso: isolation{network: IsolatedNetwork, bridge: IsolatedBridge}}, nil
}

// Host is the engine address in use.
func (d *Docker) Host() string { return d.host }

// Close releases the client's idle connections.
func (d *Docker) Close() error { return d.cli.Close() }

// Ping reports whether the engine answers.
func (d *Docker) Ping(ctx context.Context) error {
	if _, err := d.cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		return berth.Wrap(berth.Unavailable, err, "container engine unreachable")
	}
	return nil
}

// Create makes a hardened container from spec.
func (d *Docker) Create(ctx context.Context, spec runtime.Spec) (string, error) {
	if spec.Image == "" {
		return "", berth.Errorf(berth.Invalid, "container spec: image is required")
	}
	mode := spec.Network
	if mode == "" {
		mode = runtime.NetworkNone
	}
	netName, err := d.engineNetwork(mode)
	if err != nil {
		return "", err
	}
	if err := d.checkDiskLimit(ctx, spec); err != nil {
		return "", err
	}
	isolated := netName == d.iso.network
	if isolated {
		if err := d.ensureIsolation(ctx, false); err != nil {
			return "", err
		}
	}
	labels := map[string]string{runtime.ManagedLabel: "true"}
	for k, v := range spec.Labels {
		labels[k] = v
	}
	labels[labelNetworkMode] = mode
	cmd := spec.Cmd
	if len(cmd) == 0 {
		cmd = runtime.IdleCommand
	}
	mounts := make([]mount.Mount, 0, len(spec.Mounts))
	for _, m := range spec.Mounts {
		mounts = append(mounts, mount.Mount{
			Type:     mount.TypeBind,
			Source:   m.Source,
			Target:   m.Target,
			ReadOnly: m.ReadOnly,
			// A sandbox must not see (or create) mounts that appear later
			// under a workspace on the host, nor propagate its own back.
			BindOptions: &mount.BindOptions{Propagation: mount.PropagationRPrivate},
		})
	}
	init := true
	var entrypoint []string
	if sv := spec.Supervisor; sv != nil {
		// berth's supervisor is PID 1 instead of the engine's tini.
		init = false
		entrypoint = []string{runtime.SupervisorPath, "--"}
		mounts = append(mounts,
			mount.Mount{Type: mount.TypeBind, Source: sv.Binary, Target: runtime.SupervisorPath, ReadOnly: true,
				BindOptions: &mount.BindOptions{Propagation: mount.PropagationRPrivate}},
			mount.Mount{Type: mount.TypeBind, Source: sv.SocketDir, Target: runtime.SupervisorRunDir,
				BindOptions: &mount.BindOptions{Propagation: mount.PropagationRPrivate}})
		labels[labelSupervisor] = "true"
	}
	res := container.Resources{NanoCPUs: spec.Resources.NanoCPUs}
	if spec.Resources.MemoryBytes > 0 {
		res.Memory = spec.Resources.MemoryBytes
		res.MemorySwap = spec.Resources.MemoryBytes // no swap on top of the limit
	}
	if spec.Resources.PidsLimit > 0 {
		pids := spec.Resources.PidsLimit
		res.PidsLimit = &pids
	}
	cfg := &container.Config{
		Image:      spec.Image,
		Hostname:   spec.Hostname,
		Env:        envList(spec.Env),
		Entrypoint: entrypoint,
		Cmd:        cmd,
		Labels:     labels,
		WorkingDir: spec.WorkDir,
		User:       spec.User,
	}
	host := &container.HostConfig{
		NetworkMode: container.NetworkMode(netName),
		Mounts:      mounts,
		// tini as PID 1 (unless the supervisor is): it forwards SIGTERM to
		// the idle command (so Stop is quick) and reaps what exec'd
		// commands leave behind.
		Init:        &init,
		SecurityOpt: []string{"no-new-privileges"},
		CapDrop:     []string{"ALL"},
		CapAdd:      runtime.SafeCapabilities,
		Resources:   res,
	}
	if spec.Resources.DiskBytes > 0 {
		// The writable layer's size (checkDiskLimit made sure the engine's
		// storage driver honours it).
		host.StorageOpt = map[string]string{"size": strconv.FormatInt(spec.Resources.DiskBytes, 10)}
	}
	opts := client.ContainerCreateOptions{Config: cfg, HostConfig: host, Name: spec.Name}
	created, err := d.cli.ContainerCreate(ctx, opts)
	if err != nil && isolated && cerrdefs.IsNotFound(err) {
		// The isolated network may have been removed since it was made:
		// make it again and retry once. (A missing image fails again.
		// Debian's engine checks the network only at start, see Start;
		// newer ones check it here.)
		if ierr := d.ensureIsolation(ctx, true); ierr != nil {
			return "", errors.Join(translate(err, "create container "+spec.Name), ierr)
		}
		created, err = d.cli.ContainerCreate(ctx, opts)
	}
	if err != nil {
		if m := strings.ToLower(engineMessage(err)); spec.Resources.DiskBytes > 0 && (strings.Contains(m, "storage-opt") || strings.Contains(m, "storage opt")) {
			// The engine refused the size its storage driver was thought
			// to honour (e.g. xfs quotas off after all): say so, as
			// checkDiskLimit does.
			return "", berth.Wrap(berth.NotSupported, err, "create container "+spec.Name+": the docker engine cannot enforce a per-sandbox disk limit: "+engineMessage(err))
		}
		return "", translate(err, "create container "+spec.Name)
	}
	return created.ID, nil
}

// Start starts a created or stopped container. A container on the isolated
// network starts only once its firewall rule is in place (a reboot or a
// firewall reload removes it while the engine keeps the network), and the
// network is made again if it was removed while the container was stopped.
func (d *Docker) Start(ctx context.Context, id string) error {
	info, err := d.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return translate(err, "start container "+id)
	}
	c := info.Container
	isolated := d.onIsolatedNetwork(c)
	if isolated {
		if err := d.ensureIsolation(ctx, false); err != nil {
			return err
		}
	} else if d.fromBeforeIsolation(c) {
		if err := d.moveToIsolated(ctx, c); err != nil {
			return err
		}
		isolated = true
	}
	_, err = d.cli.ContainerStart(ctx, id, client.ContainerStartOptions{})
	if err != nil && isolated && cerrdefs.IsNotFound(err) {
		if ierr := d.ensureIsolation(ctx, true); ierr != nil {
			return errors.Join(translate(err, "start container "+id), ierr)
		}
		_, err = d.cli.ContainerStart(ctx, id, client.ContainerStartOptions{})
	}
	return translate(err, "start container "+id)
}

// Pause freezes a running container (see freeze for the engine's races).
func (d *Docker) Pause(ctx context.Context, id string) error { return d.freeze(ctx, id, true) }

// Unpause thaws a paused container (see freeze for the engine's races).
func (d *Docker) Unpause(ctx context.Context, id string) error { return d.freeze(ctx, id, false) }

// Stop stops a container, killing it after timeout.
func (d *Docker) Stop(ctx context.Context, id string, timeout time.Duration) error {
	secs := int((timeout + time.Second - 1) / time.Second)
	_, err := d.cli.ContainerStop(ctx, id, client.ContainerStopOptions{Timeout: &secs})
	return translate(err, "stop container "+id)
}

// Remove force-removes a container and its anonymous volumes.
func (d *Docker) Remove(ctx context.Context, id string) error {
	_, err := d.cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	return translate(err, "remove container "+id)
}

// Inspect reports a container's state.
func (d *Docker) Inspect(ctx context.Context, id string) (runtime.Container, error) {
	res, err := d.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return runtime.Container{}, translate(err, "inspect container "+id)
	}
	info := res.Container
	c := runtime.Container{
		ID:      info.ID,
		Name:    strings.TrimPrefix(info.Name, "/"),
		Created: parseTime(info.Created),
	}
	if info.Config != nil {
		c.Image = info.Config.Image
		c.Labels = info.Config.Labels
	}
	if st := info.State; st != nil {
		c.State = runtime.State(st.Status)
		c.ExitCode = st.ExitCode
		c.Error = st.Error
		c.StartedAt = parseTime(st.StartedAt)
		c.Pid = st.Pid
	}
	if ns := info.NetworkSettings; ns != nil {
		c.IPAddress = endpointAddress(ns.Networks)
	}
	return c, nil
}

// List returns the containers carrying every label in labels.
func (d *Docker) List(ctx context.Context, labels map[string]string) ([]runtime.Container, error) {
	args := client.Filters{}
	if len(labels) == 0 {
		args.Add("label", runtime.ManagedLabel)
	}
	for k, v := range labels {
		if v == "" {
			args.Add("label", k)
		} else {
			args.Add("label", k+"="+v)
		}
	}
	list, err := d.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: args})
	if err != nil {
		return nil, translate(err, "list containers")
	}
	out := make([]runtime.Container, 0, len(list.Items))
	for _, s := range list.Items {
		c := runtime.Container{
			ID:      s.ID,
			Image:   s.Image,
			State:   runtime.State(s.State),
			Labels:  s.Labels,
			Created: time.Unix(s.Created, 0).UTC(),
		}
		if len(s.Names) > 0 {
			c.Name = strings.TrimPrefix(s.Names[0], "/")
		}
		if s.NetworkSettings != nil {
			c.IPAddress = endpointAddress(s.NetworkSettings.Networks)
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// translate turns an engine client error into a berth error. The client
// marks the engine's HTTP answers with containerd's errdefs classes, and
// connection failures with its own type; that is all we look at.
func translate(err error, what string) error {
	if err == nil {
		return nil
	}
	var be *berth.Error
	switch {
	case errors.As(err, &be):
		return err
	case client.IsErrConnectionFailed(err), isNetErr(err),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		cerrdefs.IsUnavailable(err):
		return berth.Wrap(berth.Unavailable, err, what+": container engine unreachable")
	case cerrdefs.IsNotFound(err):
		return berth.Wrap(berth.NotFound, err, what+": not found")
	case cerrdefs.IsConflict(err):
		return berth.Wrap(berth.Conflict, err, what+": "+engineMessage(err))
	case cerrdefs.IsInvalidArgument(err):
		// The engine's complaint is what a caller needs to fix the spec.
		return berth.Wrap(berth.Invalid, err, what+": "+engineMessage(err))
	}
	return berth.Wrap(berth.Internal, err, what)
}

// engineMessage is the engine's own words, without the SDK's prefix.
func engineMessage(err error) string {
	return strings.TrimPrefix(err.Error(), "Error response from daemon: ")
}

func isNetErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, os.ErrNotExist)
}

func envList(env map[string]string) []string {
	if len(env) == 0 {
		return nil
	}
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out) // a stable order makes specs comparable in logs
	return out
}

func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Year() <= 1 {
		return time.Time{}
	}
	return t
}

// endpointAddress is a container's IPv4 address on its network. It reads the
// per-network endpoints: the top-level NetworkSettings.IPAddress is
// deprecated (and only ever covered the engine's default bridge). A sandbox
// is on one network; should there be several, the first by name is taken so
// that the answer is stable.
func endpointAddress(eps map[string]*network.EndpointSettings) string {
	names := make([]string, 0, len(eps))
	for name, ep := range eps {
		if ep != nil && ep.IPAddress.IsValid() {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return ""
	}
	sort.Strings(names)
	return eps[names[0]].IPAddress.String()
}
