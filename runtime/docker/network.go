package docker

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/coreos/go-iptables/iptables"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/internal/hostfw"
	"github.com/berth-dev/berth/runtime"
)

// Isolated networking (runtime.NetworkBridge).
//
// Docker's default bridge (docker0) lets every container talk to every other
// one and to every service the host listens on. Sandboxes are untrusted and
// belong to different users, so bridge sandboxes go on a network of their
// own instead:
//
//   - A user-defined bridge network, IsolatedNetwork, with a fixed bridge
//     interface, IsolatedBridge, and inter-container communication off
//     (enable_icc=false: the engine drops traffic between two containers of
//     the network). Docker's own isolation rules already drop traffic between
//     it and other engine networks, and NAT gives it the internet.
//   - A host firewall rule: Docker filters what is forwarded, not what is
//     addressed to the host itself, so a container can reach every service
//     listening on any host address (the gateway, eth0's, docker0's, ...).
//     Traffic arriving at the host from IsolatedBridge goes through the
//     filter chain IsolationChain, which accepts replies to connections the
//     host opened (the manager talking to a sandbox) and drops everything
//     else. Name resolution is not affected: the engine's DNS server for
//     user-defined networks (127.0.0.11) lives in the container's network
//     namespace and forwards queries from there.
//
// Both are shared by every berth server and test server on the engine and on
// the host, created idempotently on first use and never removed by berth: one
// server ending must not open or break the network of the others. Both need
// the berth server to run on the engine's host with the right to change its
// firewall (root or CAP_NET_ADMIN): when the rule cannot be installed,
// bridge sandboxes do not start (fail closed).
const (
	IsolatedNetwork = "berth"
	IsolatedBridge  = "berth0"
	IsolationChain  = "BERTH-ISOLATION"

	// labelNetworkMode records a container's runtime network mode (the
	// engine's NetworkMode is the network's name).
	labelNetworkMode = "berth.network"
)

// isolation makes sure the isolated network and its firewall rule exist. A
// success is remembered, a failure is retried on the next call.
type isolation struct {
	network, bridge string // IsolatedNetwork and IsolatedBridge but in tests

	mu        sync.Mutex
	networkOK bool
}

// engineNetwork is the engine's network for a runtime network mode.
func (d *Docker) engineNetwork(mode string) (string, error) {
	switch mode {
	case "", runtime.NetworkNone:
		return "none", nil
	case runtime.NetworkBridge:
		return d.iso.network, nil
	case runtime.NetworkShared:
		return "bridge", nil // the engine's default bridge, docker0
	}
	return "", berth.Errorf(berth.Invalid, "container spec: unknown network %q (want %q, %q or %q)",
		mode, runtime.NetworkNone, runtime.NetworkBridge, runtime.NetworkShared)
}

// ensureIsolation creates the isolated network if missing (or forget is set:
// the caller saw it vanish) and installs the host firewall rule. The rule is
// checked on every call, not remembered: a firewall reload or a reboot
// removes it while the network (kept by the engine) stays.
func (d *Docker) ensureIsolation(ctx context.Context, forget bool) error {
	d.iso.mu.Lock()
	defer d.iso.mu.Unlock()
	if forget {
		d.iso.networkOK = false
	}
	if !d.iso.networkOK {
		if err := d.ensureNetwork(ctx); err != nil {
			return err
		}
		d.iso.networkOK = true
	}
	if err := ensureFirewall(d.iso.bridge); err != nil {
		return berth.Wrap(berth.Internal, err,
			"network isolation: cannot install the host firewall rule for "+d.iso.bridge+
				" (berth must run as root on the engine's host)")
	}
	return nil
}

// onIsolatedNetwork reports whether c was made for, or moved to, the
// isolated network.
func (d *Docker) onIsolatedNetwork(c container.InspectResponse) bool {
	if c.HostConfig != nil && string(c.HostConfig.NetworkMode) == d.iso.network {
		return true
	}
	if c.NetworkSettings != nil {
		_, ok := c.NetworkSettings.Networks[d.iso.network]
		return ok
	}
	return false
}

// fromBeforeIsolation reports whether c is a stopped runtime.NetworkBridge
// container made before bridge sandboxes were isolated: on the engine's
// default bridge, without the network-mode label that "shared" ones carry.
func (d *Docker) fromBeforeIsolation(c container.InspectResponse) bool {
	if c.Config == nil || c.HostConfig == nil || c.State == nil || c.State.Running {
		return false
	}
	_, labelled := c.Config.Labels[labelNetworkMode]
	return c.Config.Labels[runtime.ManagedLabel] == "true" && !labelled &&
		string(c.HostConfig.NetworkMode) == "bridge"
}

// moveToIsolated moves a stopped container from the default bridge to the
// isolated network, so that a sandbox made before isolation existed is
// isolated from its next start on. (Its NetworkMode still reads "bridge";
// onIsolatedNetwork looks at its networks too.) If the move fails half way,
// the container is on no network, and the next start tries again: it never
// goes back to the shared bridge.
func (d *Docker) moveToIsolated(ctx context.Context, c container.InspectResponse) error {
	if err := d.ensureIsolation(ctx, false); err != nil {
		return err
	}
	if c.NetworkSettings != nil {
		if _, ok := c.NetworkSettings.Networks["bridge"]; ok {
			_, err := d.cli.NetworkDisconnect(ctx, "bridge", client.NetworkDisconnectOptions{Container: c.ID})
			if err != nil {
				return translate(err, "move container "+c.ID+" to network "+d.iso.network)
			}
		}
	}
	_, err := d.cli.NetworkConnect(ctx, d.iso.network, client.NetworkConnectOptions{Container: c.ID})
	return translate(err, "move container "+c.ID+" to network "+d.iso.network)
}

// isolatedOptions are the driver options the isolated network must have.
func isolatedOptions(bridge string) map[string]string {
	return map[string]string{
		"com.docker.network.bridge.name":                 bridge,
		"com.docker.network.bridge.enable_icc":           "false",
		"com.docker.network.bridge.enable_ip_masquerade": "true",
	}
}

// ensureNetwork creates the isolated network unless it exists with the right
// settings. Concurrent creators (several servers on one engine) cannot make
// two: the fixed bridge name makes the engine's bridge driver refuse a
// second network using it (the API version Debian's engine speaks would
// otherwise allow two networks of one name). The loser then finds the
// winner's network, which the engine lists only once it is fully made:
// hence a few attempts, a little apart.
func (d *Docker) ensureNetwork(ctx context.Context) error {
	var createErr error
	for delay := 10 * time.Millisecond; delay < 3*time.Second; delay *= 2 {
		res, err := d.cli.NetworkInspect(ctx, d.iso.network, client.NetworkInspectOptions{})
		if err == nil {
			return checkNetwork(res.Network, d.iso.bridge)
		}
		if !cerrdefs.IsNotFound(err) {
			return translate(err, "inspect network "+d.iso.network)
		}
		_, createErr = d.cli.NetworkCreate(ctx, d.iso.network, client.NetworkCreateOptions{
			Driver:  "bridge",
			Options: isolatedOptions(d.iso.bridge),
			Labels:  map[string]string{runtime.ManagedLabel: "true"},
		})
		if createErr == nil {
			return nil
		}
		if isUnreachable(createErr) {
			break
		}
		select {
		case <-ctx.Done():
			return translate(errors.Join(createErr, ctx.Err()), "create network "+d.iso.network)
		case <-time.After(delay):
		}
	}
	return translate(createErr, "create network "+d.iso.network)
}

// checkNetwork refuses a network named IsolatedNetwork that does not isolate
// (made by hand, or by someone else): using it would silently undo the point.
func checkNetwork(n network.Inspect, bridge string) error {
	if n.Driver != "bridge" {
		return berth.Errorf(berth.Internal, "network %s exists with driver %q, not bridge: remove it (docker network rm %s) and berth recreates it",
			n.Name, n.Driver, n.Name)
	}
	for k, want := range isolatedOptions(bridge) {
		// Masquerading is on unless the option says otherwise.
		if got := n.Options[k]; got != want && !(k == "com.docker.network.bridge.enable_ip_masquerade" && got == "") {
			return berth.Errorf(berth.Internal, "network %s exists with %s=%q, want %q: remove it (docker network rm %s) and berth recreates it",
				n.Name, k, got, want, n.Name)
		}
	}
	return nil
}

func isUnreachable(err error) bool {
	return berth.KindOf(translate(err, "")) == berth.Unavailable
}

// firewall holds this process's iptables handles (making one runs
// `iptables --version`) and serialises its rule changes; other processes
// are kept consistent by the order of installRules.
var firewall struct {
	sync.Mutex
	ipts []*iptables.IPTables // IPv4, then IPv6 when the host has ip6tables
}

// ensureFirewall installs, for IPv4 and (when the host has ip6tables) IPv6:
//
//	-N BERTH-ISOLATION
//	-A BERTH-ISOLATION -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
//	-A BERTH-ISOLATION -j DROP
//	-I INPUT 1 -i berth0 -j BERTH-ISOLATION
//
// It is idempotent, and cheap when all is in place (two checks a family).
// IPv6 is defence in depth: the engine disables IPv6 inside containers of an
// IPv4 network, but a host service on [::] must not be one sysctl away.
func ensureFirewall(bridge string) error {
	firewall.Lock()
	defer firewall.Unlock()
	if firewall.ipts == nil {
		v4, err := newIPTables(iptables.ProtocolIPv4)
		if err != nil {
			return err
		}
		ipts := []*iptables.IPTables{v4}
		// Without IPv6 in the kernel (ipv6.disable=1) there is nothing to
		// filter, and ip6tables could not anyway.
		if _, err := os.Stat("/proc/net/if_inet6"); err == nil {
			v6, err := newIPTables(iptables.ProtocolIPv6)
			switch {
			case err == nil:
				ipts = append(ipts, v6)
			case !errors.Is(err, exec.ErrNotFound):
				return err
			}
		}
		firewall.ipts = ipts
	}
	var errs []error
	for _, ipt := range firewall.ipts {
		errs = append(errs, installRules(ipt, bridge))
	}
	return errors.Join(errs...)
}

// newIPTables opens the host's iptables (hostfw.New).
func newIPTables(proto iptables.Protocol) (*iptables.IPTables, error) { return hostfw.New(proto) }

// Rules of the isolation chain, in order, and the jump to it.
var (
	acceptReplies = []string{"-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"}
	dropRest      = []string{"-j", "DROP"}
)

func jumpRule(bridge string) []string { return []string{"-i", bridge, "-j", IsolationChain} }

// installRules makes the rules of one family. Several servers may run it at
// once (iptables serialises each command with its lock): the chain's rules
// are only ever appended in order, ACCEPT then DROP, so an ACCEPT always
// precedes the first DROP (at worst one is doubled, which is harmless), and
// the jump is added last, once the chain is complete. It goes first in
// INPUT: a host firewall's earlier ACCEPT must not let sandboxes through.
func installRules(ipt *iptables.IPTables, bridge string) error {
	const table = "filter"
	// Fast path: the jump is there and the chain ends in its DROP (a
	// reload removes the jump; a flush of the chain removes the DROP).
	if ok, err := ipt.Exists(table, "INPUT", jumpRule(bridge)...); err == nil && ok {
		if ok, err := ipt.Exists(table, IsolationChain, dropRest...); err == nil && ok {
			return nil
		}
	}
	exists, err := ipt.ChainExists(table, IsolationChain)
	if err != nil {
		return err
	}
	if !exists {
		if err := ipt.NewChain(table, IsolationChain); err != nil {
			// Another server may have made it in between.
			if again, cerr := ipt.ChainExists(table, IsolationChain); cerr != nil || !again {
				return errors.Join(err, cerr)
			}
		}
	}
	for _, rule := range [][]string{acceptReplies, dropRest} {
		if err := ipt.AppendUnique(table, IsolationChain, rule...); err != nil {
			return err
		}
	}
	return ipt.InsertUnique(table, "INPUT", 1, jumpRule(bridge)...)
}
