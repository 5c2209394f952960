// Package pod holds what the controller and the gateway runner share about pods: the annotation that marks
// the IstioGateway controller's objects, and readiness as the kubelet reports it.
package pod

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// GatewayAnnotation is on every object the IstioGateway controller creates (Deployment, Service, pod
// template): "<namespace>/<IstioGateway>". The controller touches only objects that carry it.
const GatewayAnnotation = "asm-tcp-shift.io/istio-gateway"

// Ready: the pod's Ready condition as the API has it.
func Ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Status is one container's state, for PatchReady.
type Status struct {
	Namespace, Name, Container, Image string
	Ready                             bool
	Restarts                          int
	Started                           time.Time
	ExitCode                          *int
	// Waiting is the reason shown while not ready (e.g. CrashLoopBackOff).
	Waiting, WaitingMessage string
}

// PatchReady sets the pod's Ready/ContainersReady conditions and the container's status, as the kubelet
// reports them.
func PatchReady(kc kubernetes.Interface, s Status) {
	now := metav1.Now()
	status := corev1.ConditionFalse
	reason := "ContainersNotReady"
	if s.Ready {
		status, reason = corev1.ConditionTrue, ""
	}
	cond := func(t corev1.PodConditionType) map[string]any {
		c := map[string]any{"type": t, "status": status, "lastTransitionTime": now}
		if reason != "" {
			c["reason"] = reason
			c["message"] = fmt.Sprintf("containers with unready status: [%s]", s.Container)
		} else {
			c["reason"], c["message"] = nil, nil
		}
		return c
	}
	cs := map[string]any{"name": s.Container, "image": s.Image, "imageID": "", "ready": s.Ready, "restartCount": s.Restarts, "started": s.Ready}
	if s.Ready {
		cs["state"] = map[string]any{"running": map[string]any{"startedAt": metav1.NewTime(s.Started)}, "waiting": nil, "terminated": nil}
	} else {
		cs["state"] = map[string]any{"waiting": map[string]any{"reason": s.Waiting, "message": s.WaitingMessage}, "running": nil, "terminated": nil}
	}
	if s.ExitCode != nil {
		cs["lastState"] = map[string]any{"terminated": map[string]any{"exitCode": *s.ExitCode, "reason": "Error", "startedAt": metav1.NewTime(s.Started), "finishedAt": now}}
	}
	patch, _ := json.Marshal(map[string]any{"status": map[string]any{
		"conditions":        []any{cond(corev1.PodReady), cond(corev1.ContainersReady)},
		"containerStatuses": []any{cs},
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := kc.CoreV1().Pods(s.Namespace).Patch(ctx, s.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status"); err != nil {
		log.Printf("pod %s/%s: readiness %v: %v", s.Namespace, s.Name, s.Ready, err)
	}
}
