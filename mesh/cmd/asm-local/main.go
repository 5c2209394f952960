// asm-local: the processes that make the local (kwok) cluster behave like an ASM mesh around istiod.
//
//	asm-local controller   ASM's IstioGateway controller stand-in (Deployment + Service istio-<name>,
//	                       a loopback CLB address, the CR's status) and the echo-pod runner (Istio's
//	                       tcp-echo per pod, readiness from the process).
//	asm-local gateway      the ingress gateway pods: one Envoy per pod, bootstrapped as Istio's router
//	                       proxy, fed by istiod through an xDS relay that maps pod addresses to loopback;
//	                       and the CLB stand-in on the Service's loopback ingress address.
//
// Nothing here connects to a non-loopback address: pod addresses are translated to loopback ports
// through the table files in --state-dir.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"asm-tcp-shift/mesh/internal/controller"
	"asm-tcp-shift/mesh/internal/gateway"
)

const usage = `usage: asm-local controller|gateway [flags]`

type common struct {
	kubeconfig string
	stateDir   string
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.kubeconfig, "kubeconfig", "", "kubeconfig of the local cluster")
	fs.StringVar(&c.stateDir, "state-dir", "", "folder of the pod-address -> loopback-port tables")
}

func (c *common) clients() (kubernetes.Interface, dynamic.Interface) {
	if c.kubeconfig == "" || c.stateDir == "" {
		log.Fatalf("--kubeconfig and --state-dir are required")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig)
	if err != nil {
		log.Fatalf("kubeconfig: %v", err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	if err := os.MkdirAll(c.stateDir, 0o755); err != nil {
		log.Fatal(err)
	}
	return kubernetes.NewForConfigOrDie(cfg), dynamic.NewForConfigOrDie(cfg)
}

func signalContext(grace time.Duration) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-ch
		log.Printf("%v: shutting down", s)
		cancel()
		// A second signal, or a stuck shutdown, ends the process.
		select {
		case <-ch:
		case <-time.After(grace):
		}
		os.Exit(0)
	}()
	return ctx
}

func main() {
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(64)
	}
	var c common
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	c.register(fs)
	switch os.Args[1] {
	case "controller":
		o := controller.Options{}
		fs.StringVar(&o.IngressIP, "ingress-ip", "127.0.0.1", "loopback address given to LoadBalancer Services (the CLB stand-in)")
		fs.StringVar(&o.TCPEcho, "tcp-echo", "", "Istio's tcp-echo server binary")
		fs.StringVar(&o.EchoImage, "echo-image", "tcp-echo-server", "pods with a container whose image contains this run Istio's tcp-echo")
		fs.DurationVar(&o.RestartBackoff, "restart-backoff", 10*time.Second, "first restart delay of an exited echo process (doubles, as the kubelet's)")
		_ = fs.Parse(os.Args[2:])
		kc, dc := c.clients()
		o.StateDir = c.stateDir
		controller.Run(signalContext(5*time.Second), kc, dc, o)
	case "gateway":
		o := gateway.Options{}
		fs.StringVar(&o.XDSAddress, "xds-address", "127.0.0.1:15010", "istiod's plaintext xDS address (the relay's upstream)")
		fs.StringVar(&o.AdminAddress, "admin-address", "127.0.0.1:15000", "loopback address of the gateway pods' index (/pods: each Envoy's admin address, the relay's view)")
		fs.StringVar(&o.ClusterID, "cluster-id", "Kubernetes", "istiod's cluster id (CLUSTER_ID metadata)")
		fs.StringVar(&o.IstioVersion, "istio-version", "1.31.0", "ISTIO_VERSION sent in the node metadata")
		fs.StringVar(&o.MeshID, "mesh-id", "cluster.local", "MESH_ID sent in the node metadata")
		fs.StringVar(&o.Envoy, "envoy", "", "the envoy binary")
		fs.DurationVar(&o.DrainDuration, "drain-duration", 45*time.Second, "the mesh's ProxyConfig drainDuration (Envoy's --drain-time-s), unless a pod's proxy.istio.io/config says otherwise")
		fs.DurationVar(&o.TerminationDrainDuration, "termination-drain-duration", 5*time.Second, "the mesh's ProxyConfig terminationDrainDuration: how long a deleted gateway pod's Envoy drains before it is ended")
		fs.IntVar(&o.Concurrency, "concurrency", 1, "Envoy worker threads per gateway pod (--concurrency)")
		fs.StringVar(&o.LogLevel, "envoy-log-level", "warning", "Envoy's --log-level")
		fs.DurationVar(&o.RestartBackoff, "restart-backoff", 10*time.Second, "first restart delay of an exited Envoy (doubles, as the kubelet's)")
		_ = fs.Parse(os.Args[2:])
		kc, _ := c.clients()
		o.StateDir = c.stateDir
		gateway.Run(signalContext(10*time.Second), kc, o)
	default:
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(64)
	}
}
