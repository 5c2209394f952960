package relay

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"
)

// fakeIstiod answers the first request of a stream with a listener and an EDS response, and records every
// request it receives afterwards.
type fakeIstiod struct {
	discovery.UnimplementedAggregatedDiscoveryServiceServer
	t        *testing.T
	listener *listenerv3.Listener
	cla      *endpointv3.ClusterLoadAssignment
	requests chan *discovery.DeltaDiscoveryRequest
}

func (f *fakeIstiod) DeltaAggregatedResources(s discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error {
	first, err := s.Recv()
	if err != nil {
		return err
	}
	f.requests <- first
	l, _ := anypb.New(f.listener)
	c, _ := anypb.New(f.cla)
	if err := s.Send(&discovery.DeltaDiscoveryResponse{TypeUrl: TypeListener, Nonce: "n1", SystemVersionInfo: "v1",
		Resources: []*discovery.Resource{{Name: f.listener.Name, Version: "v1", Resource: l}}}); err != nil {
		return err
	}
	if err := s.Send(&discovery.DeltaDiscoveryResponse{TypeUrl: TypeEndpoint, Nonce: "n2", SystemVersionInfo: "v1",
		Resources: []*discovery.Resource{{Name: f.cla.ClusterName, Version: "v1", Resource: c}}}); err != nil {
		return err
	}
	for {
		req, err := s.Recv()
		if err != nil {
			return nil
		}
		f.requests <- req
	}
}

type mutableTable struct {
	mu sync.Mutex
	m  map[string]string
}

func (t *mutableTable) Lookup(a string) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	v, ok := t.m[a]
	return v, ok
}

func (t *mutableTable) set(k, v string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.m[k] = v
}

func serve(t *testing.T, register func(*grpc.Server)) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	register(g)
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(g.Stop)
	return ln.Addr().String()
}

const nodeID = "router~10.0.0.2~gw-0.istio-system~istio-system.svc.cluster.local"

func TestRelayRewritesForwardsAndResyncs(t *testing.T) {
	istiod := &fakeIstiod{t: t, listener: gatewayListener(t, 20),
		cla:      cla(v1, []*endpointv3.LbEndpoint{lbEndpoint("10.0.0.5", 9000), lbEndpoint("10.0.0.8", 9000)}),
		requests: make(chan *discovery.DeltaDiscoveryRequest, 16)}
	upstream := serve(t, func(g *grpc.Server) { discovery.RegisterAggregatedDiscoveryServiceServer(g, istiod) })
	tbl := &mutableTable{m: map[string]string{"10.0.0.5:9000": "127.0.0.1:40005"}}
	r, err := New(upstream, tbl, func(n *corev3.Node) (ListenerPorts, error) {
		if n.GetId() != nodeID {
			return nil, fmt.Errorf("unknown")
		}
		return fixedPorts(map[uint32]uint32{31400: 41400}), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	addr := serve(t, r.Register)

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	envoy, err := discovery.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := envoy.Send(&discovery.DeltaDiscoveryRequest{Node: &corev3.Node{Id: nodeID}, TypeUrl: TypeCluster}); err != nil {
		t.Fatal(err)
	}
	if first := <-istiod.requests; first.GetNode().GetId() != nodeID {
		t.Fatalf("istiod got %v", first)
	}

	// The listener, bound to the pod's loopback port.
	resp, err := envoy.Recv()
	if err != nil {
		t.Fatal(err)
	}
	l := &listenerv3.Listener{}
	if err := resp.Resources[0].Resource.UnmarshalTo(l); err != nil {
		t.Fatal(err)
	}
	if sa := l.GetAddress().GetSocketAddress(); sa.GetAddress() != "127.0.0.1" || sa.GetPortValue() != 41400 || l.Name != "0.0.0.0_31400" || resp.Nonce != "n1" {
		t.Fatalf("listener %v nonce %s", l, resp.Nonce)
	}
	// EDS: the mapped endpoint on loopback, the unmapped one left out.
	resp, err = envoy.Recv()
	if err != nil {
		t.Fatal(err)
	}
	endpoints := func(resp *discovery.DeltaDiscoveryResponse) []string {
		c := &endpointv3.ClusterLoadAssignment{}
		if err := resp.Resources[0].Resource.UnmarshalTo(c); err != nil {
			t.Fatal(err)
		}
		out := []string{}
		for _, loc := range c.Endpoints {
			for _, e := range loc.LbEndpoints {
				sa := e.GetEndpoint().GetAddress().GetSocketAddress()
				out = append(out, fmt.Sprintf("%s:%d", sa.GetAddress(), sa.GetPortValue()))
			}
		}
		return out
	}
	if got := endpoints(resp); fmt.Sprint(got) != "[127.0.0.1:40005]" {
		t.Fatalf("endpoints %v", got)
	}
	if lo := r.Stats()[nodeID].LeftOut[v1]; lo != 1 {
		t.Fatalf("left out %d, want 1", lo)
	}

	// An ACK of istiod's response goes to istiod.
	if err := envoy.Send(&discovery.DeltaDiscoveryRequest{TypeUrl: TypeEndpoint, ResponseNonce: "n2"}); err != nil {
		t.Fatal(err)
	}
	if got := <-istiod.requests; got.ResponseNonce != "n2" {
		t.Fatalf("istiod got %v", got)
	}

	// The missing endpoint's stand-in appears: the relay re-sends the rewritten EDS on its own, once.
	r.Resync()
	tbl.set("10.0.0.8:9000", "127.0.0.1:40008")
	r.Resync()
	r.Resync()
	resp, err = envoy.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(resp.Nonce, relayNonce) || resp.TypeUrl != TypeEndpoint || resp.Resources[0].Version != "v1" {
		t.Fatalf("relay push %v", resp)
	}
	if got := endpoints(resp); fmt.Sprint(got) != "[127.0.0.1:40005 127.0.0.1:40008]" {
		t.Fatalf("endpoints %v", got)
	}
	if n := r.Stats()[nodeID]; n.RelayPushes != 1 || n.LeftOut[v1] != 0 {
		t.Fatalf("stats %+v", n)
	}
	// Its ACK is not istiod's business; a subscription change riding on it is, without the relay's nonce.
	if err := envoy.Send(&discovery.DeltaDiscoveryRequest{TypeUrl: TypeEndpoint, ResponseNonce: resp.Nonce}); err != nil {
		t.Fatal(err)
	}
	if err := envoy.Send(&discovery.DeltaDiscoveryRequest{TypeUrl: TypeEndpoint, ResponseNonce: resp.Nonce, ResourceNamesSubscribe: []string{v2}}); err != nil {
		t.Fatal(err)
	}
	if got := <-istiod.requests; got.ResponseNonce != "" || fmt.Sprint(got.ResourceNamesSubscribe) != "["+v2+"]" {
		t.Fatalf("istiod got %v", got)
	}
	// A NACK is recorded and forwarded.
	if err := envoy.Send(&discovery.DeltaDiscoveryRequest{TypeUrl: TypeListener, ResponseNonce: "n1", ErrorDetail: &status.Status{Code: int32(codes.InvalidArgument), Message: "bad listener"}}); err != nil {
		t.Fatal(err)
	}
	if got := <-istiod.requests; got.ResponseNonce != "n1" || got.ErrorDetail == nil {
		t.Fatalf("istiod got %v", got)
	}
	if n := r.Stats()[nodeID].NACKs; len(n) != 1 || !strings.Contains(n[0], "bad listener") {
		t.Fatalf("NACKs %v", n)
	}
}

func TestRelayRefusesAnUnknownNode(t *testing.T) {
	istiod := &fakeIstiod{t: t, listener: gatewayListener(t, 0), cla: cla(v1), requests: make(chan *discovery.DeltaDiscoveryRequest, 4)}
	upstream := serve(t, func(g *grpc.Server) { discovery.RegisterAggregatedDiscoveryServiceServer(g, istiod) })
	r, err := New(upstream, table0{}, func(*corev3.Node) (ListenerPorts, error) { return nil, fmt.Errorf("no such pod") })
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	conn, _ := grpc.NewClient(serve(t, r.Register), grpc.WithTransportCredentials(insecure.NewCredentials()))
	defer conn.Close()
	s, err := discovery.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Send(&discovery.DeltaDiscoveryRequest{Node: &corev3.Node{Id: "router~10.9.9.9~x.istio-system~istio-system.svc.cluster.local"}, TypeUrl: TypeCluster})
	if _, err := s.Recv(); grpcstatus.Code(err) != codes.FailedPrecondition {
		t.Fatalf("got %v", err)
	}
}

type table0 struct{}

func (table0) Lookup(string) (string, bool) { return "", false }
