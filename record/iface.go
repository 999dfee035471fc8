//go:build linux && (amd64 || arm64)

package record

import (
	"fmt"
	"net"
	"runtime"

	"golang.org/x/sys/unix"
)

// ifNames names network devices by index, as the cgroup tier reports them
// (the index of the skb's device, in the network namespace of the socket).
// A name is looked up once per (namespace, index) and kept: a device
// renamed or replaced later keeps its first name in the recording. A
// device in another namespace (a container's eth0) is looked up inside that
// namespace, entered through the owning process's /proc/PID/ns/net (or an
// ancestor's, in the same namespace) on a thread of its own.
type ifNames struct {
	selfNetNS uint32
	cache     map[[2]uint32]string
	procRoot  string
}

// maxCachedIfaces bounds the cache (a host with thousands of short-lived
// veths): it is emptied when full.
const maxCachedIfaces = 4096

func newIfNames(procRoot string) *ifNames {
	n := &ifNames{cache: map[[2]uint32]string{}, procRoot: procRoot}
	var st unix.Stat_t
	if unix.Stat(procRoot+"/self/ns/net", &st) == nil {
		n.selfNetNS = uint32(st.Ino)
	}
	return n
}

// name is the device's name, or "" if it cannot be found.
func (n *ifNames) name(ifindex uint32, id *Identity) string {
	if ifindex == 0 {
		return ""
	}
	var netns uint32
	if id != nil {
		netns = id.NetNS
	}
	k := [2]uint32{netns, ifindex}
	if name, ok := n.cache[k]; ok {
		return name
	}
	if len(n.cache) >= maxCachedIfaces {
		clear(n.cache)
	}
	var name string
	if netns == 0 || netns == n.selfNetNS {
		if ifi, err := net.InterfaceByIndex(int(ifindex)); err == nil {
			name = ifi.Name
		}
	} else {
		// Through the process, or if it has gone (a short-lived client),
		// one of its ancestors still in that namespace.
		pids := []uint32{id.PID}
		for _, a := range id.Ancestors {
			pids = append(pids, a.PID)
		}
		for _, pid := range pids {
			var err error
			if name, err = ifNameInNetNS(fmt.Sprintf("%s/%d/ns/net", n.procRoot, pid), netns, ifindex); err == nil {
				break
			}
		}
	}
	n.cache[k] = name
	return name
}

// ifNameInNetNS looks a device up inside the network namespace at nsPath,
// if that is still the namespace want (the process may have gone, and its
// pid been reused). The lookup runs on a locked thread that enters the
// namespace; the thread is only reused if it got back to its own.
func ifNameInNetNS(nsPath string, want, ifindex uint32) (string, error) {
	type result struct {
		name string
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		name, err, back := func() (string, error, bool) {
			target, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				return "", err, true
			}
			defer unix.Close(target)
			var st unix.Stat_t
			if err := unix.Fstat(target, &st); err != nil || uint32(st.Ino) != want {
				return "", fmt.Errorf("%s is no longer network namespace %d", nsPath, want), true
			}
			self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				return "", err, true
			}
			defer unix.Close(self)
			if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
				return "", err, true
			}
			ifi, err := net.InterfaceByIndex(int(ifindex))
			back := unix.Setns(self, unix.CLONE_NEWNET) == nil
			if err != nil {
				return "", err, back
			}
			return ifi.Name, nil, back
		}()
		if back {
			runtime.UnlockOSThread()
		} // else the thread ends with this goroutine, still locked
		ch <- result{name, err}
	}()
	r := <-ch
	return r.name, r.err
}
