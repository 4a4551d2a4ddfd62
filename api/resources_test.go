package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/sandbox"
)

// TestSandboxResourceLimits: every resource is checked against the
// server's floors and ceilings with a 400 naming the field, the value and
// the limit; what passes is what the container gets, template defaults
// included (lowered to a ceiling below them).
func TestSandboxResourceLimits(t *testing.T) {
	t.Parallel()
	env := startWith(t, sandbox.Options{Limits: sandbox.Limits{
		DefaultVCPUs: 0.5, MaxVCPUs: 1,
		DefaultMemory: 64 << 20, MaxMemory: 256 << 20,
		DefaultDisk: 256 << 20, MaxDisk: 1 << 30,
		DefaultPids: 64, MaxPids: 256,
		MaxIdleTimeout: time.Hour,
	}})
	key := env.AdminKey
	res := func(kv ...any) map[string]any {
		m := map[string]any{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return map[string]any{"template": "base", "resources": m}
	}
	for _, c := range []struct {
		name string
		body map[string]any
		want []string // all in the message
	}{
		{"memory zero", res("memory", "0"), []string{`resources.memory "0"`, "minimum of 8MiB", "not mean unlimited"}},
		{"memory 100TB", res("memory", "100TB"), []string{`resources.memory "100TB"`, "more than this server allows (256MiB)"}},
		{"memory over ceiling", res("memory", "300MiB"), []string{`resources.memory "300MiB"`, "(256MiB)"}},
		{"memory negative", res("memory", "-1GB"), []string{`resources.memory "-1GB"`, "not a size"}},
		{"memory unparseable", res("memory", "lots"), []string{`resources.memory "lots"`, "not a size"}},
		{"memory below floor", res("memory", "1MiB"), []string{`resources.memory "1MiB"`, "minimum of 8MiB"}},
		{"memory overflow", res("memory", "10EB"), []string{`resources.memory "10EB"`, "(256MiB)"}},
		{"vcpus zero", res("vcpus", 0), []string{"resources.vcpus 0", "minimum of 0.01"}},
		{"vcpus negative", res("vcpus", -1), []string{"resources.vcpus -1", "minimum"}},
		{"vcpus over ceiling", res("vcpus", 1.5), []string{"resources.vcpus 1.5", "more than this server allows (1)"}},
		{"vcpus huge", res("vcpus", 1e300), []string{"resources.vcpus 1e+300", "(1)"}},
		{"disk zero", res("disk", "0"), []string{`resources.disk "0"`, "minimum of 1MiB"}},
		{"disk 100TB", res("disk", "100TB"), []string{`resources.disk "100TB"`, "more than this server allows (1GiB)"}},
		{"disk unparseable", res("disk", "big"), []string{`resources.disk "big"`, "not a size"}},
		{"pids zero", res("pids", 0), []string{"resources.pids 0", "minimum of 16"}},
		{"pids negative", res("pids", -5), []string{"resources.pids -5", "minimum of 16"}},
		{"pids over ceiling", res("pids", 100000), []string{"resources.pids 100000", "more than this server allows (256)"}},
		{"idleTimeout negative", map[string]any{"template": "base", "idleTimeout": -1}, []string{"idleTimeout -1", "negative"}},
		{"idleTimeout over ceiling", map[string]any{"template": "base", "idleTimeout": 3601}, []string{"idleTimeout 3601", "more than this server allows (3600 seconds)"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			st, _, code, msg := raw(t, env, key, "POST", "/v1/sandboxes", c.body)
			if st != 400 || code != "invalid_request" {
				t.Fatalf("%v: %d %s %q, want 400 invalid_request", c.body, st, code, msg)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q does not say %q", msg, w)
				}
			}
		})
	}
	var n int
	must(t, env.DB.Get(&n, `SELECT COUNT(*) FROM sandboxes`))
	if n != 0 {
		t.Fatalf("refused creates left %d sandbox rows", n)
	}

	// What passes is what the container gets. A disk limit only where the
	// engine enforces it (TestSandboxDiskLimit has the other side).
	needEngine(t, env)
	caps, err := env.Sandboxes.Runtime().Capabilities(testctx.Context(t))
	must(t, err)
	asked, askedRes, tmplRes := res("vcpus", 0.5, "memory", "96MiB", "pids", 100), client.Resources{VCPUs: 0.5, Memory: "96MiB", Pids: 100}, client.Resources{VCPUs: 1, Memory: "256MiB", Pids: 256}
	if caps.DiskLimit {
		asked["resources"].(map[string]any)["disk"] = "512MiB"
		askedRes.Disk, tmplRes.Disk = "512MiB", "1GiB"
	}
	// cgroup v2 or v1 files, as the sandbox sees its own limits.
	const probe = `m=$(cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes)
c=$(cat /sys/fs/cgroup/cpu.max 2>/dev/null || echo "$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)")
p=$(cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max)
echo "$m|$c|$p"`
	for _, c := range []struct {
		name      string
		body      map[string]any
		resources client.Resources
		cgroup    string
	}{
		{"asked", asked, askedRes, "100663296|50000 100000|100"},
		// base asks 1 vCPU, 1GB, 10GB and 512 pids: 1 vCPU fits, the
		// rest is lowered to the ceilings.
		{"template defaults bounded", map[string]any{"template": "base"}, tmplRes, "268435456|100000 100000|256"},
	} {
		t.Run(c.name, func(t *testing.T) {
			st, data, _, msg := raw(t, env, key, "POST", "/v1/sandboxes", c.body)
			if st != 201 {
				t.Fatalf("create %v: %d %s", c.body, st, msg)
			}
			var s client.Sandbox
			must(t, json.Unmarshal(data, &s))
			t.Cleanup(func() { _ = env.Admin.DestroySandbox(context.Background(), s.ID) })
			if s.Resources != c.resources {
				t.Errorf("sandbox resources %+v, want %+v", s.Resources, c.resources)
			}
			if got := strings.TrimSpace(sh(t, env.Admin, s.ID, probe)); got != c.cgroup {
				t.Errorf("the container's memory|cpu quota period|pids limits are %q, want %q", got, c.cgroup)
			}
		})
	}
}

// TestSandboxDiskLimit: a disk limit is enforced where the engine can, and
// refused where it cannot, never accepted and ignored. On an engine that
// cannot (overlay2 on extfs, this project's machines): a create asking for
// resources.disk is a 400 on that field naming the engine's storage driver
// and leaves nothing behind; one that does not ask gets no disk limit,
// although the server and the template have disk defaults; the template
// listing says its default is not applied. (Where the engine can, a write
// past the limit fails inside the container: runtime/docker's
// TestDiskLimitEnforced, on a private engine on btrfs.)
func TestSandboxDiskLimit(t *testing.T) {
	t.Parallel()
	env := startWith(t, sandbox.Options{Limits: sandbox.Limits{DefaultDisk: 256 << 20, MaxDisk: 1 << 30}})
	needEngine(t, env)
	caps, err := env.Sandboxes.Runtime().Capabilities(testctx.Context(t))
	must(t, err)
	if caps.DiskLimit {
		t.Skip("this engine enforces disk limits: the refusal cannot happen (TestSandboxResourceLimits checks the limit is applied)")
	}
	key := env.AdminKey
	st, _, code, msg := raw(t, env, key, "POST", "/v1/sandboxes", map[string]any{"template": "base", "resources": map[string]any{"memory": "64MiB", "disk": "512MiB"}})
	if st != 400 || code != "invalid_request" {
		t.Fatalf("create with a disk limit the engine cannot enforce: %d %s %q, want 400 invalid_request", st, code, msg)
	}
	for _, w := range []string{`resources.disk "512MiB"`, "storage driver", "cannot enforce a per-sandbox disk limit", caps.NoDiskLimit} {
		if !strings.Contains(msg, w) {
			t.Errorf("message %q does not say %q", msg, w)
		}
	}
	disk := "512MiB"
	_, err = env.Admin.CreateSandbox(testctx.Context(t), client.SandboxRequest{Template: "base", Resources: &client.Resources{Disk: disk}}, false)
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != 400 || ce.Field != "resources.disk" {
		t.Errorf("create with a disk limit through the client: %v, want 400 on field resources.disk", err)
	}
	var n int
	must(t, env.DB.Get(&n, `SELECT COUNT(*) FROM sandboxes`))
	if n != 0 {
		t.Fatalf("refused creates left %d sandbox rows", n)
	}

	// Without asking: no disk limit, none recorded, none shown.
	s := newSandbox(t, env.Admin, client.SandboxRequest{})
	if s.Resources.Disk != "" {
		t.Errorf("created sandbox reports disk %q on an engine that cannot enforce it", s.Resources.Disk)
	}
	got, err := env.Admin.Sandbox(testctx.Context(t), s.ID)
	must(t, err)
	if got.Resources.Disk != "" {
		t.Errorf("sandbox read back with disk %q", got.Resources.Disk)
	}

	// The template's disk default is marked as not applied.
	st, body, _, msg := raw(t, env, key, "GET", "/v1/templates/base", nil)
	if st != 200 {
		t.Fatalf("get template: %d %s", st, msg)
	}
	var tv struct {
		Resources       struct{ Disk string } `json:"resources"`
		DiskNotEnforced string                `json:"diskNotEnforced"`
	}
	must(t, json.Unmarshal(body, &tv))
	if tv.Resources.Disk == "" || !strings.Contains(tv.DiskNotEnforced, caps.NoDiskLimit) || !strings.Contains(tv.DiskNotEnforced, "no disk limit") {
		t.Errorf("template base: disk %q, diskNotEnforced %q; want the default shown and marked as not applied, saying why", tv.Resources.Disk, tv.DiskNotEnforced)
	}
}
