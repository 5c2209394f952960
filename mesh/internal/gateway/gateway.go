// Package gateway runs the ingress gateway pods the IstioGateway controller made, each as an Envoy process
// bootstrapped as Istio's router proxy (package envoy), fed by istiod through the xDS relay (package relay),
// and the CLB stand-in in front of them: a listener on the gateway Service's loopback ingress address that
// spreads connections over the Service's ready endpoints, each reached at its Envoy's loopback listener.
package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/grpc"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/yaml"

	"asm-tcp-shift/mesh/internal/envoy"
	podpkg "asm-tcp-shift/mesh/internal/pod"
	"asm-tcp-shift/mesh/internal/relay"
	"asm-tcp-shift/mesh/internal/table"
)

// Options of `asm-local gateway`.
type Options struct {
	XDSAddress, AdminAddress, ClusterID, IstioVersion, MeshID, StateDir string
	// Envoy is the envoy binary.
	Envoy string
	// DrainDuration and TerminationDrainDuration: the mesh's ProxyConfig defaults (a pod's
	// proxy.istio.io/config annotation overrides them, as for pilot-agent).
	DrainDuration, TerminationDrainDuration time.Duration
	Concurrency                             int
	LogLevel                                string
	RestartBackoff                          time.Duration
}

type process struct {
	o      Options
	kc     kubernetes.Interface
	echo   *table.Reader
	relay  *relay.Server
	relayA string
	slices discoverylisters.EndpointSliceLister

	mu   sync.Mutex
	pods map[string]*gwPod // by namespace/name
	byIP map[string]*gwPod
	clbs map[string]*clbListener
}

// Run serves until ctx ends.
func Run(ctx context.Context, kc kubernetes.Interface, o Options) {
	if o.Envoy == "" {
		log.Fatal("--envoy is required")
	}
	g := &process{o: o, kc: kc, echo: &table.Reader{Path: filepath.Join(o.StateDir, table.Echo)},
		pods: map[string]*gwPod{}, byIP: map[string]*gwPod{}, clbs: map[string]*clbListener{}}
	_ = os.MkdirAll(filepath.Join(o.StateDir, "envoy"), 0o755)

	// The relay, one for every gateway pod's Envoy: it tells the pods apart by the node id of the stream.
	r, err := relay.New(o.XDSAddress, g.echo, g.resolve)
	if err != nil {
		log.Fatalf("relay: %v", err)
	}
	g.relay = r
	rl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatalf("relay: %v", err)
	}
	g.relayA = rl.Addr().String()
	gs := grpc.NewServer(grpc.MaxRecvMsgSize(1 << 30))
	r.Register(gs)
	go func() { _ = gs.Serve(rl) }()

	f := informers.NewSharedInformerFactory(kc, 5*time.Minute)
	pods := f.Core().V1().Pods().Informer()
	services := f.Core().V1().Services().Informer()
	g.slices = f.Discovery().V1().EndpointSlices().Lister()
	f.Discovery().V1().EndpointSlices().Informer()
	_, _ = pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { g.syncPod(o) },
		UpdateFunc: func(_, o any) { g.syncPod(o) },
		DeleteFunc: func(o any) {
			if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = t.Obj
			}
			if p, ok := o.(*corev1.Pod); ok {
				g.dropPod(p.Namespace+"/"+p.Name, true)
			}
		},
	})
	syncServices := func(any) { g.syncCLBs(services.GetStore().List()) }
	_, _ = services.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: syncServices, UpdateFunc: func(_, o any) { syncServices(o) }, DeleteFunc: syncServices})

	admin := &http.Server{Handler: g.adminMux()}
	ln, err := net.Listen("tcp", o.AdminAddress)
	if err != nil {
		log.Fatalf("admin: %v", err)
	}
	go func() { _ = admin.Serve(ln) }()
	go g.watchEchoTable(ctx)
	f.Start(ctx.Done())
	f.WaitForCacheSync(ctx.Done())
	log.Printf("gateway: caches synced; relay %s -> istiod %s; envoy %s; admin http://%s/pods", g.relayA, o.XDSAddress, o.Envoy, o.AdminAddress)
	<-ctx.Done()
	_ = admin.Close()
	g.mu.Lock()
	for _, c := range g.clbs {
		c.ln.Close()
	}
	keys := make([]string, 0, len(g.pods))
	for k := range g.pods {
		keys = append(keys, k)
	}
	g.mu.Unlock()
	for _, k := range keys {
		g.dropPod(k, false)
	}
	gs.Stop()
	_ = r.Close()
}

// watchEchoTable: when an echo pod's loopback stand-in moves, the relay re-sends the endpoints it rewrote.
func (g *process) watchEchoTable(ctx context.Context) {
	last := g.echo.Generation()
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if gen := g.echo.Generation(); gen != last {
				last = gen
				g.relay.Resync()
			}
		}
	}
}

// resolve: the listener ports of the pod a node id names (router~<ip>~<pod>.<ns>~...).
func (g *process) resolve(node *corev3.Node) (relay.ListenerPorts, error) {
	parts := strings.Split(node.GetId(), "~")
	if len(parts) != 4 {
		return nil, fmt.Errorf("node id %q is not type~ip~id~domain", node.GetId())
	}
	name, ns, _ := strings.Cut(parts[2], ".")
	g.mu.Lock()
	p := g.pods[ns+"/"+name]
	g.mu.Unlock()
	if p == nil || p.ip != parts[1] {
		return nil, fmt.Errorf("no gateway pod %s/%s with address %s here", ns, name, parts[1])
	}
	return func(port uint32) (uint32, error) { return p.listenerPort(g, port) }, nil
}

// ---- gateway pods ----

type gwPod struct {
	key, ns, name, ip, container, image string
	uid                                 types.UID
	node                                string
	cfg                                 envoy.Config
	ep                                  envoy.Pod
	bootstrap, logPath                  string
	stop                                chan struct{}
	stopOnce                            sync.Once
	graceful                            bool
	done                                chan struct{}

	mu        sync.Mutex
	listeners map[uint32]uint32 // port istiod chose -> this pod's loopback port
	pid       int
	ready     bool
	restarts  int
	started   time.Time
}

// proxyConfigAnnotation: a pod's own ProxyConfig overrides (as pilot-agent reads proxy.istio.io/config).
type proxyConfigAnnotation struct {
	DrainDuration            string `json:"drainDuration"`
	TerminationDrainDuration string `json:"terminationDrainDuration"`
	Concurrency              *int   `json:"concurrency"`
}

func (g *process) syncPod(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	key := pod.Namespace + "/" + pod.Name
	serve := pod.Annotations[podpkg.GatewayAnnotation] != "" && pod.DeletionTimestamp == nil && pod.Status.PodIP != "" && pod.Status.Phase == corev1.PodRunning
	g.mu.Lock()
	existing := g.pods[key]
	g.mu.Unlock()
	if existing != nil && (!serve || existing.ip != pod.Status.PodIP || existing.uid != pod.UID) {
		g.dropPod(key, true)
		existing = nil
	}
	if !serve || existing != nil {
		return
	}
	adminPort, err := freeLoopbackPort()
	if err != nil {
		log.Printf("gateway pod %s: %v", key, err)
		return
	}
	cfg := envoy.Config{ClusterID: g.o.ClusterID, IstioVersion: g.o.IstioVersion, MeshID: g.o.MeshID, Relay: g.relayA,
		AdminPort: adminPort, DiscoveryAddress: g.o.XDSAddress, DrainDuration: g.o.DrainDuration,
		TerminationDrainDuration: g.o.TerminationDrainDuration, Concurrency: g.o.Concurrency}
	if raw := pod.Annotations["proxy.istio.io/config"]; raw != "" {
		var pc proxyConfigAnnotation
		if err := yaml.Unmarshal([]byte(raw), &pc); err != nil {
			log.Printf("gateway pod %s: proxy.istio.io/config: %v (ignored)", key, err)
		} else {
			if d, err := time.ParseDuration(pc.DrainDuration); err == nil && pc.DrainDuration != "" {
				cfg.DrainDuration = d
			}
			if d, err := time.ParseDuration(pc.TerminationDrainDuration); err == nil && pc.TerminationDrainDuration != "" {
				cfg.TerminationDrainDuration = d
			}
			if pc.Concurrency != nil && *pc.Concurrency > 0 {
				cfg.Concurrency = *pc.Concurrency
			}
		}
	}
	var container *corev1.Container
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == "istio-proxy" || container == nil {
			container = &pod.Spec.Containers[i]
		}
	}
	ep := envoy.Pod{Name: pod.Name, Namespace: pod.Namespace, IP: pod.Status.PodIP, Labels: pod.Labels, Annotations: pod.Annotations,
		ServiceAccount: pod.Spec.ServiceAccountName, WorkloadName: strings.TrimPrefix(pod.Annotations[podpkg.GatewayAnnotation], pod.Namespace+"/")}
	if wl := pod.Labels["app"]; wl != "" {
		ep.WorkloadName = wl
	}
	for _, o := range pod.OwnerReferences {
		if o.Controller != nil && *o.Controller {
			ep.Owner = fmt.Sprintf("kubernetes://apis/apps/v1/namespaces/%s/%ss/%s", pod.Namespace, strings.ToLower(o.Kind), o.Name)
		}
	}
	image := ""
	if container != nil {
		image = container.Image
		for _, cp := range container.Ports {
			ep.Ports = append(ep.Ports, envoy.Port{Name: cp.Name, ContainerPort: cp.ContainerPort, Protocol: string(cp.Protocol)})
		}
	}
	ep.Ports = envoy.SortedPorts(ep.Ports)
	base := filepath.Join(g.o.StateDir, "envoy", pod.Namespace+"_"+pod.Name)
	p := &gwPod{key: key, ns: pod.Namespace, name: pod.Name, ip: pod.Status.PodIP, uid: pod.UID, container: "istio-proxy", image: image,
		node: envoy.NodeID(ep), cfg: cfg, ep: ep, bootstrap: base + ".json", logPath: base + ".log",
		stop: make(chan struct{}), done: make(chan struct{}), listeners: map[uint32]uint32{}}
	g.mu.Lock()
	if g.pods[key] != nil {
		g.mu.Unlock()
		return
	}
	g.pods[key] = p
	g.byIP[p.ip] = p
	g.mu.Unlock()
	go g.supervise(p, podpkg.Ready(pod))
}

// dropPod: the pod is gone or no longer runs. graceful: as pilot-agent on SIGTERM, drain the listeners
// (POST /drain_listeners?graceful), wait terminationDrainDuration, then end Envoy; the CLB sends it
// nothing new from the start.
func (g *process) dropPod(key string, graceful bool) {
	g.mu.Lock()
	p := g.pods[key]
	delete(g.pods, key)
	if p != nil && g.byIP[p.ip] == p {
		delete(g.byIP, p.ip)
	}
	g.mu.Unlock()
	if p == nil {
		return
	}
	p.stopOnce.Do(func() {
		p.graceful = graceful
		close(p.stop)
	})
	g.relay.Forget(p.node)
	g.writeTable()
	if !graceful {
		<-p.done
	}
	log.Printf("gateway pod %s: gone (graceful %v)", key, graceful)
}

func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// listenerPort: the pod's loopback port for a listener port istiod chose, picked once and kept for the pod's
// life (Envoy restarts included), so the rewrite is the same on every push.
func (p *gwPod) listenerPort(g *process, port uint32) (uint32, error) {
	p.mu.Lock()
	lb, ok := p.listeners[port]
	if !ok {
		free, err := freeLoopbackPort()
		if err != nil {
			p.mu.Unlock()
			return 0, err
		}
		lb = uint32(free)
		p.listeners[port] = lb
	}
	p.mu.Unlock()
	if !ok {
		log.Printf("gateway pod %s: listener port %d -> 127.0.0.1:%d", p.key, port, lb)
		g.writeTable()
	}
	return lb, nil
}

func (g *process) writeTable() {
	g.mu.Lock()
	entries := []table.Entry{}
	for _, p := range g.pods {
		p.mu.Lock()
		for port, lb := range p.listeners {
			entries = append(entries, table.Entry{Address: net.JoinHostPort(p.ip, strconv.Itoa(int(port))), Loopback: net.JoinHostPort("127.0.0.1", strconv.Itoa(int(lb))), Pod: p.key, PID: p.pid, Ready: p.ready})
		}
		p.mu.Unlock()
	}
	g.mu.Unlock()
	if err := table.Write(filepath.Join(g.o.StateDir, table.Gateway), entries); err != nil {
		log.Printf("gateway table: %v", err)
	}
}

func (p *gwPod) admin() string { return fmt.Sprintf("http://127.0.0.1:%d", p.cfg.AdminPort) }

// envoyReady is pilot-agent's readiness check (/healthz/ready): the server is LIVE, the workers started and
// both CDS and LDS have been applied at least once.
func (p *gwPod) envoyReady() bool {
	c := http.Client{Timeout: 500 * time.Millisecond}
	res, err := c.Get(p.admin() + "/stats?format=json&filter=" +
		"%5E%28server%5C.state%7Clistener_manager%5C.workers_started%7Clistener_manager%5C.lds%5C.update_success%7Ccluster_manager%5C.cds%5C.update_success%29%24")
	if err != nil {
		return false
	}
	defer res.Body.Close()
	var body struct {
		Stats []struct {
			Name  string  `json:"name"`
			Value float64 `json:"value"`
		} `json:"stats"`
	}
	if res.StatusCode != 200 || json.NewDecoder(res.Body).Decode(&body) != nil {
		return false
	}
	v := map[string]float64{}
	for _, s := range body.Stats {
		v[s.Name] = s.Value
	}
	// server.state 0 is LIVE.
	state, ok := v["server.state"]
	return ok && state == 0 && v["listener_manager.workers_started"] > 0 && v["listener_manager.lds.update_success"] > 0 && v["cluster_manager.cds.update_success"] > 0
}

func (g *process) patchReady(p *gwPod, ready bool, exitCode *int) {
	p.mu.Lock()
	s := podpkg.Status{Namespace: p.ns, Name: p.name, Container: p.container, Image: p.image, Ready: ready, Restarts: p.restarts,
		Started: p.started, ExitCode: exitCode, Waiting: "CrashLoopBackOff", WaitingMessage: "envoy exited; restarting with back-off"}
	p.mu.Unlock()
	podpkg.PatchReady(g.kc, s)
}

// supervise runs the pod's Envoy until the pod goes away: start, Ready once pilot-agent's readiness check
// passes, not Ready when it exits, restarted with the kubelet's doubling back-off.
func (g *process) supervise(p *gwPod, apiReady bool) {
	defer close(p.done)
	backoff := g.o.RestartBackoff
	for {
		b, err := envoy.Bootstrap(p.ep, p.cfg)
		if err == nil {
			err = os.WriteFile(p.bootstrap, b, 0o644)
		}
		if err != nil {
			log.Printf("gateway pod %s: bootstrap: %v", p.key, err)
			return
		}
		out, _ := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		cmd := exec.Command(g.o.Envoy, envoy.Args(p.bootstrap, p.cfg, g.o.LogLevel)...)
		cmd.Stdout, cmd.Stderr = out, out
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		started := time.Now()
		if err := cmd.Start(); err != nil {
			log.Printf("gateway pod %s: cannot start %s: %v", p.key, g.o.Envoy, err)
			out.Close()
			return
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		p.mu.Lock()
		p.pid, p.ready, p.started = cmd.Process.Pid, false, started
		restarts := p.restarts
		p.mu.Unlock()
		g.writeTable()
		log.Printf("gateway pod %s (%s): envoy pid %d, admin %s, drain %v, node %s", p.key, p.ip, cmd.Process.Pid, p.admin(), p.cfg.DrainDuration, p.node)

		var exitErr error
		gone, stopped := false, false
	probe:
		for {
			if p.envoyReady() {
				p.mu.Lock()
				p.ready = true
				p.mu.Unlock()
				g.writeTable()
				log.Printf("gateway pod %s: envoy ready in %v", p.key, time.Since(started).Round(time.Millisecond))
				if !apiReady || restarts > 0 {
					g.patchReady(p, true, nil)
				}
				break
			}
			select {
			case exitErr = <-exited:
				gone = true
				break probe
			case <-p.stop:
				stopped = true
				break probe
			case <-time.After(100 * time.Millisecond):
			}
		}
		if !gone && !stopped {
			select {
			case exitErr = <-exited:
			case <-p.stop:
				stopped = true
			}
		}
		if stopped {
			p.mu.Lock()
			p.ready = false
			p.mu.Unlock()
			if p.graceful && !gone {
				// pilot-agent on SIGTERM: drain the listeners, wait terminationDrainDuration, then end Envoy.
				log.Printf("gateway pod %s: draining its Envoy for %v", p.key, p.cfg.TerminationDrainDuration)
				c := http.Client{Timeout: time.Second}
				if res, err := c.Post(p.admin()+"/drain_listeners?graceful", "text/plain", nil); err == nil {
					res.Body.Close()
				}
				select {
				case <-exited:
					gone = true
				case <-time.After(p.cfg.TerminationDrainDuration):
				}
			}
			if !gone {
				_ = cmd.Process.Kill()
				select {
				case <-exited:
				case <-time.After(5 * time.Second):
				}
			}
			out.Close()
			return
		}
		out.Close()
		p.mu.Lock()
		p.restarts++
		p.ready, p.pid = false, 0
		p.mu.Unlock()
		g.writeTable()
		code := -1
		if ee, ok := exitErr.(*exec.ExitError); ok {
			code = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				code = 128 + int(ws.Signal())
			}
		}
		if time.Since(started) > 10*time.Minute {
			backoff = g.o.RestartBackoff
		}
		log.Printf("gateway pod %s: envoy exited (code %d); not Ready; restart %d in %v (log: %s)", p.key, code, p.restarts, backoff, p.logPath)
		g.patchReady(p, false, &code)
		apiReady = false
		select {
		case <-p.stop:
			return
		case <-time.After(backoff):
		}
		if backoff *= 2; backoff > 5*time.Minute {
			backoff = 5 * time.Minute
		}
	}
}

// ---- admin: the gateway pods, their Envoys' admin addresses and what the relay saw ----

type podInfo struct {
	Pod                     string            `json:"pod"`
	IP                      string            `json:"ip"`
	Node                    string            `json:"node"`
	Admin                   string            `json:"admin"`
	PID                     int               `json:"pid"`
	Ready                   bool              `json:"ready"`
	Restarts                int               `json:"restarts"`
	DrainSeconds            float64           `json:"drainSeconds"`
	TerminationDrainSeconds float64           `json:"terminationDrainSeconds"`
	Listeners               map[string]string `json:"listeners"`
	Relay                   relay.NodeStats   `json:"relay"`
	Bootstrap               string            `json:"bootstrap"`
	Log                     string            `json:"log"`
	Args                    []string          `json:"args"`
	Envoy                   string            `json:"envoy"`
}

func (g *process) info() []podInfo {
	stats := g.relay.Stats()
	g.mu.Lock()
	pods := make([]*gwPod, 0, len(g.pods))
	for _, p := range g.pods {
		pods = append(pods, p)
	}
	g.mu.Unlock()
	sort.Slice(pods, func(i, j int) bool { return pods[i].key < pods[j].key })
	out := []podInfo{}
	for _, p := range pods {
		p.mu.Lock()
		i := podInfo{Pod: p.key, IP: p.ip, Node: p.node, Admin: p.admin(), PID: p.pid, Ready: p.ready, Restarts: p.restarts,
			DrainSeconds: p.cfg.DrainDuration.Seconds(), TerminationDrainSeconds: p.cfg.TerminationDrainDuration.Seconds(),
			Listeners: map[string]string{}, Relay: stats[p.node], Bootstrap: p.bootstrap, Log: p.logPath,
			Args: envoy.Args(p.bootstrap, p.cfg, g.o.LogLevel), Envoy: g.o.Envoy}
		for port, lb := range p.listeners {
			i.Listeners[strconv.Itoa(int(port))] = net.JoinHostPort("127.0.0.1", strconv.Itoa(int(lb)))
		}
		p.mu.Unlock()
		if i.Relay.NACKs == nil {
			i.Relay.NACKs = []string{}
		}
		out = append(out, i)
	}
	return out
}

func (g *process) adminMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/pods", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(map[string]any{"relay": g.relayA, "pods": g.info()})
	})
	mux.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) {
		for _, i := range g.info() {
			if !i.Ready {
				http.Error(w, i.Pod+": its Envoy is not ready", http.StatusServiceUnavailable)
				return
			}
		}
		_, _ = io.WriteString(w, "ready\n")
	})
	return mux
}
