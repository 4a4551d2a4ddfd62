package templates

import (
	"os/exec"

	"github.com/berth-dev/berth"
)

// CanBuild reports whether this host has what t's build needs (a static
// busybox for "busybox", debootstrap for "debootstrap"), without building.
// A template that is pulled needs nothing here.
func CanBuild(t Template) error {
	if t.Build == nil {
		return nil
	}
	switch t.Build.Source {
	case "busybox":
		return checkStatic(BusyboxPath)
	case "debootstrap":
		if _, err := exec.LookPath("debootstrap"); err != nil {
			return berth.Wrap(berth.Unavailable, err, "debootstrap is not installed (Debian: apt-get install debootstrap)")
		}
	}
	return nil
}
