package relay

import (
	"fmt"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpproxy "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"asm-tcp-shift/mesh/internal/table"
)

const (
	v1 = "outbound|9000|v1|tcp-echo.default.svc.cluster.local"
	v2 = "outbound|9000|v2|tcp-echo.default.svc.cluster.local"
)

func socket(addr string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: addr, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
}

func lbEndpoint(addr string, port uint32) *endpointv3.LbEndpoint {
	return &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: socket(addr, port)}}}
}

func cla(name string, localities ...[]*endpointv3.LbEndpoint) *endpointv3.ClusterLoadAssignment {
	c := &endpointv3.ClusterLoadAssignment{ClusterName: name}
	for i, eps := range localities {
		c.Endpoints = append(c.Endpoints, &endpointv3.LocalityLbEndpoints{Locality: &corev3.Locality{Zone: fmt.Sprint("z", i)}, LbEndpoints: eps})
	}
	return c
}

// gatewayListener is what istiod sends a gateway for the project's VirtualService at weight w.
func gatewayListener(t *testing.T, w uint32) *listenerv3.Listener {
	tp := &tcpproxy.TcpProxy{StatPrefix: "tcp-echo.default", ClusterSpecifier: &tcpproxy.TcpProxy_WeightedClusters{
		WeightedClusters: &tcpproxy.TcpProxy_WeightedCluster{Clusters: []*tcpproxy.TcpProxy_WeightedCluster_ClusterWeight{
			{Name: v1, Weight: 100 - w}, {Name: v2, Weight: w}}}}}
	cfg, err := anypb.New(tp)
	if err != nil {
		t.Fatal(err)
	}
	return &listenerv3.Listener{
		Name:             "0.0.0.0_31400",
		Address:          socket("0.0.0.0", 31400),
		TrafficDirection: corev3.TrafficDirection_OUTBOUND,
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name: "envoy.filters.network.tcp_proxy", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: cfg}}}}},
	}
}

var echoTable = table.Static{
	"10.0.0.5:9000": "127.0.0.1:40005",
	"10.0.0.6:9000": "127.0.0.1:40006",
}

func fixedPorts(m map[uint32]uint32) ListenerPorts {
	return func(port uint32) (uint32, error) {
		if lb, ok := m[port]; ok {
			return lb, nil
		}
		return 0, fmt.Errorf("no port for %d", port)
	}
}

func TestEndpointsMappedToLoopbackUnmappedLeftOut(t *testing.T) {
	in := cla(v1,
		[]*endpointv3.LbEndpoint{lbEndpoint("10.0.0.5", 9000), lbEndpoint("10.0.0.7", 9000)},
		[]*endpointv3.LbEndpoint{lbEndpoint("10.0.0.9", 9000)},
		[]*endpointv3.LbEndpoint{lbEndpoint("10.0.0.6", 9000)})
	before := proto.Clone(in)
	out, dropped := RewriteEndpoints(in, echoTable)
	if !proto.Equal(in, before) {
		t.Fatal("the input was modified")
	}
	if dropped != 2 {
		t.Fatalf("dropped %d, want 2 (10.0.0.7 and 10.0.0.9 have no stand-in)", dropped)
	}
	want := cla(v1,
		[]*endpointv3.LbEndpoint{lbEndpoint("127.0.0.1", 40005)},
		[]*endpointv3.LbEndpoint{lbEndpoint("127.0.0.1", 40006)})
	want.Endpoints[1].Locality.Zone = "z2" // the empty locality z1 is left out
	if !proto.Equal(out, want) {
		t.Fatalf("got %v\nwant %v", out, want)
	}
}

func TestEndpointsNeverLeftOnANonLoopbackAddress(t *testing.T) {
	bad := table.Static{"10.0.0.5:9000": "10.0.0.5:9000", "10.0.0.6:9000": "127.0.0.1:notaport"}
	out, dropped := RewriteEndpoints(cla(v1, []*endpointv3.LbEndpoint{lbEndpoint("10.0.0.5", 9000), lbEndpoint("10.0.0.6", 9000)}), bad)
	if dropped != 2 || len(out.Endpoints) != 0 {
		t.Fatalf("a table entry that is not loopback must not be used: %v (dropped %d)", out, dropped)
	}
}

func TestEndpointsWithoutSocketAddressKept(t *testing.T) {
	internal := &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: &corev3.Address{
		Address: &corev3.Address_EnvoyInternalAddress{EnvoyInternalAddress: &corev3.EnvoyInternalAddress{
			AddressNameSpecifier: &corev3.EnvoyInternalAddress_ServerListenerName{ServerListenerName: "connect_originate"}}}}}}}
	in := cla(v1, []*endpointv3.LbEndpoint{internal})
	out, dropped := RewriteEndpoints(in, echoTable)
	if dropped != 0 || !proto.Equal(in, out) {
		t.Fatalf("got %v (dropped %d)", out, dropped)
	}
}

func TestListenerBoundToThePodsLoopbackPort(t *testing.T) {
	in := gatewayListener(t, 20)
	out, err := RewriteListener(in, fixedPorts(map[uint32]uint32{31400: 41400}))
	if err != nil {
		t.Fatal(err)
	}
	want := gatewayListener(t, 20)
	want.Address = socket("127.0.0.1", 41400)
	if !proto.Equal(out, want) {
		t.Fatalf("got %v\nwant %v", out, want)
	}
	if in.GetAddress().GetSocketAddress().GetAddress() != "0.0.0.0" {
		t.Fatal("the input was modified")
	}
	if _, err := RewriteListener(in, fixedPorts(nil)); err == nil {
		t.Fatal("a listener port without a loopback port must fail, not pass unrewritten")
	}
}

// A weight change reaches Envoy as a listener that differs from the previous one only in its filter chain, and
// the same input always gives the same bytes.
func TestListenerRewriteDeterministicAndOnlyFilterChainsDiffer(t *testing.T) {
	ports := fixedPorts(map[uint32]uint32{31400: 41400})
	marshal := func(w uint32) *anypb.Any {
		a, err := anypb.New(gatewayListener(t, w))
		if err != nil {
			t.Fatal(err)
		}
		out, _, err := RewriteAny(TypeListener, a, echoTable, ports)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	a, again, b := marshal(20), marshal(20), marshal(50)
	if string(a.Value) != string(again.Value) {
		t.Fatal("the same listener rewrote to different bytes")
	}
	la, lb := &listenerv3.Listener{}, &listenerv3.Listener{}
	if err := a.UnmarshalTo(la); err != nil {
		t.Fatal(err)
	}
	if err := b.UnmarshalTo(lb); err != nil {
		t.Fatal(err)
	}
	if proto.Equal(la.FilterChains[0], lb.FilterChains[0]) {
		t.Fatal("the weights should differ")
	}
	la.FilterChains, lb.FilterChains = nil, nil
	if !proto.Equal(la, lb) {
		t.Fatalf("besides the filter chains the listeners differ:\n%v\n%v", la, lb)
	}
}

func TestEndpointRewriteDeterministic(t *testing.T) {
	in, err := anypb.New(cla(v2, []*endpointv3.LbEndpoint{lbEndpoint("10.0.0.6", 9000), lbEndpoint("10.0.0.5", 9000)}))
	if err != nil {
		t.Fatal(err)
	}
	a, _, _ := RewriteAny(TypeEndpoint, in, echoTable, nil)
	b, _, _ := RewriteAny(TypeEndpoint, in, echoTable, nil)
	if string(a.Value) != string(b.Value) || a.TypeUrl != TypeEndpoint {
		t.Fatalf("not deterministic, or the type changed: %s", a.TypeUrl)
	}
}

func TestOtherTypesPassThroughUnchanged(t *testing.T) {
	in := &anypb.Any{TypeUrl: TypeCluster, Value: []byte("anything")}
	out, _, err := RewriteAny(TypeCluster, in, echoTable, nil)
	if err != nil || out != in {
		t.Fatalf("a cluster must pass through as is: %v %v", out, err)
	}
}
