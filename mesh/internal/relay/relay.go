package relay

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"sort"
	"strings"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// relayNonce marks the responses the relay sends on its own (EDS re-sent after the echo table changed).
// Envoy's ACK of such a response is not istiod's business: it is dropped, or, when it also changes the
// subscription, forwarded without the nonce (a spontaneous request, as istiod expects a subscription change).
const relayNonce = "relay-"

// Resolver gives the listener-port mapping of the gateway pod a node id names (router~<ip>~<pod>.<ns>~...),
// or an error if the relay serves no such pod.
type Resolver func(node *corev3.Node) (ListenerPorts, error)

// NodeStats is what the relay saw of one Envoy (by node id), for the admin page and the tests.
type NodeStats struct {
	Connected bool `json:"connected"`
	Streams   int  `json:"streams"`
	// NACKs: every response Envoy rejected ("<type> <nonce>: <error>"), istiod's and the relay's own.
	NACKs []string `json:"nacks"`
	// RelayPushes: EDS responses the relay sent on its own after the echo table changed.
	RelayPushes int `json:"relayPushes"`
	// LeftOut: endpoints left out of the last EDS of each cluster for want of a loopback stand-in.
	LeftOut   map[string]int `json:"leftOut"`
	LastError string         `json:"lastError,omitempty"`
}

// Server is the relay: an ADS server for Envoy on loopback, a client of istiod.
type Server struct {
	conn      *grpc.ClientConn
	endpoints Endpoints
	resolve   Resolver

	mu      sync.Mutex
	streams map[*stream]bool
	nodes   map[string]*NodeStats
}

// New makes a relay to istiod's plaintext xDS address. eps is the echo-pod table.
func New(istiod string, eps Endpoints, resolve Resolver) (*Server, error) {
	conn, err := grpc.NewClient(istiod, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(1<<30)))
	if err != nil {
		return nil, err
	}
	return &Server{conn: conn, endpoints: eps, resolve: resolve, streams: map[*stream]bool{}, nodes: map[string]*NodeStats{}}, nil
}

// Register adds the relay's ADS service to a gRPC server.
func (s *Server) Register(g *grpc.Server) {
	discovery.RegisterAggregatedDiscoveryServiceServer(g, s)
}

func (s *Server) Close() error { return s.conn.Close() }

// Stats: a copy of what the relay saw per node id.
func (s *Server) Stats() map[string]NodeStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]NodeStats{}
	for id, n := range s.nodes {
		c := *n
		c.NACKs = append([]string{}, n.NACKs...)
		c.LeftOut = map[string]int{}
		for k, v := range n.LeftOut {
			c.LeftOut[k] = v
		}
		out[id] = c
	}
	return out
}

// Forget drops a node's statistics (its pod is gone).
func (s *Server) Forget(nodeID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.nodes, nodeID)
}

func (s *Server) node(id string) *NodeStats {
	n := s.nodes[id]
	if n == nil {
		n = &NodeStats{NACKs: []string{}, LeftOut: map[string]int{}}
		s.nodes[id] = n
	}
	return n
}

// StreamAggregatedResources: state-of-the-world ADS is not relayed; the bootstrap asks for delta (DELTA_GRPC), as
// pilot-agent's does by default.
func (s *Server) StreamAggregatedResources(discovery.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	return status.Error(codes.Unimplemented, "this relay speaks delta xDS only (ads_config.api_type DELTA_GRPC)")
}

// stream is one Envoy's ADS stream and what the relay last sent on it.
type stream struct {
	s      *Server
	nodeID string
	down   discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesServer
	ports  ListenerPorts

	mu         sync.Mutex
	eds        map[string]*discovery.Resource // istiod's ClusterLoadAssignments, as received
	sent       map[string][]byte              // what Envoy got for each (rewritten)
	edsVersion string
	nonces     int
}

func (s *Server) DeltaAggregatedResources(down discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error {
	first, err := down.Recv()
	if err != nil {
		return err
	}
	node := first.GetNode()
	if node.GetId() == "" {
		return status.Error(codes.InvalidArgument, "missing node information")
	}
	ports, err := s.resolve(node)
	if err != nil {
		return status.Errorf(codes.FailedPrecondition, "node %s: %v", node.GetId(), err)
	}
	ctx, cancel := context.WithCancel(down.Context())
	defer cancel()
	up, err := discovery.NewAggregatedDiscoveryServiceClient(s.conn).DeltaAggregatedResources(ctx)
	if err != nil {
		s.noteError(node.GetId(), err)
		return status.Errorf(codes.Unavailable, "istiod: %v", err)
	}
	st := &stream{s: s, nodeID: node.GetId(), down: down, ports: ports, eds: map[string]*discovery.Resource{}, sent: map[string][]byte{}}
	s.mu.Lock()
	s.streams[st] = true
	n := s.node(st.nodeID)
	n.Connected, n.LastError = true, ""
	n.Streams++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.streams, st)
		s.node(st.nodeID).Connected = false
		s.mu.Unlock()
	}()

	errc := make(chan error, 2)
	if fwd := st.fromEnvoy(first); fwd != nil {
		if err := up.Send(fwd); err != nil {
			s.noteError(st.nodeID, err)
			return status.Errorf(codes.Unavailable, "istiod: %v", err)
		}
	}
	go func() {
		for {
			req, err := down.Recv()
			if err != nil {
				errc <- err
				return
			}
			if fwd := st.fromEnvoy(req); fwd != nil {
				if err := up.Send(fwd); err != nil {
					errc <- status.Errorf(codes.Unavailable, "istiod: %v", err)
					return
				}
			}
		}
	}()
	go func() {
		for {
			resp, err := up.Recv()
			if err != nil {
				errc <- status.Errorf(codes.Unavailable, "istiod stream ended: %v", err)
				return
			}
			if err := st.fromIstiod(resp); err != nil {
				errc <- err
				return
			}
		}
	}()
	err = <-errc
	s.noteError(st.nodeID, err)
	return err
}

func (s *Server) noteError(nodeID string, err error) {
	if err == nil {
		return
	}
	s.mu.Lock()
	s.node(nodeID).LastError = err.Error()
	s.mu.Unlock()
}

func shortType(url string) string { return url[strings.LastIndex(url, ".")+1:] }

// fromEnvoy: what to forward to istiod of one request (nil: nothing). NACKs are recorded.
func (st *stream) fromEnvoy(req *discovery.DeltaDiscoveryRequest) *discovery.DeltaDiscoveryRequest {
	if req.GetErrorDetail() != nil {
		msg := fmt.Sprintf("%s %s: %s", shortType(req.GetTypeUrl()), req.GetResponseNonce(), req.GetErrorDetail().GetMessage())
		log.Printf("relay: %s NACKed %s", st.nodeID, msg)
		st.s.mu.Lock()
		n := st.s.node(st.nodeID)
		n.NACKs = append(n.NACKs, msg)
		st.s.mu.Unlock()
	}
	if !strings.HasPrefix(req.GetResponseNonce(), relayNonce) {
		return req
	}
	if len(req.GetResourceNamesSubscribe()) == 0 && len(req.GetResourceNamesUnsubscribe()) == 0 {
		return nil
	}
	fwd := &discovery.DeltaDiscoveryRequest{TypeUrl: req.GetTypeUrl(), ResourceNamesSubscribe: req.GetResourceNamesSubscribe(),
		ResourceNamesUnsubscribe: req.GetResourceNamesUnsubscribe(), InitialResourceVersions: req.GetInitialResourceVersions(), Node: req.GetNode()}
	return fwd
}

// fromIstiod rewrites one response and sends it to Envoy.
func (st *stream) fromIstiod(resp *discovery.DeltaDiscoveryResponse) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	leftOut := map[string]int{}
	for _, r := range resp.GetResources() {
		if r.GetResource() == nil {
			continue
		}
		rw, n, err := RewriteAny(resp.GetTypeUrl(), r.GetResource(), st.s.endpoints, st.ports)
		if err != nil {
			// Not forwarding it would leave Envoy waiting; forwarding it unrewritten could make it dial a pod IP.
			return status.Errorf(codes.Internal, "relay: %s %s: %v", shortType(resp.GetTypeUrl()), r.GetName(), err)
		}
		if resp.GetTypeUrl() == TypeEndpoint {
			st.eds[r.GetName()] = &discovery.Resource{Name: r.GetName(), Version: r.GetVersion(), Resource: r.GetResource()}
			st.sent[r.GetName()] = rw.GetValue()
			leftOut[r.GetName()] = n
		}
		r.Resource = rw
	}
	if resp.GetTypeUrl() == TypeEndpoint {
		st.edsVersion = resp.GetSystemVersionInfo()
		for _, name := range resp.GetRemovedResources() {
			delete(st.eds, name)
			delete(st.sent, name)
		}
		st.noteLeftOut(leftOut, resp.GetRemovedResources())
	}
	return st.down.Send(resp)
}

func (st *stream) noteLeftOut(leftOut map[string]int, removed []string) {
	st.s.mu.Lock()
	defer st.s.mu.Unlock()
	n := st.s.node(st.nodeID)
	for name, c := range leftOut {
		if c == 0 {
			delete(n.LeftOut, name)
		} else {
			n.LeftOut[name] = c
		}
	}
	for _, name := range removed {
		delete(n.LeftOut, name)
	}
}

// resync re-rewrites the stream's endpoints against the current table and sends the ones that changed.
func (st *stream) resync() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	names := make([]string, 0, len(st.eds))
	for name := range st.eds {
		names = append(names, name)
	}
	sort.Strings(names)
	var changed []*discovery.Resource
	leftOut := map[string]int{}
	for _, name := range names {
		e := st.eds[name]
		rw, n, err := RewriteAny(TypeEndpoint, e.GetResource(), st.s.endpoints, st.ports)
		if err != nil {
			return err
		}
		if bytes.Equal(rw.GetValue(), st.sent[name]) {
			continue
		}
		st.sent[name] = rw.GetValue()
		leftOut[name] = n
		changed = append(changed, &discovery.Resource{Name: name, Version: e.GetVersion(), Resource: rw})
	}
	if len(changed) == 0 {
		return nil
	}
	st.nonces++
	st.noteLeftOut(leftOut, nil)
	st.s.mu.Lock()
	st.s.node(st.nodeID).RelayPushes++
	st.s.mu.Unlock()
	return st.down.Send(&discovery.DeltaDiscoveryResponse{TypeUrl: TypeEndpoint, SystemVersionInfo: st.edsVersion,
		Nonce: fmt.Sprintf("%s%d-%d", relayNonce, time.Now().UnixNano(), st.nonces), Resources: changed})
}

// Resync: the echo table changed; every stream gets the endpoints whose rewrite it changed (istiod has no reason
// to push: the pods and their addresses are the same, only the loopback stand-ins moved).
func (s *Server) Resync() {
	s.mu.Lock()
	streams := make([]*stream, 0, len(s.streams))
	for st := range s.streams {
		streams = append(streams, st)
	}
	s.mu.Unlock()
	for _, st := range streams {
		if err := st.resync(); err != nil {
			log.Printf("relay: resync %s: %v", st.nodeID, err)
		}
	}
}
