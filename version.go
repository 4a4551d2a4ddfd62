package berth

import "runtime/debug"

// version is set at build time:
// go build -ldflags "-X github.com/berth-dev/berth.version=v1.2.3".
var version = ""

// Version is this build's version: the -ldflags one, else the module
// version, else "devel-<VCS revision>" (with -dirty for local changes). The
// server reports it on /healthz and `berth version` prints both sides'.
func Version() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return "devel-" + rev
}
