package controller

import (
	"context"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	podpkg "asm-tcp-shift/mesh/internal/pod"
	"asm-tcp-shift/mesh/internal/table"
)

// echoRunner backs each tcp-echo pod with Istio's real tcp-echo server, started with the pod's own args in a
// network namespace of the pod's own (only lo: tcp-echo listens on every interface, and a pod's are its own);
// the runner listens on a host loopback port for each pod port (recorded in the table) and carries each
// connection into the namespace (podnet). It makes the pod's readiness follow that process, as the kubelet's
// TCP readiness probe would: Ready once the ports accept inside, not Ready when the process exits; it is
// restarted with the kubelet's doubling back-off. Without the privilege to create namespaces, tcp-echo runs in
// the host's namespace, each port on a loopback port of its own (said once in the log; docs/local-mesh.md).
type echoRunner struct {
	kc         kubernetes.Interface
	o          Options
	mu         sync.Mutex
	pods       map[string]*echoPod // by namespace/name
	changed    chan struct{}
	sharedOnce sync.Once
}

type echoPod struct {
	key, namespace, name, ip, container, image string
	uid                                        types.UID
	ports                                      []string
	prefix                                     string
	stop                                       chan struct{}
	done                                       chan struct{}

	mu       sync.Mutex
	loopback map[string]int // pod port -> loopback port
	pid      int
	ready    bool
}

func newEchoRunner(kc kubernetes.Interface, o Options) *echoRunner {
	return &echoRunner{kc: kc, o: o, pods: map[string]*echoPod{}, changed: make(chan struct{}, 1)}
}

func (r *echoRunner) handler() cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { r.sync(obj) },
		UpdateFunc: func(_, obj any) { r.sync(obj) },
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if pod, ok := obj.(*corev1.Pod); ok {
				r.forget(pod.Namespace + "/" + pod.Name)
			}
		},
	}
}

// echoContainer is the pod's container running Istio's tcp-echo image, with its args (ports, prefix).
func (r *echoRunner) echoContainer(pod *corev1.Pod) (*corev1.Container, []string, string, bool) {
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		if !strings.Contains(c.Image, r.o.EchoImage) {
			continue
		}
		args := c.Args
		if len(args) != 2 {
			log.Printf("pod %s/%s: container %s args %q are not tcp-echo's \"PORTS PREFIX\"; not run", pod.Namespace, pod.Name, c.Name, args)
			return nil, nil, "", false
		}
		return c, strings.Split(args[0], ","), args[1], true
	}
	return nil, nil, "", false
}

func (r *echoRunner) sync(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	key := pod.Namespace + "/" + pod.Name
	c, ports, prefix, isEcho := r.echoContainer(pod)
	runnable := isEcho && pod.DeletionTimestamp == nil && pod.Status.PodIP != "" && pod.Status.Phase == corev1.PodRunning
	r.mu.Lock()
	existing := r.pods[key]
	r.mu.Unlock()
	if existing != nil && (!runnable || existing.uid != pod.UID || existing.ip != pod.Status.PodIP) {
		r.forget(key)
		existing = nil
	}
	if !runnable || existing != nil {
		return
	}
	p := &echoPod{key: key, namespace: pod.Namespace, name: pod.Name, uid: pod.UID, ip: pod.Status.PodIP, container: c.Name, image: c.Image,
		ports: ports, prefix: prefix, stop: make(chan struct{}), done: make(chan struct{}), loopback: map[string]int{}}
	r.mu.Lock()
	r.pods[key] = p
	r.mu.Unlock()
	go r.supervise(p, podpkg.Ready(pod))
}

func (r *echoRunner) forget(key string) {
	r.mu.Lock()
	p := r.pods[key]
	delete(r.pods, key)
	r.mu.Unlock()
	if p != nil {
		close(p.stop)
		<-p.done
		r.notify()
	}
}

func (r *echoRunner) stopAll() {
	r.mu.Lock()
	keys := make([]string, 0, len(r.pods))
	for k := range r.pods {
		keys = append(keys, k)
	}
	r.mu.Unlock()
	for _, k := range keys {
		r.forget(k)
	}
	r.writeTable()
}

func (r *echoRunner) notify() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// run rewrites the table whenever a process starts, becomes ready or stops.
func (r *echoRunner) run(ctx context.Context) {
	r.writeTable()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.changed:
			r.writeTable()
		}
	}
}

func (r *echoRunner) writeTable() {
	r.mu.Lock()
	entries := []table.Entry{}
	for _, p := range r.pods {
		p.mu.Lock()
		for podPort, lb := range p.loopback {
			entries = append(entries, table.Entry{Address: net.JoinHostPort(p.ip, podPort), Loopback: net.JoinHostPort("127.0.0.1", strconv.Itoa(lb)), Pod: p.key, PID: p.pid, Ready: p.ready})
		}
		p.mu.Unlock()
	}
	r.mu.Unlock()
	if err := table.Write(filepath.Join(r.o.StateDir, table.Echo), entries); err != nil {
		log.Printf("echo table: %v", err)
	}
}

func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func accepts(port int) bool {
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// supervise runs the pod's process until the pod goes away: start, wait for its ports (then Ready),
// on exit not Ready and a restart after the back-off.
func (r *echoRunner) supervise(p *echoPod, apiReady bool) {
	defer close(p.done)
	backoff := r.o.RestartBackoff
	restarts := 0
	logPath := filepath.Join(r.o.StateDir, "pods", strings.ReplaceAll(p.key, "/", "_")+".log")
	_ = os.MkdirAll(filepath.Dir(logPath), 0o755)
	ns, err := r.podNetwork(p)
	if err != nil {
		log.Print(err)
		return
	}
	where := "the host's network namespace"
	if ns != nil {
		defer ns.Close()
		where = fmt.Sprintf("its own network namespace net:[%d]", ns.Inode())
	}
	for {
		ports, err := openEchoPorts(ns, p.ports)
		if err != nil {
			log.Printf("pod %s: %v", p.key, err)
			return
		}
		loopback := ports.loopback
		out, _ := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		cmd := exec.Command(r.o.TCPEcho, ports.args, p.prefix)
		cmd.Stdout, cmd.Stderr = out, out
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		started := time.Now()
		if err := ports.start(cmd); err != nil {
			log.Printf("pod %s: cannot start %s: %v", p.key, r.o.TCPEcho, err)
			ports.close()
			out.Close()
			return
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		p.mu.Lock()
		p.loopback, p.pid, p.ready = loopback, cmd.Process.Pid, false
		p.mu.Unlock()
		r.notify()
		log.Printf("pod %s (%s): tcp-echo pid %d in %s, %s -> loopback %v", p.key, p.ip, cmd.Process.Pid, where, strings.Join(p.ports, ","), loopback)

		// Readiness: every port accepts (the Deployment's TCP probe), checked until it does or the process dies.
		var exitErr error
		var gone bool
	probe:
		for {
			if ports.accepts() {
				p.mu.Lock()
				p.ready = true
				p.mu.Unlock()
				r.notify()
				if !apiReady || restarts > 0 {
					r.patchReady(p, true, restarts, started, nil)
				}
				break
			}
			select {
			case exitErr = <-exited:
				gone = true
				break probe
			case <-p.stop:
				break probe
			case <-time.After(50 * time.Millisecond):
			}
		}
		if !gone {
			select {
			case exitErr = <-exited:
			case <-p.stop:
				_ = cmd.Process.Kill()
				<-exited
				ports.close()
				out.Close()
				return
			}
		}
		ports.close()
		out.Close()
		restarts++
		p.mu.Lock()
		p.ready, p.pid = false, 0
		p.mu.Unlock()
		r.notify()
		code := -1
		if ee, ok := exitErr.(*exec.ExitError); ok {
			code = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				code = 128 + int(ws.Signal())
			}
		}
		if time.Since(started) > 10*time.Minute {
			backoff = r.o.RestartBackoff
		}
		log.Printf("pod %s: tcp-echo exited (code %d); not Ready; restart %d in %v", p.key, code, restarts, backoff)
		r.patchReady(p, false, restarts, started, &code)
		apiReady = false
		select {
		case <-p.stop:
			return
		case <-time.After(backoff):
		}
		backoff *= 2
		if backoff > 5*time.Minute {
			backoff = 5 * time.Minute
		}
	}
}

// patchReady reports the echo container's readiness as the kubelet would.
func (r *echoRunner) patchReady(p *echoPod, ready bool, restarts int, started time.Time, exitCode *int) {
	podpkg.PatchReady(r.kc, podpkg.Status{Namespace: p.namespace, Name: p.name, Container: p.container, Image: p.image,
		Ready: ready, Restarts: restarts, Started: started, ExitCode: exitCode,
		Waiting: "CrashLoopBackOff", WaitingMessage: "tcp-echo exited; restarting with back-off"})
}
