package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// The pod-address -> loopback table. Pods keep their cluster addresses (kube-apiserver refuses loopback
// addresses in EndpointSlices); whoever runs a pod's process records here which loopback port stands for
// each pod address and port, and whoever connects to a pod address looks it up. No connection ever
// goes to the pod address itself.

const (
	echoTable    = "echo-pods.json"
	gatewayTable = "gateway-pods.json"
)

type tableEntry struct {
	// Address is the pod's address and port as the cluster (and istiod's EDS) knows it.
	Address string `json:"address"`
	// Loopback is where the process that plays that pod listens.
	Loopback string `json:"loopback"`
	Pod      string `json:"pod"`
	PID      int    `json:"pid,omitempty"`
	Ready    bool   `json:"ready"`
}

type tableFile struct {
	Updated time.Time    `json:"updated"`
	Entries []tableEntry `json:"entries"`
}

// writeTable replaces the file atomically, so a reader never sees half of it.
func writeTable(path string, entries []tableEntry) error {
	sort.Slice(entries, func(i, j int) bool { return entries[i].Address < entries[j].Address })
	data, err := json.MarshalIndent(tableFile{Updated: time.Now().UTC(), Entries: entries}, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".table-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	tmp.Close()
	return os.Rename(tmp.Name(), path)
}

// tableReader re-reads the file when it changed (checked on every lookup: one stat).
type tableReader struct {
	path    string
	mu      sync.Mutex
	modTime time.Time
	size    int64
	byAddr  map[string]string
}

func (r *tableReader) lookup(address string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if st, err := os.Stat(r.path); err == nil && (!st.ModTime().Equal(r.modTime) || st.Size() != r.size) {
		var f tableFile
		if data, err := os.ReadFile(r.path); err == nil && json.Unmarshal(data, &f) == nil {
			r.byAddr = map[string]string{}
			for _, e := range f.Entries {
				r.byAddr[e.Address] = e.Loopback
			}
			r.modTime, r.size = st.ModTime(), st.Size()
		}
	}
	lb, ok := r.byAddr[address]
	return lb, ok
}
