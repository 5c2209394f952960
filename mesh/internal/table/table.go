// Package table is the pod-address -> loopback table. Pods keep their cluster addresses (kube-apiserver
// refuses loopback addresses in EndpointSlices); whoever runs a pod's process records here which loopback
// port stands for each pod address and port, and whoever connects to a pod address looks it up. No
// connection ever goes to the pod address itself.
package table

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

const (
	// Echo is the echo-pod runner's table (pod IP:port -> the tcp-echo process's loopback port).
	Echo = "echo-pods.json"
	// Gateway is the gateway runner's table (gateway pod IP:listener port -> its Envoy's loopback listener).
	Gateway = "gateway-pods.json"
)

type Entry struct {
	// Address is the pod's address and port as the cluster (and istiod's EDS) knows it.
	Address string `json:"address"`
	// Loopback is where the process that plays that pod listens.
	Loopback string `json:"loopback"`
	Pod      string `json:"pod"`
	PID      int    `json:"pid,omitempty"`
	Ready    bool   `json:"ready"`
}

type file struct {
	Updated time.Time `json:"updated"`
	Entries []Entry   `json:"entries"`
}

// Write replaces the file atomically, so a reader never sees half of it.
func Write(path string, entries []Entry) error {
	sort.Slice(entries, func(i, j int) bool { return entries[i].Address < entries[j].Address })
	data, err := json.MarshalIndent(file{Updated: time.Now().UTC(), Entries: entries}, "", "  ")
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

// Reader re-reads the file when it changed (checked on every lookup: one stat).
type Reader struct {
	Path    string
	mu      sync.Mutex
	modTime time.Time
	size    int64
	byAddr  map[string]string
	gen     uint64
}

// refresh reloads the file if it changed; it reports whether the mapping changed.
func (r *Reader) refreshLocked() bool {
	st, err := os.Stat(r.Path)
	if err != nil || (st.ModTime().Equal(r.modTime) && st.Size() == r.size) {
		return false
	}
	var f file
	data, err := os.ReadFile(r.Path)
	if err != nil || json.Unmarshal(data, &f) != nil {
		return false
	}
	next := map[string]string{}
	for _, e := range f.Entries {
		next[e.Address] = e.Loopback
	}
	r.modTime, r.size = st.ModTime(), st.Size()
	if equal(next, r.byAddr) {
		return false
	}
	r.byAddr = next
	r.gen++
	return true
}

func equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// Lookup: the loopback address that stands for a pod address (ip:port).
func (r *Reader) Lookup(address string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refreshLocked()
	lb, ok := r.byAddr[address]
	return lb, ok
}

// Generation re-reads the file if it changed and returns a number that moves whenever the mapping does.
func (r *Reader) Generation() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refreshLocked()
	return r.gen
}

// Static is a fixed table, for tests.
type Static map[string]string

func (s Static) Lookup(address string) (string, bool) { v, ok := s[address]; return v, ok }
