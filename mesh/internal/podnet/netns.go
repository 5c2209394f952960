// Package podnet gives an echo pod the network of its own a real pod has: a network namespace with only
// `lo` in it, so the workload's listen on every interface (tcp-echo binds ":"+port) reaches nothing outside
// the pod. The runner starts the workload inside it (Start), checks readiness and carries connections in
// with sockets it creates inside (Dial), and splices them to the host-side loopback port (Splice).
//
// Creating a network namespace needs CAP_SYS_ADMIN. An unprivileged user+network namespace is no way out
// for this process: unshare(CLONE_NEWUSER) refuses a multithreaded caller (every Go program), and setns into
// a network namespace owned by another user namespace needs CAP_SYS_ADMIN in the caller's own. New reports
// that case as ErrNotPermitted, and the runner falls back to host networking (docs/local-mesh.md).
package podnet

import (
	"errors"
	"fmt"
	"net"
	"os/exec"
	"runtime"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// ErrNotPermitted: this process may not create a network namespace (it lacks CAP_SYS_ADMIN).
var ErrNotPermitted = errors.New("creating a network namespace needs CAP_SYS_ADMIN (run as root)")

// NS is one pod's network namespace, alive as long as the NS holds its file descriptor (or a process is in it).
type NS struct {
	fd    int
	inode uint64
}

// Inode identifies the namespace, as /proc/<pid>/ns/net's link target net:[<inode>] does.
func (n *NS) Inode() uint64 { return n.inode }

// Close lets the namespace go once no process is left in it.
func (n *NS) Close() error { return unix.Close(n.fd) }

// New creates a network namespace with `lo` up and nothing else.
func New() (*NS, error) {
	var ns *NS
	err := onOwnThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			if errors.Is(err, unix.EPERM) {
				return fmt.Errorf("%w: unshare(CLONE_NEWNET): %v", ErrNotPermitted, err)
			}
			return fmt.Errorf("unshare(CLONE_NEWNET): %w", err)
		}
		fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open the new namespace: %w", err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return err
		}
		// A new network namespace has `lo` down: nothing, not even 127.0.0.1, would connect inside.
		if err := loopbackUp(); err != nil {
			unix.Close(fd)
			return fmt.Errorf("bring lo up: %w", err)
		}
		ns = &NS{fd: fd, inode: st.Ino}
		return nil
	})
	return ns, err
}

func loopbackUp() error {
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(s)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(s, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(s, unix.SIOCSIFFLAGS, ifr)
}

// hostNS is this process's own network namespace, where a thread returns after working inside a pod's.
var hostNS = func() int {
	fd, err := unix.Open("/proc/self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1
	}
	return fd
}()

// HostInode is the inode of this process's own network namespace.
func HostInode() (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// onHost: is the calling thread in this process's own network namespace?
func onHost() bool {
	var self, thread unix.Stat_t
	return unix.Fstat(hostNS, &self) == nil && unix.Stat("/proc/thread-self/ns/net", &thread) == nil &&
		self.Ino == thread.Ino && self.Dev == thread.Dev
}

// onOwnThread runs f on an OS thread of its own, locked for the duration. A namespace belongs to a thread, not
// to the process: after f (which may have moved the thread), the thread is moved back to the host namespace and
// only then handed back to the runtime; if that fails it stays locked, and the runtime ends it with the goroutine,
// so no other goroutine ever runs in a pod's namespace by accident.
func onOwnThread(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		err := f()
		if !onHost() {
			if hostNS < 0 {
				errc <- errors.Join(err, errors.New("no handle on the host network namespace"))
				return
			}
			if rerr := unix.Setns(hostNS, unix.CLONE_NEWNET); rerr != nil {
				errc <- errors.Join(err, fmt.Errorf("return to the host network namespace: %w", rerr))
				return
			}
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	return <-errc
}

// Do runs f on a thread inside the namespace: every socket f creates belongs to the namespace for its life,
// whichever thread uses it later.
func (n *NS) Do(f func() error) error {
	return onOwnThread(func() error {
		if err := unix.Setns(n.fd, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("enter the pod's network namespace: %w", err)
		}
		return f()
	})
}

// Start starts cmd inside the namespace (a forked child inherits its parent thread's namespace). cmd's
// SysProcAttr.Pdeathsig ties the child to that thread, which Do hands back to the runtime, alive.
func (n *NS) Start(cmd *exec.Cmd) error { return n.Do(cmd.Start) }

// Dial connects to 127.0.0.1:port inside the namespace.
func (n *NS) Dial(port int, timeout time.Duration) (*net.TCPConn, error) {
	var c net.Conn
	err := n.Do(func() error {
		var err error
		c, err = net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), timeout)
		return err
	})
	if err != nil {
		if c != nil {
			c.Close()
		}
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// Interfaces lists the namespace's network interfaces (for tests and logs).
func (n *NS) Interfaces() ([]net.Interface, error) {
	var ifs []net.Interface
	err := n.Do(func() error {
		var err error
		ifs, err = net.Interfaces()
		return err
	})
	return ifs, err
}

// InodeOf is the network namespace of a process (its /proc/<pid>/ns/net).
func InodeOf(pid int) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/"+strconv.Itoa(pid)+"/ns/net", &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// Forward accepts on l (a host loopback port standing for the pod's port) until l is closed, and carries each
// connection to 127.0.0.1:port inside the namespace. A connection the pod's port does not take is reset, as the
// kernel answers a connection to a port nothing listens on.
func (n *NS) Forward(l *net.TCPListener, port int) {
	for {
		c, err := l.AcceptTCP()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil { // e.g. out of file descriptors for a moment
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go func() {
			in, err := n.Dial(port, 5*time.Second)
			if err != nil {
				Reset(c)
				return
			}
			Splice(c, in)
		}()
	}
}
