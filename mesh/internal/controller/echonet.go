package controller

import (
	"errors"
	"fmt"
	"log"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"asm-tcp-shift/mesh/internal/podnet"
)

// podNetwork is the pod's own network namespace, made once for the pod's life as a pod sandbox's is (a restarted
// tcp-echo comes back into the same one). nil, nil: this process may not create one, tcp-echo runs on the host's.
func (r *echoRunner) podNetwork(p *echoPod) (*podnet.NS, error) {
	ns, err := podnet.New()
	if errors.Is(err, podnet.ErrNotPermitted) {
		r.sharedOnce.Do(func() {
			log.Printf("echo pods share the host's network namespace (%v): each tcp-echo listens on every interface of this machine, on a free port (docs/local-mesh.md)", err)
		})
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pod %s: its network namespace: %w", p.key, err)
	}
	return ns, nil
}

// echoPorts are one run of a pod's tcp-echo: the host loopback port that stands for each pod port (the table's),
// and how a port is reached.
type echoPorts struct {
	ns        *podnet.NS // nil: the host's namespace
	ports     []string
	pod       map[string]int
	loopback  map[string]int // pod port -> host loopback port
	listeners []*net.TCPListener
	args      string // tcp-echo's first argument, its ports
}

func openEchoPorts(ns *podnet.NS, ports []string) (*echoPorts, error) {
	e := &echoPorts{ns: ns, ports: ports, pod: map[string]int{}, loopback: map[string]int{}}
	var args []string
	for _, port := range ports {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			e.close()
			return nil, fmt.Errorf("port %q is not a TCP port", port)
		}
		e.pod[port] = n
		if ns == nil {
			// tcp-echo itself listens on the loopback port (and, binding ":"+port, on every other interface too).
			lb, err := freeLoopbackPort()
			if err != nil {
				return nil, err
			}
			e.loopback[port] = lb
			args = append(args, strconv.Itoa(lb))
			continue
		}
		// tcp-echo gets the pod's own port, inside; the runner holds the host loopback port.
		l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			e.close()
			return nil, err
		}
		e.listeners = append(e.listeners, l)
		e.loopback[port] = l.Addr().(*net.TCPAddr).Port
		args = append(args, port)
	}
	e.args = strings.Join(args, ",")
	return e, nil
}

// start starts tcp-echo (in the pod's namespace, if any) and, once it runs, carries each loopback port in.
func (e *echoPorts) start(cmd *exec.Cmd) error {
	if e.ns == nil {
		return cmd.Start()
	}
	if err := e.ns.Start(cmd); err != nil {
		return err
	}
	for i, port := range e.ports {
		go e.ns.Forward(e.listeners[i], e.pod[port])
	}
	return nil
}

// accepts: every port takes a connection where tcp-echo listens (inside the pod's namespace, if any).
func (e *echoPorts) accepts() bool {
	for port, n := range e.pod {
		if e.ns == nil {
			if !accepts(e.loopback[port]) {
				return false
			}
			continue
		}
		c, err := e.ns.Dial(n, 200*time.Millisecond)
		if err != nil {
			return false
		}
		c.Close()
	}
	return true
}

// close stops taking connections on the loopback ports (connections in flight end with tcp-echo's side of them).
func (e *echoPorts) close() {
	for _, l := range e.listeners {
		l.Close()
	}
}
