// Package relay is the gateway pods' xDS relay: Envoy's ADS stream (delta xDS, as pilot-agent's bootstrap
// asks for) goes to the relay on loopback, which forwards it to istiod and passes istiod's responses back
// with exactly two rewrites, because Envoy here can reach nothing but loopback:
//
//  1. ClusterLoadAssignment (EDS): every endpoint socket address, a pod IP:port, becomes the loopback
//     address of the process that plays that pod (the echo-pod table). An endpoint with no loopback
//     stand-in is LEFT OUT (not marked unhealthy: Envoy's panic mode would then still dial it), and a
//     locality left without endpoints is left out with it.
//  2. Listener (LDS): the listener's socket address, 0.0.0.0:<port> as istiod binds a gateway listener,
//     becomes 127.0.0.1:<the pod's loopback port for that listener port>, a port of the gateway pod's own,
//     so that the CLB stand-in can reach each pod's listener separately.
//
// Nothing else in any resource changes. Both rewrites are functions of the resource and the tables only,
// so a weight change still reaches Envoy as a listener that differs only in its filter chain.
package relay

import (
	"fmt"
	"net"
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

const (
	TypeCluster  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	TypeEndpoint = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
	TypeListener = "type.googleapis.com/envoy.config.listener.v3.Listener"
)

// Loopback is the only address a rewritten listener binds.
const Loopback = "127.0.0.1"

// Endpoints maps a pod address "ip:port" to the loopback "127.0.0.1:port" that stands for it.
type Endpoints interface {
	Lookup(address string) (string, bool)
}

// ListenerPorts gives the loopback port of one gateway pod's listener for a port istiod chose.
type ListenerPorts func(port uint32) (uint32, error)

// RewriteEndpoints returns a copy of cla with every socket address mapped to its loopback stand-in, unmapped
// endpoints (and localities left empty) left out, and how many endpoints were left out.
func RewriteEndpoints(cla *endpointv3.ClusterLoadAssignment, eps Endpoints) (*endpointv3.ClusterLoadAssignment, int) {
	out := proto.Clone(cla).(*endpointv3.ClusterLoadAssignment)
	dropped := 0
	localities := out.Endpoints[:0]
	for _, loc := range out.Endpoints {
		kept := loc.LbEndpoints[:0]
		for _, lb := range loc.LbEndpoints {
			sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
			if sa == nil {
				// Not a socket address (an internal listener, a named endpoint): nothing to dial, kept as is.
				kept = append(kept, lb)
				continue
			}
			target, ok := eps.Lookup(net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue()))))
			host, port, err := splitLoopback(target)
			if !ok || err != nil {
				dropped++
				continue
			}
			sa.Address, sa.PortSpecifier = host, &corev3.SocketAddress_PortValue{PortValue: port}
			kept = append(kept, lb)
		}
		loc.LbEndpoints = kept
		if len(kept) > 0 {
			localities = append(localities, loc)
		}
	}
	out.Endpoints = localities
	return out, dropped
}

func splitLoopback(address string) (string, uint32, error) {
	host, p, err := net.SplitHostPort(address)
	if err != nil {
		return "", 0, err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return "", 0, fmt.Errorf("%s is not a loopback address", address)
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil || port == 0 {
		return "", 0, fmt.Errorf("bad port in %s", address)
	}
	return host, uint32(port), nil
}

// RewriteListener returns a copy of l bound to 127.0.0.1 on the pod's loopback port for l's port. A listener
// without a socket address (an internal listener) is returned unchanged.
func RewriteListener(l *listenerv3.Listener, ports ListenerPorts) (*listenerv3.Listener, error) {
	out := proto.Clone(l).(*listenerv3.Listener)
	sa := out.GetAddress().GetSocketAddress()
	if sa == nil {
		return out, nil
	}
	port, err := ports(sa.GetPortValue())
	if err != nil {
		return nil, fmt.Errorf("listener %s: %w", l.GetName(), err)
	}
	sa.Address, sa.PortSpecifier = Loopback, &corev3.SocketAddress_PortValue{PortValue: port}
	return out, nil
}

var deterministic = proto.MarshalOptions{Deterministic: true}

// RewriteAny rewrites one resource of istiod's response: EDS and LDS as above, every other type unchanged
// (the same Any, byte for byte). dropped counts left-out endpoints.
func RewriteAny(typeURL string, res *anypb.Any, eps Endpoints, ports ListenerPorts) (out *anypb.Any, dropped int, err error) {
	switch typeURL {
	case TypeEndpoint:
		cla := &endpointv3.ClusterLoadAssignment{}
		if err := res.UnmarshalTo(cla); err != nil {
			return nil, 0, err
		}
		rw, n := RewriteEndpoints(cla, eps)
		out, err = marshal(rw)
		return out, n, err
	case TypeListener:
		l := &listenerv3.Listener{}
		if err := res.UnmarshalTo(l); err != nil {
			return nil, 0, err
		}
		rw, err := RewriteListener(l, ports)
		if err != nil {
			return nil, 0, err
		}
		out, err = marshal(rw)
		return out, 0, err
	}
	return res, 0, nil
}

func marshal(m proto.Message) (*anypb.Any, error) {
	b, err := deterministic.Marshal(m)
	if err != nil {
		return nil, err
	}
	return &anypb.Any{TypeUrl: "type.googleapis.com/" + string(m.ProtoReflect().Descriptor().FullName()), Value: b}, nil
}
