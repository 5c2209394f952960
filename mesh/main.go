// asm-local: the processes that make the local (kwok) cluster behave like an ASM mesh around istiod.
//
//	asm-local controller   ASM's IstioGateway controller stand-in (Deployment + Service istio-<name>,
//	                       a loopback CLB address, the CR's status) and the echo-pod runner (Istio's
//	                       tcp-echo per pod, readiness from the process).
//	asm-local gateway      the ingress gateway's data plane: one ADS client per gateway pod, serving
//	                       what istiod sends (TCP listeners, tcp_proxy clusters, EDS endpoints), and
//	                       the CLB stand-in on the Service's loopback ingress address.
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

func signalContext() context.Context {
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
		case <-time.After(5 * time.Second):
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
		o := controllerOptions{}
		fs.StringVar(&o.ingressIP, "ingress-ip", "127.0.0.1", "loopback address given to LoadBalancer Services (the CLB stand-in)")
		fs.StringVar(&o.tcpEcho, "tcp-echo", "", "Istio's tcp-echo server binary")
		fs.StringVar(&o.echoImage, "echo-image", "tcp-echo-server", "pods with a container whose image contains this run Istio's tcp-echo")
		fs.DurationVar(&o.restartBackoff, "restart-backoff", 10*time.Second, "first restart delay of an exited echo process (doubles, as the kubelet's)")
		_ = fs.Parse(os.Args[2:])
		kc, dc := c.clients()
		o.stateDir = c.stateDir
		runController(signalContext(), kc, dc, o)
	case "gateway":
		o := gatewayOptions{}
		fs.StringVar(&o.xdsAddress, "xds-address", "127.0.0.1:15010", "istiod's plaintext xDS address")
		fs.StringVar(&o.adminAddress, "admin-address", "127.0.0.1:15000", "loopback address of the config dump and stats")
		fs.StringVar(&o.clusterID, "cluster-id", "Kubernetes", "istiod's cluster id")
		fs.StringVar(&o.istioVersion, "istio-version", "1.31.0", "ISTIO_VERSION sent in the node metadata")
		fs.StringVar(&o.pick, "pick", "random", "how a weighted_clusters choice is drawn per connection: random (as Envoy) or sequence (a low-discrepancy sequence: the same expected split, without sampling noise; for tests)")
		_ = fs.Parse(os.Args[2:])
		kc, _ := c.clients()
		o.stateDir = c.stateDir
		runGateway(signalContext(), kc, o)
	default:
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(64)
	}
}
