// Package hostfw opens the host's iptables for the runtime backends that
// install berth's isolation rules (runtime/docker, runtime/containerd).
package hostfw

import (
	"fmt"
	"os"
	"os/exec"

	"github.com/coreos/go-iptables/iptables"
)

// New finds the iptables command in PATH or, since a service's PATH often
// lacks them, in /usr/sbin and /sbin.
func New(proto iptables.Protocol) (*iptables.IPTables, error) {
	name := "iptables"
	if proto == iptables.ProtocolIPv6 {
		name = "ip6tables"
	}
	path, err := exec.LookPath(name)
	if err != nil {
		for _, dir := range []string{"/usr/sbin/", "/sbin/"} {
			if st, serr := os.Stat(dir + name); serr == nil && !st.IsDir() {
				path, err = dir+name, nil
				break
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	// Timeout: how long to wait for the xtables lock another process holds.
	return iptables.New(iptables.IPFamily(proto), iptables.Path(path), iptables.Timeout(30))
}
