package docker

import (
	"context"
	"strings"

	"github.com/coreos/go-iptables/iptables"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/runtime"
)

// NewWithIsolatedNetwork is New with its own isolated network and bridge,
// for tests that remove the network, which the shared one must never be.
func NewWithIsolatedNetwork(host, network, bridge string) (*Docker, error) {
	d, err := New(host)
	if err != nil {
		return nil, err
	}
	d.iso.network, d.iso.bridge = network, bridge
	return d, nil
}

// RemoveNetwork removes an engine network, as an operator might.
func (d *Docker) RemoveNetwork(ctx context.Context, name string) error {
	_, err := d.cli.NetworkRemove(ctx, name, client.NetworkRemoveOptions{})
	return err
}

// Networks counts the engine's networks named name.
func (d *Docker) Networks(ctx context.Context, name string) (int, error) {
	res, err := d.cli.NetworkList(ctx, client.NetworkListOptions{Filters: client.Filters{}.Add("name", name)})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, nw := range res.Items {
		if nw.Name == name { // the filter matches substrings
			n++
		}
	}
	return n, nil
}

// FirewallRules lists the IPv4 rules of INPUT that jump from bridge to the
// isolation chain, and the isolation chain's own rules.
func FirewallRules(bridge string) (jumps int, chain []string, err error) {
	ipt, err := newIPTables(iptables.ProtocolIPv4)
	if err != nil {
		return 0, nil, err
	}
	input, err := ipt.List("filter", "INPUT")
	if err != nil {
		return 0, nil, err
	}
	for _, r := range input {
		if r == "-A INPUT -i "+bridge+" -j "+IsolationChain {
			jumps++
		}
	}
	rules, err := ipt.List("filter", IsolationChain)
	if err != nil {
		return 0, nil, err
	}
	for _, r := range rules {
		if strings.HasPrefix(r, "-A ") {
			chain = append(chain, r)
		}
	}
	return jumps, chain, nil
}

// RemoveJump deletes the jump rules of bridge in both families, as a
// firewall reload would.
func RemoveJump(bridge string) error {
	for _, proto := range []iptables.Protocol{iptables.ProtocolIPv4, iptables.ProtocolIPv6} {
		ipt, err := newIPTables(proto)
		if err != nil {
			continue
		}
		for {
			ok, err := ipt.Exists("filter", "INPUT", "-i", bridge, "-j", IsolationChain)
			if err != nil {
				return err
			}
			if !ok {
				break
			}
			if err := ipt.Delete("filter", "INPUT", "-i", bridge, "-j", IsolationChain); err != nil {
				return err
			}
		}
	}
	return nil
}

// CreateAsBefore creates a bridge container as berth did before sandboxes
// were isolated: on the engine's default bridge, without the network label.
func (d *Docker) CreateAsBefore(ctx context.Context, name, image string, labels map[string]string) (string, error) {
	l := map[string]string{runtime.ManagedLabel: "true"}
	for k, v := range labels {
		l[k] = v
	}
	init := true
	res, err := d.cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name:       name,
		Config:     &container.Config{Image: image, Cmd: runtime.IdleCommand, Labels: l},
		HostConfig: &container.HostConfig{NetworkMode: "bridge", Init: &init},
	})
	return res.ID, err
}

// ContainerNetworks names the networks container id is attached to.
func (d *Docker) ContainerNetworks(ctx context.Context, id string) ([]string, error) {
	res, err := d.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return nil, err
	}
	var names []string
	if ns := res.Container.NetworkSettings; ns != nil {
		for name := range ns.Networks {
			names = append(names, name)
		}
	}
	return names, nil
}

// DiskLimitSupport is diskLimitSupport, for its table test.
var DiskLimitSupport = diskLimitSupport

// MountOptions is mountOptions, for its test.
var MountOptions = mountOptions
