package doctor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/runtime/docker"
	"github.com/berth-dev/berth/templates"
)

// Engine checks that an engine answers, that it runs the base template's
// image, and that the isolated network of bridge sandboxes can be set up.
func Engine(ctx context.Context, cfg Config) []Check {
	det := docker.Detect(ctx, cfg.DockerHost, cfg.Env, cfg.Timeout)
	e := det.Found
	if e == nil {
		return []Check{
			{Name: "engine", Status: Fail, Message: "no container engine answers (" + det.Summary() + ")", Fix: det.Advice()},
			{Name: "base template", Status: Warn, Message: "not checked: no engine"},
			{Name: "isolated network", Status: Warn, Message: "not checked: no engine"},
		}
	}
	found := fmt.Sprintf("Docker %s (API %s) at %s, %s", e.Version, e.APIVersion, e.Host, e.Source)
	out := []Check{{Name: "engine", Status: OK, Message: found}}
	rt, err := docker.New(e.Host)
	if err != nil {
		return append(out, Check{Name: "base template", Status: Fail, Message: err.Error()})
	}
	defer func() { _ = rt.Close() }() // idle connections only
	out = append(out, baseTemplate(ctx, rt))
	if err := rt.CheckIsolation(ctx); err != nil {
		out = append(out, Check{Name: "isolated network", Status: Fail, Message: err.Error(),
			Fix: "run berth as root on the engine's host with iptables installed (Debian: apt-get install iptables); until then only sandboxes with network none or shared start"})
	} else {
		out = append(out, Check{Name: "isolated network", Status: OK,
			Message: fmt.Sprintf("network %s (bridge %s) and iptables chain %s in place", docker.IsolatedNetwork, docker.IsolatedBridge, docker.IsolationChain)})
	}
	return out
}

// baseTemplate runs a command in a container of the base template's image
// when it is built, or checks that it can be built.
func baseTemplate(ctx context.Context, rt *docker.Docker) Check {
	c := Check{Name: "base template"}
	t, err := templates.Get("base")
	if err != nil {
		c.Status, c.Message = Fail, err.Error()
		return c
	}
	present, err := rt.ImagePresent(ctx, t.Image)
	if err != nil {
		c.Status, c.Message = Fail, err.Error()
		return c
	}
	if !present {
		if err := templates.CanBuild(t); err != nil {
			c.Status, c.Message = Fail, fmt.Sprintf("image %s is not built and cannot be: %v", t.Image, err)
			c.Fix = "as root on Debian: bash .ci/docker-up (installs busybox-static)"
			return c
		}
		c.Status = Warn
		c.Message = fmt.Sprintf("image %s not built yet; the first sandbox builds it (about a second)", t.Image)
		c.Fix = "or build it now: berth template build base"
		return c
	}
	if err := runOnce(ctx, rt, t.Image); err != nil {
		c.Status, c.Message = Fail, fmt.Sprintf("image %s does not run: %v", t.Image, err)
		c.Fix = "see the engine's log; rebuilding the template may help (berth template build base)"
		return c
	}
	c.Status, c.Message = OK, fmt.Sprintf("image %s runs (a hardened container without network ran `true`)", t.Image)
	return c
}

// runOnce makes a container of image like a sandbox's, runs `true` in it
// and removes it.
func runOnce(ctx context.Context, rt runtime.Runtime, image string) (err error) {
	var b [4]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	id, err := rt.Create(ctx, runtime.Spec{Name: "berth-doctor-" + hex.EncodeToString(b[:]), Image: image,
		Network: runtime.NetworkNone, Labels: map[string]string{"berth.doctor": "true"}})
	if err != nil {
		return err
	}
	defer func() {
		// With a context of its own: the check's may be what ended.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if rerr := rt.Remove(rctx, id); rerr != nil && err == nil {
			err = fmt.Errorf("remove the check's container %s: %w", id, rerr)
		}
	}()
	if err := rt.Start(ctx, id); err != nil {
		return err
	}
	code, err := rt.Exec(ctx, id, runtime.ExecSpec{Cmd: []string{"true"}})
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("`true` exited %d", code)
	}
	return nil
}
