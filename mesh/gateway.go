package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpproxy "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"

	"istio.io/istio/pkg/wellknown"
)

// Envoy's TCP proxy filter, by the name istiod gives it.
const tcpProxyFilter = wellknown.TCPProxy

type gatewayOptions struct {
	xdsAddress, adminAddress, clusterID, istioVersion, stateDir, pick string
}

// gatewayProcess plays every ingress-gateway pod the IstioGateway controller created (one ADS
// connection each, as that pod's Envoy), and the CLB in front of their LoadBalancer Service.
type gatewayProcess struct {
	o      gatewayOptions
	kc     kubernetes.Interface
	echo   *tableReader
	slices discoverylisters.EndpointSliceLister

	mu   sync.Mutex
	pods map[string]*gatewayPod // by namespace/name
	clbs map[string]*clbListener
}

func runGateway(ctx context.Context, kc kubernetes.Interface, o gatewayOptions) {
	g := &gatewayProcess{o: o, kc: kc, echo: &tableReader{path: filepath.Join(o.stateDir, echoTable)}, pods: map[string]*gatewayPod{}, clbs: map[string]*clbListener{}}
	f := informers.NewSharedInformerFactory(kc, 5*time.Minute)
	pods := f.Core().V1().Pods().Informer()
	services := f.Core().V1().Services().Informer()
	g.slices = f.Discovery().V1().EndpointSlices().Lister()
	f.Discovery().V1().EndpointSlices().Informer()
	_, _ = pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { g.syncPod(ctx, o) },
		UpdateFunc: func(_, o any) { g.syncPod(ctx, o) },
		DeleteFunc: func(o any) {
			if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = t.Obj
			}
			if p, ok := o.(*corev1.Pod); ok {
				g.dropPod(p.Namespace + "/" + p.Name)
			}
		},
	})
	syncServices := func(any) { g.syncCLBs(services.GetStore().List()) }
	_, _ = services.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: syncServices, UpdateFunc: func(_, o any) { syncServices(o) }, DeleteFunc: syncServices})

	admin := &http.Server{Addr: o.adminAddress, Handler: g.adminMux()}
	ln, err := net.Listen("tcp", o.adminAddress)
	if err != nil {
		log.Fatalf("admin: %v", err)
	}
	go func() { _ = admin.Serve(ln) }()
	f.Start(ctx.Done())
	f.WaitForCacheSync(ctx.Done())
	log.Printf("gateway: caches synced; xDS %s; admin http://%s/config_dump", o.xdsAddress, o.adminAddress)
	<-ctx.Done()
	_ = admin.Close()
	g.mu.Lock()
	for _, c := range g.clbs {
		c.ln.Close()
	}
	for _, p := range g.pods {
		p.stop()
	}
	g.mu.Unlock()
}

// ---- gateway pods ----

type gatewayPod struct {
	key, ip, nodeID string
	ads             *adsClient
	cancel          context.CancelFunc
	echo            *tableReader

	sequence bool
	rolls    atomic.Uint64

	mu        sync.Mutex
	snap      atomic.Pointer[xdsSnapshot]
	listeners map[string]*tcpListener
	rr        map[string]*atomic.Uint64
	conns     map[string]*atomic.Uint64
	routeLog  string
}

type weightedCluster struct {
	Name   string `json:"name"`
	Weight uint32 `json:"weight"`
}

type tcpRoute struct {
	StatPrefix string            `json:"statPrefix"`
	Cluster    string            `json:"cluster,omitempty"`
	Weighted   []weightedCluster `json:"weightedClusters,omitempty"`
}

type tcpListener struct {
	name     string
	port     uint32
	ln       net.Listener
	loopback int
	route    atomic.Pointer[tcpRoute]
}

func (g *gatewayProcess) syncPod(ctx context.Context, obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	key := pod.Namespace + "/" + pod.Name
	serve := pod.Annotations[gatewayAnnotation] != "" && pod.DeletionTimestamp == nil && pod.Status.PodIP != "" && pod.Status.Phase == corev1.PodRunning
	g.mu.Lock()
	existing := g.pods[key]
	g.mu.Unlock()
	if existing != nil && (!serve || existing.ip != pod.Status.PodIP) {
		g.dropPod(key)
		existing = nil
	}
	if !serve || existing != nil {
		return
	}
	// The node as a gateway pod's istio-proxy presents itself: router~<pod IP>~<pod>.<namespace>~<namespace>.svc.cluster.local.
	nodeID := fmt.Sprintf("router~%s~%s.%s~%s.svc.cluster.local", pod.Status.PodIP, pod.Name, pod.Namespace, pod.Namespace)
	lbls := map[string]any{}
	for k, v := range pod.Labels {
		lbls[k] = v
	}
	meta := map[string]any{
		"NAMESPACE":     pod.Namespace,
		"NAME":          pod.Name,
		"LABELS":        lbls,
		"CLUSTER_ID":    g.o.clusterID,
		"ISTIO_VERSION": g.o.istioVersion,
		"INSTANCE_IPS":  pod.Status.PodIP,
		"WORKLOAD_NAME": strings.TrimPrefix(pod.Annotations[gatewayAnnotation], pod.Namespace+"/"),
		// istiod lists (istioctl proxy-status) only connections that carry a proxy config.
		"PROXY_CONFIG": map[string]any{"discoveryAddress": g.o.xdsAddress},
	}
	p := &gatewayPod{key: key, ip: pod.Status.PodIP, nodeID: nodeID, echo: g.echo, sequence: g.o.pick == "sequence", listeners: map[string]*tcpListener{}, rr: map[string]*atomic.Uint64{}, conns: map[string]*atomic.Uint64{}}
	ads, err := newADSClient(g.o.xdsAddress, nodeID, meta, func(s xdsSnapshot) { p.apply(s); g.writeTable() })
	if err != nil {
		log.Printf("gateway pod %s: %v", key, err)
		return
	}
	p.ads = ads
	pctx, cancel := context.WithCancel(ctx)
	p.cancel = cancel
	g.mu.Lock()
	g.pods[key] = p
	g.mu.Unlock()
	log.Printf("gateway pod %s: connecting to istiod as %s", key, nodeID)
	go ads.run(pctx)
}

func (g *gatewayProcess) dropPod(key string) {
	g.mu.Lock()
	p := g.pods[key]
	delete(g.pods, key)
	g.mu.Unlock()
	if p != nil {
		p.stop()
		log.Printf("gateway pod %s: gone", key)
		g.writeTable()
	}
}

func (p *gatewayPod) stop() {
	p.cancel()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.listeners {
		l.ln.Close()
	}
	p.listeners = map[string]*tcpListener{}
}

func (g *gatewayProcess) writeTable() {
	g.mu.Lock()
	entries := []tableEntry{}
	for _, p := range g.pods {
		p.mu.Lock()
		for _, l := range p.listeners {
			entries = append(entries, tableEntry{Address: net.JoinHostPort(p.ip, strconv.Itoa(int(l.port))), Loopback: net.JoinHostPort("127.0.0.1", strconv.Itoa(l.loopback)), Pod: p.key, Ready: true})
		}
		p.mu.Unlock()
	}
	g.mu.Unlock()
	if err := writeTable(filepath.Join(g.o.stateDir, gatewayTable), entries); err != nil {
		log.Printf("gateway table: %v", err)
	}
}

// tcpRouteOf reads a listener as Envoy would for a plain TCP connection: the filter chain without match
// conditions (or the only one), and its tcp_proxy filter.
func tcpRouteOf(l *listenerv3.Listener) (*tcpRoute, bool) {
	chains := l.GetFilterChains()
	var chosen *listenerv3.FilterChain
	for _, fc := range chains {
		m := fc.GetFilterChainMatch()
		if m == nil || (len(m.GetServerNames()) == 0 && len(m.GetApplicationProtocols()) == 0 && m.GetTransportProtocol() == "" && len(m.GetPrefixRanges()) == 0) {
			chosen = fc
			break
		}
	}
	if chosen == nil && l.GetDefaultFilterChain() != nil {
		chosen = l.GetDefaultFilterChain()
	}
	if chosen == nil {
		return nil, false
	}
	for _, f := range chosen.GetFilters() {
		if f.GetName() != tcpProxyFilter {
			continue
		}
		tp := &tcpproxy.TcpProxy{}
		if err := f.GetTypedConfig().UnmarshalTo(tp); err != nil {
			return nil, false
		}
		r := &tcpRoute{StatPrefix: tp.GetStatPrefix(), Cluster: tp.GetCluster()}
		for _, wc := range tp.GetWeightedClusters().GetClusters() {
			r.Weighted = append(r.Weighted, weightedCluster{Name: wc.GetName(), Weight: wc.GetWeight()})
		}
		return r, true
	}
	return nil, false
}

func (r *tcpRoute) String() string {
	if r.Cluster != "" {
		return r.Cluster + " 100%"
	}
	parts := []string{}
	for _, w := range r.Weighted {
		parts = append(parts, fmt.Sprintf("%s %d", w.Name, w.Weight))
	}
	return strings.Join(parts, ", ")
}

// apply makes the pod serve what it was sent: one loopback listener per TCP listener (bound once, the
// route swapped in place on later pushes, as Envoy updates a listener without dropping open connections).
func (p *gatewayPod) apply(s xdsSnapshot) {
	p.snap.Store(&s)
	p.mu.Lock()
	defer p.mu.Unlock()
	want := map[string]bool{}
	var summary []string
	for name, l := range s.Listeners {
		route, ok := tcpRouteOf(l)
		port := l.GetAddress().GetSocketAddress().GetPortValue()
		if !ok || port == 0 {
			continue
		}
		want[name] = true
		cur := p.listeners[name]
		if cur != nil && cur.port != port {
			cur.ln.Close()
			cur = nil
		}
		if cur == nil {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				log.Printf("gateway pod %s: listener %s: %v", p.key, name, err)
				continue
			}
			cur = &tcpListener{name: name, port: port, ln: ln, loopback: ln.Addr().(*net.TCPAddr).Port}
			p.listeners[name] = cur
			go p.serve(cur)
		}
		cur.route.Store(route)
		summary = append(summary, fmt.Sprintf("%s -> %s", name, route))
	}
	for name, l := range p.listeners {
		if !want[name] {
			l.ln.Close()
			delete(p.listeners, name)
		}
	}
	sort.Strings(summary)
	line := strings.Join(summary, "; ")
	if line == "" {
		line = "no TCP listener"
	}
	if line != p.routeLog {
		p.routeLog = line
		log.Printf("gateway pod %s: %s (lds %s, cds %s)", p.key, line, s.Versions[typeListener], s.Versions[typeCluster])
	}
}

func (p *gatewayPod) serve(l *tcpListener) {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		go p.handle(c, l)
	}
}

func (p *gatewayPod) counter(m map[string]*atomic.Uint64, name string) *atomic.Uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := m[name]
	if c == nil {
		c = &atomic.Uint64{}
		m[name] = c
	}
	return c
}

// roll: uniform in [0, 1). Random as Envoy draws it, or the golden-ratio sequence, whose share below w
// over any n consecutive rolls stays within about 1/n of w.
func (p *gatewayPod) roll() float64 {
	if !p.sequence {
		return rand.Float64()
	}
	return math.Mod(float64(p.rolls.Add(1))*0.6180339887498949, 1)
}

// pickCluster: uniformly at random over the total weight, as Envoy's weighted_clusters.
func pickCluster(r *tcpRoute, roll float64) string {
	if r.Cluster != "" {
		return r.Cluster
	}
	total := uint32(0)
	for _, w := range r.Weighted {
		total += w.Weight
	}
	if total == 0 {
		return ""
	}
	point := uint32(roll * float64(total))
	for _, w := range r.Weighted {
		if point < w.Weight {
			return w.Name
		}
		point -= w.Weight
	}
	return r.Weighted[len(r.Weighted)-1].Name
}

type lbEndpoint struct {
	Address  string `json:"address"`
	Health   string `json:"health"`
	Loopback string `json:"loopback,omitempty"`
}

func endpointsOf(s *xdsSnapshot, cluster string) (*clusterv3.Cluster, []lbEndpoint) {
	c := s.Clusters[cluster]
	if c == nil || c.GetType() != clusterv3.Cluster_EDS {
		return c, nil
	}
	out := []lbEndpoint{}
	for _, loc := range s.Endpoints[edsName(c)].GetEndpoints() {
		for _, e := range loc.GetLbEndpoints() {
			sa := e.GetEndpoint().GetAddress().GetSocketAddress()
			if sa == nil {
				continue
			}
			out = append(out, lbEndpoint{Address: net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue()))), Health: e.GetHealthStatus().String()})
		}
	}
	return c, out
}

func healthy(h string) bool {
	return h == corev3.HealthStatus_UNKNOWN.String() || h == corev3.HealthStatus_HEALTHY.String()
}

func (p *gatewayPod) handle(client net.Conn, l *tcpListener) {
	route := l.route.Load()
	snap := p.snap.Load()
	if route == nil || snap == nil {
		client.Close()
		return
	}
	cluster := pickCluster(route, p.roll())
	_, eps := endpointsOf(snap, cluster)
	var live []lbEndpoint
	for _, e := range eps {
		if healthy(e.Health) {
			live = append(live, e)
		}
	}
	if len(live) == 0 {
		client.Close()
		return
	}
	p.counter(p.conns, cluster).Add(1)
	e := live[int(p.counter(p.rr, cluster).Add(1)-1)%len(live)]
	// The last hop only: the endpoint istiod chose, reached through its loopback stand-in.
	target, ok := p.echo.lookup(e.Address)
	if !ok {
		client.Close()
		return
	}
	upstream, err := net.DialTimeout("tcp", target, 10*time.Second)
	if err != nil {
		client.Close()
		return
	}
	pipe(client, upstream)
}

func pipe(a, b net.Conn) {
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	<-done
	<-done
	a.Close()
	b.Close()
}

// ---- the CLB stand-in ----

type clbListener struct {
	key      string // ip:port
	service  string // namespace/name
	portName string
	port     int32
	ln       net.Listener
	rr       atomic.Uint64
	stale    bool
}

func (g *gatewayProcess) syncCLBs(objs []any) {
	want := map[string]*clbListener{}
	for _, o := range objs {
		svc, ok := o.(*corev1.Service)
		if !ok || svc.Annotations[gatewayAnnotation] == "" || svc.Spec.Type != corev1.ServiceTypeLoadBalancer || len(svc.Status.LoadBalancer.Ingress) == 0 {
			continue
		}
		ip := svc.Status.LoadBalancer.Ingress[0].IP
		if parsed := net.ParseIP(ip); parsed == nil || !parsed.IsLoopback() {
			continue // never listen on (or connect to) anything but loopback
		}
		for _, sp := range svc.Spec.Ports {
			if sp.Protocol != "" && sp.Protocol != corev1.ProtocolTCP {
				continue
			}
			key := net.JoinHostPort(ip, strconv.Itoa(int(sp.Port)))
			want[key] = &clbListener{key: key, service: svc.Namespace + "/" + svc.Name, portName: sp.Name, port: sp.Port}
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for key, c := range g.clbs {
		if w := want[key]; w == nil || w.service != c.service {
			c.ln.Close()
			delete(g.clbs, key)
			log.Printf("clb %s: closed", key)
		} else {
			c.portName = w.portName
		}
	}
	for key, w := range want {
		if g.clbs[key] != nil {
			continue
		}
		ln, err := net.Listen("tcp", key)
		if err != nil {
			log.Printf("clb %s for %s: %v", key, w.service, err)
			continue
		}
		w.ln = ln
		g.clbs[key] = w
		log.Printf("clb %s -> Service %s port %d", key, w.service, w.port)
		go g.serveCLB(w)
	}
}

func (g *gatewayProcess) serveCLB(c *clbListener) {
	for {
		conn, err := c.ln.Accept()
		if err != nil {
			return
		}
		go g.handleCLB(c, conn)
	}
}

// backends: the ready endpoints of the Service's port (its gateway pods), each with the loopback port the
// pod's listener for that target port is on, if it has one (the CLB's health check skips the others).
func (g *gatewayProcess) backends(c *clbListener) []string {
	ns, name, _ := strings.Cut(c.service, "/")
	slices, err := g.slices.EndpointSlices(ns).List(labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: name}))
	if err != nil {
		return nil
	}
	out := []string{}
	g.mu.Lock()
	byIP := map[string]*gatewayPod{}
	for _, p := range g.pods {
		byIP[p.ip] = p
	}
	g.mu.Unlock()
	for _, s := range slices {
		var port int32 = -1
		for _, sp := range s.Ports {
			if sp.Port != nil && (sp.Name == nil && c.portName == "" || sp.Name != nil && *sp.Name == c.portName) {
				port = *sp.Port
			}
		}
		if port < 0 {
			continue
		}
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && !*e.Conditions.Ready {
				continue
			}
			for _, a := range e.Addresses {
				p := byIP[a]
				if p == nil {
					continue
				}
				p.mu.Lock()
				for _, l := range p.listeners {
					if int32(l.port) == port {
						out = append(out, net.JoinHostPort("127.0.0.1", strconv.Itoa(l.loopback)))
					}
				}
				p.mu.Unlock()
			}
		}
	}
	sort.Strings(out)
	return out
}

func (g *gatewayProcess) handleCLB(c *clbListener, client net.Conn) {
	bs := g.backends(c)
	if len(bs) == 0 {
		client.Close()
		return
	}
	target := bs[int(c.rr.Add(1)-1)%len(bs)]
	upstream, err := net.DialTimeout("tcp", target, 5*time.Second)
	if err != nil {
		client.Close()
		return
	}
	pipe(client, upstream)
}

// ---- admin: what each gateway pod received and serves ----

type podDump struct {
	Pod         string            `json:"pod"`
	IP          string            `json:"ip"`
	Node        string            `json:"node"`
	Connected   bool              `json:"connected"`
	Connects    int               `json:"connects"`
	LastError   string            `json:"lastError,omitempty"`
	Versions    map[string]string `json:"versions"`
	Updated     time.Time         `json:"updated"`
	Listeners   []listenerDump    `json:"listeners"`
	Clusters    []clusterDump     `json:"clusters"`
	Connections map[string]uint64 `json:"connections"`
}

type listenerDump struct {
	Name     string    `json:"name"`
	Port     uint32    `json:"port"`
	Loopback string    `json:"loopback"`
	TCPProxy *tcpRoute `json:"tcpProxy"`
}

type clusterDump struct {
	Name      string       `json:"name"`
	Type      string       `json:"type"`
	Endpoints []lbEndpoint `json:"endpoints"`
}

func (g *gatewayProcess) dump(all bool) []podDump {
	g.mu.Lock()
	pods := make([]*gatewayPod, 0, len(g.pods))
	for _, p := range g.pods {
		pods = append(pods, p)
	}
	g.mu.Unlock()
	sort.Slice(pods, func(i, j int) bool { return pods[i].key < pods[j].key })
	out := []podDump{}
	for _, p := range pods {
		snap, connected, lastErr, connects := p.ads.snapshot()
		d := podDump{Pod: p.key, IP: p.ip, Node: p.nodeID, Connected: connected, Connects: connects, LastError: lastErr, Versions: map[string]string{}, Updated: snap.Updated, Listeners: []listenerDump{}, Clusters: []clusterDump{}, Connections: map[string]uint64{}}
		for t, v := range snap.Versions {
			d.Versions[t[strings.LastIndex(t, ".")+1:]] = v
		}
		referenced := map[string]bool{}
		p.mu.Lock()
		for _, l := range p.listeners {
			r := l.route.Load()
			d.Listeners = append(d.Listeners, listenerDump{Name: l.name, Port: l.port, Loopback: net.JoinHostPort("127.0.0.1", strconv.Itoa(l.loopback)), TCPProxy: r})
			if r != nil {
				referenced[r.Cluster] = true
				for _, w := range r.Weighted {
					referenced[w.Name] = true
				}
			}
		}
		for name, c := range p.conns {
			d.Connections[name] = c.Load()
		}
		p.mu.Unlock()
		sort.Slice(d.Listeners, func(i, j int) bool { return d.Listeners[i].Name < d.Listeners[j].Name })
		names := []string{}
		for name := range snap.Clusters {
			if all || referenced[name] {
				names = append(names, name)
			}
		}
		sort.Strings(names)
		for _, name := range names {
			c, eps := endpointsOf(&snap, name)
			for i := range eps {
				eps[i].Loopback, _ = p.echo.lookup(eps[i].Address)
			}
			d.Clusters = append(d.Clusters, clusterDump{Name: name, Type: c.GetType().String(), Endpoints: eps})
		}
		out = append(out, d)
	}
	return out
}

func (g *gatewayProcess) adminMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/config_dump", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(map[string]any{"pods": g.dump(r.URL.Query().Get("all") != "")})
	})
	mux.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) {
		for _, d := range g.dump(false) {
			if d.Versions["Listener"] == "" {
				http.Error(w, d.Pod+" has no listeners from istiod yet", http.StatusServiceUnavailable)
				return
			}
		}
		_, _ = io.WriteString(w, "ready\n")
	})
	return mux
}
