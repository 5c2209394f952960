package main

import (
	"context"
	"log"
	"sort"
	"sync"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"
)

const (
	typeCluster  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	typeEndpoint = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
	typeListener = "type.googleapis.com/envoy.config.listener.v3.Listener"
)

// xdsSnapshot is what the proxy holds: the last accepted state of every type (state of the world for
// CDS and LDS; EDS per cluster, since istiod sends only the changed clusters on an endpoint push).
type xdsSnapshot struct {
	Clusters  map[string]*clusterv3.Cluster
	Endpoints map[string]*endpointv3.ClusterLoadAssignment
	Listeners map[string]*listenerv3.Listener
	Versions  map[string]string
	Updated   time.Time
}

// adsClient is a minimal Envoy-like SotW ADS client: CDS (wildcard) first, then EDS for the EDS clusters,
// then LDS (wildcard), each response ACKed with its version and nonce, as Envoy does. On a lost stream it
// keeps serving the last state and reconnects.
type adsClient struct {
	address string
	node    *corev3.Node
	onApply func(xdsSnapshot)

	mu        sync.RWMutex
	snap      xdsSnapshot
	connected bool
	lastError string
	connects  int
}

func newADSClient(address, nodeID string, meta map[string]any, onApply func(xdsSnapshot)) (*adsClient, error) {
	md, err := structpb.NewStruct(meta)
	if err != nil {
		return nil, err
	}
	return &adsClient{address: address, node: &corev3.Node{Id: nodeID, Metadata: md}, onApply: onApply,
		snap: xdsSnapshot{Clusters: map[string]*clusterv3.Cluster{}, Endpoints: map[string]*endpointv3.ClusterLoadAssignment{}, Listeners: map[string]*listenerv3.Listener{}, Versions: map[string]string{}}}, nil
}

func (a *adsClient) snapshot() (xdsSnapshot, bool, string, int) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.snap, a.connected, a.lastError, a.connects
}

func (a *adsClient) run(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		began := time.Now()
		err := a.session(ctx)
		a.mu.Lock()
		a.connected = false
		if err != nil {
			a.lastError = err.Error()
		}
		a.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		if time.Since(began) > 10*time.Second {
			backoff = 100 * time.Millisecond
		}
		log.Printf("xds %s: stream ended (%v); keeping the last config, reconnecting in %v", a.node.Id, err, backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		if backoff *= 2; backoff > 2*time.Second {
			backoff = 2 * time.Second
		}
	}
}

func (a *adsClient) session(ctx context.Context) error {
	conn, err := grpc.NewClient(a.address, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(1<<30)))
	if err != nil {
		return err
	}
	defer conn.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(sctx)
	if err != nil {
		return err
	}
	// Per type: the last response's version and nonce (for ACKs and resource-name changes).
	last := map[string]*discovery.DiscoveryResponse{}
	send := func(typeURL string, names []string, ack *discovery.DiscoveryResponse) error {
		req := &discovery.DiscoveryRequest{Node: a.node, TypeUrl: typeURL, ResourceNames: names}
		if ack == nil {
			ack = last[typeURL]
		}
		if ack != nil {
			req.VersionInfo, req.ResponseNonce = ack.VersionInfo, ack.Nonce
		}
		return stream.Send(req)
	}
	if err := send(typeCluster, nil, nil); err != nil {
		return err
	}
	var edsNames []string
	ldsRequested := false
	first := true
	for {
		resp, err := stream.Recv()
		if err != nil {
			return err
		}
		if first {
			first = false
			a.mu.Lock()
			a.connected, a.lastError = true, ""
			a.connects++
			a.mu.Unlock()
		}
		last[resp.TypeUrl] = resp
		a.mu.Lock()
		snap := a.copySnapLocked()
		switch resp.TypeUrl {
		case typeCluster:
			snap.Clusters = map[string]*clusterv3.Cluster{}
			for _, r := range resp.Resources {
				c := &clusterv3.Cluster{}
				if err := r.UnmarshalTo(c); err == nil {
					snap.Clusters[c.Name] = c
				}
			}
		case typeEndpoint:
			for _, r := range resp.Resources {
				cla := &endpointv3.ClusterLoadAssignment{}
				if err := r.UnmarshalTo(cla); err == nil {
					snap.Endpoints[cla.ClusterName] = cla
				}
			}
		case typeListener:
			snap.Listeners = map[string]*listenerv3.Listener{}
			for _, r := range resp.Resources {
				l := &listenerv3.Listener{}
				if err := r.UnmarshalTo(l); err == nil {
					snap.Listeners[l.Name] = l
				}
			}
		}
		snap.Versions[resp.TypeUrl] = resp.VersionInfo
		snap.Updated = time.Now()
		var newEDS []string
		if resp.TypeUrl == typeCluster {
			newEDS = edsServiceNames(snap.Clusters)
			keep := map[string]bool{}
			for _, n := range newEDS {
				keep[n] = true
			}
			for n := range snap.Endpoints {
				if !keep[n] {
					delete(snap.Endpoints, n)
				}
			}
		}
		a.snap = snap
		a.mu.Unlock()
		if a.onApply != nil {
			a.onApply(snap)
		}
		// ACK what was applied; EDS ACKs carry the names still watched.
		names := []string(nil)
		if resp.TypeUrl == typeEndpoint {
			names = edsNames
		}
		if err := send(resp.TypeUrl, names, resp); err != nil {
			return err
		}
		if resp.TypeUrl == typeCluster && !equalStrings(newEDS, edsNames) {
			edsNames = newEDS
			if len(edsNames) > 0 {
				if err := send(typeEndpoint, edsNames, nil); err != nil {
					return err
				}
			}
		}
		// Envoy asks for listeners once its clusters are warm (after the first EDS).
		if !ldsRequested && (resp.TypeUrl == typeEndpoint || resp.TypeUrl == typeCluster && len(edsNames) == 0) {
			ldsRequested = true
			if err := send(typeListener, nil, nil); err != nil {
				return err
			}
		}
	}
}

func (a *adsClient) copySnapLocked() xdsSnapshot {
	s := xdsSnapshot{Clusters: a.snap.Clusters, Listeners: a.snap.Listeners, Endpoints: map[string]*endpointv3.ClusterLoadAssignment{}, Versions: map[string]string{}, Updated: a.snap.Updated}
	for k, v := range a.snap.Endpoints {
		s.Endpoints[k] = v
	}
	for k, v := range a.snap.Versions {
		s.Versions[k] = v
	}
	return s
}

// edsServiceNames: what an EDS cluster is fed by (its eds service name, or its own name).
func edsServiceNames(clusters map[string]*clusterv3.Cluster) []string {
	out := []string{}
	for _, c := range clusters {
		if c.GetType() != clusterv3.Cluster_EDS {
			continue
		}
		out = append(out, edsName(c))
	}
	sort.Strings(out)
	return out
}

func edsName(c *clusterv3.Cluster) string {
	if n := c.GetEdsClusterConfig().GetServiceName(); n != "" {
		return n
	}
	return c.Name
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
