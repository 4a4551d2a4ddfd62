// Package dockerbench makes the raw Docker Engine API calls that berth's
// benchmark compares itself with: the same operations on an equivalent
// (equally hardened) container, straight through the SDK, with none of
// berth's bookkeeping. It lives under runtime/docker because only that
// subtree may import the Docker SDK.
package dockerbench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/runtime/docker"
)

// Raw talks to the engine named by DOCKER_HOST (or the local socket).
type Raw struct{ cli *client.Client }

// New returns a raw client; it does not contact the engine.
func New() (*Raw, error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, err
	}
	return &Raw{cli: cli}, nil
}

// Close releases the client.
func (r *Raw) Close() error { return r.cli.Close() }

// CreateStart creates and starts a container configured as berth configures
// a sandbox (init, no new privileges, capabilities, limits, isolated network,
// idle command) and returns its id once it runs.
func (r *Raw) CreateStart(ctx context.Context, image, name string, labels map[string]string, memory, pids int64) (string, error) {
	init := true
	cfg := &container.Config{Image: image, Cmd: runtime.IdleCommand, Labels: labels, WorkingDir: "/workspace"}
	host := &container.HostConfig{
		NetworkMode: docker.IsolatedNetwork, // made by berth's first sandbox
		Init:        &init,
		SecurityOpt: []string{"no-new-privileges"},
		CapDrop:     []string{"ALL"},
		CapAdd:      runtime.SafeCapabilities,
		Resources:   container.Resources{Memory: memory, MemorySwap: memory, PidsLimit: &pids},
	}
	c, err := r.cli.ContainerCreate(ctx, client.ContainerCreateOptions{Config: cfg, HostConfig: host, Name: name})
	if err != nil {
		return "", err
	}
	if _, err := r.cli.ContainerStart(ctx, c.ID, client.ContainerStartOptions{}); err != nil {
		return c.ID, err
	}
	return c.ID, nil
}

// Exec runs cmd, drains its output and returns its exit code.
func (r *Raw) Exec(ctx context.Context, id string, cmd []string) (int, error) {
	e, err := r.cli.ExecCreate(ctx, id, client.ExecCreateOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return -1, err
	}
	hj, err := r.cli.ExecAttach(ctx, e.ID, client.ExecAttachOptions{})
	if err != nil {
		return -1, err
	}
	defer hj.Close()
	if _, err := stdcopy.StdCopy(io.Discard, io.Discard, hj.Reader); err != nil {
		return -1, err
	}
	for {
		info, err := r.cli.ExecInspect(ctx, e.ID, client.ExecInspectOptions{})
		if err != nil {
			return -1, err
		}
		if !info.Running {
			return info.ExitCode, nil
		}
	}
}

// Pause freezes a container.
func (r *Raw) Pause(ctx context.Context, id string) error {
	_, err := r.cli.ContainerPause(ctx, id, client.ContainerPauseOptions{})
	return err
}

// Unpause thaws a container.
func (r *Raw) Unpause(ctx context.Context, id string) error {
	_, err := r.cli.ContainerUnpause(ctx, id, client.ContainerUnpauseOptions{})
	return err
}

// Remove force-removes a container.
func (r *Raw) Remove(ctx context.Context, id string) error {
	_, err := r.cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	return err
}

// BuildImage builds a tar build context (a Dockerfile and what it ADDs) with
// the engine's classic builder, without its cache, and tags the result: how
// berth made its templates before it assembled their images itself, kept as
// the baseline of templates' BenchmarkTemplateLoad.
func (r *Raw) BuildImage(ctx context.Context, buildContext io.Reader, tag string) error {
	resp, err := r.cli.ImageBuild(ctx, buildContext, client.ImageBuildOptions{
		Tags: []string{tag}, Remove: true, ForceRemove: true, NoCache: true, Version: build.BuilderV1,
	})
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }() // drained below: nothing left to report
	dec := json.NewDecoder(resp.Body)
	for {
		var m struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&m); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		if m.Error != "" {
			return fmt.Errorf("build %s: %s", tag, m.Error)
		}
	}
}

// RemoveImage removes an image by reference, and its untagged parents.
func (r *Raw) RemoveImage(ctx context.Context, ref string) error {
	_, err := r.cli.ImageRemove(ctx, ref, client.ImageRemoveOptions{Force: true, PruneChildren: true})
	return err
}
