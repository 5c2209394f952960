// Package controller is ASM's IstioGateway controller stand-in and the echo-pod runner.
package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"reflect"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"asm-tcp-shift/mesh/internal/pod"
)

// Options of `asm-local controller`.
type Options struct {
	IngressIP      string
	// ClusterID is this data plane's cluster id in the two-cluster (ASM-shaped) topology: the IstioGateway CRs are
	// read from the mesh control plane and the gateway made here only when spec.clusterIds names this cluster, as
	// ASM does ("clusterIds: the IDs of the clusters in which the ingress gateway is deployed",
	// https://help.aliyun.com/en/asm/sidecar/crd-fields-for-an-asm-gateway). Empty: one cluster plays both roles
	// and every IstioGateway makes its gateway.
	ClusterID string
	TCPEcho        string
	EchoImage      string
	StateDir       string
	RestartBackoff time.Duration
}

var istioGatewayGVR = schema.GroupVersionResource{Group: "istio.alibabacloud.com", Version: "v1beta1", Resource: "istiogateways"}

const (
	fieldManager      = "asm-local-istiogateway-controller"
	gatewayAnnotation = pod.GatewayAnnotation
	proxyImage        = "docker.io/istio/proxyv2:1.31-local"
)

// Run runs the controller and the echo-pod runner until ctx ends.
func Run(ctx context.Context, kc kubernetes.Interface, dc dynamic.Interface, o Options) {
	g := &gatewayController{kc: kc, dc: dc, ingressIP: o.IngressIP, clusterID: o.ClusterID,
		queue: workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())}
	dyn := dynamicinformer.NewDynamicSharedInformerFactory(dc, 5*time.Minute)
	gwInformer := dyn.ForResource(istioGatewayGVR).Informer()
	g.gateways = gwInformer.GetIndexer()
	enqueueCR := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			g.queue.Add(key)
		}
	}
	_, _ = gwInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: enqueueCR, UpdateFunc: func(_, n any) { enqueueCR(n) }, DeleteFunc: enqueueCR})

	kube := informers.NewSharedInformerFactory(kc, 5*time.Minute)
	enqueueOwned := func(obj any) {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		if m, err := metaOf(obj); err == nil {
			if key := m.GetAnnotations()[gatewayAnnotation]; key != "" {
				g.queue.Add(key)
			}
		}
	}
	owned := cache.ResourceEventHandlerFuncs{AddFunc: enqueueOwned, UpdateFunc: func(_, n any) { enqueueOwned(n) }, DeleteFunc: enqueueOwned}
	_, _ = kube.Apps().V1().Deployments().Informer().AddEventHandler(owned)
	_, _ = kube.Core().V1().Services().Informer().AddEventHandler(owned)
	g.deployments = kube.Apps().V1().Deployments().Lister()
	g.services = kube.Core().V1().Services().Lister()

	runner := newEchoRunner(kc, o)
	podInformer := kube.Core().V1().Pods().Informer()
	_, _ = podInformer.AddEventHandler(runner.handler())

	dyn.Start(ctx.Done())
	kube.Start(ctx.Done())
	dyn.WaitForCacheSync(ctx.Done())
	kube.WaitForCacheSync(ctx.Done())
	log.Printf("controller: caches synced; LoadBalancer address %s; echo pods: images containing %q run %s", o.IngressIP, o.EchoImage, o.TCPEcho)
	go func() {
		<-ctx.Done()
		g.queue.ShutDown()
	}()
	go runner.run(ctx)
	for g.next(ctx) {
	}
	runner.stopAll()
}

func metaOf(obj any) (metav1.Object, error) {
	if m, ok := obj.(metav1.Object); ok {
		return m, nil
	}
	return nil, fmt.Errorf("not an object: %T", obj)
}

type gatewayController struct {
	kc          kubernetes.Interface
	dc          dynamic.Interface
	ingressIP   string
	clusterID   string
	queue       workqueue.TypedRateLimitingInterface[string]
	gateways    cache.Indexer
	deployments appslisters.DeploymentLister
	services    corelisters.ServiceLister
}

func (g *gatewayController) next(ctx context.Context) bool {
	key, shutdown := g.queue.Get()
	if shutdown {
		return false
	}
	defer g.queue.Done(key)
	if err := g.reconcile(ctx, key); err != nil {
		log.Printf("istiogateway %s: %v (retrying)", key, err)
		g.queue.AddRateLimited(key)
		return true
	}
	g.queue.Forget(key)
	return true
}

// igSpec is the part of ASM's IstioGateway spec the stand-in acts on.
type igSpec struct {
	ClusterIDs         []string             `json:"clusterIds"`
	ReplicaCount       *int32               `json:"replicaCount"`
	MinReplicas        *int32               `json:"minReplicas"`
	ServiceType        string               `json:"serviceType"`
	ServiceAnnotations map[string]string    `json:"serviceAnnotations"`
	ServiceLabels      map[string]string    `json:"serviceLabels"`
	PodLabels          map[string]string    `json:"podLabels"`
	Ports              []corev1.ServicePort `json:"ports"`
	Resources          map[string]any       `json:"resources"`
}

func ownedBy(m metav1.Object, key string) bool { return m.GetAnnotations()[gatewayAnnotation] == key }

func (g *gatewayController) reconcile(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	objName := "istio-" + name
	item, exists, err := g.gateways.GetByKey(key)
	if err != nil {
		return err
	}
	var cr *unstructured.Unstructured
	if exists {
		cr, _ = item.(*unstructured.Unstructured)
	}
	if cr == nil || cr.GetDeletionTimestamp() != nil {
		return g.deleteOwned(ctx, ns, objName, key)
	}
	var spec igSpec
	raw, _ := json.Marshal(cr.Object["spec"])
	if err := json.Unmarshal(raw, &spec); err != nil {
		return g.setStatus(ctx, cr, "FAILED", nil, fmt.Sprintf("spec: %v", err))
	}
	if !g.deploysHere(spec.ClusterIDs) {
		// Not (or no longer) for this cluster: whatever was made here for it goes. Real ASM with clusterIds naming no
		// cluster of the mesh is not documented; the stand-in, whose mesh has this one data plane, says so in status.
		if err := g.deleteOwned(ctx, ns, objName, key); err != nil {
			return err
		}
		return g.setStatus(ctx, cr, "FAILED", nil, fmt.Sprintf("spec.clusterIds %v names no cluster of this mesh (its data plane: %s); no gateway deployed", spec.ClusterIDs, g.clusterID))
	}
	// Never touch an object this controller did not create.
	if d, err := g.deployments.Deployments(ns).Get(objName); err == nil && !ownedBy(d, key) {
		return g.setStatus(ctx, cr, "FAILED", nil, fmt.Sprintf("Deployment %s/%s exists and was not created for this IstioGateway; left untouched", ns, objName))
	}
	if s, err := g.services.Services(ns).Get(objName); err == nil && !ownedBy(s, key) {
		return g.setStatus(ctx, cr, "FAILED", nil, fmt.Sprintf("Service %s/%s exists and was not created for this IstioGateway; left untouched", ns, objName))
	}

	// An owner reference only where the CR lives in the same API server: the data plane's garbage collector would
	// look the owner up in its own API, which has no IstioGateway. Across clusters the annotation is the link and
	// this controller deletes what it made (deleteOwned).
	var owner []map[string]any
	if g.clusterID == "" {
		owner = []map[string]any{{"apiVersion": cr.GetAPIVersion(), "kind": cr.GetKind(), "name": name, "uid": string(cr.GetUID()), "controller": true, "blockOwnerDeletion": true}}
	}
	selector := map[string]string{"istio": name, "app": objName}
	podLabels := map[string]string{}
	for k, v := range spec.PodLabels {
		podLabels[k] = v
	}
	for k, v := range selector { // ASM's own labels win: the Deployment selects on them
		podLabels[k] = v
	}
	replicas := int32(1)
	if spec.ReplicaCount != nil {
		replicas = *spec.ReplicaCount
	} else if spec.MinReplicas != nil {
		replicas = *spec.MinReplicas
	}
	containerPorts := []map[string]any{}
	servicePorts := []map[string]any{}
	for _, p := range spec.Ports {
		target := p.TargetPort
		if target.Type == intstr.Int && target.IntVal == 0 || target.Type == intstr.String && target.StrVal == "" {
			target = intstr.FromInt32(p.Port)
		}
		proto := p.Protocol
		if proto == "" {
			proto = corev1.ProtocolTCP
		}
		if target.Type == intstr.Int {
			containerPorts = append(containerPorts, map[string]any{"containerPort": target.IntVal, "protocol": proto})
		}
		sp := map[string]any{"port": p.Port, "targetPort": target, "protocol": proto}
		if p.Name != "" {
			sp["name"] = p.Name
		}
		if p.NodePort != 0 {
			sp["nodePort"] = p.NodePort
		}
		servicePorts = append(servicePorts, sp)
	}
	container := map[string]any{
		"name": "istio-proxy", "image": proxyImage,
		"args":  []string{"proxy", "router", "--domain", "$(POD_NAMESPACE).svc.cluster.local"},
		"ports": containerPorts,
	}
	if spec.Resources != nil {
		container["resources"] = spec.Resources
	}
	deployment := map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": withOwner(map[string]any{"name": objName, "namespace": ns, "labels": selector,
			"annotations": map[string]string{gatewayAnnotation: key}}, owner),
		"spec": map[string]any{
			"replicas": replicas,
			"selector": map[string]any{"matchLabels": selector},
			"template": map[string]any{
				"metadata": map[string]any{"labels": podLabels,
					"annotations": map[string]string{gatewayAnnotation: key, "sidecar.istio.io/inject": "false"}},
				"spec": map[string]any{"containers": []any{container}},
			},
		},
	}
	serviceType := spec.ServiceType
	if serviceType == "" {
		serviceType = string(corev1.ServiceTypeLoadBalancer)
	}
	svcLabels := map[string]string{}
	for k, v := range spec.ServiceLabels {
		svcLabels[k] = v
	}
	for k, v := range selector {
		svcLabels[k] = v
	}
	svcAnnotations := map[string]string{gatewayAnnotation: key}
	for k, v := range spec.ServiceAnnotations {
		if k != gatewayAnnotation {
			svcAnnotations[k] = v
		}
	}
	service := map[string]any{
		"apiVersion": "v1", "kind": "Service",
		"metadata": withOwner(map[string]any{"name": objName, "namespace": ns, "labels": svcLabels, "annotations": svcAnnotations}, owner),
		"spec":     map[string]any{"type": serviceType, "selector": selector, "ports": servicePorts},
	}
	force := true
	apply := metav1.PatchOptions{FieldManager: fieldManager, Force: &force}
	body, _ := json.Marshal(deployment)
	if _, err := g.kc.AppsV1().Deployments(ns).Patch(ctx, objName, types.ApplyPatchType, body, apply); err != nil {
		return g.setStatus(ctx, cr, "FAILED", nil, fmt.Sprintf("Deployment %s/%s: %v", ns, objName, err))
	}
	body, _ = json.Marshal(service)
	svc, err := g.kc.CoreV1().Services(ns).Patch(ctx, objName, types.ApplyPatchType, body, apply)
	if err != nil {
		return g.setStatus(ctx, cr, "FAILED", nil, fmt.Sprintf("Service %s/%s: %v", ns, objName, err))
	}
	// The CLB stand-in: a LoadBalancer Service gets a loopback ingress address, which the gateway process serves.
	var addresses []string
	var wantIngress []corev1.LoadBalancerIngress
	if svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
		vip := corev1.LoadBalancerIPModeVIP
		wantIngress = []corev1.LoadBalancerIngress{{IP: g.ingressIP, IPMode: &vip}}
		addresses = []string{g.ingressIP}
	}
	if !reflect.DeepEqual(svc.Status.LoadBalancer.Ingress, wantIngress) && !(len(wantIngress) == 0 && len(svc.Status.LoadBalancer.Ingress) == 0) {
		patch, _ := json.Marshal(map[string]any{"status": map[string]any{"loadBalancer": map[string]any{"ingress": wantIngress}}})
		if _, err := g.kc.CoreV1().Services(ns).Patch(ctx, objName, types.MergePatchType, patch, metav1.PatchOptions{}, "status"); err != nil {
			return fmt.Errorf("Service %s/%s status: %w", ns, objName, err)
		}
	}
	return g.setStatus(ctx, cr, "RUNNING", addresses, "")
}

// setStatus writes ASM's status fields (capitalised keys, as ASM's API has them) when they changed.
func (g *gatewayController) setStatus(ctx context.Context, cr *unstructured.Unstructured, state string, addresses []string, message string) error {
	spec, _ := cr.Object["spec"].(map[string]any)
	byCluster := []any{}
	for _, id := range g.statusClusters(toStrings(spec["clusterIds"])) {
		for _, a := range addresses {
			byCluster = append(byCluster, map[string]any{"ipAddress": a, "clusterId": id})
		}
	}
	gatewayAddress := []any{}
	for _, a := range addresses {
		gatewayAddress = append(gatewayAddress, a)
	}
	want := map[string]any{"Status": state, "GatewayAddress": gatewayAddress, "ClusterIdGatewayAddressMap": byCluster, "ErrorMessage": message}
	status, _ := cr.Object["status"].(map[string]any)
	current := map[string]any{}
	for k := range want {
		if v, ok := status[k]; ok {
			current[k] = v
		}
	}
	if jsonEqual(current, want) {
		return nil
	}
	if message != "" {
		log.Printf("istiogateway %s/%s: %s", cr.GetNamespace(), cr.GetName(), message)
	}
	patch, _ := json.Marshal(map[string]any{"status": want})
	_, err := g.dc.Resource(istioGatewayGVR).Namespace(cr.GetNamespace()).Patch(ctx, cr.GetName(), types.MergePatchType, patch, metav1.PatchOptions{}, "status")
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

func (g *gatewayController) deleteOwned(ctx context.Context, ns, objName, key string) error {
	if d, err := g.deployments.Deployments(ns).Get(objName); err == nil && ownedBy(d, key) && d.DeletionTimestamp == nil {
		if err := g.kc.AppsV1().Deployments(ns).Delete(ctx, objName, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &d.UID}}); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		log.Printf("istiogateway %s gone: deleted Deployment %s/%s", key, ns, objName)
	}
	if s, err := g.services.Services(ns).Get(objName); err == nil && ownedBy(s, key) && s.DeletionTimestamp == nil {
		if err := g.kc.CoreV1().Services(ns).Delete(ctx, objName, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &s.UID}}); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		log.Printf("istiogateway %s gone: deleted Service %s/%s", key, ns, objName)
	}
	return nil
}

// deploysHere: whether an IstioGateway with these spec.clusterIds has its gateway in this cluster.
func (g *gatewayController) deploysHere(clusterIDs []string) bool {
	if g.clusterID == "" {
		return true
	}
	for _, id := range clusterIDs {
		if id == g.clusterID {
			return true
		}
	}
	return false
}

// statusClusters: the clusters whose gateway address the status lists: every listed one when one cluster plays
// both roles, else only this data plane (the only cluster whose address the stand-in knows).
func (g *gatewayController) statusClusters(clusterIDs []string) []string {
	if g.clusterID == "" {
		return clusterIDs
	}
	if g.deploysHere(clusterIDs) {
		return []string{g.clusterID}
	}
	return nil
}

func withOwner(meta map[string]any, owner []map[string]any) map[string]any {
	if len(owner) > 0 {
		meta["ownerReferences"] = owner
	}
	return meta
}

func toStrings(v any) []string {
	out := []string{}
	if list, ok := v.([]any); ok {
		for _, x := range list {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return strings.TrimSpace(string(x)) == strings.TrimSpace(string(y))
}
