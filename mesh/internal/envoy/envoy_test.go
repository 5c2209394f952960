package envoy

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/encoding/protojson"

	meshconfig "istio.io/api/mesh/v1alpha1"
	"istio.io/istio/pkg/model"
)

var pod = Pod{Name: "istio-ingressgateway-7d9-abcde", Namespace: "istio-system", IP: "10.0.0.7",
	Labels:      map[string]string{"istio": "ingressgateway", "app": "istio-ingressgateway"},
	Annotations: map[string]string{"asm-tcp-shift.io/istio-gateway": "istio-system/ingressgateway"},
	Ports:       []Port{{Name: "tcp", ContainerPort: 31400, Protocol: "TCP"}}, WorkloadName: "istio-ingressgateway"}

var cfg = Config{ClusterID: "Kubernetes", IstioVersion: "1.31.0", MeshID: "cluster.local", Relay: "127.0.0.1:40100",
	AdminPort: 40101, DiscoveryAddress: "127.0.0.1:15010", DrainDuration: 5 * time.Second, TerminationDrainDuration: 5 * time.Second, Concurrency: 1}

func TestNodeIDAsPilotAgentFormsItForARouter(t *testing.T) {
	if got := NodeID(pod); got != "router~10.0.0.7~istio-ingressgateway-7d9-abcde.istio-system~istio-system.svc.cluster.local" {
		t.Fatal(got)
	}
	if got := ServiceCluster(pod); got != "istio-ingressgateway.istio-system" {
		t.Fatal(got)
	}
}

// istiod rejects the whole connection if one metadata field has the wrong JSON type: parse it as istiod does.
func TestMetadataParsesAsIstiodsNodeMetadata(t *testing.T) {
	raw, err := json.Marshal(Metadata(pod, cfg))
	if err != nil {
		t.Fatal(err)
	}
	var meta model.BootstrapNodeMetadata
	if err := json.Unmarshal(raw, &meta); err != nil {
		t.Fatalf("istiod would refuse this node: %v\n%s", err, raw)
	}
	if meta.Namespace != "istio-system" || meta.ClusterID != "Kubernetes" || strings.Join(meta.InstanceIPs, ",") != "10.0.0.7" ||
		meta.Labels["istio"] != "ingressgateway" || meta.ProxyConfig == nil {
		t.Fatalf("%+v", meta.NodeMetadata)
	}
	pc := (*meshconfig.ProxyConfig)(meta.ProxyConfig)
	if got := pc.GetDrainDuration().AsDuration(); got != 5*time.Second {
		t.Fatalf("drainDuration %v", got)
	}
	if pc.GetDiscoveryAddress() != "127.0.0.1:15010" {
		t.Fatal(pc.GetDiscoveryAddress())
	}
}

// The bootstrap is a valid Envoy v3 Bootstrap: delta ADS through the static xds-grpc cluster on the relay, admin on loopback.
func TestBootstrapIsAValidDeltaADSBootstrap(t *testing.T) {
	raw, err := Bootstrap(pod, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var b bootstrapv3.Bootstrap
	if err := (protojson.UnmarshalOptions{}).Unmarshal(raw, &b); err != nil {
		t.Fatalf("not a v3 Bootstrap: %v", err)
	}
	if err := b.ValidateAll(); err != nil {
		t.Fatal(err)
	}
	if b.GetNode().GetId() != NodeID(pod) || b.GetNode().GetCluster() != "istio-ingressgateway.istio-system" {
		t.Fatal(b.GetNode())
	}
	ads := b.GetDynamicResources().GetAdsConfig()
	if ads.GetApiType().String() != "DELTA_GRPC" || !ads.GetSetNodeOnFirstMessageOnly() || ads.GetGrpcServices()[0].GetEnvoyGrpc().GetClusterName() != "xds-grpc" {
		t.Fatal(ads)
	}
	if a := b.GetAdmin().GetAddress().GetSocketAddress(); a.GetAddress() != "127.0.0.1" || a.GetPortValue() != 40101 {
		t.Fatal(a)
	}
	xds := b.GetStaticResources().GetClusters()[0]
	sa := xds.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
	if xds.GetName() != "xds-grpc" || sa.GetAddress() != "127.0.0.1" || sa.GetPortValue() != 40100 {
		t.Fatal(xds)
	}
	if b.GetStatsConfig().GetStatsMatcher() != nil {
		t.Fatal("no stats_matcher: the tests read cluster.* and listener.* stats")
	}
}

func TestArgsArePilotAgentsFlags(t *testing.T) {
	got := strings.Join(Args("/s/b.json", cfg, "warning"), " ")
	want := "-c /s/b.json --drain-time-s 5 --drain-strategy immediate --local-address-ip-version v4 --file-flush-interval-msec 1000 --disable-hot-restart --allow-unknown-static-fields --concurrency 1 --log-level warning"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}
