package main

import (
	"context"
	"encoding/json"
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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// echoRunner backs each tcp-echo pod with Istio's real tcp-echo server, started with the pod's own args
// except that each port listens on a loopback port of its own (recorded in the table), and makes the pod's
// readiness follow that process, as the kubelet's TCP readiness probe would: Ready once the ports accept,
// not Ready when the process exits; it is restarted with the kubelet's doubling back-off.
type echoRunner struct {
	kc      kubernetes.Interface
	o       controllerOptions
	mu      sync.Mutex
	pods    map[string]*echoPod // by namespace/name
	changed chan struct{}
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

func newEchoRunner(kc kubernetes.Interface, o controllerOptions) *echoRunner {
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
		if !strings.Contains(c.Image, r.o.echoImage) {
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
	go r.supervise(p, podReady(pod))
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
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
	entries := []tableEntry{}
	for _, p := range r.pods {
		p.mu.Lock()
		for podPort, lb := range p.loopback {
			entries = append(entries, tableEntry{Address: net.JoinHostPort(p.ip, podPort), Loopback: net.JoinHostPort("127.0.0.1", strconv.Itoa(lb)), Pod: p.key, PID: p.pid, Ready: p.ready})
		}
		p.mu.Unlock()
	}
	r.mu.Unlock()
	if err := writeTable(filepath.Join(r.o.stateDir, echoTable), entries); err != nil {
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
	backoff := r.o.restartBackoff
	restarts := 0
	logPath := filepath.Join(r.o.stateDir, "pods", strings.ReplaceAll(p.key, "/", "_")+".log")
	_ = os.MkdirAll(filepath.Dir(logPath), 0o755)
	for {
		loopback := map[string]int{}
		hostPorts := []string{}
		for _, port := range p.ports {
			lb, err := freeLoopbackPort()
			if err != nil {
				log.Printf("pod %s: %v", p.key, err)
				return
			}
			loopback[port] = lb
			hostPorts = append(hostPorts, strconv.Itoa(lb))
		}
		out, _ := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		cmd := exec.Command(r.o.tcpEcho, strings.Join(hostPorts, ","), p.prefix)
		cmd.Stdout, cmd.Stderr = out, out
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		started := time.Now()
		if err := cmd.Start(); err != nil {
			log.Printf("pod %s: cannot start %s: %v", p.key, r.o.tcpEcho, err)
			out.Close()
			return
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		p.mu.Lock()
		p.loopback, p.pid, p.ready = loopback, cmd.Process.Pid, false
		p.mu.Unlock()
		r.notify()
		log.Printf("pod %s (%s): tcp-echo pid %d, %s -> loopback %v", p.key, p.ip, cmd.Process.Pid, strings.Join(p.ports, ","), loopback)

		// Readiness: every port accepts (the Deployment's TCP probe), checked until it does or the process dies.
		var exitErr error
		var gone bool
	probe:
		for {
			all := true
			for _, lb := range loopback {
				all = all && accepts(lb)
			}
			if all {
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
				out.Close()
				return
			}
		}
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
			backoff = r.o.restartBackoff
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

// patchReady sets the pod's Ready/ContainersReady conditions and the echo container's status, as the
// kubelet reports them.
func (r *echoRunner) patchReady(p *echoPod, ready bool, restarts int, started time.Time, exitCode *int) {
	now := metav1.Now()
	status := corev1.ConditionFalse
	reason := "ContainersNotReady"
	if ready {
		status, reason = corev1.ConditionTrue, ""
	}
	cond := func(t corev1.PodConditionType) map[string]any {
		c := map[string]any{"type": t, "status": status, "lastTransitionTime": now}
		if reason != "" {
			c["reason"] = reason
			c["message"] = fmt.Sprintf("containers with unready status: [%s]", p.container)
		} else {
			c["reason"], c["message"] = nil, nil
		}
		return c
	}
	cs := map[string]any{"name": p.container, "image": p.image, "imageID": "", "ready": ready, "restartCount": restarts, "started": ready}
	if ready {
		cs["state"] = map[string]any{"running": map[string]any{"startedAt": metav1.NewTime(started)}, "waiting": nil, "terminated": nil}
	} else {
		cs["state"] = map[string]any{"waiting": map[string]any{"reason": "CrashLoopBackOff", "message": "tcp-echo exited; restarting with back-off"}, "running": nil, "terminated": nil}
	}
	if exitCode != nil {
		cs["lastState"] = map[string]any{"terminated": map[string]any{"exitCode": *exitCode, "reason": "Error", "startedAt": metav1.NewTime(started), "finishedAt": now}}
	}
	patch, _ := json.Marshal(map[string]any{"status": map[string]any{
		"conditions":        []any{cond(corev1.PodReady), cond(corev1.ContainersReady)},
		"containerStatuses": []any{cs},
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := r.kc.CoreV1().Pods(p.namespace).Patch(ctx, p.name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status"); err != nil {
		log.Printf("pod %s: readiness %v: %v", p.key, ready, err)
	}
}
