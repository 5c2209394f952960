package controller

import (
	"reflect"
	"testing"
)

func TestDeploysHereFollowsSpecClusterIds(t *testing.T) {
	one := &gatewayController{}
	if !one.deploysHere(nil) || !one.deploysHere([]string{"anything"}) {
		t.Error("one-cluster topology: every IstioGateway deploys here")
	}
	if got := one.statusClusters([]string{"a", "b"}); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Errorf("one-cluster status clusters %v", got)
	}
	dp := &gatewayController{clusterID: "c0"}
	cases := []struct {
		ids    []string
		here   bool
		status []string
	}{
		{nil, false, nil},
		{[]string{"c1"}, false, nil},
		{[]string{"c1", "c0"}, true, []string{"c0"}},
		{[]string{"c0"}, true, []string{"c0"}},
	}
	for _, c := range cases {
		if got := dp.deploysHere(c.ids); got != c.here {
			t.Errorf("deploysHere(%v) = %v", c.ids, got)
		}
		if got := dp.statusClusters(c.ids); !reflect.DeepEqual(got, c.status) {
			t.Errorf("statusClusters(%v) = %v, want %v", c.ids, got, c.status)
		}
	}
}

func TestOwnerReferenceOnlyWithinOneCluster(t *testing.T) {
	if m := withOwner(map[string]any{"name": "x"}, nil); m["ownerReferences"] != nil {
		t.Errorf("across clusters: no owner reference, got %v", m)
	}
	owner := []map[string]any{{"uid": "u"}}
	if m := withOwner(map[string]any{"name": "x"}, owner); m["ownerReferences"] == nil {
		t.Error("one cluster: owner reference expected")
	}
}
