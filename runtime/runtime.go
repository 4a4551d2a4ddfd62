// Package runtime defines what berth needs from a container engine: the
// Runtime interface and the plain types it speaks. Backends live in
// sub-packages (runtime/docker, later runtime/containerd) and are the only code
// that knows an engine's SDK; runtime/runtimetest is the conformance suite
// every backend must pass.
//
// A sandbox is one long-running container: it is created from a template
// image with an idle init command, and all work happens through Exec.
package runtime

import (
	"context"
	"io"
	"time"
)

// Runtime is a container engine as berth uses it.
//
// Every method takes a context first and honours its cancellation. Errors are
// *berth.Error values with these kinds:
//
//   - berth.Unavailable: the engine cannot be reached (not running, socket
//     missing, connection refused) or the context ended during the call. A
//     Runtime must be constructible while the engine is down and must start
//     working again on its own once the engine is back.
//   - berth.NotFound: no container (or image) with that id or name.
//   - berth.Conflict: a name is already taken, or the container's state does
//     not allow the operation (pausing a stopped container, ...).
//   - berth.Invalid: the engine rejected the spec itself.
//   - berth.Internal: anything else.
//
// A container is addressed by the id Create returned or by its name.
type Runtime interface {
	// Ping reports whether the engine answers; nil means it does.
	Ping(ctx context.Context) error

	// Create makes a container from spec without starting it and returns its
	// id. Whatever the spec says, the container is hardened: no new
	// privileges, every capability dropped except SafeCapabilities, and no
	// engine socket inside. The container's main process is spec.Cmd, or
	// IdleCommand when that is empty, run under a minimal init that reaps
	// orphaned processes, so that the container stays up until stopped.
	// A NetworkBridge container is isolated as NetworkBridge says; a backend
	// that cannot guarantee that at Create or Start fails them instead.
	Create(ctx context.Context, spec Spec) (id string, err error)

	// Start starts a created or stopped container. Starting a running
	// container is not an error.
	Start(ctx context.Context, id string) error

	// Pause freezes every process of a running container (cgroup freezer):
	// memory and processes are kept, nothing runs until Unpause.
	Pause(ctx context.Context, id string) error

	// Unpause thaws a paused container.
	Unpause(ctx context.Context, id string) error

	// Stop sends the main process SIGTERM, waits up to timeout, then kills
	// everything left. The container's filesystem is kept. Stopping a stopped
	// container is not an error; a paused container is stopped too.
	Stop(ctx context.Context, id string, timeout time.Duration) error

	// Remove deletes the container, stopping it first if needed (force). Its
	// filesystem goes; bind-mounted host directories are untouched. Removing
	// a container that does not exist is NotFound.
	Remove(ctx context.Context, id string) error

	// Inspect reports a container's current state.
	Inspect(ctx context.Context, id string) (Container, error)

	// List returns the containers, in any state, that carry every label in
	// labels (an empty value matches the key with any value). A nil or empty
	// map lists only containers that carry the ManagedLabel.
	List(ctx context.Context, labels map[string]string) ([]Container, error)

	// Exec runs spec.Cmd in a running container and waits for it, streaming
	// its output to spec.Stdout and spec.Stderr as it comes (nil writers
	// discard) and feeding it spec.Stdin (nil: an empty stdin). It returns
	// the command's exit code; a command that could not be started (no such
	// executable) gives the shell's codes 126/127 rather than an error.
	//
	// When ctx ends before the command does, Exec kills the command and
	// every process it started inside the container (its whole session and
	// any process that inherited its environment), waits briefly for the
	// streams to close, and returns -1 with ctx.Err() (so errors.Is works
	// for context.DeadlineExceeded). It returns promptly even if the kill
	// could not be confirmed. (Engines without a kill API for exec'd
	// processes do this with a second exec, which needs /bin/sh in the
	// image: see the backend's documentation.)
	//
	// Exec on a container that is not running is Conflict.
	Exec(ctx context.Context, id string, spec ExecSpec) (exitCode int, err error)

	// ImagePresent reports whether the image is available locally.
	ImagePresent(ctx context.Context, ref string) (bool, error)

	// LoadImage loads the images of a tarball read from r, as `docker
	// save` writes it (docker-archive: manifest.json, configs, layers), and
	// tags them as its manifest says, writing human-readable progress lines
	// to progress (nil discards). A tag that named another image moves to
	// the loaded one. An archive the engine cannot read (not a tar, cut
	// short, a missing blob) is Invalid. This is how berth's templates, made
	// without any engine builder, reach every engine.
	LoadImage(ctx context.Context, r io.Reader, progress io.Writer) error

	// PullImage fetches ref from its registry, writing progress lines to
	// progress (nil discards). An unreachable registry is Unavailable; an
	// unknown image is NotFound.
	PullImage(ctx context.Context, ref string, progress io.Writer) error

	// RemoveImage deletes a local image (by reference or id). Containers
	// still using it make it a Conflict.
	RemoveImage(ctx context.Context, ref string) error

	// ImageID returns the id of a local image (NotFound when absent). A
	// reload moves a tag to a new id; the old id is what to remove then
	// (an engine that keeps images by name only, like containerd, drops
	// the old image with its name: removing its id is then NotFound).
	ImageID(ctx context.Context, ref string) (string, error)

	// Capabilities reports what this engine, as configured, can enforce
	// beyond what every backend must (see Capabilities). It asks the
	// engine (Unavailable when it does not answer); a backend may cache
	// the answer for a short while.
	Capabilities(ctx context.Context) (Capabilities, error)
}

// Capabilities are the limits a backend can enforce only on some engine
// configurations. Callers refuse, rather than silently drop, a limit the
// engine cannot enforce; Create fails with NotSupported on a spec that asks
// for one anyway.
type Capabilities struct {
	// DiskLimit: Create honours Resources.DiskBytes, so that a container
	// cannot write more than that into its own filesystem (bind-mounted
	// workspaces are not part of it).
	DiskLimit bool
	// NoDiskLimit says, when DiskLimit is false, why, naming the engine
	// and its storage driver (for the API's refusal), e.g. "the docker
	// engine's storage driver overlay2 on extfs cannot enforce a
	// per-container disk limit".
	NoDiskLimit string
}

// Watcher is implemented by a Runtime that can report changes of its
// containers as they happen, so that berth reconciles on change instead of
// asking about every container on a timer. It is optional: berth falls back
// to periodic passes with a Runtime that lacks it.
type Watcher interface {
	// Watch streams the events of the containers that carry every label in
	// labels (as List matches them). It returns once the stream is
	// established or has failed. The error channel receives exactly one
	// value when the stream ends (ctx.Err() when ctx ended, an Unavailable
	// error when the engine went away) and the event channel is then
	// abandoned, never closed: select on both. Events that happen while no
	// stream is open are lost, so a caller that reconnects must look at
	// every container again.
	Watch(ctx context.Context, labels map[string]string) (<-chan Event, <-chan error)
}

// Event is a change of one container's state.
type Event struct {
	ContainerID string
	// Action is one of the Event* constants.
	Action string
	// Labels are the container's labels (ManagedLabel included).
	Labels map[string]string
}

// Event actions a Watcher reports; an engine may report others, which a
// caller can treat as "something changed".
const (
	EventStart   = "start"
	EventDie     = "die" // the main process ended (stop, kill, crash, OOM)
	EventStop    = "stop"
	EventPause   = "pause"
	EventUnpause = "unpause"
	EventDestroy = "destroy" // removed
	EventOOM     = "oom"
)

// ManagedLabel marks every container berth creates, so that List can tell
// them from anything else on the engine. Create adds it.
const ManagedLabel = "berth.managed"

// IdleCommand is the main process of a sandbox container when a spec gives
// none: it does nothing, forever, so that the container stays up for Exec.
var IdleCommand = []string{"sleep", "infinity"}

// SafeCapabilities is the small set of Linux capabilities a sandbox keeps so
// that root inside it can still own and chmod its files, switch users (package
// managers drop privileges) and bind low ports. Everything else, NET_RAW,
// SYS_ADMIN, MKNOD, SYS_CHROOT, SETFCAP, AUDIT_WRITE, ..., is dropped.
var SafeCapabilities = []string{
	"CHOWN",
	"DAC_OVERRIDE",
	"FOWNER",
	"FSETID",
	"KILL",
	"SETGID",
	"SETUID",
	"NET_BIND_SERVICE",
}

// Network modes of a sandbox.
//
// NetworkBridge is the isolated default: a sandbox reaches the internet (and
// the names of the DNS) through NAT, but not another sandbox, whatever its
// network, nor any service of the host, on any of the host's addresses.
// NetworkShared is the opt-out for a user who wants the engine's ordinary
// shared network: the sandbox reaches, and is reached by, the other shared
// sandboxes and the services the host listens on (this is what "bridge"
// meant before sandboxes were isolated).
const (
	NetworkNone   = "none"   // loopback only
	NetworkBridge = "bridge" // isolated: internet through NAT only
	NetworkShared = "shared" // the engine's default bridge: other shared sandboxes and the host's services too
)

// Spec describes a container to create.
type Spec struct {
	Name     string            // container name; must be unique on the engine
	Image    string            // image reference, present locally
	Hostname string            // "" lets the engine choose
	Labels   map[string]string // ManagedLabel is added
	Env      map[string]string // environment of the main process and of every exec
	Mounts   []Mount           // applied in order; nested targets are fine
	Cmd      []string          // main process; empty means IdleCommand
	WorkDir  string            // working directory of the main process ("" = image's)
	User     string            // "uid[:gid]" or a name in the image ("" = image's)

	Resources Resources
	Network   string // NetworkNone, NetworkBridge or NetworkShared; "" means NetworkNone

	// Supervisor, when set, replaces the engine's init: the backend mounts
	// Supervisor.Binary read-only at SupervisorPath and Supervisor.SocketDir
	// at SupervisorRunDir, and runs SupervisorPath, "--", then the main
	// command as the container's PID 1 (the image's entrypoint is not
	// used). The supervisor reaps orphans and forwards signals as the
	// engine's init does, and serves exec requests on its socket.
	Supervisor *Supervisor
}

// Supervisor is what a backend mounts for berth's in-sandbox supervisor.
type Supervisor struct {
	Binary    string // host path of the static supervisor executable
	SocketDir string // host directory of this container only, for its socket
}

// Where the supervisor lives inside a container.
const (
	SupervisorPath       = "/.berth/supervisor"
	SupervisorRunDir     = "/.berth/run"
	SupervisorSocketName = "sock" // in SupervisorRunDir (and in the host's SocketDir)
)

// Mount is a host directory (or file) bind-mounted into a container.
type Mount struct {
	Source   string // absolute host path; must exist
	Target   string // absolute path inside the container
	ReadOnly bool
}

// Resources are a container's limits; zero means unlimited.
type Resources struct {
	NanoCPUs    int64 // CPU time in units of 1e-9 CPUs: 1.5 CPUs = 1_500_000_000
	MemoryBytes int64 // memory limit (and memory+swap limit: no swap beyond it)
	PidsLimit   int64 // maximum number of processes
	// DiskBytes bounds what the container writes into its own filesystem
	// (its writable layer). Only where Capabilities().DiskLimit; elsewhere
	// Create refuses a non-zero value (NotSupported).
	DiskBytes int64
}

// State is a container's state as the engine reports it.
type State string

// Container states.
const (
	StateCreated    State = "created"
	StateRunning    State = "running"
	StatePaused     State = "paused"
	StateRestarting State = "restarting"
	StateRemoving   State = "removing"
	StateExited     State = "exited"
	StateDead       State = "dead"
)

// Container is what the engine reports about a container.
type Container struct {
	ID        string
	Name      string // without the engine's leading "/"
	Image     string // the reference it was created from
	State     State
	Labels    map[string]string
	IPAddress string    // on its network; "" with NetworkNone or when not running
	ExitCode  int       // of the main process, once exited
	Error     string    // the engine's error message, if starting failed
	Created   time.Time // zero if unknown
	StartedAt time.Time // zero if never started
	// Pid is the main process's id on the engine's host while the
	// container runs or is paused (0 otherwise or where unknown): berth
	// enters its mount namespace to attach a workspace (see mountns).
	Pid int
}

// ExecSpec describes a command to run inside a container.
type ExecSpec struct {
	Cmd    []string          // argv; Cmd[0] is looked up in the container's PATH
	Env    map[string]string // added to the container's environment
	Dir    string            // working directory ("" = the container's)
	User   string            // "" = the container's user
	Stdin  io.Reader         // nil: empty stdin
	Stdout io.Writer         // nil: discarded
	Stderr io.Writer         // nil: discarded
}

// TerminalSize is a terminal's size in characters.
type TerminalSize struct {
	Rows, Cols uint16
}

// TTYExecer is a Runtime that can also run a command on a new
// pseudo-terminal through the engine: the terminal of a sandbox that has
// no supervisor. Backends may leave it out.
type TTYExecer interface {
	// ExecTTY is Exec on a new terminal of size: spec.Stdin is the
	// terminal's input, spec.Stdout gets its output (spec.Stderr is not
	// used), and each size sent on resize resizes it.
	ExecTTY(ctx context.Context, id string, spec ExecSpec, size TerminalSize, resize <-chan TerminalSize) (exitCode int, err error)
}
