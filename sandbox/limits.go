package sandbox

import (
	"fmt"
	"math"
	goruntime "runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/templates"
)

// Limits are the server's defaults and ceilings for sandbox resources. A
// resource a create does not ask for takes its template's default, else the
// server's; every value lies between a floor (below which a sandbox does
// not work or the engine refuses it) and the ceiling. There is no
// "unlimited". A template default above a ceiling is lowered to it, so that
// a small host can still run every template.
type Limits struct {
	DefaultVCPUs float64
	MaxVCPUs     float64
	// Memory in bytes; it is also the memory+swap limit.
	DefaultMemory int64
	MaxMemory     int64
	// Disk in bytes bounds what a sandbox writes into its own filesystem
	// (not its workspaces). Only where the engine can enforce it
	// (runtime.Capabilities.DiskLimit): elsewhere a create that asks for a
	// disk limit is refused, and a sandbox that does not gets none (the
	// default, the server's or its template's, is not applied and not
	// recorded), so that no limit is ever shown that does not hold.
	DefaultDisk int64
	MaxDisk     int64
	// Pids bounds the processes (and threads) in a sandbox.
	DefaultPids int64
	MaxPids     int64
	// MaxIdleTimeout bounds a sandbox's idleTimeout; 0 (never pause) is
	// always allowed.
	MaxIdleTimeout time.Duration
}

// Floors of each resource.
const (
	minVCPUs  = 0.01 // the engine's smallest CPU quota
	minMemory = 8 << 20
	minDisk   = 1 << 20
	minPids   = 16
)

// HostLimits are the default Limits for the machine berth runs on: at most
// its CPUs and RAM per sandbox (set the flags when the engine runs on
// another machine), at most the size of its root filesystem as disk.
func HostLimits() Limits {
	cpus := float64(goruntime.NumCPU())
	mem := int64(16 << 30)
	var si syscall.Sysinfo_t
	if syscall.Sysinfo(&si) == nil && si.Totalram > 0 {
		mem = int64(si.Totalram) * int64(si.Unit)
	}
	disk := int64(100 << 30)
	var fs syscall.Statfs_t
	if syscall.Statfs("/", &fs) == nil && fs.Blocks > 0 {
		disk = int64(fs.Blocks) * fs.Bsize
	}
	return Limits{
		DefaultVCPUs: min(1, cpus), MaxVCPUs: cpus,
		DefaultMemory: min(1<<30, mem), MaxMemory: mem,
		DefaultDisk: min(10<<30, disk), MaxDisk: disk,
		DefaultPids: 512, MaxPids: 4096,
		MaxIdleTimeout: 30 * 24 * time.Hour,
	}
}

// withDefaults fills the zero fields from HostLimits.
func (l Limits) withDefaults() Limits {
	h := HostLimits()
	pick := func(v *int64, d int64) {
		if *v == 0 {
			*v = d
		}
	}
	if l.MaxVCPUs == 0 {
		l.MaxVCPUs = h.MaxVCPUs
	}
	if l.DefaultVCPUs == 0 {
		l.DefaultVCPUs = min(h.DefaultVCPUs, l.MaxVCPUs)
	}
	pick(&l.MaxMemory, h.MaxMemory)
	pick(&l.DefaultMemory, min(h.DefaultMemory, l.MaxMemory))
	pick(&l.MaxDisk, h.MaxDisk)
	pick(&l.DefaultDisk, min(h.DefaultDisk, l.MaxDisk))
	pick(&l.MaxPids, h.MaxPids)
	pick(&l.DefaultPids, min(h.DefaultPids, l.MaxPids))
	if l.MaxIdleTimeout == 0 {
		l.MaxIdleTimeout = h.MaxIdleTimeout
	}
	return l
}

// Validate checks a configuration, zero fields taken as HostLimits':
// every default between its floor and its ceiling.
func (l Limits) Validate() error { return l.withDefaults().validate() }

func (l Limits) validate() error {
	check := func(name string, def, ceil, floor float64, show func(float64) string) error {
		switch {
		case ceil < floor || math.IsNaN(ceil):
			return fmt.Errorf("--sandbox-max-%s %s is below the minimum of %s", name, show(ceil), show(floor))
		case def < floor || def > ceil || math.IsNaN(def):
			return fmt.Errorf("--sandbox-default-%s %s must lie between %s and --sandbox-max-%s %s", name, show(def), show(floor), name, show(ceil))
		}
		return nil
	}
	num := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	size := func(v float64) string { return showSize(int64(v)) }
	if err := check("vcpus", l.DefaultVCPUs, l.MaxVCPUs, minVCPUs, num); err != nil {
		return err
	}
	if err := check("memory", float64(l.DefaultMemory), float64(l.MaxMemory), minMemory, size); err != nil {
		return err
	}
	if err := check("disk", float64(l.DefaultDisk), float64(l.MaxDisk), minDisk, size); err != nil {
		return err
	}
	if err := check("pids", float64(l.DefaultPids), float64(l.MaxPids), minPids, num); err != nil {
		return err
	}
	if l.MaxIdleTimeout < time.Second {
		return fmt.Errorf("--sandbox-max-idle-timeout %s is below one second", l.MaxIdleTimeout)
	}
	return nil
}

// checkTemplate refuses a template whose defaults no sandbox could run with
// (a ceiling only lowers them).
func checkTemplate(t templates.Template) error {
	r := t.Resources
	bad := func(what string) error { return fmt.Errorf("template %s: default %s", t.Name, what) }
	if r.VCPUs != 0 && r.VCPUs < minVCPUs {
		return bad(fmt.Sprintf("vcpus %v is below the minimum of %v", r.VCPUs, minVCPUs))
	}
	if r.Pids != 0 && r.Pids < minPids {
		return bad(fmt.Sprintf("pids %d is below the minimum of %d", r.Pids, minPids))
	}
	for _, s := range []struct {
		name, v string
		floor   int64
	}{{"memory", r.Memory, minMemory}, {"disk", r.Disk, minDisk}} {
		if s.v == "" {
			continue
		}
		n, err := humanize.ParseBytes(s.v)
		if err != nil {
			return bad(fmt.Sprintf("%s %q is not a size", s.name, s.v))
		}
		if n < uint64(s.floor) {
			return bad(fmt.Sprintf("%s %q is below the minimum of %s", s.name, s.v, showSize(s.floor)))
		}
	}
	return nil
}

// ResourcesInput is what a create asks for; a field left out takes the
// template's default, else the server's.
type ResourcesInput struct {
	VCPUs  *float64 `json:"vcpus,omitempty"`
	Memory *string  `json:"memory,omitempty"`
	Disk   *string  `json:"disk,omitempty"`
	Pids   *int64   `json:"pids,omitempty"`
}

// resolve picks and checks every resource of a create. It returns what the
// sandbox records (in the units asked) and the runtime's limits. caps asks
// the engine what it can enforce (only once the other resources pass, so
// that their errors do not wait on the engine).
func (l Limits) resolve(in *ResourcesInput, tmpl templates.Resources, caps func() (runtime.Capabilities, error)) (*ResourcesInput, runtime.Resources, error) {
	if in == nil {
		in = &ResourcesInput{}
	}
	out := &ResourcesInput{}
	var rr runtime.Resources

	// vCPUs.
	vcpus, err := bounded("vcpus", in.VCPUs, tmpl.VCPUs, l.DefaultVCPUs, minVCPUs, l.MaxVCPUs)
	if err != nil {
		return nil, rr, err
	}
	out.VCPUs = &vcpus
	rr.NanoCPUs = int64(math.Round(vcpus * 1e9))

	// Memory and disk.
	size := func(field string, asked *string, tmplDefault string, def, ceil, floor int64) (*string, int64, error) {
		if asked == nil {
			if tmplDefault == "" {
				s := sizeString(def)
				return &s, def, nil
			}
			n, err := humanize.ParseBytes(tmplDefault)
			if err != nil {
				return nil, 0, fmt.Errorf("template default %s %q: %w", field, tmplDefault, err) // checked at start
			}
			if n > uint64(ceil) {
				s := sizeString(ceil)
				return &s, ceil, nil
			}
			return &tmplDefault, int64(n), nil
		}
		n, err := humanize.ParseBytes(*asked)
		if err != nil {
			return nil, 0, berth.FieldErrorf(berth.Invalid, "resources."+field, "resources.%s %q is not a size such as \"512MiB\" or \"2GB\"", field, *asked)
		}
		if n < uint64(floor) {
			why := ""
			if n == 0 {
				why = " (0 does not mean unlimited)"
			}
			return nil, 0, berth.FieldErrorf(berth.Invalid, "resources."+field, "resources.%s %q is below the minimum of %s%s", field, *asked, showSize(floor), why)
		}
		if n > uint64(ceil) {
			return nil, 0, berth.FieldErrorf(berth.Invalid, "resources."+field, "resources.%s %q is more than this server allows (%s)", field, *asked, showSize(ceil))
		}
		return asked, int64(n), nil
	}
	if out.Memory, rr.MemoryBytes, err = size("memory", in.Memory, tmpl.Memory, l.DefaultMemory, l.MaxMemory, minMemory); err != nil {
		return nil, rr, err
	}
	disk, diskBytes, err := size("disk", in.Disk, tmpl.Disk, l.DefaultDisk, l.MaxDisk, minDisk)
	if err != nil {
		return nil, rr, err
	}

	// Processes.
	pids, err := bounded("pids", in.Pids, tmpl.Pids, l.DefaultPids, minPids, l.MaxPids)
	if err != nil {
		return nil, rr, err
	}
	out.Pids = &pids
	rr.PidsLimit = pids

	// Disk, where the engine can enforce it.
	c, err := caps()
	if err != nil {
		return nil, rr, err
	}
	switch {
	case c.DiskLimit:
		out.Disk, rr.DiskBytes = disk, diskBytes
	case in.Disk != nil:
		// Never accept a limit that would not hold.
		return nil, rr, berth.FieldErrorf(berth.Invalid, "resources.disk", "resources.disk %q: %s, and berth accepts no limit it cannot enforce; leave resources.disk out (the sandbox's own filesystem then has no limit of its own)", *in.Disk, c.NoDiskLimit)
	default:
		// A default (the server's, or the template's, which the
		// templates API marks as not enforced) is dropped, not recorded.
	}
	return out, rr, nil
}

// sizeString writes n bytes exactly, in the largest binary unit that
// divides it.
func sizeString(n int64) string {
	for _, u := range []struct {
		unit string
		size int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.unit
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}

// showSize writes n bytes for people: exact when a round number of a
// binary unit, else rounded.
func showSize(n int64) string {
	if s := sizeString(n); n < 1<<20 || n%(1<<20) == 0 {
		return s
	}
	return fmt.Sprintf("%s (%d bytes)", humanize.IBytes(uint64(n)), n)
}

// bounded picks a numeric resource: the request's value, which must lie
// between floor and ceil, else the template's (lowered to ceil), else the
// server's default.
func bounded[T int64 | float64](field string, asked *T, tmplDefault, def, floor, ceil T) (T, error) {
	switch {
	case asked != nil:
		if *asked < floor {
			return 0, berth.FieldErrorf(berth.Invalid, "resources."+field, "resources.%s %v is below the minimum of %v", field, *asked, floor)
		}
		if *asked > ceil {
			return 0, berth.FieldErrorf(berth.Invalid, "resources."+field, "resources.%s %v is more than this server allows (%v)", field, *asked, ceil)
		}
		return *asked, nil
	case tmplDefault != 0:
		return min(tmplDefault, ceil), nil
	}
	return def, nil
}
