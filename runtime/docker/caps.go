package docker

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/runtime"
)

// capsTTL is how long Capabilities keeps the engine's answer: the storage
// driver changes only when the engine restarts with another configuration,
// and a sandbox create should not cost an extra engine round trip.
const capsTTL = time.Minute

type capsCache struct {
	mu   sync.Mutex
	caps runtime.Capabilities
	at   time.Time
}

// Capabilities reports whether the engine can enforce a per-container disk
// limit (HostConfig.StorageOpt size), from its storage driver and the
// filesystem under it as `docker info` reports them; see diskLimitSupport.
func (d *Docker) Capabilities(ctx context.Context) (runtime.Capabilities, error) {
	d.caps.mu.Lock()
	defer d.caps.mu.Unlock()
	if !d.caps.at.IsZero() && time.Since(d.caps.at) < capsTTL {
		return d.caps.caps, nil
	}
	res, err := d.cli.Info(ctx, client.InfoOptions{})
	if err != nil {
		return runtime.Capabilities{}, translate(err, "docker info")
	}
	info := res.Info
	local := strings.HasPrefix(d.host, "unix://")
	d.caps.caps = diskLimitSupport(info.Driver, info.DriverStatus, info.DockerRootDir, func(dir string) (string, bool) {
		if !local {
			return "", false // the engine's filesystem is not this host's
		}
		return mountOptions(dir)
	})
	d.caps.at = time.Now()
	return d.caps.caps, nil
}

// diskLimitSupport decides from `docker info` whether the engine honours
// StorageOpt{"size": ...}. The engine's storage drivers that do are btrfs
// (a qgroup per container), zfs (a dataset quota), devicemapper (a thin
// device of that size) and windowsfilter; overlay2 only on xfs mounted
// with project quotas (pquota), which docker info does not show: opts
// returns the mount options of the engine's data root, when this host can
// see them (a local engine). Any other driver, overlay2 on another
// filesystem (extfs, the common case) included, refuses the option: the
// engine answers "--storage-opt is supported only for overlay over xfs
// with 'pquota' mount option".
func diskLimitSupport(driver string, status [][2]string, rootDir string, opts func(dir string) (string, bool)) runtime.Capabilities {
	no := func(why string) runtime.Capabilities {
		return runtime.Capabilities{NoDiskLimit: "the docker engine's storage driver " + why + " cannot enforce a per-sandbox disk limit"}
	}
	switch driver {
	case "btrfs", "zfs", "devicemapper", "windowsfilter":
		return runtime.Capabilities{DiskLimit: true}
	case "overlay2":
	default:
		return no(driver)
	}
	backing := ""
	for _, kv := range status {
		if kv[0] == "Backing Filesystem" {
			backing = kv[1]
		}
	}
	if backing != "xfs" {
		if backing == "" {
			backing = "an unknown filesystem"
		}
		return no("overlay2 on " + backing)
	}
	o, ok := opts(rootDir)
	if !ok {
		return no(fmt.Sprintf("overlay2 on xfs (whose mount options at %s, on the engine's host, berth cannot see to check for pquota)", rootDir))
	}
	for _, opt := range strings.Split(o, ",") {
		// xfs lists pquota/prjquota as prjquota, with or without enforcement
		// (prjquota vs pqnoenforce).
		if opt == "prjquota" || opt == "pquota" {
			return runtime.Capabilities{DiskLimit: true}
		}
	}
	return no("overlay2 on xfs without the pquota mount option")
}

// mountOptions returns the superblock options (as /proc/self/mountinfo
// lists them after the separator: "rw,attr2,inode64,prjquota") of the
// filesystem holding dir, false when they cannot be read.
func mountOptions(dir string) (string, bool) {
	dir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", false
	}
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", false
	}
	best, opts := "", ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source superoptions
		f := strings.Fields(sc.Text())
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+3 >= len(f) {
			continue
		}
		mp := strings.ReplaceAll(f[4], `\040`, " ")
		if (dir == mp || strings.HasPrefix(dir, strings.TrimSuffix(mp, "/")+"/")) && len(mp) >= len(best) {
			best, opts = mp, f[sep+3] // the last mount over a path wins: it hides the earlier ones
		}
	}
	return opts, best != ""
}

// checkDiskLimit refuses a spec's disk limit where the engine cannot
// enforce it: never create a container whose limit would be ignored.
func (d *Docker) checkDiskLimit(ctx context.Context, spec runtime.Spec) error {
	if spec.Resources.DiskBytes <= 0 {
		return nil
	}
	c, err := d.Capabilities(ctx)
	if err != nil {
		return err
	}
	if !c.DiskLimit {
		return berth.Errorf(berth.NotSupported, "create container %s: %s", spec.Name, c.NoDiskLimit)
	}
	return nil
}
