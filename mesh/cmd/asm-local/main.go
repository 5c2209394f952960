// asm-local: the processes that make the local (kwok) cluster behave like an ASM mesh around istiod.
//
//	asm-local controller   ASM's IstioGateway controller stand-in (Deployment + Service istio-<name>,
//	                       a loopback CLB address, the CR's status) and the echo-pod runner (Istio's
//	                       tcp-echo per pod, readiness from the process).
//	asm-local gateway      the ingress gateway pods: one Envoy per pod, bootstrapped as Istio's router
//	                       proxy, fed by istiod through an xDS relay that maps pod addresses to loopback;
//	                       and the CLB stand-in on the Service's loopback ingress address.
//	asm-local credentials  prints a kubeconfig with an inline client certificate signed by a local API
//	                       server's CA (the ASM-shaped topology's per-plane users).
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
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"asm-tcp-shift/mesh/internal/controller"
	"asm-tcp-shift/mesh/internal/credentials"
	"asm-tcp-shift/mesh/internal/gateway"
)

const usage = `usage: asm-local controller|gateway|credentials [flags]`

// groups is a repeatable string flag.
type groups []string

func (g *groups) String() string     { return strings.Join(*g, ",") }
func (g *groups) Set(v string) error { *g = append(*g, v); return nil }

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
	if os.Args[1] == "credentials" {
		mintCredentials(os.Args[2:])
		return
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
		var configKubeconfig string
		fs.StringVar(&configKubeconfig, "config-kubeconfig", "", "kubeconfig of the mesh control plane holding the IstioGateway CRs (ASM's API server); empty: the same cluster as --kubeconfig")
		fs.StringVar(&o.ClusterID, "cluster-id", "", "this data plane's cluster id: an IstioGateway makes its gateway here only if spec.clusterIds names it; empty: every IstioGateway (one-cluster topology)")
		_ = fs.Parse(os.Args[2:])
		kc, dc := c.clients()
		o.StateDir = c.stateDir
		cfgDyn := dc
		if configKubeconfig != "" {
			cfgDyn = dynamicClient(configKubeconfig)
		}
		controller.Run(signalContext(5*time.Second), kc, cfgDyn, o)
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

func dynamicClient(kubeconfig string) dynamic.Interface {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		log.Fatalf("kubeconfig: %v", err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	return dynamic.NewForConfigOrDie(cfg)
}

// mintCredentials: `asm-local credentials` prints a kubeconfig for a new user. The CA's key is read from a file
// (never a flag value) and the kubeconfig goes to stdout only, for the caller to write under umask 077.
func mintCredentials(args []string) {
	fs := flag.NewFlagSet("credentials", flag.ExitOnError)
	var caCert, caKey, server, cluster, user string
	var gs groups
	var validity time.Duration
	var expired bool
	fs.StringVar(&caCert, "ca-cert", "", "the API server's client CA certificate (PEM file; also the kubeconfig's certificate-authority-data)")
	fs.StringVar(&caKey, "ca-key", "", "the CA's private key (PEM file)")
	fs.StringVar(&server, "server", "", "the API server's URL")
	fs.StringVar(&cluster, "cluster", "", "name of the kubeconfig's cluster and context (for istiod's remote kubeconfigs: the cluster ID)")
	fs.StringVar(&user, "user", "", "the user name (certificate CN)")
	fs.Var(&gs, "group", "a group (certificate O); repeatable")
	fs.DurationVar(&validity, "validity", 365*24*time.Hour, "how long the certificate is valid from now")
	fs.BoolVar(&expired, "expired", false, "issue a certificate whose notAfter is already past (valid from 48h to 24h ago)")
	_ = fs.Parse(args)
	ca, err := os.ReadFile(caCert)
	if err != nil {
		log.Fatal(err)
	}
	key, err := os.ReadFile(caKey)
	if err != nil {
		log.Fatal(err)
	}
	now := time.Now()
	// A minute of back-dating absorbs clock steps between this process and the API server.
	notBefore, notAfter := now.Add(-time.Minute), now.Add(validity)
	if expired {
		notBefore, notAfter = now.Add(-48*time.Hour), now.Add(-24*time.Hour)
	}
	out, err := credentials.Kubeconfig(credentials.Request{CACert: ca, CAKey: key, Server: server, Cluster: cluster, User: user,
		Groups: gs, NotBefore: notBefore, NotAfter: notAfter})
	if err != nil {
		log.Fatalf("credentials: %v", err)
	}
	_, _ = os.Stdout.Write(out)
}
