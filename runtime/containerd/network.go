package containerd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	gocni "github.com/containerd/go-cni"
	"github.com/coreos/go-iptables/iptables"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/internal/hostfw"
	"github.com/berth-dev/berth/runtime"
)

// Networking (runtime.NetworkBridge and runtime.NetworkShared).
//
// Every task gets a new network namespace from runc; a bridge or shared
// container's is wired, before its command starts, by the standard CNI
// plugins (Debian's containernetworking-plugins: bridge with host-local
// IPAM) driven by go-cni, on one of two bridges shared by every berth server
// on the host:
//
//   - IsolatedBridge (runtime.NetworkBridge, subnet IsolatedSubnet): the
//     host's firewall (chain ForwardChain, first in FORWARD) lets a sandbox
//     out only through the interfaces of the host's default routes, so it
//     reaches the internet through NAT but no other sandbox on this bridge
//     (bridged traffic goes through FORWARD: br_netfilter is required, as
//     for Docker's enable_icc=false), on the shared bridge or on any engine
//     network, and lets nothing new in. Traffic to the host itself goes
//     through InputChain, which accepts replies to connections the host
//     opened and drops the rest, in IPv4 and IPv6: the Docker backend's
//     BERTH-ISOLATION rule for this bridge.
//   - SharedBridge (runtime.NetworkShared, subnet SharedSubnet): like the
//     engine's default bridge, its sandboxes reach each other, the host's
//     services and the internet.
//
// NAT is one MASQUERADE rule a subnet, made with the rest of the firewall,
// so that no rule belongs to one container: tearing a container's network
// down is the CNI DEL that frees its address (its veth goes with its network
// namespace, when the task ends). All of it is made idempotently on first
// use and never removed by berth, like the Docker backend's network. A rule
// that cannot be installed fails the start (fail closed).
const (
	IsolatedNetwork = "berth-isolated"
	IsolatedBridge  = "berthc0"
	IsolatedSubnet  = "10.213.0.0/16"
	SharedNetwork   = "berth-shared"
	SharedBridge    = "berthc1"
	SharedSubnet    = "10.214.0.0/16"

	ForwardChain = "BERTH-CTR-FORWARD"
	InputChain   = "BERTH-CTR-ISOLATION"

	// CNIDir is where Debian's containernetworking-plugins puts them.
	CNIDir = "/usr/lib/cni"
)

type network struct {
	name, bridge, subnet string
	isolated             bool

	once   sync.Mutex
	cni    gocni.CNI
	pruned bool // this process has released the addresses of vanished containers
}

type networks struct {
	namespace        string
	isolated, shared *network
}

func newNetworks(namespace string) *networks {
	return &networks{
		namespace: namespace,
		isolated:  &network{name: IsolatedNetwork, bridge: IsolatedBridge, subnet: IsolatedSubnet, isolated: true},
		shared:    &network{name: SharedNetwork, bridge: SharedBridge, subnet: SharedSubnet},
	}
}

// forMode is the network of a runtime network mode (nil for none).
func (n *networks) forMode(mode string) (*network, error) {
	switch mode {
	case "", runtime.NetworkNone:
		return nil, nil
	case runtime.NetworkBridge:
		return n.isolated, nil
	case runtime.NetworkShared:
		return n.shared, nil
	}
	return nil, berth.Errorf(berth.Invalid, "container spec: unknown network %q (want %q, %q or %q)",
		mode, runtime.NetworkNone, runtime.NetworkBridge, runtime.NetworkShared)
}

// confList is the CNI configuration of a network.
func (nw *network) confList() []byte {
	return fmt.Appendf(nil, `{
  "cniVersion": "1.0.0",
  "name": %q,
  "plugins": [{
    "type": "bridge",
    "bridge": %q,
    "isGateway": true,
    "ipMasq": false,
    "hairpinMode": false,
    "ipam": {
      "type": "host-local",
      "ranges": [[{"subnet": %q}]],
      "routes": [{"dst": "0.0.0.0/0"}]
    }
  }]
}`, nw.name, nw.bridge, nw.subnet)
}

// IsolatedConfList is the CNI configuration of IsolatedNetwork, for the raw
// baseline of the benchmarks.
func IsolatedConfList() []byte { return newNetworks("").isolated.confList() }

// ensure loads the network's CNI configuration (once) and installs its
// firewall rules (checked on every call: a reload removes them).
func (n *networks) ensure(nw *network) error {
	nw.once.Lock()
	defer nw.once.Unlock()
	if nw.cni == nil {
		cni, err := gocni.New(gocni.WithPluginDir([]string{CNIDir}), gocni.WithConfListBytes(nw.confList()))
		if err != nil {
			return berth.Wrap(berth.Internal, err, "network "+nw.name+": CNI configuration")
		}
		nw.cni = cni
	}
	if err := ensureFirewall(); err != nil {
		return berth.Wrap(berth.Internal, err,
			"network isolation: cannot install the host firewall rules for "+IsolatedBridge+
				" (berth must run as root on the engine's host)")
	}
	return nil
}

func (n *networks) cniID(id string) string { return n.namespace + "-" + id }

// attach wires the network namespace of the task whose init is pid and
// returns the container's address.
func (n *networks) attach(ctx context.Context, nw *network, id string, pid uint32) (string, error) {
	path := "/proc/" + strconv.Itoa(int(pid)) + "/ns/net"
	res, err := nw.cni.Setup(ctx, n.cniID(id), path)
	if err != nil {
		return "", berth.Wrap(berth.Internal, err, "network "+nw.name+": set up container "+id)
	}
	for name, iface := range res.Interfaces {
		if iface.Sandbox == "" || !strings.HasPrefix(name, "eth") {
			continue
		}
		for _, ipc := range iface.IPConfigs {
			if ipc.IP.To4() != nil {
				return ipc.IP.String(), nil
			}
		}
	}
	return "", berth.Errorf(berth.Internal, "network %s: container %s got no IPv4 address", nw.name, id)
}

// detach frees the container's address. Its network namespace may be gone
// (the task ended): the plugins then release the address only, which is all
// that is left.
func (n *networks) detach(ctx context.Context, nw *network, id string) error {
	nw.once.Lock()
	cni := nw.cni
	nw.once.Unlock()
	if cni == nil {
		if err := n.ensure(nw); err != nil {
			return err
		}
		cni = nw.cni
	}
	if err := cni.Remove(ctx, n.cniID(id), ""); err != nil {
		return berth.Wrap(berth.Internal, err, "network "+nw.name+": tear down container "+id)
	}
	return nil
}

// ipamDir is where the host-local IPAM plugin keeps a network's leases: one
// file an address, holding the CNI container id and the interface.
var ipamDir = "/var/lib/cni/networks"

// leases lists the CNI container ids holding an address on nw that belong
// to this namespace, as container ids.
func (n *networks) leases(nw *network) ([]string, error) {
	dir := filepath.Join(ipamDir, nw.name)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	prefix := n.namespace + "-"
	var ids []string
	for _, e := range entries {
		if net.ParseIP(e.Name()) == nil {
			continue // last_reserved_ip, the lock
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // released meanwhile
		}
		f := strings.Fields(string(b))
		if len(f) > 0 && strings.HasPrefix(f[0], prefix) {
			ids = append(ids, strings.TrimPrefix(f[0], prefix))
		}
	}
	return ids, nil
}

// firewall holds this process's iptables handles and serialises its changes.
var firewall struct {
	sync.Mutex
	v4, v6  *iptables.IPTables
	uplinks []string // of the last FORWARD chain this process built
}

// ensureFirewall installs (see the package's networking notes):
//
//	nat:    -A POSTROUTING -s 10.213.0.0/16 ! -o berthc0 -j MASQUERADE  (and berthc1's)
//	filter: -N BERTH-CTR-FORWARD
//	        -A BERTH-CTR-FORWARD -o berthc0 -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
//	        -A BERTH-CTR-FORWARD -o berthc0 -j DROP
//	        -A BERTH-CTR-FORWARD -i berthc0 -o <uplink> -j ACCEPT    (each default route's)
//	        -A BERTH-CTR-FORWARD -i berthc0 -j DROP
//	        -A BERTH-CTR-FORWARD -i berthc1 -j ACCEPT
//	        -A BERTH-CTR-FORWARD -o berthc1 -j ACCEPT
//	        -I FORWARD 1 -j BERTH-CTR-FORWARD                        (kept first)
//	        -N BERTH-CTR-ISOLATION
//	        -A BERTH-CTR-ISOLATION -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
//	        -A BERTH-CTR-ISOLATION -j DROP
//	        -I INPUT 1 -i berthc0 -j BERTH-CTR-ISOLATION             (IPv6 too)
//
// and makes bridged traffic go through iptables (br_netfilter).
func ensureFirewall() error {
	firewall.Lock()
	defer firewall.Unlock()
	if firewall.v4 == nil {
		v4, err := newIPTables(iptables.ProtocolIPv4)
		if err != nil {
			return err
		}
		firewall.v4 = v4
		if _, err := os.Stat("/proc/net/if_inet6"); err == nil {
			v6, err := newIPTables(iptables.ProtocolIPv6)
			switch {
			case err == nil:
				firewall.v6 = v6
			case !errors.Is(err, exec.ErrNotFound):
				return err
			}
		}
	}
	if err := bridgeNetfilter(); err != nil {
		return err
	}
	v4 := firewall.v4
	for _, nw := range []struct{ subnet, bridge string }{{IsolatedSubnet, IsolatedBridge}, {SharedSubnet, SharedBridge}} {
		if err := v4.AppendUnique("nat", "POSTROUTING", "-s", nw.subnet, "!", "-o", nw.bridge, "-j", "MASQUERADE"); err != nil {
			return err
		}
	}
	uplinks, err := defaultRouteInterfaces()
	if err != nil {
		return err
	}
	if err := forwardRules(v4, uplinks); err != nil {
		return err
	}
	for _, ipt := range []*iptables.IPTables{v4, firewall.v6} {
		if ipt == nil {
			continue
		}
		if err := inputRules(ipt); err != nil {
			return err
		}
	}
	return nil
}

// forwardRules builds ForwardChain for uplinks unless this process built it
// so already, and keeps its jump first in FORWARD (the engines insert their
// own jumps at the top when they start).
func forwardRules(ipt *iptables.IPTables, uplinks []string) error {
	const table = "filter"
	exists, err := ipt.ChainExists(table, ForwardChain)
	if err != nil {
		return err
	}
	if !exists {
		if err := ipt.NewChain(table, ForwardChain); err != nil {
			if again, cerr := ipt.ChainExists(table, ForwardChain); cerr != nil || !again {
				return errors.Join(err, cerr)
			}
		}
	}
	rules := [][]string{
		{"-o", IsolatedBridge, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"},
		{"-o", IsolatedBridge, "-j", "DROP"},
	}
	for _, u := range uplinks {
		rules = append(rules, []string{"-i", IsolatedBridge, "-o", u, "-j", "ACCEPT"})
	}
	rules = append(rules,
		[]string{"-i", IsolatedBridge, "-j", "DROP"},
		[]string{"-i", SharedBridge, "-j", "ACCEPT"},
		[]string{"-o", SharedBridge, "-j", "ACCEPT"},
	)
	current, err := ipt.List(table, ForwardChain)
	if err != nil {
		return err
	}
	var want []string
	for _, r := range rules {
		want = append(want, "-A "+ForwardChain+" "+strings.Join(r, " "))
	}
	var have []string
	for _, r := range current {
		if strings.HasPrefix(r, "-A ") {
			have = append(have, strings.ReplaceAll(r, " -m conntrack --ctstate RELATED,ESTABLISHED", " -m conntrack --ctstate ESTABLISHED,RELATED"))
		}
	}
	if !slices.Equal(have, want) {
		if err := ipt.ClearChain(table, ForwardChain); err != nil {
			return err
		}
		for _, r := range rules {
			if err := ipt.Append(table, ForwardChain, r...); err != nil {
				return err
			}
		}
	}
	firewall.uplinks = uplinks
	forward, err := ipt.List(table, "FORWARD")
	if err != nil {
		return err
	}
	jump := "-A FORWARD -j " + ForwardChain
	first := ""
	for _, r := range forward {
		if strings.HasPrefix(r, "-A ") {
			first = r
			break
		}
	}
	if first == jump {
		return nil
	}
	if slices.Contains(forward, jump) {
		if err := ipt.Delete(table, "FORWARD", "-j", ForwardChain); err != nil {
			return err
		}
	}
	return ipt.Insert(table, "FORWARD", 1, "-j", ForwardChain)
}

// inputRules makes InputChain and its jump for one family, in the order the
// Docker backend's installRules explains (safe with concurrent servers).
func inputRules(ipt *iptables.IPTables) error {
	const table = "filter"
	jump := []string{"-i", IsolatedBridge, "-j", InputChain}
	drop := []string{"-j", "DROP"}
	if ok, err := ipt.Exists(table, "INPUT", jump...); err == nil && ok {
		if ok, err := ipt.Exists(table, InputChain, drop...); err == nil && ok {
			return nil
		}
	}
	exists, err := ipt.ChainExists(table, InputChain)
	if err != nil {
		return err
	}
	if !exists {
		if err := ipt.NewChain(table, InputChain); err != nil {
			if again, cerr := ipt.ChainExists(table, InputChain); cerr != nil || !again {
				return errors.Join(err, cerr)
			}
		}
	}
	for _, rule := range [][]string{{"-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"}, drop} {
		if err := ipt.AppendUnique(table, InputChain, rule...); err != nil {
			return err
		}
	}
	return ipt.InsertUnique(table, "INPUT", 1, jump...)
}

// bridgeNetfilter makes traffic between two ports of a bridge go through
// iptables' FORWARD chain, without which sandboxes on the isolated bridge
// would reach each other.
func bridgeNetfilter() error {
	const knob = "/proc/sys/net/bridge/bridge-nf-call-iptables"
	if b, err := os.ReadFile(knob); err == nil && strings.TrimSpace(string(b)) == "1" {
		return nil
	}
	if _, err := os.Stat(knob); err != nil {
		if out, merr := exec.Command("modprobe", "br_netfilter").CombinedOutput(); merr != nil {
			return fmt.Errorf("load br_netfilter: %v: %s", merr, out)
		}
	}
	return os.WriteFile(knob, []byte("1\n"), 0o644)
}

// defaultRouteInterfaces names the interfaces of the host's IPv4 default
// routes, from /proc/net/route.
func defaultRouteInterfaces() ([]string, error) {
	f, err := os.Open("/proc/net/route")
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 2 && fields[1] == "00000000" && fields[0] != "Iface" && !slices.Contains(out, fields[0]) {
			out = append(out, fields[0])
		}
	}
	slices.Sort(out)
	return out, sc.Err()
}

// newIPTables opens the host's iptables (hostfw.New).
func newIPTables(proto iptables.Protocol) (*iptables.IPTables, error) { return hostfw.New(proto) }
