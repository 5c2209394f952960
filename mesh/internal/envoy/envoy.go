// Package envoy renders what pilot-agent gives a gateway pod's Envoy: the bootstrap (node id and metadata,
// ADS over delta xDS through an xds-grpc static cluster) and the command line. Differences from
// pilot-agent, all forced by running several Envoys as local processes on loopback:
//   - xds-grpc points at the relay's loopback TCP port instead of pilot-agent's UDS ./etc/istio/proxy/XDS;
//   - the admin interface is on 127.0.0.1:<a port of the pod's own> instead of 127.0.0.1:15000;
//   - no stats_matcher (pilot-agent's hides cluster.* and listener.* stats, which the tests read), no
//     Prometheus/agent/SDS/tracing static resources (nothing here serves them);
//   - --concurrency 1 (pilot-agent derives it from the CPU limit; two cores are shared by everything here).
package envoy

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Pod is the gateway pod an Envoy plays.
type Pod struct {
	Name, Namespace, IP string
	Labels, Annotations map[string]string
	// Ports: the istio-proxy container's ports (POD_PORTS metadata).
	Ports          []Port
	ServiceAccount string
	// Owner: the pod's controller, e.g. the Deployment (OWNER metadata).
	Owner        string
	WorkloadName string
}

type Port struct {
	Name          string `json:"name,omitempty"`
	ContainerPort int32  `json:"containerPort"`
	Protocol      string `json:"protocol,omitempty"`
}

// Config is what pilot-agent would take from its environment and mesh config.
type Config struct {
	ClusterID    string
	IstioVersion string
	MeshID       string
	// Relay is the xDS address (host:port on loopback) the xds-grpc cluster points at.
	Relay string
	// AdminPort: Envoy's admin interface on 127.0.0.1.
	AdminPort int
	// DiscoveryAddress: istiod, as ProxyConfig names it (for PROXY_CONFIG).
	DiscoveryAddress         string
	DrainDuration            time.Duration
	TerminationDrainDuration time.Duration
	Concurrency              int
}

// NodeID: router~<pod IP>~<pod>.<namespace>~<namespace>.svc.cluster.local, as pilot-agent forms it for a gateway.
func NodeID(p Pod) string {
	return fmt.Sprintf("router~%s~%s.%s~%s.svc.cluster.local", p.IP, p.Name, p.Namespace, p.Namespace)
}

// ServiceCluster: <app label or workload name>.<namespace> (pilot-agent's --serviceCluster default for gateways).
func ServiceCluster(p Pod) string {
	name := p.Labels["app"]
	if name == "" {
		name = p.WorkloadName
	}
	if name == "" {
		name = "istio-proxy"
	}
	return name + "." + p.Namespace
}

func durationString(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s"
}

// ProxyConfig is the PROXY_CONFIG metadata: the pod's effective ProxyConfig, in its JSON form.
func ProxyConfig(c Config) map[string]any {
	return map[string]any{
		"discoveryAddress":         c.DiscoveryAddress,
		"drainDuration":            durationString(c.DrainDuration),
		"terminationDrainDuration": durationString(c.TerminationDrainDuration),
		"proxyAdminPort":           c.AdminPort,
		"concurrency":              c.Concurrency,
	}
}

// Metadata is the node metadata as pilot-agent's GetNodeMetaData writes it (the keys istiod reads, with the
// JSON types istiod's NodeMetadata expects: strings, string maps, INSTANCE_IPS a comma-separated string).
func Metadata(p Pod, c Config) map[string]any {
	labels := map[string]any{}
	for k, v := range p.Labels {
		labels[k] = v
	}
	annotations := map[string]any{}
	for k, v := range p.Annotations {
		annotations[k] = v
	}
	ports, _ := json.Marshal(p.Ports)
	meta := map[string]any{
		"NAMESPACE":     p.Namespace,
		"NAME":          p.Name,
		"LABELS":        labels,
		"ANNOTATIONS":   annotations,
		"CLUSTER_ID":    c.ClusterID,
		"ISTIO_VERSION": c.IstioVersion,
		"INSTANCE_IPS":  p.IP,
		"MESH_ID":       c.MeshID,
		"WORKLOAD_NAME": p.WorkloadName,
		"POD_PORTS":     string(ports),
		"PROXY_CONFIG":  ProxyConfig(c),
	}
	if p.ServiceAccount != "" {
		meta["SERVICE_ACCOUNT"] = p.ServiceAccount
	}
	if p.Owner != "" {
		meta["OWNER"] = p.Owner
	}
	return meta
}

// Bootstrap renders the bootstrap as JSON (Envoy reads JSON or YAML by extension; this is .json).
func Bootstrap(p Pod, c Config) ([]byte, error) {
	host, port, ok := strings.Cut(c.Relay, ":")
	if !ok {
		return nil, fmt.Errorf("relay address %q: want host:port", c.Relay)
	}
	relayPort, err := strconv.Atoi(port)
	if err != nil {
		return nil, fmt.Errorf("relay address %q: %v", c.Relay, err)
	}
	socket := func(addr string, port int) map[string]any {
		return map[string]any{"socket_address": map[string]any{"address": addr, "port_value": port}}
	}
	ads := map[string]any{"ads": map[string]any{}, "initial_fetch_timeout": "0s", "resource_api_version": "V3"}
	b := map[string]any{
		"node": map[string]any{
			"id":       NodeID(p),
			"cluster":  ServiceCluster(p),
			"locality": map[string]any{},
			"metadata": Metadata(p, c),
		},
		"admin": map[string]any{"address": socket("127.0.0.1", c.AdminPort)},
		// pilot-agent's static runtime layer: no global connection limit warning, Istio's RE2 limits.
		"layered_runtime": map[string]any{"layers": []any{
			map[string]any{"name": "global config", "static_layer": map[string]any{
				"overload.global_downstream_max_connections": 2147483647,
				"re2.max_program_size.error_level":           32768,
			}},
			map[string]any{"name": "admin", "admin_layer": map[string]any{}},
		}},
		"dynamic_resources": map[string]any{
			"lds_config": ads,
			"cds_config": ads,
			"ads_config": map[string]any{
				"api_type":                       "DELTA_GRPC",
				"set_node_on_first_message_only": true,
				"transport_api_version":          "V3",
				"grpc_services":                  []any{map[string]any{"envoy_grpc": map[string]any{"cluster_name": "xds-grpc"}}},
			},
		},
		"static_resources": map[string]any{"clusters": []any{map[string]any{
			"name":            "xds-grpc",
			"type":            "STATIC",
			"connect_timeout": "1s",
			"lb_policy":       "ROUND_ROBIN",
			"load_assignment": map[string]any{"cluster_name": "xds-grpc", "endpoints": []any{map[string]any{"lb_endpoints": []any{
				map[string]any{"endpoint": map[string]any{"address": socket(host, relayPort)}},
			}}}},
			"circuit_breakers": map[string]any{"thresholds": []any{
				map[string]any{"priority": "DEFAULT", "max_connections": 100000, "max_pending_requests": 100000, "max_requests": 100000},
				map[string]any{"priority": "HIGH", "max_connections": 100000, "max_pending_requests": 100000, "max_requests": 100000},
			}},
			"upstream_connection_options": map[string]any{"tcp_keepalive": map[string]any{"keepalive_time": 300}},
			"typed_extension_protocol_options": map[string]any{
				"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": map[string]any{
					"@type":                "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
					"explicit_http_config": map[string]any{"http2_protocol_options": map[string]any{}},
				},
			},
		}}},
	}
	return json.MarshalIndent(b, "", "  ")
}

// Args is pilot-agent's Envoy command line (pkg/envoy/proxy.go) for this bootstrap, with --concurrency set and
// the log level given.
func Args(bootstrap string, c Config, logLevel string) []string {
	return []string{
		"-c", bootstrap,
		"--drain-time-s", strconv.Itoa(int(c.DrainDuration.Round(time.Second) / time.Second)),
		"--drain-strategy", "immediate",
		"--local-address-ip-version", "v4",
		"--file-flush-interval-msec", "1000",
		"--disable-hot-restart",
		"--allow-unknown-static-fields",
		"--concurrency", strconv.Itoa(c.Concurrency),
		"--log-level", logLevel,
	}
}

// SortedPorts: container ports in a stable order.
func SortedPorts(ports []Port) []Port {
	out := append([]Port{}, ports...)
	sort.Slice(out, func(i, j int) bool { return out[i].ContainerPort < out[j].ContainerPort })
	return out
}
