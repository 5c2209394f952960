package gateway

import (
	"io"
	"log"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"

	podpkg "asm-tcp-shift/mesh/internal/pod"
)

// ---- the CLB stand-in (the cloud's part: it stays in front of the Envoy pods) ----

type clbListener struct {
	key      string // ip:port
	service  string // namespace/name
	portName string
	port     int32
	ln       net.Listener
	rr       atomic.Uint64
}

func (g *process) syncCLBs(objs []any) {
	want := map[string]*clbListener{}
	for _, o := range objs {
		svc, ok := o.(*corev1.Service)
		if !ok || svc.Annotations[podpkg.GatewayAnnotation] == "" || svc.Spec.Type != corev1.ServiceTypeLoadBalancer || len(svc.Status.LoadBalancer.Ingress) == 0 {
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

func (g *process) serveCLB(c *clbListener) {
	for {
		conn, err := c.ln.Accept()
		if err != nil {
			return
		}
		go g.handleCLB(c, conn)
	}
}

// backends: the ready endpoints of the Service's port (its gateway pods) whose Envoy passes its readiness
// check (the CLB's health check), each at the loopback port of that pod's listener for the target port.
func (g *process) backends(c *clbListener) []string {
	ns, name, _ := strings.Cut(c.service, "/")
	slices, err := g.slices.EndpointSlices(ns).List(labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: name}))
	if err != nil {
		return nil
	}
	out := []string{}
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
				g.mu.Lock()
				p := g.byIP[a]
				g.mu.Unlock()
				if p == nil {
					continue
				}
				p.mu.Lock()
				if lb, ok := p.listeners[uint32(port)]; ok && p.ready {
					out = append(out, net.JoinHostPort("127.0.0.1", strconv.Itoa(int(lb))))
				}
				p.mu.Unlock()
			}
		}
	}
	sort.Strings(out)
	return out
}

func (g *process) handleCLB(c *clbListener, client net.Conn) {
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

// pipe copies both ways; a close on either side ends the other (as a TCP load balancer passes on a FIN/RST).
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
