package podnet

import (
	"io"
	"net"
	"sync"
)

// Splice carries one connection both ways between a and b until both directions are done, so that either end
// sees what it would see connected to the other directly:
//   - an end of stream (FIN) is passed on as a half-close (CloseWrite), and the other direction keeps flowing;
//     tcp-echo answers until it reads the client's end, and Envoy's tcp_proxy passes half-closes on too;
//   - any error, a reset read (ECONNRESET) or a write to a reset peer, resets both sides (SO_LINGER 0, so close
//     sends RST): the peer of a reset connection sees a reset, not an orderly close.
//
// Both connections are closed when Splice returns.
func Splice(a, b *net.TCPConn) {
	var once sync.Once
	reset := func() {
		once.Do(func() {
			for _, c := range []*net.TCPConn{a, b} {
				_ = c.SetLinger(0)
				_ = c.Close()
			}
		})
	}
	var wg sync.WaitGroup
	wg.Add(2)
	half := func(dst, src *net.TCPConn) {
		defer wg.Done()
		// io.Copy uses splice(2) between TCP sockets; it returns nil at src's end of stream, after writing all.
		if _, err := io.Copy(dst, src); err != nil {
			reset()
			return
		}
		if err := dst.CloseWrite(); err != nil {
			reset()
		}
	}
	go half(a, b)
	go half(b, a)
	wg.Wait()
	once.Do(func() {
		a.Close()
		b.Close()
	})
}

// Reset closes c with a reset (RST) instead of an orderly close: what a client sees when nothing listens where it
// connected (the runner accepted on the pod's behalf, but the pod's port does not accept).
func Reset(c *net.TCPConn) {
	_ = c.SetLinger(0)
	_ = c.Close()
}
