package api_test

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/server/servertest"
)

// TestBtrfsSnapshotsCountInQuota: on btrfs a workspace's quota and usage
// count its snapshots as the filesystem counts them. Bytes a snapshot
// still holds after the live tree dropped them count against the quota —
// the kernel stops a sandbox's writes, the API answers 507 — and appear
// in the workspace's size, the storage totals and the snapshot's own
// sizeBytes; deleting the snapshot frees them; a restart keeps it all.
func TestBtrfsSnapshotsCountInQuota(t *testing.T) {
	needAgentEngine(t)
	servertest.BtrfsEngines(t, func(t *testing.T, env *servertest.Env) {
		ctx := testctx.Context(t)
		a := env.Admin
		const mib = 1 << 20
		quota := int64(24 * mib)
		w, err := a.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "snapquota", QuotaBytes: &quota})
		must(t, err)
		sb, err := a.CreateSandbox(ctx, client.SandboxRequest{Template: "base", Network: "none", Resources: &client.Resources{Memory: "64MiB"},
			Mounts: []client.Mount{{WorkspaceID: w.ID, Path: "/workspace"}}}, false)
		must(t, err)

		if code, out := shIn(t, a, sb.ID, "dd if=/dev/urandom of=/workspace/a bs=1M count=10 conv=fsync"); code != 0 {
			t.Fatalf("dd of 10 MiB: exit %d, %q", code, out)
		}
		snap, err := a.CreateSnapshot(ctx, w.ID, "held")
		must(t, err)
		if code, out := shIn(t, a, sb.ID, "rm /workspace/a && sync"); code != 0 {
			t.Fatalf("rm: exit %d, %q", code, out)
		}

		// The snapshot holds the 10 MiB the live tree dropped.
		sp, err := a.WorkspaceSpace(ctx, w.ID)
		must(t, err)
		if sp.Used < 10*mib || sp.SnapshotBytes < 10*mib || sp.SnapshotBytes > sp.Used || sp.Total != quota {
			t.Errorf("space with a snapshot holding 10 MiB: %+v", sp)
		}
		got, err := a.Snapshot(ctx, w.ID, snap.ID)
		must(t, err)
		if got.SizeBytes == nil || *got.SizeBytes < 10*mib || got.ReferencedBytes == nil || *got.ReferencedBytes < *got.SizeBytes {
			t.Errorf("snapshot sizes %s / %s, want >= 10 MiB held only by it", ptrStr(got.SizeBytes), ptrStr(got.ReferencedBytes))
		}
		list, err := a.Snapshots(ctx, w.ID)
		must(t, err)
		if len(list) != 1 || list[0].SizeBytes == nil || *list[0].SizeBytes < 10*mib {
			t.Errorf("snapshot list %+v", list)
		}
		ws, err := a.Workspaces(ctx, false)
		must(t, err)
		var size int64
		for _, x := range ws.Workspaces {
			if x.ID == w.ID {
				size = x.SizeBytes
			}
		}
		if size < 10*mib || ws.Storage.UsedBytes < size {
			t.Errorf("workspace sizeBytes %d, storage usedBytes %d: want the snapshot's 10 MiB in both", size, ws.Storage.UsedBytes)
		}
		// Snapshot info comes from the driver, not from a scan of the tree.
		ssp := struct {
			Used, Total, Free, SnapshotBytes int64
		}{}
		_, err = a.Do(ctx, "GET", "/v1/workspaces/"+w.ID+"/info?snapshot="+snap.ID, nil, &ssp)
		must(t, err)
		if ssp.Used < 10*mib || ssp.SnapshotBytes < 10*mib || ssp.Total != -1 {
			t.Errorf("snapshot info %+v", ssp)
		}

		// Writing again: the kernel stops the sandbox when live and
		// snapshot bytes together reach the quota.
		code, out := shIn(t, a, sb.ID, "dd if=/dev/urandom of=/workspace/b bs=1M count=32 conv=fsync; ls -l /workspace/b")
		if code == 0 && !strings.Contains(out, "Disk quota exceeded") {
			t.Fatalf("dd of 32 MiB beside a 10 MiB snapshot under a 24 MiB quota: exit %d, %q; want Disk quota exceeded", code, out)
		}
		if !strings.Contains(out, "Disk quota exceeded") {
			t.Errorf("dd past the quota: %q, want Disk quota exceeded", out)
		}
		sp, err = a.WorkspaceSpace(ctx, w.ID)
		must(t, err)
		if sp.Used > quota || sp.Used-sp.SnapshotBytes > quota-10*mib {
			t.Errorf("at the quota: %+v; the live tree got more than the snapshot left", sp)
		}
		_, err = a.UploadAs(ctx, w.ID, "/", "more.bin", io.LimitReader(zeroes{}, mib))
		wantAPIError(t, "upload with the snapshot's bytes filling the quota", err, http.StatusInsufficientStorage, "")

		// A restart keeps the group, the limit and the numbers.
		must(t, a.DestroySandbox(ctx, sb.ID))
		cfg := env.Config
		env.Stop(t)
		env2 := servertest.StartConfig(t, cfg)
		a2 := env2.Admin
		sp2, err := a2.WorkspaceSpace(ctx, w.ID)
		must(t, err)
		if sp2.Total != quota || sp2.SnapshotBytes < 10*mib {
			t.Errorf("space after a restart %+v", sp2)
		}
		_, err = a2.UploadAs(ctx, w.ID, "/", "more.bin", io.LimitReader(zeroes{}, mib))
		wantAPIError(t, "upload past the quota after a restart", err, http.StatusInsufficientStorage, "")

		// Deleting the snapshot frees its bytes.
		must(t, a2.DeleteSnapshot(ctx, w.ID, snap.ID))
		testctx.Eventually(t, "the deleted snapshot's bytes freed", func() bool {
			sp, err := a2.WorkspaceSpace(ctx, w.ID)
			must(t, err)
			return sp.SnapshotBytes < mib && sp.Free >= 8*mib
		})
		if _, err := a2.UploadAs(ctx, w.ID, "/", "more.bin", io.LimitReader(zeroes{}, mib)); err != nil {
			t.Errorf("upload after deleting the snapshot: %v", err)
		}
	})
}

func ptrStr(p *int64) string {
	if p == nil {
		return "null"
	}
	return strconv.FormatInt(*p, 10)
}
